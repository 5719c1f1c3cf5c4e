"""The edge's nginx configuration, rendered from Settings and a JWKS (pure: no I/O).

``ops/edge/nginx.conf.template`` holds the nginx text with ``{{name}}`` holes; ``EdgeConfig``
holds the values. The JWKS is turned into ``kid -> SPKI (base64 DER)`` because njs 0.7's
WebCrypto imports SPKI but not JWK keys; only public keys can be expressed that way.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from jwt.algorithms import ECAlgorithm

__all__ = [
    "JS_MODULE",
    "OPS_EDGE",
    "EdgeConfig",
    "edge_config",
    "render",
    "spki_keys",
]

OPS_EDGE = Path(__file__).resolve().parents[2] / "ops" / "edge"
JS_MODULE = "/usr/lib/nginx/modules/ngx_http_js_module.so"
_HOLE = re.compile(r"\{\{(\w+)\}\}")
_KID = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass(frozen=True)
class EdgeConfig:
    """Every value the template needs."""

    listen: str
    origins: tuple[str, ...]
    prefix: Path
    keys: Mapping[str, str]  # kid -> base64 SPKI DER of a P-256 public key
    cache_mb: int = 1024
    keys_mb: int = 16
    workers: int = 2
    read_timeout_s: int = 11
    js_dir: Path = OPS_EDGE
    js_module: str = JS_MODULE

    def values(self) -> dict[str, str]:
        """The template's holes, filled."""
        servers = "\n".join(f"        server {o} max_fails=1 fail_timeout=2s;"
                            for o in self.origins)
        return {
            "listen": self.listen, "prefix": str(self.prefix), "js_dir": str(self.js_dir),
            "js_module": self.js_module, "workers": str(self.workers),
            "cache_mb": str(self.cache_mb), "keys_mb": str(self.keys_mb),
            "read_timeout_s": str(self.read_timeout_s), "servers": servers,
            "keys_json": json.dumps(dict(self.keys), separators=(",", ":"), sort_keys=True),
        }


def spki_keys(jwks: Mapping[str, Any]) -> dict[str, str]:
    """``kid -> SPKI`` for every ES256 key of a JWK Set; refuse anything else."""
    out: dict[str, str] = {}
    for jwk in jwks.get("keys", []) if isinstance(jwks, Mapping) else []:
        kid = jwk.get("kid") if isinstance(jwk, Mapping) else None
        if not isinstance(kid, str) or not _KID.fullmatch(kid):
            raise ValueError("JWKS: every key needs a short alphanumeric kid")
        if jwk.get("kty") != "EC" or jwk.get("crv") != "P-256" or "d" in jwk:
            raise ValueError(f"JWKS: key {kid!r} is not a public P-256 key")
        pub = ECAlgorithm.from_jwk(json.dumps(dict(jwk)))
        der = pub.public_bytes(serialization.Encoding.DER,  # type: ignore[union-attr]
                               serialization.PublicFormat.SubjectPublicKeyInfo)
        out[kid] = base64.b64encode(der).decode("ascii")
    if not out:
        raise ValueError("JWKS holds no key")
    return out


def edge_config(settings: Any, jwks: Mapping[str, Any], workers: int = 2) -> EdgeConfig:
    """The edge of ``settings``: its address, origins (default: the playback service), cache
    sizes, prefix under the state dir; timeouts long enough for a blocking playlist request
    (LL-HLS servers may hold one for three target durations)."""
    origins = tuple(settings.edge_origins) or (settings.playback_addr,)
    return EdgeConfig(
        listen=settings.edge_addr, origins=origins,
        prefix=(Path(settings.state_dir) / "edge").resolve(), keys=spki_keys(jwks),
        cache_mb=settings.edge_cache_mb, keys_mb=settings.edge_keys_mb, workers=workers,
        read_timeout_s=int(3 * settings.segment_target_s) + 5,
    )


def render(template: str, cfg: EdgeConfig) -> str:
    """``template`` with every ``{{name}}`` replaced; an unknown or unused name is a ValueError."""
    values = cfg.values()
    used: set[str] = set()

    def fill(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in values:
            raise ValueError(f"edge template: no value for {{{{{name}}}}}")
        used.add(name)
        return values[name]

    text = _HOLE.sub(fill, template)
    if unused := set(values) - used:
        raise ValueError(f"edge template: values never used: {sorted(unused)}")
    return text
