"""Signed tokens for devices and viewers, verified locally (no auth call per request)."""

from pipeline.auth.tokens import (
    Claims,
    TokenError,
    authenticate,
    authorize,
    issue,
    parse_ttl,
    scope_allows,
    verify,
)

__all__ = [
    "Claims",
    "TokenError",
    "authenticate",
    "authorize",
    "issue",
    "parse_ttl",
    "scope_allows",
    "verify",
]
