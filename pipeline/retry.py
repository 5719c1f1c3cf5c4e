"""Waiting out a dependency: retry an operation with capped exponential backoff, forever.

For consumers that must not move their offsets past unfinished work, waiting here is their
backpressure (lag grows, nothing is committed). Only the given transient errors are retried;
any other error is raised at once, so a bug is never retried into silence.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from pipeline.telemetry import get_logger, get_meter

__all__ = ["patiently"]

T = TypeVar("T")

_log = get_logger("camlog.retry")
_RETRIES = get_meter("camlog.retry").create_counter(
    "camlog_retries", description="operations retried because a dependency was unavailable")


async def patiently(op: Callable[[], Awaitable[T]], what: str,
                    transient: tuple[type[BaseException], ...], *, first_s: float = 0.1,
                    max_s: float = 5.0) -> T:
    """Run ``op`` until it succeeds, sleeping ``first_s`` doubling to ``max_s`` between tries."""
    delay, attempt = first_s, 0
    while True:
        try:
            return await op()
        except transient as exc:
            attempt += 1
            _RETRIES.add(1, {"op": what})
            if attempt in (1, 10) or attempt % 60 == 0:  # a log line now and then, not per try
                _log.warning("dependency unavailable; retrying",
                             extra={"op": what, "attempt": attempt,
                                    "error": f"{type(exc).__name__}: {exc}"[:300]})
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_s)
