"""Signed tokens for devices and viewers, verified locally (no auth call per request)."""

from pipeline.auth.tokens import (
    Claims, TokenError, authenticate, authorize, issue, parse_ttl, scope_allows, verify,
)

__all__ = ["Claims", "TokenError", "issue", "verify", "authenticate", "authorize",
           "scope_allows", "parse_ttl"]
