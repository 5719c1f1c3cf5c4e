"""Viewer JWTs (ES256 + JWKS): a stock library verifies them; every kind of bad token is refused."""

from __future__ import annotations

import base64
import json
import logging

import jwt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.auth.keys import (
    ViewerKeys,
    ephemeral_keys,
    generate_key,
    key_paths,
    load_viewer_keys,
)
from pipeline.auth.tokens import TokenError
from pipeline.auth.tokens import issue as issue_device
from pipeline.auth.viewer import issue, verify
from pipeline.telemetry.logs import get_logger

T0 = 1_800_000_000.0
KEYS = ephemeral_keys("cur")


def _b64(obj: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def _refused(keys: ViewerKeys, token: str | None, stream: str = "cam-1", now: float = T0):
    with pytest.raises(TokenError) as ei:
        verify(keys, token, stream, now)
    return ei.value.status, ei.value.problem


def test_stock_pyjwt_verifies_with_the_jwks():
    tok = issue(KEYS, ["cam-1", "site-*"], 3600, T0)
    head = jwt.get_unverified_header(tok)
    assert head == {"alg": "ES256", "typ": "JWT", "kid": "cur"}
    jwks = jwt.PyJWKSet.from_dict(json.loads(json.dumps(KEYS.jwks())))
    claims = jwt.decode(tok, jwks[head["kid"]], algorithms=["ES256"],
                        options={"verify_exp": False, "verify_iat": False})
    assert claims == {"iat": int(T0), "exp": int(T0) + 3600, "scp": ["cam-1", "site-*"]}
    assert "d" not in KEYS.jwks()["keys"][0]  # never the private part
    c = verify(KEYS, tok, "site-9", T0 + 1)
    assert (c.kid, c.kind, c.scopes) == ("cur", "viewer", ("cam-1", "site-*"))


def _forged_signature() -> str:
    head, body, _ = issue(KEYS, ["cam-1"], 60, T0).split(".")
    other = issue(ephemeral_keys("cur"), ["cam-1"], 60, T0).split(".")[2]
    return f"{head}.{body}.{other}"


def _widened_scope() -> str:
    head, _, sig = issue(KEYS, ["cam-1"], 60, T0).split(".")
    return f"{head}.{_b64({'iat': int(T0), 'exp': int(T0) + 60, 'scp': ['*']})}.{sig}"


@pytest.mark.parametrize("make, status, problem", [
    (lambda: None, 401, "token_missing"),
    (lambda: "", 401, "token_missing"),
    (lambda: "a.b", 401, "token_invalid"),
    (lambda: "!!.b.c", 401, "token_invalid"),
    (lambda: issue(KEYS, ["cam-1"], 60, T0 - 120), 401, "token_expired"),
    (_forged_signature, 401, "token_bad_signature"),
    (_widened_scope, 401, "token_bad_signature"),
    (lambda: (f"{_b64({'alg': 'none', 'kid': 'cur'})}."
              f"{_b64({'exp': 2**40, 'iat': 0, 'scp': ['*']})}."),
     401, "token_invalid"),
    (lambda: jwt.encode({"exp": 2**40, "iat": 0, "scp": ["*"]}, "x" * 32, algorithm="HS256",
                        headers={"kid": "cur"}), 401, "token_invalid"),
    (lambda: issue(ephemeral_keys("elsewhere"), ["cam-1"], 60, T0), 401, "token_unknown_key"),
    (lambda: issue(KEYS, ["cam-2"], 60, T0), 403, "token_scope"),
    (lambda: issue_device({"k": b"0123456789abcdef0"}, None, "device", ["cam-1"], 60, T0),
     401, "token_wrong_kind"),
    (lambda: jwt.encode({"exp": 2**40, "iat": 0, "scp": "cam-1"}, KEYS.private, algorithm="ES256",
                        headers={"kid": "cur"}), 401, "token_invalid"),
])
def test_bad_tokens_are_refused(make, status, problem):
    assert _refused(KEYS, make()) == (status, problem)


@settings(max_examples=25, deadline=None)
@given(ttl=st.integers(1, 10**7), iat=st.integers(0, 2**40))
def test_expiry_boundary(ttl, iat):
    tok = issue(KEYS, ["s"], ttl, iat)
    verify(KEYS, tok, "s", iat + ttl - 0.001)
    assert _refused(KEYS, tok, "s", iat + ttl) == (401, "token_expired")


def test_rotation_by_kid_with_overlap(tmp_path):
    d = tmp_path / "viewer-keys"
    old = load_viewer_keys([generate_key(d, "v1")])
    tok_old = issue(old, ["cam-1"], 60, T0)
    generate_key(d, "v2")  # `camlog token keygen`: the new key signs, the old one verifies
    ring = load_viewer_keys(key_paths((), tmp_path))
    assert list(ring.public) == ["v2", "v1"] and ring.signing_kid == "v2"
    verify(ring, tok_old, "cam-1", T0)  # the previous key still verifies
    tok_new = issue(ring, ["cam-1"], 60, T0)
    assert jwt.get_unverified_header(tok_new)["kid"] == "v2"
    assert _refused(old, tok_new) == (401, "token_unknown_key")  # a verifier not yet told
    # a verifier holding public keys only verifies but cannot sign
    public = ring.public_only()
    verify(public, tok_new, "cam-1", T0)
    with pytest.raises(ValueError):
        issue(public, ["cam-1"], 60, T0)


def test_dev_keys_sort_newest_first(tmp_path):
    (tmp_path / "viewer-keys").mkdir()
    for kid in ("v20260101000000", "v20261201000000"):
        generate_key(tmp_path / "viewer-keys", kid)
    assert [p.stem for p in key_paths((), tmp_path)] == ["v20261201000000", "v20260101000000"]


def test_jwts_never_reach_logs(caplog):
    tok = issue(KEYS, ["cam-1"], 60, T0)
    log = get_logger("camlog.test.redact-jwt")
    with caplog.at_level(logging.INFO, logger="camlog.test.redact-jwt"):
        log.info("bare %s in text", tok)
        log.info("url /v1/x?token=%s&a=1", tok)
    text = caplog.text + "".join(r.getMessage() for r in caplog.records)
    assert tok.split(".")[2] not in text and tok.split(".")[1] not in text


def test_cli_keygen_viewer_token_and_jwks_verify_with_stock_pyjwt(tmp_path, capsys, monkeypatch):
    from pipeline.cli import main

    monkeypatch.setenv("CAMLOG_STATE_DIR", str(tmp_path))
    monkeypatch.delenv("CAMLOG_VIEWER_KEYS", raising=False)
    assert main(["token", "viewer", "--stream", "cam-1"]) == 2  # no key yet: told to make one
    assert "camlog token keygen" in capsys.readouterr().err
    assert main(["token", "keygen", "--kid", "v1"]) == 0
    capsys.readouterr()
    assert main(["token", "viewer", "--stream", "cam-1", "--stream", "site-*", "--ttl", "5m"]) == 0
    token = capsys.readouterr().out.strip()
    assert main(["token", "jwks"]) == 0
    jwks = jwt.PyJWKSet.from_dict(json.loads(capsys.readouterr().out))
    claims = jwt.decode(token, jwks[jwt.get_unverified_header(token)["kid"]], algorithms=["ES256"])
    assert claims["scp"] == ["cam-1", "site-*"] and claims["exp"] - claims["iat"] == 300
