"""Faust wiring for the materialized views: agents only move events between Kafka, the pure
reducers in ``pipeline.views`` and Cassandra (``pipeline.store.views``).

State per stream (live window, device state) is re-derived from its own Cassandra row the first
time a stream is seen after a start or a rebalance; playback hits live in a Faust table with a
changelog so a restart neither loses nor double counts them.

Failures: events are acked only after their batch's writes are done (manual acks, in offset
order), so an offset is never committed past an unwritten view. While Cassandra is unavailable
every read and write is retried with capped backoff, forever (the agent waits: backpressure);
any other error is unrecoverable and ``fatal`` (``supervise.stop_worker``) ends the worker.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from pipeline.agents.intake import Send, dead_letter, ours, record_of, stored, trace_links
from pipeline.agents.lag import lag_clock
from pipeline.agents.supervise import Fatal, stop_worker
from pipeline.agents.ticks import Viewing, drive_ticks
from pipeline.config import Settings
from pipeline.events import DecodeError
from pipeline.kafka import topics
from pipeline.store.views import ViewStore
from pipeline.telemetry import extract_context, get_logger, get_meter, get_tracer
from pipeline.views import device_state as ds
from pipeline.views.manifest import ManifestState, apply_segment, ended_from_session
from pipeline.views.stats import StatsBook, hit_of

__all__ = ["AGENTS", "HITS_TABLE", "ViewAgent", "ViewWorker", "register"]

#: Faust table of playback hits keyed by event id (changelog topic ``<app id>-<name>-changelog``).
HITS_TABLE = "views-playback-hits"

_log = get_logger("camlog.views")
_tracer = get_tracer("camlog.views")
_meter = get_meter("camlog.views")
_EVENTS = _meter.create_counter("camlog_view_events", description="events applied per view")
_ERRORS = _meter.create_counter("camlog_view_errors", description="failures per view and kind")
_WRITES = _meter.create_counter("camlog_view_writes", description="Cassandra writes per view")
_LAG = _meter.create_histogram("camlog_view_lag", unit="ms",
                               description="time from the event's Kafka timestamp to applied")
_MANIFEST_LATENCY = _meter.create_histogram(
    "camlog_view_manifest_latency", unit="ms",
    description="time from a SealedSegment's Kafka timestamp to its live_manifest row written")
_FLEET_STATES = ("online", "offline")


class ViewWorker:
    """One worker's view caches and writes; every ``handle_*`` is safe to call again."""

    def __init__(self, settings: Settings, now: Callable[[], float] = time.time,
                 store: ViewStore | None = None, grace_s: float = 5.0,
                 fatal: Fatal = stop_worker,
                 tables_ready: Callable[[], bool] = lambda: True) -> None:
        self.settings = settings
        self.tables_ready = tables_ready  # Faust's hits table recovered: its index can be built
        self.now = now
        self.fatal = fatal
        self.failed: BaseException | None = None
        self.store = store or ViewStore(settings)
        self.idle_us = int(settings.idle_timeout_s * 1_000_000)
        self.grace_us = int(grace_s * 1_000_000)
        self.manifests: dict[str, ManifestState] = {}
        self.devices: dict[str, ds.DeviceState] = {}
        self.clock = ds.EventClock()
        self.book: StatsBook | None = None
        self.index_stale = True
        self._started = False
        self._start_lock = asyncio.Lock()
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._parallel = asyncio.Semaphore(128)
        self._last_stored_sweep = 0.0
        self.fleet: dict[str, int] = {}  # state -> streams, as of the last stored sweep
        _meter.create_observable_gauge(
            "camlog_view_devices", callbacks=[self._observe_fleet],
            description="streams in device_state by state, counted by the periodic stored sweep")

    def _observe_fleet(self, _options: Any) -> list:
        from opentelemetry.metrics import Observation

        return [Observation(n, {"state": state}) for state, n in list(self.fleet.items())]

    def now_us(self) -> int:
        """The injected clock in µs."""
        return int(self.now() * 1_000_000)

    async def ready(self) -> None:
        """Connect to Cassandra once (lazily, from the first agent or timer that needs it)."""
        if self._started:
            return
        async with self._start_lock:
            if not self._started:
                await stored(self.store.start, "views.start")
                self._started = True

    async def close(self) -> None:
        """Close the Cassandra session."""
        if self._started:
            await self.store.close()
            self._started = False

    def on_rebalance(self) -> None:
        """Partitions moved: cached rows may be stale, the hits index must be rebuilt."""
        self.manifests.clear()
        self.devices.clear()
        self._locks.clear()
        self.index_stale = True

    async def _write(self, view: str, fn: Callable[[], Awaitable[None]]) -> None:
        await stored(fn, f"write {view}")
        _WRITES.add(1, {"view": view})

    async def guard(self, view: str, work: Awaitable[None]) -> None:
        """Run one unit of work; an error that outlived the store retries is unrecoverable."""
        try:
            await work
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            _ERRORS.add(1, {"view": view, "kind": type(exc).__name__})
            self.fail(exc, f"views.{view}")
            raise

    def fail(self, exc: BaseException, where: str) -> None:
        """An unrecoverable error: hand it to ``fatal`` (once)."""
        if self.failed is None:
            self.failed = exc
            self.fatal(exc, where)

    def _lock(self, key: tuple[str, str]) -> asyncio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock

    async def _manifest(self, sid: str) -> ManifestState:
        st = self.manifests.get(sid)
        if st is None:
            async with self._lock(("m", sid)):
                st = self.manifests.get(sid)
                if st is None:
                    row = await stored(lambda: self.store.get_live_manifest(sid),
                                        "get_live_manifest")
                    st = (ManifestState.from_row(row, self.settings.live_window) if row else
                          ManifestState(sid, self.settings.live_window))
                    self.manifests[sid] = st
        return st

    async def _device(self, sid: str) -> ds.DeviceState:
        st = self.devices.get(sid)
        if st is None:
            async with self._lock(("d", sid)):
                st = self.devices.get(sid)
                if st is None:
                    row = await stored(lambda: self.store.get_device_state(sid),
                                        "get_device_state")
                    st = ds.DeviceState.from_row(row, sid)
                    self.devices[sid] = st
        return st

    async def _device_apply(self, sid: str, kind: str,
                            fn: Callable[[ds.DeviceState], ds.DeviceState | None]) -> None:
        new = fn(await self._device(sid))
        if new is None:
            return
        self.devices[sid] = new  # cache before awaiting so concurrent agents see it
        cols, ts = ds.columns(new, kind)
        await self._write("device_state", lambda: self.store.write_device(sid, cols, ts))

    async def _per_stream(self, records: Iterable[dict[str, Any]],
                          fn: Callable[[str, list[dict[str, Any]]], Awaitable[None]]) -> None:
        """Run ``fn(stream, its records in order)`` for every stream, streams concurrently."""
        by_stream: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in records:
            by_stream[r["stream_id"]].append(r)

        async def bounded(sid: str, rs: list[dict[str, Any]]) -> None:
            async with self._parallel:
                await self.guard("stream", fn(sid, rs))

        await asyncio.gather(*(bounded(sid, rs) for sid, rs in by_stream.items()))

    async def _segments_of(self, sid: str, segs: list[dict[str, Any]]) -> None:
        st = new = await self._manifest(sid)
        for seg in segs:
            new = apply_segment(new, seg)
        writes = [self._device_apply(sid, "segment", lambda d: _fold(ds.on_segment, d, segs))]
        if new is not st:
            self.manifests[sid] = new
            row = new.to_row()

            async def manifest() -> None:
                await self._write("live_manifest",
                                  lambda: self.store.write_manifest(row, new.time_us))
                t = self.now()
                for seg in segs:  # the agent adds the Kafka timestamp as "_kafka_ts" (seconds)
                    if seg.get("_kafka_ts"):
                        _MANIFEST_LATENCY.record(max(0.0, (t - seg["_kafka_ts"]) * 1000.0))

            writes.append(manifest())
        await asyncio.gather(*writes)

    async def handle_segments(self, segs: Iterable[dict[str, Any]]) -> None:
        """A batch of SealedSegments → one live window and one device write per stream."""
        await self._per_stream(segs, self._segments_of)

    async def handle_segment(self, seg: dict[str, Any]) -> None:
        """One SealedSegment (see ``handle_segments``)."""
        await self.handle_segments([seg])

    async def handle_session(self, change: dict[str, Any]) -> None:
        """SessionChange → the manifest's ended cell and the device's session cells."""
        sid = change["stream_id"]
        ended = ended_from_session(change)
        if ended is not None:
            await self._write("live_manifest",
                              lambda: self.store.write_ended(sid, ended[0], ended[1]))
        await self._device_apply(sid, "session", lambda d: ds.on_session(d, change))

    async def handle_chunks(self, chunks: Iterable[dict[str, Any]]) -> None:
        """A batch of FrameChunks → one device_state write per stream."""
        async def one(sid: str, rs: list[dict[str, Any]]) -> None:
            summaries = [ds.summarize_chunk(c) for c in rs]
            await self._device_apply(sid, "chunk", lambda d: ds.on_chunks(d, summaries))

        chunks = list(chunks)
        await self._per_stream(chunks, one)
        if chunks:
            self.clock.observe(max(c["ingest_time"] for c in chunks), self.now())

    async def handle_dlq(self, dead: dict[str, Any]) -> None:
        """DeadLetter → the stream's DLQ count (when the stream could be told)."""
        sid = dead.get("stream_id")
        if sid:
            await self._device_apply(sid, "dlq", lambda d: ds.on_dlq(d, dead))

    async def expire_at(self, now_us: int, streams: Iterable[str] | None = None) -> None:
        """Mark streams (default: every cached one) offline if idle by event time ``now_us``.

        Replay's seam: a rebuild judges each stream at its own events' times, so the offline
        transitions equal the live sweep's whatever order the log's partitions are read in.
        """
        for sid in list(self.devices) if streams is None else streams:
            await self._device_apply(sid, "offline", lambda d: ds.expire(d, now_us, self.idle_us))

    async def sweep_offline(self) -> None:
        """Mark cached streams offline once idle in event time; now and then scan stored rows."""
        now_us = self.clock.now_us(self.now())
        for sid, st in list(self.devices.items()):
            if ds.expire(st, now_us, self.idle_us) is not None:
                await self._device_apply(sid, "offline",
                                         lambda d: ds.expire(d, now_us, self.idle_us))
        if self.now() - self._last_stored_sweep < max(30.0, self.settings.idle_timeout_s):
            return
        self._last_stored_sweep = self.now()
        paging, fleet = None, dict.fromkeys(_FLEET_STATES, 0)
        while True:  # streams whose worker died before marking them offline
            rows, paging = await stored(lambda p=paging: self.store.list_streams(500, p),
                                         "list_streams")
            for row in rows:
                sid = row["stream_id"]
                cached = self.devices.get(sid)
                online = (cached.online if cached is not None
                          else ds.effective_online(row, now_us, self.idle_us))
                fleet["online" if online else "offline"] += 1
                if cached is not None:
                    continue
                st = ds.DeviceState.from_row(row, sid)
                off = ds.expire(st, now_us, self.idle_us)
                if off is not None:
                    cols, ts = ds.columns(off, "offline")
                    await self._write("device_state",
                                      functools.partial(self.store.write_device, sid, cols, ts))
            if not paging:
                break
        self.fleet = fleet

    async def tick(self) -> None:
        """The clock's part: index the hits table once recovered, write closed stats windows,
        mark idle streams offline."""
        try:
            await self.ready()
            if self.index_stale and self.book is not None and self.tables_ready():
                self.book.rebuild()
                self.index_stale = False
            if not self.index_stale:
                await self.flush_stats()
            await self.sweep_offline()
        except Exception as exc:  # store outages are waited out inside: a bug
            _ERRORS.add(1, {"view": "timer", "kind": type(exc).__name__})
            raise

    def add_hit(self, event_id: str, record: dict[str, Any], partition: int) -> bool:
        """Keep a playback hit (call inside the agent: the table write needs the event)."""
        assert self.book is not None
        return self.book.add(event_id, hit_of(record, partition))

    def evict(self, partition: int) -> int:
        """Forget hits of closed, flushed hours on this partition (inside the agent)."""
        assert self.book is not None
        ids = self.book.evictable(partition, self.now_us())
        for eid in ids:
            self.book.forget(eid)
        return len(ids)

    async def flush_stats(self) -> int:
        """Write the closed playback windows whose values changed."""
        if self.book is None:
            return 0
        rows = self.book.due(self.now_us())
        for row in rows:
            await self._write("playback", lambda r=row: self.store.write_window(r))
            self.book.mark_flushed(row)
        return len(rows)


def _fold(fn: Callable[[Any, Any], Any], state: Any, items: Iterable[Any]) -> Any:
    """Apply a reducer that returns None for no-ops; None if nothing changed at all."""
    out = None
    for item in items:
        out = fn(out or state, item) or out
    return out


def _lag_ms(event: Any, now: float) -> float:
    ts = getattr(event.message, "timestamp", None)
    return max(0.0, (now - ts) * 1000.0) if ts else 0.0


@dataclass(frozen=True)
class ViewAgent:
    """One view agent: the topic it reads, the worker method it feeds, and its batches."""

    view: str
    topic: str
    #: The worker's ``handle_*`` for the topic, called on the instance (any ``ticks.Viewing``):
    #: with ``batched`` it takes a batch's records, else one record at a time in offset order
    #: (a session's changes apply in order).
    handle: Callable[[Viewing, Any], Awaitable[None]]
    batched: bool
    batch: int
    within: float


#: The acked view agents (playback hits, auto-acked into a Faust table, are wired apart): the
#: one topic → handler table, which the replay's driver routes by too (``agents.driver``).
AGENTS = (
    ViewAgent("segments", topics.SEGMENTS, lambda w, r: w.handle_segments(r), True, 1000, 0.005),
    ViewAgent("sessions", topics.SESSIONS, lambda w, r: w.handle_session(r), False, 100, 0.005),
    ViewAgent("dlq", topics.DLQ, lambda w, r: w.handle_dlq(r), False, 100, 0.005),
    ViewAgent("frames", topics.FRAMES, lambda w, r: w.handle_chunks(r), True, 1000, 0.05),
)


class _Intake:
    """Turns a view agent's Kafka events into records for the worker, and its batches into
    acks: prefix filter, decode or dead-letter, one span per event or batch, metrics."""

    def __init__(self, worker: Viewing, prefix: bytes, send_dlq: Send,
                 now: Callable[[], float]) -> None:
        self.worker, self.prefix, self.send_dlq, self.now = worker, prefix, send_dlq, now

    async def decoded(self, view: str, event: Any) -> dict[str, Any] | None:
        """Decode one event, or dead-letter it with the reason and return None."""
        topic_name = event.message.topic
        if not ours(event.key, self.prefix):
            return None
        try:
            return record_of(topic_name, event.value)
        except DecodeError as exc:
            _ERRORS.add(1, {"view": view, "kind": "decode"})
            _log.warning("undecodable event", extra={"view": view, "reason": exc.reason})
            # the segmenter dead-letters bad frames; a DLQ event must not be dead-lettered again
            if topic_name not in (topics.DLQ, topics.FRAMES):
                key = event.key if isinstance(event.key, (bytes, type(None))) else None
                await dead_letter(  # delivered before the bad event is acked
                    self.send_dlq, topic=topic_name, partition=event.message.partition,
                    offset=event.message.offset, key=key, original=bytes(event.value or b""),
                    reason=exc.reason, stage=f"views.{view}",
                    stream_id=key.decode("utf-8", "replace") if key else None,
                    time_us=int(self.now() * 1_000_000))
            return None

    async def one(self, spec: ViewAgent, event: Any) -> None:
        """One event, its own span continuing its trace."""
        with _tracer.start_as_current_span(f"views.{spec.view}",
                                           context=extract_context(event.headers)):
            record = await self.decoded(spec.view, event)
            if record is None:
                return
            await self.worker.ready()
            await self.worker.guard(spec.view, spec.handle(self.worker, record))
            _EVENTS.add(1, {"view": spec.view})
            _LAG.record(_lag_ms(event, self.now()), {"view": spec.view})

    async def many(self, spec: ViewAgent, events: list[Any]) -> None:
        """One span per batch, continuing the first traced event and linking the others."""
        parent, links = trace_links(e.headers for e in events)
        with _tracer.start_as_current_span(f"views.{spec.view}", links=links[:64],
                                           context=parent) as span:
            span.set_attribute("camlog.batch", len(events))
            records = []
            for e in events:
                r = await self.decoded(spec.view, e)
                if r is not None:
                    r["_kafka_ts"] = getattr(e.message, "timestamp", None)
                    records.append(r)
            await self.worker.ready()
            await spec.handle(self.worker, records)
            t = self.now()
            _EVENTS.add(len(records), {"view": spec.view})
            for e in events:
                _LAG.record(_lag_ms(e, t), {"view": spec.view})

    async def consume(self, spec: ViewAgent, stream: Any, clock: Any) -> None:
        """Batches in offset order, each event acked only once its batch's writes are done."""
        try:
            async for events in stream.noack_take(spec.batch, within=spec.within):
                if events:
                    if spec.batched:
                        await self.many(spec, events)
                    else:
                        for e in events:
                            await self.one(spec, e)
                    for e in events:
                        e.ack()
                    clock.read(f"views.{spec.view}", events)
        except Exception as exc:
            self.worker.fail(exc, f"views.{spec.view}")
            raise


def _add_agent(app: Any, spec: ViewAgent, topic: Any, intake: _Intake, clock: Any) -> None:
    """The one agent factory: a Faust agent consuming ``spec.topic`` through ``intake``."""

    async def agent(stream: Any) -> None:
        await intake.consume(spec, stream, clock)

    agent.__name__ = agent.__qualname__ = f"views_{spec.view}_agent"
    app.agent(topic, name=f"views.{spec.view}")(agent)


def register(app: Any, settings: Settings, now: Callable[[], float] = time.time,
             stream_prefix: str = "") -> ViewWorker:
    """Add the view agents, the playback hits table and the view timer to a Faust app.

    Like the segmenter, only streams whose key starts with ``stream_prefix`` are handled
    (canaries, benchmarks on shared topics).
    """
    import faust

    from pipeline.topology.spec import load_topics

    worker = ViewWorker(settings, now,
                        tables_ready=lambda: getattr(app.tables, "actives_ready", False))
    parts = {t.name: t.partitions for t in load_topics()}

    def topic(name: str) -> Any:
        return app.topic(name, key_serializer="raw", value_serializer="raw")

    dlq_topic = topic(topics.DLQ)
    hits = app.Table(HITS_TABLE, default=None, partitions=parts.get(topics.PLAYBACK),
                     schema=faust.Schema(key_serializer="json", value_serializer="json"))
    worker.book = StatsBook(hits, worker.grace_us)
    clock = lag_clock(app)

    async def send_dlq(key: bytes | None, value: bytes) -> None:
        await (await dlq_topic.send(key=key, value=value))

    intake = _Intake(worker, stream_prefix.encode(), send_dlq, now)
    for spec in AGENTS:
        _add_agent(app, spec, topic(spec.topic), intake, clock)

    @app.agent(topic(topics.PLAYBACK), name="views.playback")
    async def playback_agent(stream: Any) -> None:
        # In-memory table updates only (its changelog is Faust's): auto-acked events are safe.
        seen = 0
        async for event in stream.events():
            with _tracer.start_as_current_span("views.playback",
                                               context=extract_context(event.headers)):
                record = await intake.decoded("playback", event)
                if record is None:
                    continue
                if worker.index_stale:
                    worker.book.rebuild()
                    worker.index_stale = False
                worker.add_hit(record["event_id"], record, event.message.partition)
                _EVENTS.add(1, {"view": "playback"})
                _LAG.record(_lag_ms(event, now()), {"view": "playback"})
                clock.read("views.playback", (event,))
                seen += 1
                if seen % 1000 == 0:
                    worker.evict(event.message.partition)

    drive_ticks(app, worker, "views.timer")

    @app.on_partitions_assigned.connect
    async def _assigned(*args: Any, **kwargs: Any) -> None:
        worker.on_rebalance()

    @app.on_before_shutdown.connect
    async def _shutdown(*args: Any, **kwargs: Any) -> None:
        await worker.close()

    return worker
