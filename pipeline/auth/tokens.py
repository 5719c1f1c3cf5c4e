"""Signed, expiring device tokens (HMAC-SHA256), checked locally with no auth call.

Viewer tokens are ES256 JWTs (``auth.viewer``): they are verified at the edge and by any CDN or
gateway with the public JWKS. Device tokens stay HMAC because only the bridge verifies them
(README, "Tokens"); the scope rules here are shared by both.

Wire format (compact, URL-safe, no padding)::

    prefix "." base64url(json claims) "." base64url(HMAC-SHA256(key[kid], prefix "." part2))

where prefix is ``cld1`` (``clv1`` was the viewer prefix before viewer tokens became JWTs; the
log redaction in ``pipeline.telemetry.logs`` still recognises both).

Claims: ``{"v":1,"kid":"k1","kind":"device","scp":["cam-1","site-*"],"iat":..,"exp":..}``
(times in integer seconds since the epoch). The first key of ``Settings.keys`` signs; every key in
the ring verifies, so keys rotate by adding a new first key and dropping the old one after the
longest TTL. A scope is an exact stream id or a prefix ending in ``*``. The module is pure: the
caller passes ``now`` (seconds since the epoch) from its injected clock.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "KINDS",
    "MAX_TOKEN_LEN",
    "Claims",
    "TokenError",
    "authenticate",
    "authorize",
    "check_scope_syntax",
    "checked_grant",
    "issue",
    "parse_ttl",
    "scope_allows",
    "verify",
]

Kind = Literal["device"]
KINDS: tuple[str, ...] = ("device",)
MAX_TOKEN_LEN = 4096  # longer strings are refused before any decoding work
_PREFIX = {"device": "cld1"}
_SCOPE_RE = re.compile(r"^(?:[A-Za-z0-9][A-Za-z0-9._-]{0,63}\*?|\*)$")
_TTL_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_TTL_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class TokenError(Exception):
    """A token was refused; ``status`` is 401 (not authentic/expired) or 403 (not allowed here)."""

    def __init__(self, status: int, problem: str, detail: str):
        super().__init__(f"{problem}: {detail}")
        self.status = status
        self.problem = problem  # short machine-readable reason, e.g. "token_expired"
        self.detail = detail  # words for humans; never contains the token itself


@dataclass(frozen=True)
class Claims:
    """What a verified token says: who signed it, for what, and until when."""

    kid: str
    kind: str
    scopes: tuple[str, ...]
    iat: int
    exp: int


def _b64e(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64d(text: str) -> bytes:
    if not re.fullmatch(r"[A-Za-z0-9_-]*", text) or len(text) % 4 == 1:
        raise ValueError("not base64url")
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if _b64e(raw) != text:  # refuse non-canonical spellings (unused low bits set): no malleability
        raise ValueError("not canonical base64url")
    return raw


def _sign(key: bytes, signed: str) -> bytes:
    return hmac.new(key, signed.encode("ascii"), hashlib.sha256).digest()


def check_scope_syntax(scope: str) -> str:
    """Return ``scope`` if it is a stream id or a ``prefix*``; raise ``ValueError`` otherwise."""
    if not _SCOPE_RE.match(scope):
        raise ValueError(f"bad scope {scope!r}: want a stream id or a prefix ending in '*'")
    return scope


def scope_allows(scopes: Iterable[str], stream_id: str) -> bool:
    """True if one scope is ``stream_id`` exactly or a ``prefix*`` that it starts with."""
    for s in scopes:
        if s.endswith("*"):
            if stream_id.startswith(s[:-1]):
                return True
        elif s == stream_id:
            return True
    return False


def checked_grant(scopes: Iterable[str], ttl_s: float) -> list[str]:
    """The scopes of a token about to be issued, checked with its TTL (``ValueError`` if bad)."""
    scp = [check_scope_syntax(s) for s in scopes]
    if not scp:
        raise ValueError("a token needs at least one scope")
    if ttl_s <= 0:
        raise ValueError("ttl_s must be positive")
    return scp


def parse_ttl(text: str) -> int:
    """``"30d"``, ``"1h"``, ``"15m"``, ``"90s"`` or plain seconds → seconds (> 0)."""
    m = _TTL_RE.match(text)
    if not m:
        raise ValueError(f"bad TTL {text!r}: use e.g. 90s, 15m, 1h, 30d")
    seconds = int(float(m.group(1)) * _TTL_UNIT[m.group(2)])
    if seconds <= 0:
        raise ValueError(f"TTL {text!r} must be positive")
    return seconds


def issue(
    keys: Mapping[str, bytes], kid: str | None, kind: str, scopes: Iterable[str],
    ttl_s: float, now: float,
) -> str:
    """Sign a token of ``kind`` for ``scopes`` valid from ``now`` for ``ttl_s`` seconds.

    ``kid=None`` signs with the first key of the ring (the current signing key).
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    kid = kid if kid is not None else next(iter(keys))
    if kid not in keys:
        raise ValueError(f"unknown key id {kid!r}")
    scp = checked_grant(scopes, ttl_s)
    iat = int(now)
    claims = {"v": 1, "kid": kid, "kind": kind, "scp": scp, "iat": iat, "exp": iat + int(ttl_s)}
    payload = _b64e(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
    signed = f"{_PREFIX[kind]}.{payload}"
    return f"{signed}.{_b64e(_sign(keys[kid], signed))}"


def _refuse(problem: str, detail: str) -> TokenError:
    return TokenError(401, problem, detail)


def _claims_of(raw: bytes) -> Claims:
    try:
        c = json.loads(raw)
        kid, kind, scp, iat, exp = c["kid"], c["kind"], c["scp"], c["iat"], c["exp"]
    except (ValueError, KeyError, TypeError):
        raise _refuse("token_invalid", "token claims are not readable") from None
    ok = (
        c.get("v") == 1 and isinstance(kid, str) and kind in KINDS
        and isinstance(scp, list) and all(isinstance(s, str) for s in scp)
        and type(iat) is int and type(exp) is int
    )
    if not ok:
        raise _refuse("token_invalid", "token claims are malformed")
    return Claims(kid, kind, tuple(scp), iat, exp)


def verify(
    keys: Mapping[str, bytes], token: str | None, kind: str, stream_id: str, now: float
) -> Claims:
    """Check signature (constant time), key id, kind, expiry and scope; return the claims.

    Raises ``TokenError`` 401 for a missing, malformed, tampered, unknown-key, wrong-kind or expired
    token and 403 for a genuine token whose scopes do not cover ``stream_id``.
    """
    return authorize(authenticate(keys, token), kind, stream_id, now)


def authenticate(keys: Mapping[str, bytes], token: str | None) -> Claims:
    """The time-independent half of ``verify``: format, key id and signature (cacheable by token).

    A server may remember the result per exact token string; ``authorize`` must still run on
    every request.
    """
    if not token:
        raise _refuse("token_missing", "an Authorization: Bearer token is required")
    if len(token) > MAX_TOKEN_LEN or token.count(".") != 2:
        raise _refuse("token_invalid", "token is not in camlog's format")
    signed, _, sig = token.rpartition(".")
    prefix, _, payload = signed.partition(".")
    if prefix.startswith("eyJ"):  # a JWT: a viewer token (auth.viewer) where a device's is needed
        raise _refuse("token_wrong_kind", "a device token is required, got a viewer JWT")
    if prefix not in _PREFIX.values():
        raise _refuse("token_invalid", "token is not in camlog's format")
    try:
        raw, given = _b64d(payload), _b64d(sig)
    except (ValueError, binascii.Error):
        raise _refuse("token_invalid", "token is not base64url") from None
    # The kid must be read before the signature can be checked; nothing else is trusted yet.
    claims = _claims_of(raw)
    key = keys.get(claims.kid)
    if key is None:
        raise _refuse("token_unknown_key", "token was signed with a key this server does not hold")
    if not hmac.compare_digest(_sign(key, signed), given):
        raise _refuse("token_bad_signature", "token signature does not match")
    if _PREFIX[claims.kind] != prefix:
        raise _refuse("token_invalid", "token prefix does not match its claims")
    return claims


def authorize(claims: Claims, kind: str, stream_id: str, now: float) -> Claims:
    """The per-request half of ``verify``: kind, expiry and scope of authentic claims."""
    if claims.kind != kind:
        raise _refuse("token_wrong_kind", f"a {kind} token is required, got a {claims.kind} token")
    if not now < claims.exp:
        raise _refuse("token_expired", "token has expired")
    if not scope_allows(claims.scopes, stream_id):
        raise TokenError(403, "token_scope", f"token does not cover stream {stream_id!r}")
    return claims
