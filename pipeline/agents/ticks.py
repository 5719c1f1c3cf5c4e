"""The workers' clock-driven work, one interface for Faust and for the replay.

A worker (``Segmenter``, ``ViewWorker``) is fed events by whoever drives it and also has work
that only time triggers: sealing an idle stream, marking a device offline, flushing closed
stats windows. Live, Faust's timer calls ``tick()`` every ``TICK_S`` of wall clock
(``drive_ticks``); a replay calls it at the same instants of event time, which a
``TickScheduler`` on the replay's settable clock yields.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

__all__ = ["TICK_S", "TickScheduler", "Ticking", "drive_ticks"]

#: Seconds between two ticks of a worker (live: wall clock; replay: event time).
TICK_S = 1.0


class Ticking(Protocol):
    """A worker driven by events and by a clock: ``tick`` does the clock's part."""

    async def tick(self) -> None:
        """Clock-driven work as of the worker's injected clock."""

    async def close(self) -> None:
        """Stop: wait for or cancel the work in flight, release connections."""

    def fail(self, exc: BaseException, where: str) -> None:
        """An unrecoverable error: stop for good and hand it on."""


class TickScheduler:
    """The tick instants of an event-time clock, fired as the clock moves forward.

    The first time seen starts the schedule; ``due(t)`` returns the ticks from the last one up
    to ``t``. After a long silence only the first ``catch_up + 1`` are returned (enough for
    every idle timeout to pass), the rest are skipped as they would do nothing.
    """

    def __init__(self, interval: float = TICK_S, catch_up: int | None = None) -> None:
        self.interval, self.catch_up = interval, catch_up
        self.last: float | None = None

    def due(self, t: float) -> list[float]:
        """Tick instants in ``(last, t]``, oldest first (at most ``catch_up + 1``)."""
        if self.last is None:
            self.last = t
            return []
        out, n = [], 0
        while self.last + self.interval <= t:
            self.last += self.interval
            if self.catch_up is None or n <= self.catch_up:
                out.append(self.last)
            n += 1
        return out


def drive_ticks(app: Any, worker: Ticking, where: str,
                ready: Callable[[], bool] = lambda: True) -> None:
    """Tick ``worker`` from a Faust timer every ``TICK_S`` while ``ready()``; an error is
    ``worker.fail(exc, where)``."""

    async def tick() -> None:
        if not ready():
            return
        try:
            await worker.tick()
        except Exception as exc:  # a timer that raises silently stops ticking
            worker.fail(exc, where)

    tick.__name__ = tick.__qualname__ = f"{where.replace('.', '_')}_tick"
    app.timer(interval=TICK_S)(tick)
