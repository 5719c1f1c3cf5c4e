"""Viewer tokens: standard JWTs (RFC 7519) signed ES256 with a ``kid``, checked with a JWKS.

Header ``{"alg":"ES256","typ":"JWT","kid":...}``; claims ``{"iat","exp","scp":[...]}`` where a
scope is an exact stream id or a prefix ending in ``*`` (``tokens.scope_allows``). Any stock JWT
library verifies them with the keys at ``/.well-known/jwks.json``; the edge does so in njs and
the origin here, neither calling anything. Only ``alg: ES256`` is accepted (never ``none``, never
an HMAC algorithm keyed with the public key). ``authenticate`` is time-independent (cacheable
per token string); ``authorize`` checks expiry and scope against the injected clock.
"""

from __future__ import annotations

import binascii
import json
from collections.abc import Iterable

import jwt
from jwt.utils import base64url_decode

from pipeline.auth.keys import ViewerKeys
from pipeline.auth.tokens import MAX_TOKEN_LEN, Claims, TokenError, checked_grant, scope_allows

__all__ = ["ALGORITHM", "authenticate", "authorize", "issue", "verify"]

ALGORITHM = "ES256"


def issue(keys: ViewerKeys, scopes: Iterable[str], ttl_s: float, now: float) -> str:
    """A viewer JWT for ``scopes``, valid from ``now`` for ``ttl_s`` s, signed by the current
    key."""
    if keys.private is None:
        raise ValueError("this process holds no private viewer key (public keys only)")
    scp = checked_grant(scopes, ttl_s)
    iat = int(now)
    return jwt.encode({"iat": iat, "exp": iat + int(ttl_s), "scp": scp}, keys.private,
                      algorithm=ALGORITHM, headers={"kid": keys.signing_kid})


def _refuse(problem: str, detail: str) -> TokenError:
    return TokenError(401, problem, detail)


def _header(token: str) -> dict:
    try:
        head = json.loads(base64url_decode(token.split(".", 1)[0].encode("ascii")))
    except (ValueError, binascii.Error, UnicodeError):
        raise _refuse("token_invalid", "token is not a JWT") from None
    if not isinstance(head, dict):
        raise _refuse("token_invalid", "token is not a JWT")
    return head


def authenticate(keys: ViewerKeys, token: str | None) -> Claims:
    """Format, algorithm, key id and signature; the claims (not yet expiry or scope)."""
    if not token:
        raise _refuse("token_missing", "an Authorization: Bearer token is required")
    if len(token) > MAX_TOKEN_LEN or token.count(".") != 2:
        raise _refuse("token_invalid", "token is not a JWT")
    if token.startswith("cld1."):
        raise _refuse("token_wrong_kind", "a viewer token is required, got a device token")
    head = _header(token)
    if head.get("alg") != ALGORITHM:
        raise _refuse("token_invalid", f"token algorithm must be {ALGORITHM}")
    kid = head.get("kid")
    key = keys.public.get(kid) if isinstance(kid, str) else None
    if key is None:
        raise _refuse("token_unknown_key", "token was signed with a key this server does not hold")
    try:
        c = jwt.decode(token, key, algorithms=[ALGORITHM],
                       options={"verify_exp": False, "verify_iat": False, "verify_nbf": False,
                                "require": ["exp", "iat", "scp"]})
    except jwt.InvalidSignatureError:
        raise _refuse("token_bad_signature", "token signature does not match") from None
    except jwt.InvalidTokenError:
        raise _refuse("token_invalid", "token claims are malformed") from None
    scp, iat, exp = c["scp"], c["iat"], c["exp"]
    if not (isinstance(scp, list) and scp and all(isinstance(s, str) for s in scp)
            and type(iat) is int and type(exp) is int):
        raise _refuse("token_invalid", "token claims are malformed")
    return Claims(kid, "viewer", tuple(scp), iat, exp)


def authorize(claims: Claims, stream_id: str | None, now: float) -> Claims:
    """Expiry, and scope when ``stream_id`` is given (None: any stream, e.g. a listing)."""
    if not now < claims.exp:
        raise _refuse("token_expired", "token has expired")
    if stream_id is not None and not scope_allows(claims.scopes, stream_id):
        raise TokenError(403, "token_scope", f"token does not cover stream {stream_id!r}")
    return claims


def verify(keys: ViewerKeys, token: str | None, stream_id: str | None, now: float) -> Claims:
    """``authenticate`` then ``authorize``: raise ``TokenError`` (401/403) or return the claims."""
    return authorize(authenticate(keys, token), stream_id, now)
