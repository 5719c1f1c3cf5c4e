"""ES256 viewer-token keys: PEM files on disk, a ring with one signing key, and its JWKS.

A key's id (``kid``) is its file name without ``.pem``. The first path of
``Settings.viewer_keys`` is the current key; the others are previous keys kept so tokens they
signed still verify (rotation with overlap). A process that only verifies (the bridge, the
edge's JWKS) may be given public-key PEMs; only a process that signs needs the private key.
With ``CAMLOG_VIEWER_KEYS`` unset, the keys are ``<state dir>/viewer-keys/*.pem``, newest kid
first, made by ``camlog token keygen`` (``camlog dev up`` and ``camlog demo`` make one if none
exists).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from pipeline.errors import CamlogError

__all__ = [
    "ViewerKeyError",
    "ViewerKeys",
    "dev_key_dir",
    "ensure_dev_key",
    "ephemeral_keys",
    "generate_key",
    "key_paths",
    "load_viewer_keys",
    "viewer_keys",
]


class ViewerKeyError(CamlogError):
    """A viewer key file is missing or unusable; the message names the file, never its bytes."""


@dataclass(frozen=True)
class ViewerKeys:
    """Public keys by kid (current first) and, where this process signs, the current private key."""

    public: Mapping[str, ec.EllipticCurvePublicKey]
    private: ec.EllipticCurvePrivateKey | None = field(default=None, repr=False)

    @property
    def signing_kid(self) -> str:
        """The kid new tokens are signed with (the first key)."""
        return next(iter(self.public))

    def jwks(self) -> dict[str, Any]:
        """The public keys as an RFC 7517 JWK Set (``use: sig``, ``alg: ES256``)."""
        keys = []
        for kid, pub in self.public.items():
            jwk = json.loads(ECAlgorithm.to_jwk(pub))
            keys.append({**jwk, "kid": kid, "use": "sig", "alg": "ES256"})
        return {"keys": keys}

    def public_only(self) -> ViewerKeys:
        """The same ring without the private key (what an edge or verifier may hold)."""
        return ViewerKeys(self.public)


def dev_key_dir(state_dir: Path) -> Path:
    """Where the development keys live."""
    return state_dir / "viewer-keys"


def key_paths(configured: Sequence[str], state_dir: Path) -> list[Path]:
    """The configured key files, or the development ones (newest kid first)."""
    if configured:
        return [Path(p) for p in configured]
    d = dev_key_dir(state_dir)
    return sorted(d.glob("*.pem"), key=lambda p: p.stem, reverse=True) if d.is_dir() else []


def _load_one(path: Path) -> tuple[ec.EllipticCurvePublicKey, ec.EllipticCurvePrivateKey | None]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ViewerKeyError(f"viewer key {path}: {exc.strerror}") from None
    try:
        if b"PRIVATE KEY" in raw:
            priv = serialization.load_pem_private_key(raw, password=None)
            if not isinstance(priv, ec.EllipticCurvePrivateKey):
                raise ValueError("not an EC key")
            pub, key = priv.public_key(), priv
        else:
            pub, key = serialization.load_pem_public_key(raw), None  # type: ignore[assignment]
        if not isinstance(pub, ec.EllipticCurvePublicKey) or pub.curve.name != "secp256r1":
            raise ValueError("not a P-256 key")
    except ValueError as exc:
        raise ViewerKeyError(f"viewer key {path}: ES256 needs a P-256 PEM key ({exc})") from None
    return pub, key


def load_viewer_keys(paths: Sequence[Path]) -> ViewerKeys:
    """The ring from PEM files, first = current; the current one's private key if present."""
    if not paths:
        raise ViewerKeyError("no viewer key: run `camlog token keygen` (or set CAMLOG_VIEWER_KEYS)")
    public: dict[str, ec.EllipticCurvePublicKey] = {}
    private = None
    for i, path in enumerate(paths):
        kid = path.stem
        if not kid.replace("-", "").replace("_", "").isalnum() or kid in public:
            raise ViewerKeyError(f"viewer key {path}: kid {kid!r} must be unique and alphanumeric")
        public[kid], priv = _load_one(path)
        if i == 0:
            private = priv
    return ViewerKeys(public, private)


_CACHE: dict[tuple[str, ...], ViewerKeys] = {}


def viewer_keys(settings: Any) -> ViewerKeys:
    """The ring for ``settings`` (``viewer_keys`` paths or the dev keys), read once per process."""
    paths = key_paths(settings.viewer_keys, settings.state_dir)
    tag = tuple(str(p) for p in paths)
    if tag not in _CACHE:
        _CACHE[tag] = load_viewer_keys(paths)
    return _CACHE[tag]


def generate_key(directory: Path, kid: str | None = None, now: float | None = None) -> Path:
    """Write a new P-256 private key ``<kid>.pem`` (mode 0600); kid defaults to a UTC stamp."""
    stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime(time.time() if now is None else now))
    kid = kid or f"v{stamp}"
    path = directory / f"{kid}.pem"
    directory.mkdir(parents=True, exist_ok=True)
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    return path


def ensure_dev_key(settings: Any) -> Path | None:
    """Make a development key when none is configured or present; the new path, or None."""
    if key_paths(settings.viewer_keys, settings.state_dir):
        return None
    try:
        return generate_key(dev_key_dir(settings.state_dir))
    except FileExistsError:  # another process made it at the same second
        return None


def ephemeral_keys(kid: str = "test") -> ViewerKeys:
    """A fresh in-memory ring of one key (tests, benchmarks): nothing written to disk."""
    priv = ec.generate_private_key(ec.SECP256R1())
    return ViewerKeys({kid: priv.public_key()}, priv)
