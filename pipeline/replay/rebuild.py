"""``replay rebuild``: the live segmenter and view workers, fed from the log into another keyspace.

The same ``Segmenter`` and ``ViewWorker`` classes the Faust agents use are driven directly, at
full speed, with a clock that follows the events' ingest time instead of the wall clock: events
go to the same ``handle_*`` methods, and the segmenter's ``tick`` fires at the instants a
``TickScheduler`` yields in event time (live, Faust's timer fires it: ``agents.ticks``). Sealed
segments and dead letters go straight to the views instead of back to Kafka, so nothing live is
touched: no consumer group, no topic write, no live table.

Time-driven transitions (a device going offline) are not in the log, but they are a function of
it: the live sweep marks a stream offline at ``last_seen + idle timeout`` in event time, and its
event clock moves on with the wall clock between events. So the rebuild applies that transition
(``ViewWorker.expire_at``) before each of a stream's events that comes an idle timeout or more
after the previous one, and once at the end as of the wall clock when the log was read: the
offline a live worker has applied by now. This is per stream, so it does not depend on the order
partitions are read in; a stream silent for less than an idle timeout stays online, as live.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pipeline.agents.ticks import TICK_S, TickScheduler
from pipeline.config import Settings
from pipeline.errors import CliError
from pipeline.events.codec import decode_any
from pipeline.kafka import topics
from pipeline.replay.progress import Progress
from pipeline.replay.select import LogEvent, LogReader, Selection

__all__ = ["RebuildResult", "ReplayClock", "ensure_keyspace", "rebuild"]

_BATCH = 500  # frames per device-state batch, as the live frames agent takes them


class ReplayClock:
    """A clock that follows event time: ``now()`` is the latest ingest time fed, in seconds."""

    def __init__(self, start: float = 0.0):
        self.t = start

    def advance_us(self, us: int) -> None:
        """Move forward to ``us`` (never backwards)."""
        self.t = max(self.t, us / 1_000_000)

    def __call__(self) -> float:
        return self.t


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


class _ViewQueue:
    """View updates applied in order by one task, so view writes overlap segment writes.

    Each update carries the event-time clock of the moment it was queued: the views see the
    time the live timers would have, not how far the segmenter has already run ahead.
    """

    def __init__(self, clock: ReplayClock, depth: int = 4096):
        self._clock = clock
        self._q: asyncio.Queue = asyncio.Queue(depth)
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._pump())

    async def _pump(self) -> None:
        while (item := await self._q.get()) is not None:
            t, handle, args = item
            self._clock.t = max(self._clock.t, t)
            await handle(*args)

    async def put(self, t: float, handle: Callable[..., Awaitable[None]], *args: Any) -> None:
        """Queue ``handle(*args)`` (a ``ViewWorker`` method) as of event time ``t`` (s)."""
        if self._task is not None and self._task.done():
            self._task.result()  # re-raise what stopped the views
        await self._q.put((t, handle, args))

    async def drain(self) -> None:
        """Apply everything queued, then stop."""
        await self._q.put(None)
        if self._task is not None:
            await self._task


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


async def _run(settings: Settings, target: Settings, sel: Selection, progress: bool,
               now: Callable[[], float] = time.time) -> RebuildResult:
    from pipeline.agents.segmenter import Delivery, Segmenter
    from pipeline.agents.views import ViewWorker
    from pipeline.store.segments import SegmentStore
    from pipeline.store.views import ViewStore

    t0 = time.monotonic()
    clock, view_clock = ReplayClock(), ReplayClock()
    views = ViewWorker(target, now=view_clock, store=_Pipelined(ViewStore(target)))
    vq = _ViewQueue(view_clock)
    segments = 0

    async def publish(topic: str, key: bytes, value: bytes, headers: list) -> None:
        nonlocal segments
        ev, record = decode_any(value)
        if ev.name == "SealedPart":
            return  # parts feed live LL-HLS playlists, which follow the log, not a view
        if topic == topics.SEGMENTS:
            segments += 1
            await vq.put(clock(), views.handle_segment, record)
        elif topic == topics.DLQ:
            await vq.put(clock(), views.handle_dlq, record)

    seg = Segmenter(target, _Pipelined(SegmentStore(target)), publish, ack=lambda e: None,
                    now=clock, event_time=True)
    side = Selection((topics.SESSIONS, topics.DLQ), sel.start_us, sel.end_us, sel.streams,
                     slack_us=sel.slack_us)
    others = await asyncio.to_thread(_read_all, settings, side)
    pending: dict[str, list[tuple[int, str, dict]]] = defaultdict(list)
    n_sessions = n_dead = 0
    for e in others:
        record = e.record()
        if e.topic == topics.DLQ and str(record.get("stage", "")).startswith("segmenter"):
            continue  # the segmenter below derives these again
        sid = record.get("stream_id") or ""
        pending[sid].append((record.get("time", e.timestamp_ms * 1000), e.topic, record))
    for items in pending.values():
        items.sort(key=lambda x: x[0])

    idle_us = int(settings.idle_timeout_s * 1_000_000)
    heard: dict[str, int] = {}  # per stream: the time of its last chunk or session change

    async def idle_before(sid: str, t_us: int) -> bool:
        """Queue the offline the live sweep applied in the silence before this event (if any)."""
        last = heard.get(sid)
        heard[sid] = max(last or t_us, t_us)
        if last is None or t_us - last < idle_us:
            return False
        await vq.put(clock(), views.expire_at, t_us, [sid])
        return True

    async def side_events(sid: str, until_us: int | None) -> None:
        nonlocal n_sessions, n_dead
        items = pending.get(sid)
        while items and (until_us is None or items[0][0] <= until_us):
            t, topic, record = items.pop(0)
            clock.advance_us(t)
            if topic == topics.SESSIONS:
                await idle_before(sid, t)
                n_sessions += 1
                await vq.put(clock(), views.handle_session, record)
            else:
                n_dead += 1
                await vq.put(clock(), views.handle_dlq, record)

    async def flush(batch: list[dict]) -> list[dict]:
        if batch:
            await vq.put(clock(), views.handle_chunks, batch)
        return []

    await views.ready()
    await seg.start()
    vq.start()
    chunks = nbytes = 0
    batch: list[dict] = []
    # the segmenter's timer, fired in event time (a long silence needs only the ticks until
    # every idle timeout has passed)
    ticks = TickScheduler(TICK_S, catch_up=int(settings.idle_timeout_s / TICK_S) + 2)
    try:
        with LogReader(settings, Selection((topics.FRAMES,), sel.start_us, sel.end_us,
                                           sel.streams, slack_us=sel.slack_us)) as reader:
            ranges = reader.ranges()
            prog = Progress(sum(r.size for r in ranges), label="rebuild", enabled=progress)
            for e in reader.events(ranges):
                chunk = e.record()
                sid = chunk["stream_id"]
                items = pending.get(sid)
                if items and items[0][0] <= chunk["ingest_time"]:
                    batch = await flush(batch)  # chunks before the session change go first
                    await side_events(sid, chunk["ingest_time"])
                last = heard.get(sid)
                if last is not None and chunk["ingest_time"] - last >= idle_us:
                    batch = await flush(batch)  # the stream's earlier chunks, then its offline
                await idle_before(sid, chunk["ingest_time"])
                for tick_t in ticks.due(chunk["ingest_time"] / 1e6):
                    clock.t = max(clock.t, tick_t)
                    batch = await flush(batch)  # as live: chunks are applied within ~50 ms
                    await seg.tick()
                clock.advance_us(chunk["ingest_time"])
                await seg.handle_batch([Delivery((e.topic, e.partition), e.offset, e.key,
                                                 e.value, [], None)])
                batch.append(chunk)
                if len(batch) >= _BATCH:
                    batch = await flush(batch)
                chunks += 1
                nbytes += len(e.value)
                if chunks % 200 == 0:
                    prog.update(chunks, nbytes, reader.scanned)
            prog.update(chunks, nbytes, reader.scanned)
        await flush(batch)
        for sid in list(pending):
            await side_events(sid, None)
        # the end of the range: let idle timeouts fire as they did live, then drain
        clock.t += settings.idle_timeout_s + 2.0
        await seg.tick()
        if seg.inflight:
            await asyncio.gather(*list(seg.inflight))
        # offline as the live sweep has judged it by now (its event clock follows the wall
        # clock once events stop): streams silent for an idle timeout, not the ones still live
        await vq.put(clock(), views.expire_at, int(now() * 1_000_000))
        n_hits = await _playback(settings, sel, views, vq)
        await vq.drain()
        summary = prog.finish()
    finally:
        await seg.close()
        await views.close()
    return RebuildResult(target.keyspace, chunks, n_sessions, n_dead, segments, n_hits,
                         time.monotonic() - t0, summary)


async def _playback(settings: Settings, sel: Selection, views: Any, vq: _ViewQueue) -> int:
    """Playback hits of the range into the stats book, then every window closed and written.

    Windows are recomputed from all their hits, so a range that cuts a minute or an hour
    yields partial windows at its edges: rebuild whole hours to compare stats.
    """
    from pipeline.views.stats import StatsBook

    views.book = StatsBook({}, views.grace_us)
    hits = await asyncio.to_thread(_read_all, settings, Selection(
        (topics.PLAYBACK,), sel.start_us, sel.end_us, sel.streams, slack_us=sel.slack_us))
    last = 0
    for e in hits:
        record = e.record()
        views.add_hit(record["event_id"], record, e.partition)
        last = max(last, int(record["time"]))
    if hits:  # as the live timer would, once every window has closed
        await vq.put(last / 1e6 + 7200 + views.grace_us / 1e6, views.flush_stats)
    return len(hits)


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
