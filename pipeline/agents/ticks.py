"""What a worker exposes to whoever drives it, one interface for Faust and for the replay.

A worker (``Segmenter``, ``ViewWorker``) is fed events by whoever drives it and also has work
that only time triggers: sealing an idle stream, marking a device offline, flushing closed
stats windows. Live, Faust's agents hand it each topic's events and Faust's timer calls
``tick()`` every ``TICK_S`` of wall clock (``drive_ticks``); a replay (``agents.driver``) hands
it the log's events and calls ``tick()`` at the same instants of event time, which a
``TickScheduler`` on the replay's settable clock yields.

``tick()`` takes no time argument: a worker reads its injected clock (``now``) everywhere, in
its cutters and in the times it stamps on rows, so the driver moves that clock and ticks; a
separate ``tick(now)`` could disagree with the clock the rest of the worker reads.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from pipeline.agents.segmenter import Delivery
    from pipeline.views.stats import StatsBook

__all__ = ["TICK_S", "Cutting", "TickScheduler", "Ticking", "Viewing", "drive_ticks"]

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


@runtime_checkable
class Cutting(Ticking, Protocol):
    """The segmenter as its drivers see it: camlog.frames deliveries in, in offset order per
    partition; sealed parts, segments and dead letters out through its ``publish``."""

    inflight: set  # seal tasks under way (a driver that ends waits for them)

    async def start(self) -> None:
        """Connect the store."""

    async def handle_batch(self, batch: Sequence[Delivery],
                           lag: Mapping[Hashable, int] | None = None) -> None:
        """Consecutive camlog.frames deliveries."""


@runtime_checkable
class Viewing(Ticking, Protocol):
    """The view worker as its drivers see it: one handler per topic (``views.AGENTS`` says
    which), the event-time offline transition, and the playback stats book."""

    book: StatsBook | None
    grace_us: int

    async def ready(self) -> None:
        """Connect the store."""

    async def guard(self, view: str, work: Awaitable[None]) -> None:
        """Run one handler call; an error it raises is the worker's ``fail``."""

    async def handle_chunks(self, chunks: Iterable[dict[str, Any]]) -> None:
        """FrameChunks (camlog.frames), a batch."""

    async def handle_segments(self, segs: Iterable[dict[str, Any]]) -> None:
        """SealedSegments (camlog.segments), a batch."""

    async def handle_session(self, change: dict[str, Any]) -> None:
        """One SessionChange (camlog.sessions)."""

    async def handle_dlq(self, dead: dict[str, Any]) -> None:
        """One DeadLetter (camlog.dlq)."""

    async def expire_at(self, now_us: int, streams: Iterable[str] | None = None) -> None:
        """Offline the streams idle by event time ``now_us``."""

    def add_hit(self, event_id: str, record: dict[str, Any], partition: int) -> bool:
        """One PlaybackEvent (camlog.playback) into the stats book."""

    async def flush_stats(self) -> int:
        """Write the closed playback windows."""


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
