"""Recently verified (token, stream) pairs, so a hot token is checked by HMAC once a minute.

The first request with a token verifies it in full (``auth.tokens.verify``); later requests
with the very same string for the same stream only compare the remembered expiry with the
clock. Entries live at most ``ttl_s`` so removing a key from the ring takes effect within it.
Pure: no I/O, clock injected.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["Grants"]


class Grants:
    """A bounded map ``(token, stream_id) -> valid until`` (min of token expiry and ttl)."""

    def __init__(self, max_entries: int = 100_000, ttl_s: float = 60.0,
                 now: Callable[[], float] = time.time) -> None:
        self._max = max_entries
        self._ttl = ttl_s
        self._now = now
        self._until: dict[tuple[str, str], float] = {}

    def allowed(self, token: str, stream_id: str) -> bool:
        """True when this exact token was verified for this stream and is still valid."""
        until = self._until.get((token, stream_id))
        if until is None:
            return False
        if self._now() < until:
            return True
        del self._until[(token, stream_id)]
        return False

    def remember(self, token: str, stream_id: str, exp: float) -> None:
        """Record a successful verification of a token expiring at ``exp`` (epoch seconds)."""
        if len(self._until) >= self._max:
            self._until.clear()  # crude but bounded; the next requests re-verify
        self._until[(token, stream_id)] = min(exp, self._now() + self._ttl)
