"""Device tokens (HMAC): signature, tampering, expiry boundary, scopes, rotation, redaction."""

from __future__ import annotations

import logging
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.auth.tokens import TokenError, issue, parse_ttl, scope_allows, verify
from pipeline.telemetry.logs import get_logger

KEYS = {"k2": b"second-secret-0123456789", "k1": b"first-secret-0123456789"}
T0 = 1_800_000_000.0
stream_ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,20}", fullmatch=True)


def test_round_trip_and_claims():
    tok = issue(KEYS, None, "device", ["cam-1"], 3600, T0)
    c = verify(KEYS, tok, "device", "cam-1", T0 + 10)
    assert (c.kid, c.kind, c.scopes, c.exp) == ("k2", "device", ("cam-1",), int(T0) + 3600)


@pytest.mark.parametrize("token, status, problem", [
    (None, 401, "token_missing"),
    ("", 401, "token_missing"),
    ("garbage", 401, "token_invalid"),
    ("a.b.c", 401, "token_invalid"),
    ("a.b", 401, "token_invalid"),
    ("x" * 5000 + ".y", 401, "token_invalid"),
])
def test_malformed(token, status, problem):
    with pytest.raises(TokenError) as ei:
        verify(KEYS, token, "device", "cam-1", T0)
    assert (ei.value.status, ei.value.problem) == (status, problem)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_tampering_any_byte_fails(data):
    tok = issue(KEYS, None, "device", ["cam-*"], 3600, T0)
    i = data.draw(st.integers(0, len(tok) - 1))
    alphabet = string.ascii_uppercase + string.ascii_lowercase + string.digits + "-_.="
    c = data.draw(st.sampled_from(alphabet))
    bad = tok[:i] + c + tok[i + 1:]
    if bad == tok:
        return
    with pytest.raises(TokenError) as ei:
        verify(KEYS, bad, "device", "cam-1", T0)
    assert ei.value.status == 401


@given(ttl=st.integers(1, 10**7), iat=st.integers(0, 2**40))
def test_expiry_boundary(ttl, iat):
    tok = issue(KEYS, None, "device", ["s"], ttl, iat)
    verify(KEYS, tok, "device", "s", iat + ttl - 0.001)
    with pytest.raises(TokenError) as ei:
        verify(KEYS, tok, "device", "s", iat + ttl)
    assert (ei.value.status, ei.value.problem) == (401, "token_expired")


@given(prefix=stream_ids, rest=st.from_regex(r"[A-Za-z0-9._-]{0,10}", fullmatch=True),
       other=stream_ids)
def test_scope_matching(prefix, rest, other):
    assert scope_allows([prefix + "*"], prefix + rest)
    assert scope_allows([prefix], prefix)
    assert scope_allows([prefix], other) == (prefix == other)
    assert scope_allows([prefix + "*"], other) == other.startswith(prefix)


def test_wrong_stream_is_403_wrong_kind_is_401():
    tok = issue(KEYS, None, "device", ["cam-1", "site-*"], 60, T0)
    verify(KEYS, tok, "device", "site-9", T0)
    with pytest.raises(TokenError) as ei:
        verify(KEYS, tok, "device", "cam-2", T0)
    assert (ei.value.status, ei.value.problem) == (403, "token_scope")
    with pytest.raises(TokenError) as ei:
        verify(KEYS, tok, "viewer", "cam-1", T0)
    assert (ei.value.status, ei.value.problem) == (401, "token_wrong_kind")


def test_rotation_by_kid():
    old = issue({"k1": KEYS["k1"]}, None, "device", ["cam-1"], 60, T0)
    verify(KEYS, old, "device", "cam-1", T0)  # old key still in the ring verifies
    with pytest.raises(TokenError) as ei:
        verify({"k3": b"third-secret-0123456789"}, old, "device", "cam-1", T0)
    assert ei.value.problem == "token_unknown_key"
    # same kid, different secret: a forged/rotated-out key never verifies
    with pytest.raises(TokenError) as ei:
        verify({"k1": b"other-secret-0123456789"}, old, "device", "cam-1", T0)
    assert ei.value.problem == "token_bad_signature"


@pytest.mark.parametrize("bad", [[], ["../etc"], ["a/b"], ["*x"], [""]])
def test_issue_refuses_bad_scopes(bad):
    with pytest.raises(ValueError):
        issue(KEYS, None, "device", bad, 60, T0)


@pytest.mark.parametrize("text, seconds", [("90s", 90), ("15m", 900), ("1h", 3600),
                                           ("30d", 2592000), ("45", 45)])
def test_parse_ttl(text, seconds):
    assert parse_ttl(text) == seconds


def test_tokens_never_reach_logs(caplog):
    tok = issue(KEYS, None, "device", ["cam-1"], 60, T0)
    log = get_logger("camlog.test.redact")
    with caplog.at_level(logging.INFO, logger="camlog.test.redact"):
        log.info("auth header %s", f"Bearer {tok}")
        log.info("url /v1/x?token=%s&a=1", tok)
        log.info("bare %s in text", tok)
    text = caplog.text + "".join(r.getMessage() for r in caplog.records)
    assert tok.split(".")[2] not in text and tok.split(".")[1] not in text
    assert text.count("[redacted]") >= 3
