"""Faust wiring of the segmenter: frames → cutter → CMAF parts → Cassandra → camlog.segments.

Events come in batches (one span, one metrics update, one seal task per stream and batch). Per
stream, work runs as a chain of tasks (store segment N, publish it, then N+1), so streams
proceed concurrently while the agent keeps reading; PyAV runs in threads, Cassandra through the
async driver. A frame's Kafka event is acked only after every segment holding its
frames is stored and announced, and acks leave in offset order (``acks.AckBook``). After a
crash the uncommitted events come again; the cutter resumes from the snapshot stored with the
stream's newest segment row and rebuilds the same segments with the same ids.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from typing import Any, NamedTuple

from pipeline.agents.acks import AckBook
from pipeline.agents.intake import dead_letter, ours, stored, trace_links
from pipeline.agents.lag import lag_clock
from pipeline.agents.stream_work import Pending, StreamWork
from pipeline.agents.supervise import KAFKA_TRANSIENT, Fatal, stop_worker
from pipeline.agents.ticks import drive_ticks
from pipeline.config import Settings
from pipeline.events import DecodeError, decode, encode
from pipeline.kafka import topics
from pipeline.media.cutter import Cutter
from pipeline.media.fmp4 import InitSegment, build_init, render_part
from pipeline.media.segment import Cut, PartCut, Step, StreamConfig
from pipeline.retry import patiently
from pipeline.store.cluster import StoreUnavailable
from pipeline.store.segments import InitRow, SegmentRow, SegmentStore
from pipeline.telemetry import extract_context, get_logger, get_meter, get_tracer, inject_headers
from pipeline.views.timeindex import day_of

__all__ = ["BATCH_MAX", "BATCH_WAIT_S", "Delivery", "Segmenter", "register"]

Publish = Callable[[str, bytes, bytes, list], Awaitable[None]]

#: Events per batch, and how long the agent waits to fill one (adds at most that to latency).
BATCH_MAX, BATCH_WAIT_S = 1000, 0.02

_log = get_logger("camlog.segmenter")
_tracer = get_tracer("camlog.segmenter")
_meter = get_meter("camlog.segmenter")
_FRAMES = _meter.create_counter("camlog_segmenter_frames", description="frames received")
_SEGMENTS = _meter.create_counter("camlog_segmenter_segments", description="segments sealed")
_PARTS = _meter.create_counter("camlog_segmenter_parts", description="CMAF parts stored")
_BYTES = _meter.create_counter("camlog_segmenter_bytes", unit="By", description="bytes stored")
_DLQ = _meter.create_counter("camlog_segmenter_dlq", description="events dead-lettered")
_LATENCY = _meter.create_histogram("camlog_segmenter_seal_latency_ms", unit="ms",
                                   description="last frame ingest -> segment sealed")
_PART_LATENCY = _meter.create_histogram("camlog_segmenter_part_latency_ms", unit="ms",
                                        description="part's last frame ingest -> part stored")


class Delivery(NamedTuple):
    """One camlog.frames message as the agent hands it over; ``event`` is what gets acked."""

    tp: Hashable
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Any
    event: Any


class Segmenter:
    """Moves frame chunks between Kafka, the pure cutters and the segment store."""

    def __init__(self, settings: Settings, store: SegmentStore, publish: Publish,
                 ack: Callable[[Any], Any], now: Callable[[], float] = time.time,
                 max_inflight: int = 512, evict_after_s: float = 60.0,
                 stream_prefix: str = "", fatal: Fatal = stop_worker,
                 event_time: bool = False) -> None:
        self.settings, self.store, self.publish, self.ack, self.now = (
            settings, store, publish, ack, now)
        self.fatal = fatal
        # A rebuild feeds each chunk at its own ingest time: its clock is the newest event read
        # on any partition, which may be ahead of this stream (live feeds at the wall clock, so
        # a backlog never makes a stream look idle).
        self.event_time = event_time
        self.failed: BaseException | None = None  # once set, nothing is acked any more
        self.max_inflight, self.evict_after_s = max_inflight, evict_after_s
        self.prefix = stream_prefix.encode()
        self.streams: dict[str, StreamWork] = {}  # the streams this worker cuts, by stream key
        self.inflight: set[asyncio.Task] = set()
        self.acks = AckBook()
        self.lag: dict[Hashable, int] = {}
        self._inits: dict[str, InitSegment] = {}
        self._written_inits: set[tuple[str, str]] = set()
        self._started = False
        # Set once shutdown begins: nothing more is cut, sealed or acked here. The partitions'
        # next owner re-reads the unsettled chunks; an idle seal from a worker that has stopped
        # reading would cut a segment the next owner cuts too (same id, other parts).
        self.closing = False
        self.epoch = 0  # revokes so far: a resume read that straddles one is not kept
        # Revoked and not assigned again yet. A batch the take buffer yields between the two
        # still carries the current generation, so only this tells that its events are stale.
        self.unassigned: set[Hashable] = set()
        _meter.create_observable_gauge(
            "camlog_segmenter_lag", callbacks=[self._observe_lag],
            description="messages behind the partition's high watermark")

    def _observe_lag(self, _options: Any) -> list:
        from opentelemetry.metrics import Observation

        return [Observation(v, {"partition": str(tp)}) for tp, v in list(self.lag.items())]

    async def start(self) -> None:
        """Connect the store (once)."""
        if not self._started:
            await self.store.start()
            self._started = True

    async def close(self) -> None:
        """Stop cutting, wait briefly for in-flight seals, cancel the rest (they stay unacked),
        close the store."""
        self.closing = True
        self.streams.clear()
        if self.inflight:
            await asyncio.wait(set(self.inflight), timeout=10)
        for task in list(self.inflight):
            task.cancel()
        await asyncio.gather(*self.inflight, return_exceptions=True)
        if self._started:
            await self.store.close()
            self._started = False

    def _cutter(self, sid: str, snapshot: dict | None) -> Cutter:
        s = self.settings
        return Cutter(sid, target_s=s.segment_target_s, max_s=s.segment_max_s,
                      part_target_s=s.part_target_s, idle_s=s.idle_timeout_s, now=self.now,
                      snapshot=snapshot)

    # -- events ----------------------------------------------------------------------------
    async def handle(self, tp: Hashable, offset: int, key: bytes | None, value: bytes | None,
                     headers: Any, event: Any, lag: int | None = None) -> None:
        """Process one camlog.frames event; ``event`` is what ``ack`` gets back, in order."""
        await self.handle_batch([Delivery(tp, offset, key, value, headers, event)],
                                None if lag is None else {tp: lag})

    async def handle_batch(self, batch: Sequence[Delivery],
                           lag: Mapping[Hashable, int] | None = None) -> None:
        """Process consecutive camlog.frames events: one span, one seal task per stream."""
        try:
            await self._handle_batch(batch, lag)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.fail(exc, "segmenter.batch")
            raise

    async def _handle_batch(self, batch: Sequence[Delivery],
                            lag: Mapping[Hashable, int] | None) -> None:
        if self.closing:
            return  # left unacked: re-read by the partitions' next owner
        if lag:
            self.lag.update(lag)
        chunks: list[tuple[Delivery, dict]] = []
        bad: list[tuple[Delivery, str]] = []
        batch = [d for d in batch if d.tp not in self.unassigned]  # re-read after assignment
        for d in batch:
            self.acks.add(d.tp, d.offset, d.event)
            if not ours(d.key, self.prefix):
                self._ack(self.acks.settle(d.tp, d.offset))  # another deployment's stream
                continue
            try:
                chunks.append((d, decode("FrameChunk", d.value)))
            except DecodeError as exc:
                bad.append((d, exc.reason))
        if not chunks and not bad:
            return
        parent, links = trace_links(d.headers for d in batch)
        with _tracer.start_as_current_span("segmenter.batch", context=parent, links=links
                                           ) as span:
            span.set_attribute("camlog.events", len(batch))
            for d, reason in bad:
                sid = d.key.decode("utf-8", "replace") if d.key else None
                await self._dead(d.tp, d.offset, d.key, d.value or b"", reason, sid)
                self._ack(self.acks.settle(d.tp, d.offset))
            # First sight of streams (start, rebalance): read their resume points together.
            new = {c["stream_id"]: c for _, c in reversed(chunks)
                   if c["stream_id"] not in self.streams}
            await asyncio.gather(*(self._adopt(sid, c) for sid, c in new.items()))
            now, frames = self.now(), 0
            steps: dict[str, tuple[StreamWork, Step]] = {}
            keys: dict[str, bytes | None] = {}
            for d, chunk in chunks:
                if d.tp not in self.acks:
                    continue  # revoked while we awaited: the partition's next owner re-reads it
                sid = chunk["stream_id"]
                work = self.streams.get(sid) or await self._adopt(sid, chunk)  # evicted meanwhile
                work.tp, keys[sid] = d.tp, d.key
                keyframe = d.headers and chunk["frames"] and chunk["frames"][0]["keyframe"]
                work.receive(Pending(chunk["seq"], d.tp, d.offset, d.value),
                             extract_context(d.headers) if keyframe else None)
                frames += len(chunk["frames"])
                step = work.cutter.feed(chunk,
                                        chunk["ingest_time"] / 1e6 if self.event_time else now)
                if sid in steps:
                    steps[sid][1].extend(step)
                else:
                    steps[sid] = (work, step)
            _FRAMES.add(frames)
            for sid, (work, step) in steps.items():
                await self._schedule(work, step, keys[sid])

    async def _adopt(self, sid: str, chunk: dict) -> StreamWork:
        """First sight of a stream since start or rebalance: resume where this region's log left
        it (its own resume point), else, for a stream new to this region, from its newest
        segment from anywhere (the region it moved from)."""
        epoch = self.epoch
        region = self.settings.region
        own = await stored(lambda: self.store.resume_point(sid, region), "resume_point")
        if own is not None:
            snapshot = json.loads(own.resume) if own.resume else None
            last_seq = own.last_chunk_seq
        else:
            # Segment times follow the bridge clock, so the newest row is near this chunk's time.
            row = await stored(lambda: self.store.latest_segment(sid, chunk["ingest_time"]),
                               "latest_segment")
            snapshot = json.loads(row.resume) if row is not None and row.resume else None
            last_seq = row.last_chunk_seq if row is not None else None
        work = StreamWork(sid, self._cutter(sid, snapshot))
        work.adopted = True
        if epoch != self.epoch:
            # A rebalance while we read: the read may predate a write still landing then, so
            # this resume point is not kept (the batch's chunks are skipped: not ours now).
            return work
        self.streams[sid] = work
        if last_seq is not None and chunk["seq"] <= last_seq:
            # Its frames were not all committed: it may have been stored but never announced.
            row = (await stored(lambda: self.store.segment_at(sid, own.start_time,
                                                               own.segment_id), "segment_at")
                   if own is not None else row)
            if row is not None:
                await self._announce(row)
        return work

    async def tick(self) -> None:
        """Clock driven work: seal idle streams, release held chunks, forget quiet streams."""
        if self.closing:
            return
        now = self.now()
        for sid, work in list(self.streams.items()):
            if self.streams.get(sid) is not work:
                continue  # revoked while an earlier stream's schedule waited: not ours to seal
            await self._schedule(work, work.cutter.tick(now), sid.encode())
            if work.idle(now, self.evict_after_s) and self.streams.get(sid) is work:
                del self.streams[sid]

    async def revoke(self, tps: set, wait_s: float = 10.0) -> None:
        """Partitions went to another worker (or come back to us from their committed offsets):
        drop their streams, and let their stores and publishes already under way finish first.

        Kafka assigns the partitions again only after every member's revoke returned, so the
        next owner reads each stream's newest segment after our last write of it; a write still
        landing after that read would make it cut the same segment ids a second time.
        """
        self.epoch += 1  # resume reads under way when this began are not kept
        self.unassigned |= tps
        tasks = [w.tail for w in self.streams.values()
                 if w.tp in tps and w.tail is not None and not w.tail.done()]
        for sid, work in list(self.streams.items()):
            if work.tp in tps:
                del self.streams[sid]
        for tp in tps:
            self.acks.drop(tp)
            self.lag.pop(tp, None)
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=wait_s)
            for task in late:  # a store outage: stop here; its chunks stay unacked
                task.cancel()

    def assigned(self, tps: set) -> None:
        """Partitions assigned to us (again): their events, re-read from the committed offsets
        under the new generation, are ours to cut."""
        self.unassigned -= tps

    # -- sealing ---------------------------------------------------------------------------
    async def _schedule(self, work: StreamWork, step: Step, key: bytes | None) -> None:
        prev = work.tail
        if not step.segments and not step.parts and not step.rejected:
            if prev is None or _succeeded(prev):
                self._settle(work.sid, step.settled_through)  # nothing to wait for
            elif step.settled_through is not None:
                # The stream's last task settles this too once its (earlier) segments are stored.
                work.defer(step.settled_through)
            return
        task = asyncio.create_task(self._run(work, step, prev, key))
        work.tail = task
        self.inflight.add(task)
        task.add_done_callback(self._done)
        while len(self.inflight) > self.max_inflight:  # backpressure: stop reading for a while
            await asyncio.wait(set(self.inflight), return_when=asyncio.FIRST_COMPLETED)

    def _done(self, task: asyncio.Task) -> None:
        self.inflight.discard(task)
        if not task.cancelled() and task.exception() is not None:  # _run catches; never unseen
            self.fail(task.exception(), "segmenter.task")

    def fail(self, exc: BaseException, where: str) -> None:
        """An unrecoverable error: stop acking for good and hand it to ``fatal``."""
        if self.failed is None:
            self.failed = exc
            self.fatal(exc, where)

    async def _run(self, work: StreamWork, step: Step, prev: asyncio.Task | None,
                   key: bytes | None) -> None:
        sid = work.sid
        if prev is not None:
            await asyncio.wait([prev])  # its outcome is judged below, through ``_settle``
            if not _succeeded(prev):
                return  # cancelled (revoked, shutdown) or failed: nothing later may be acked
        try:
            for seq, reason in step.rejected:
                current = self.streams.get(sid)
                entry = current.pending(seq) if current is not None else None
                tp, off, original = (entry.tp, entry.offset, entry.value) if entry else (
                    None, -1, b"")
                await self._dead(tp, off, key, original or b"", reason, sid)
            for part in step.parts:
                await self._store_part(work, part)
            for cut in step.segments:
                await self._seal(work, cut)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # not a store outage (those are waited out): a bug or bad schema
            self.fail(exc, f"segmenter.seal {sid}")
            raise
        through = step.settled_through
        # a forgotten stream settles nothing
        deferred = (work.take_deferred(asyncio.current_task())
                    if self.streams.get(sid) is work else None)
        if deferred is not None:
            through = max(through if through is not None else -1, deferred)
        self._settle(sid, through)

    def _settle(self, sid: str, through: int | None) -> None:
        # The stream as it is now (not the one a task started with): forgotten means unacked.
        work = self.streams.get(sid)
        if through is None or work is None or self.failed is not None:
            return
        for p in work.settle(through):
            self._ack(self.acks.settle(p.tp, p.offset))

    def _ack(self, events: list) -> None:
        for e in events:
            self.ack(e)

    async def _init(self, sid: str, cfg: StreamConfig, created: int) -> InitSegment:
        init = self._inits.get(cfg.init_id)
        if init is None:
            init = await asyncio.to_thread(build_init, cfg.codec, cfg.config, cfg.width,
                                           cfg.height, cfg.timescale)
            if len(self._inits) > 4096:
                self._inits.clear()
            self._inits[cfg.init_id] = init
        if (sid, cfg.init_id) not in self._written_inits:
            await stored(lambda: self.store.put_init(InitRow(
                sid, cfg.init_id, cfg.codec_string, cfg.width, cfg.height, cfg.config,
                init.data, created)), "put_init")
            if len(self._written_inits) > 65536:
                self._written_inits.clear()
            self._written_inits.add((sid, cfg.init_id))
        return init

    async def _store_part(self, work: StreamWork, part: PartCut) -> None:
        """Store one CMAF part (LOCAL_QUORUM) and announce it: LL-HLS can list it from now on."""
        first, last = part.frames[0], part.frames[-1]
        init = await self._init(part.stream_id, part.config, first.ingest_us)
        # struct packing of one fragment, ~0.1 ms: cheaper inline than a thread hand-over
        data = render_part(part, init)
        await stored(lambda: self.store.put_part(part.stream_id, part.segment_id, part.index,
                                                  data, last.ingest_us), "put_part")
        work.part_sizes[part.id] = len(data)
        sealed = int(self.now() * 1e6)
        event = {"stream_id": part.stream_id, "segment_id": part.segment_id,
                 "sequence": part.sequence, "part": part.index, "start_time": part.start_time,
                 "duration_us": part.end_time - part.start_time,
                 "independent": part.independent, "discontinuity": part.discontinuity,
                 "discontinuity_sequence": part.discontinuity_count,
                 "init_id": part.config.init_id, "frame_count": len(part.frames),
                 "byte_size": len(data), "producer_start": first.producer_us,
                 "ingest_end": last.ingest_us, "sealed_time": sealed}
        value = encode("SealedPart", event)
        await patiently(lambda: self.publish(topics.SEGMENTS, part.stream_id.encode(), value,
                                             inject_headers([])), "publish", KAFKA_TRANSIENT)
        _PARTS.add(1)
        _BYTES.add(len(data))
        _PART_LATENCY.record(max(0, sealed - last.ingest_us) / 1000)

    async def _part_size(self, work: StreamWork, part: PartCut) -> int:
        size = work.part_sizes.pop(part.id, None)
        if size is None:  # stored by a task of this stream that is gone (never expected)
            init = await self._init(part.stream_id, part.config, part.frames[0].ingest_us)
            size = len(render_part(part, init))
        return size

    async def _seal(self, work: StreamWork, cut: Cut) -> None:
        # Continue the trace of the chunk that opened the segment (bridge → Kafka → seal → view).
        opened = work.opened_trace(cut.first_chunk_seq)
        with _tracer.start_as_current_span("segmenter.seal", context=opened) as span:
            span.set_attribute("camlog.segment_id", cut.segment_id)
            init = await self._init(cut.stream_id, cut.config, cut.ingest_start)
            sizes = [await self._part_size(work, p) for p in cut.parts]
            parts = [[p.end_time - p.start_time, int(p.independent), n]
                     for p, n in zip(cut.parts, sizes, strict=True)]
            scale = init.timescale
            src = cut.config.timescale
            row = SegmentRow(
                stream_id=cut.stream_id, day=day_of(cut.start_time), start_time=cut.start_time,
                segment_id=cut.segment_id, sequence=cut.sequence, end_time=cut.end_time,
                producer_start=cut.producer_start, producer_end=cut.producer_end,
                ingest_start=cut.ingest_start, ingest_end=cut.ingest_end,
                duration_us=cut.duration_us, frame_count=len(cut.frames), byte_size=sum(sizes),
                independent=cut.independent, init_id=cut.config.init_id,
                discontinuity=cut.discontinuity, codec=cut.config.codec_string,
                width=cut.config.width, height=cut.config.height,
                first_chunk_seq=cut.first_chunk_seq, last_chunk_seq=cut.last_chunk_seq,
                decode_time=cut.decode_time * scale // src, timescale=scale,
                parts=len(cut.parts), sealed_time=int(self.now() * 1e6),
                resume=json.dumps(cut.resume, separators=(",", ":")),
                part_list=json.dumps(parts, separators=(",", ":")),
                discontinuity_sequence=cut.discontinuity_count)
            # The same frames may be in another region's log too (a device that moved re-sends
            # its open GOP): a segment that ends a run, opens one or follows a resume is checked
            # against a copy cut there, and the later copy is kept (``seal_segment``).
            check = work.adopted or cut.discontinuity or cut.ends_run
            work.adopted = False
            kept = await stored(lambda: self.store.seal_segment(
                row, region=self.settings.region, check=check), "seal_segment")
            span.set_attribute("camlog.superseded", kept is False)
            if kept is False:
                _log.info("segment superseded by another region's later copy",
                          extra={"stream_id": cut.stream_id, "segment_id": cut.segment_id})
                return
            await self._announce(row)
            _SEGMENTS.add(1)
            _LATENCY.record(max(0, row.sealed_time - cut.ingest_end) / 1000)

    async def _announce(self, row: SegmentRow) -> None:
        value = encode("SealedSegment", row.as_event())
        await patiently(lambda: self.publish(topics.SEGMENTS, row.stream_id.encode(), value,
                                             inject_headers([])), "publish", KAFKA_TRANSIENT)

    async def _dead(self, tp: Any, offset: int, key: bytes | None, original: bytes, reason: str,
                    sid: str | None) -> None:
        _DLQ.add(1)
        _log.warning("dead letter", extra={"stream_id": sid, "reason": reason})
        part = getattr(tp, "partition", None)
        await dead_letter(
            lambda k, v: self.publish(topics.DLQ, k or b"", v, inject_headers([])),
            topic=topics.FRAMES, partition=part if isinstance(part, int) else -1,
            offset=offset, key=key, original=original, reason=reason, stage="segmenter",
            stream_id=sid, time_us=int(self.now() * 1e6))


def _succeeded(task: asyncio.Task) -> bool:
    return task.done() and not task.cancelled() and task.exception() is None


def register(app: Any, settings: Settings, now: Callable[[], float] = time.time,
             stream_prefix: str = "") -> Segmenter:
    """Add the segmenter agent (manual acks on camlog.frames) and its timer to a Faust app;
    it cuts only streams whose key starts with ``stream_prefix``."""

    async def publish(topic: str, key: bytes, value: bytes, headers: list) -> None:
        await app.producer.send_and_wait(topic, key, value, None, None, headers)

    seg = Segmenter(settings, SegmentStore(settings), publish, ack=lambda e: e.ack(), now=now,
                    stream_prefix=stream_prefix)
    frames = app.topic(topics.FRAMES, key_serializer="raw", value_serializer="raw")
    clock = lag_clock(app)

    @app.agent(frames, name="segmenter")
    async def segmenter_agent(stream: Any) -> None:
        await patiently(seg.start, "segmenter.start", (StoreUnavailable,))
        # Batches amortise the per-event costs (span, metrics, seal scheduling); acks stay manual.
        async for events in stream.noack_take(BATCH_MAX, within=BATCH_WAIT_S):
            # Events fetched before a rebalance can sit in the take buffer past it: their
            # partition may be another worker's now, or ours again from the committed offset.
            # Either way the current generation re-reads them; feeding them would cut a stream
            # from the middle (a second, different cut of the same segment ids).
            generation = app.consumer_generation_id
            batch = [Delivery(e.message.tp, e.message.offset, e.key, e.value, e.message.headers, e)
                     for e in events if e.message.generation_id in (None, generation)]
            if not batch:
                continue
            last = {d.tp: d.offset for d in batch}
            lag = {}
            for tp, offset in last.items():
                with contextlib.suppress(Exception):  # highwater unknown right after assignment
                    lag[tp] = app.consumer.highwater(tp) - offset - 1
            await seg.handle_batch(batch, lag)
            clock.read("segmenter", events)

    drive_ticks(app, seg, "segmenter.tick", ready=lambda: seg._started and seg.failed is None)

    @app.on_partitions_revoked.connect
    async def _revoked(sender: Any, revoked: set, **kwargs: Any) -> None:
        await seg.revoke(set(revoked))

    @app.on_partitions_assigned.connect
    async def _assigned(sender: Any, assigned: set, **kwargs: Any) -> None:
        seg.assigned(set(assigned))

    @app.on_before_shutdown.connect
    async def _shutdown(*args: Any, **kwargs: Any) -> None:
        await seg.close()

    return seg
