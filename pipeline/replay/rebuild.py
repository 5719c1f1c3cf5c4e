"""``replay rebuild``: the live segmenter and view workers, fed from the log into another keyspace.

The same ``Segmenter`` and ``ViewWorker`` classes the Faust agents use are driven through the
same interface by ``agents.driver.EventTimeDriver``, at full speed, on a clock that follows the
events' ingest time instead of the wall clock; its module doc says in which order events,
ticks and offline transitions reach them, and why. Sealed segments and dead letters go straight
to the views instead of back to Kafka, so nothing live is touched: no consumer group, no topic
write, no live table. This module reads the log selection, feeds the driver, and reports.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pipeline.config import Settings
from pipeline.errors import CliError
from pipeline.kafka import topics
from pipeline.replay.progress import Progress
from pipeline.replay.select import LogEvent, LogReader, Selection

__all__ = ["RebuildResult", "ensure_keyspace", "rebuild"]


class _Pipelined:
    """A store whose writes are sent without waiting (at most ``depth`` in flight).

    Live workers wait for each write; a rebuild need not: every view write is an idempotent
    upsert stamped with its event time, so the order writes land in does not change the result.
    ``close()`` waits for all of them and re-raises the first failure.
    """

    _WRITES = frozenset({"put_init", "put_segment", "put_part", "seal_segment",
                         "write_manifest", "write_ended", "write_device", "write_window"})

    def __init__(self, store: Any, depth: int = 64):
        self._store, self._sem = store, asyncio.Semaphore(depth)
        self._tasks: set[asyncio.Task] = set()
        self._error: BaseException | None = None

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._store, name)
        if name not in self._WRITES:
            return attr

        async def send(*args: Any, **kwargs: Any) -> None:
            if self._error is not None:
                raise self._error
            await self._sem.acquire()
            task = asyncio.create_task(attr(*args, **kwargs))
            self._tasks.add(task)
            task.add_done_callback(self._done)

        return send

    def _done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        self._sem.release()
        if not task.cancelled() and task.exception() is not None and self._error is None:
            self._error = task.exception()

    async def close(self) -> None:
        """Wait for every write, close the store, re-raise the first write error."""
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        await self._store.close()
        if self._error is not None:
            raise self._error


@dataclass(frozen=True)
class RebuildResult:
    """What a rebuild read and wrote."""

    keyspace: str
    chunks: int
    sessions: int
    dead_letters: int
    segments: int
    playback_events: int
    seconds: float
    summary: str


def ensure_keyspace(settings: Settings, keyspace: str, fresh: bool = False,
                    replace: bool = False) -> None:
    """Create the keyspace and its tables from ``topology/`` (idempotent).

    ``fresh`` refuses an existing keyspace (a rebuild into old rows would resume from them, as
    a restarted worker does) unless ``replace`` allows dropping it first.
    """
    from pipeline.store.cluster import connect
    from pipeline.topology.cassandra import apply_cassandra, plan_cassandra

    session = connect(settings)
    try:
        rows = session.execute("SELECT keyspace_name FROM system_schema.keyspaces")
        if fresh and keyspace in {r.keyspace_name for r in rows}:
            if not replace:
                raise CliError(f"keyspace {keyspace} already exists: rebuild into a new one, or "
                               "pass --replace to drop it first")
            session.execute(f"DROP KEYSPACE {keyspace}", timeout=120)
        apply_cassandra(session, plan_cassandra(session, settings, keyspace))
    finally:
        session.cluster.shutdown()


def _read_all(settings: Settings, sel: Selection) -> list[LogEvent]:
    """Every selected event of side topics (small ones); a topic that does not exist is empty."""
    with LogReader(settings, sel, missing_ok=True) as reader:
        return list(reader.events())


def _side(sel: Selection) -> Selection:
    """The session changes and dead letters of a frames selection."""
    return Selection((topics.SESSIONS, topics.DLQ), sel.start_us, sel.end_us, sel.streams,
                     slack_us=sel.slack_us)


def _at(e: LogEvent) -> tuple[int, str, dict[str, Any]]:
    """A side event's own time (its log time if it has none), topic and record."""
    record = e.record()
    return record.get("time", e.timestamp_ms * 1000), e.topic, record


async def _run(settings: Settings, target: Settings, sel: Selection, progress: bool,
               now: Callable[[], float] = time.time) -> RebuildResult:
    from pipeline.agents.driver import EventTimeDriver, SideEvent
    from pipeline.agents.segmenter import Delivery, Segmenter
    from pipeline.agents.views import ViewWorker
    from pipeline.store.segments import SegmentStore
    from pipeline.store.views import ViewStore

    t0 = time.monotonic()
    driver = EventTimeDriver(
        target.idle_timeout_s,
        segmenter=lambda publish, clock: Segmenter(
            target, _Pipelined(SegmentStore(target)), publish, ack=lambda e: None, now=clock,
            event_time=True),
        views=lambda clock: ViewWorker(target, now=clock, store=_Pipelined(ViewStore(target))))
    side = await asyncio.to_thread(_read_all, settings, _side(sel))
    driver.side(SideEvent(*_at(e)) for e in side)
    await driver.start()
    nbytes = 0
    try:
        with LogReader(settings, Selection((topics.FRAMES,), sel.start_us, sel.end_us,
                                           sel.streams, slack_us=sel.slack_us)) as reader:
            ranges = reader.ranges()
            prog = Progress(sum(r.size for r in ranges), label="rebuild", enabled=progress)
            for e in reader.events(ranges):
                await driver.frame(Delivery((e.topic, e.partition), e.offset, e.key, e.value,
                                            [], None))
                nbytes += len(e.value)
                if driver.counts.chunks % 200 == 0:
                    prog.update(driver.counts.chunks, nbytes, reader.scanned)
            prog.update(driver.counts.chunks, nbytes, reader.scanned)
        await driver.finish(int(now() * 1_000_000))
        hits = await asyncio.to_thread(_read_all, settings, Selection(
            (topics.PLAYBACK,), sel.start_us, sel.end_us, sel.streams, slack_us=sel.slack_us))
        await driver.playback((e.record(), e.partition) for e in hits)
        await driver.drain()
        summary = prog.finish()
    finally:
        await driver.close()
    c = driver.counts
    return RebuildResult(target.keyspace, c.chunks, c.sessions, c.dead_letters, c.segments,
                         c.playback_events, time.monotonic() - t0, summary)


def rebuild(settings: Settings, selection: Selection, into: str, progress: bool = True,
            replace: bool = False, now: Callable[[], float] = time.time) -> RebuildResult:
    """Rebuild segments and views of ``selection`` into a new keyspace ``into``.

    ``replace`` drops an existing ``into`` first (never the live keyspace); ``now`` is the
    wall clock the end of the log is judged by (idle streams go offline as they did live).
    """
    if into == settings.keyspace:
        raise CliError(f"--into {into} is the live keyspace: rebuild into a separate one")
    if not into.replace("_", "").isalnum():
        raise CliError("--into must be a keyspace name (letters, digits, underscore)")
    ensure_keyspace(settings, into, fresh=True, replace=replace)
    return asyncio.run(_run(settings, settings.replace(keyspace=into), selection, progress,
                            now))
