"""The edge's nginx config renderer: pure values, the shipped template, and real ``nginx -t``."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess

import pytest
from cryptography.hazmat.primitives import serialization

from pipeline.auth.keys import ephemeral_keys
from pipeline.config import load_settings
from pipeline.edge.config import OPS_EDGE, EdgeConfig, edge_config, render, spki_keys

TEMPLATE = (OPS_EDGE / "nginx.conf.template").read_text()
KEYS = ephemeral_keys("k1")


def _cfg(tmp_path, **kw) -> EdgeConfig:
    s = load_settings(env={"CAMLOG_SECRET": "t=0123456789abcdef0",
                           "CAMLOG_STATE_DIR": str(tmp_path), **kw})
    return edge_config(s, KEYS.jwks())


def test_defaults_come_from_settings(tmp_path):
    cfg = _cfg(tmp_path)
    assert (cfg.listen, cfg.origins) == ("127.0.0.1:8082", ("127.0.0.1:8081",))
    assert (cfg.cache_mb, cfg.keys_mb, cfg.prefix) == (1024, 16, (tmp_path / "edge").resolve())
    # long enough for an LL-HLS blocking request (three target durations) plus slack
    assert cfg.read_timeout_s == 3 * 2 + 5
    cfg = _cfg(tmp_path, CAMLOG_EDGE_ORIGINS="10.0.0.1:8081,10.0.0.2:8081",
               CAMLOG_EDGE_CACHE_MB="64", CAMLOG_EDGE_ADDR="0.0.0.0:9000")
    assert cfg.origins == ("10.0.0.1:8081", "10.0.0.2:8081") and cfg.listen == "0.0.0.0:9000"


def test_jwks_becomes_spki_of_public_keys_only():
    spki = spki_keys(KEYS.jwks())
    der = KEYS.public["k1"].public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)
    assert spki == {"k1": base64.b64encode(der).decode()}
    private = {"keys": [{**KEYS.jwks()["keys"][0], "d": "AAAA"}]}
    for bad in (private, {"keys": []}, {}, {"keys": [{"kty": "RSA", "kid": "r"}]},
                {"keys": [{**KEYS.jwks()["keys"][0], "kid": "bad kid'"}]}):
        with pytest.raises(ValueError):
            spki_keys(bad)


def test_rendered_rules(tmp_path):
    cfg = _cfg(tmp_path, CAMLOG_EDGE_ORIGINS="10.0.0.1:8081,10.0.0.2:8081")
    text = render(TEMPLATE, cfg)
    assert "{{" not in text
    assert "hash $camlog_route consistent;" in text
    assert text.count("server 10.0.0.") == 2
    assert "proxy_cache_lock on;" in text and "proxy_cache_use_stale error timeout" in text
    assert "add_header X-Cache-Status $camlog_cache_status always;" in text
    # the live playlist key: the delivery directives, never the token
    live_key = re.search(r'live\\\.m3u8\$ \{\s*proxy_cache_key "([^"]+)"', text).group(1)
    assert all(f"$arg__HLS_{d}" in live_key for d in ("msn", "part", "skip"))
    assert "token" not in live_key and "token" not in re.search(
        r'proxy_cache_key "(\$uri\?\$camlog_args)"', text).group(1)
    keys = json.loads(re.search(r"js_var \$camlog_keys '([^']+)';", text).group(1))
    assert keys == spki_keys(KEYS.jwks())
    assert "PRIVATE" not in text


def test_template_holes_must_match_values(tmp_path):
    cfg = _cfg(tmp_path)
    with pytest.raises(ValueError, match="no value"):
        render(TEMPLATE + "{{nope}}", cfg)
    with pytest.raises(ValueError, match="never used"):
        render(TEMPLATE.replace("{{servers}}", ""), cfg)


@pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is installed by make install")
def test_nginx_accepts_the_rendered_config(tmp_path):
    cfg = _cfg(tmp_path)
    for sub in ("tmp", "cache"):
        (cfg.prefix / sub).mkdir(parents=True, exist_ok=True)
    conf = cfg.prefix / "nginx.conf"
    conf.write_text(render(TEMPLATE, cfg))
    r = subprocess.run(["nginx", "-t", "-p", str(cfg.prefix), "-c", str(conf)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
