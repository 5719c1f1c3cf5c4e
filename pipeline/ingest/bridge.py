"""The ingest core between HTTP and Kafka: admit a chunk, produce it, resolve its durable ack."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from pipeline.events import encode
from pipeline.ingest.checks import inspect_chunk
from pipeline.ingest.framing import Chunk
from pipeline.ingest.problems import IngestError
from pipeline.ingest.streams import StreamTable
from pipeline.kafka import topics
from pipeline.kafka.producer import EventProducer, KafkaUnavailable
from pipeline.telemetry import get_meter, inject_headers

__all__ = ["Bridge"]


_meter = get_meter("camlog.ingest")
_chunks = _meter.create_counter("camlog.ingest.chunks", description="chunks persisted")
_bytes = _meter.create_counter("camlog.ingest.bytes", unit="By",
                               description="media bytes persisted")
_dups = _meter.create_counter("camlog.ingest.duplicates",
                              description="retries answered from memory")
_ack_ms = _meter.create_histogram("camlog.ingest.ack_latency", unit="ms",
                                  description="request received to Kafka ack")
_skew_ms = _meter.create_histogram("camlog.ingest.clock_skew", unit="ms",
                                   description="ingest time minus producer time (never a reason "
                                               "to refuse a chunk)")


class Bridge:
    """Owns the stream table and the producer; everything that turns a chunk into an event."""

    def __init__(self, producer: EventProducer, *, idle_timeout_s: float,
                 ack_timeout_s: float = 8.0, now: Callable[[], float] = time.time):
        self.producer, self.now, self.ack_timeout_s = producer, now, ack_timeout_s
        self.table = StreamTable(idle_timeout_s)
        self._pending: dict[tuple[str, int], asyncio.Future] = {}
        _meter.create_observable_gauge(
            "camlog.ingest.producer_queue", callbacks=[self._observe_queue],
            description="messages waiting in the Kafka client")

    def _observe_queue(self, _options: Any):
        from opentelemetry.metrics import Observation

        yield Observation(self.producer.queue_depth)

    def _send_sessions(self, records: tuple[dict[str, Any], ...] | list[dict[str, Any]]) -> list:
        return [self.producer.enqueue(topics.SESSIONS, r["stream_id"].encode(),
                                      encode("SessionChange", r), inject_headers([]))
                for r in records]

    async def submit(self, stream_id: str, chunk: Chunk, *, received: float,
                     source: str = "SDK", resumed: bool = False) -> dict[str, Any]:
        """Persist ``chunk`` (or find its earlier ack) and return the ack body."""
        fut, fresh = self.produce(stream_id, chunk, received=received, source=source,
                                  resumed=resumed)
        ack = await self._await(fut, stream_id, chunk.seq)
        if fresh:
            _ack_ms.record((self.now() - received) * 1000.0)
        return ack

    def produce(self, stream_id: str, chunk: Chunk, *, received: float,
                source: str = "SDK", resumed: bool = False) -> tuple[asyncio.Future, bool]:
        """Admit ``chunk`` and hand it to Kafka now; ``(future of its ack, newly produced)``.

        No await in here, so per-stream order on the log is the call order. The future outlives
        any caller's wait: a retry of the same seq shares it, and ``_persist`` settles the table.
        """
        key = (stream_id, chunk.seq)
        if key in self._pending:  # the same seq is in flight: share its outcome
            return self._pending[key], False
        info = inspect_chunk(chunk)
        adm = self.table.admit(stream_id, chunk.seq, chunk.codec,
                               keyframe_first=info.keyframe_first,
                               config=info.config, width=info.width, height=info.height,
                               now=received, source=source, resumed=resumed)
        if adm.ack is not None:
            _dups.add(1)
            done = asyncio.get_running_loop().create_future()
            done.set_result(adm.ack)
            return done, False
        if not adm.session_id:
            raise IngestError(503, "in_flight", "this seq is still being persisted", retry_after=1)
        try:
            return self._produce_admitted(stream_id, chunk, adm, info, received, source), True
        except BaseException:
            self.table.failed(stream_id, chunk.seq, self.now())  # nothing is in flight after all
            raise

    def _produce_admitted(self, stream_id: str, chunk: Chunk, adm: Any, info: Any,
                          received: float, source: str) -> asyncio.Future:
        st = self.table.get(stream_id)
        if source == "SDK":
            _skew_ms.record((received * 1_000_000 - chunk.producer_time) / 1000.0)
        record = {
            "stream_id": stream_id, "seq": chunk.seq, "session_id": adm.session_id,
            "source": source, "codec": chunk.codec, "codec_config": adm.codec_config,
            "width": st.width if st else info.width, "height": st.height if st else info.height,
            "timescale": chunk.timescale, "producer_time": chunk.producer_time,
            "ingest_time": int(received * 1_000_000),
            "frames": [{"pts": f.pts, "dts": f.dts, "keyframe": f.keyframe, "data": f.data}
                       for f in chunk.frames],
            "gap_before": adm.gap_before,
        }
        headers = inject_headers([("camlog-seq", str(chunk.seq).encode()),
                                  ("camlog-session", adm.session_id.encode())])
        try:
            futs = self._send_sessions(adm.sessions)
            fut = self.producer.enqueue(topics.FRAMES, stream_id.encode(),
                                        encode("FrameChunk", record), headers)
        except KafkaUnavailable as exc:
            raise IngestError(503, "kafka_unavailable", str(exc), retry_after=1) from None
        done = asyncio.ensure_future(self._persist(stream_id, chunk, fut, futs, adm.gap_before,
                                                  source))
        key = (stream_id, chunk.seq)
        self._pending[key] = done
        done.add_done_callback(lambda f: self._settled(key, f))
        return done

    def _settled(self, key: tuple[str, int], fut: asyncio.Future) -> None:
        self._pending.pop(key, None)
        if not fut.cancelled():
            fut.exception()  # seen: a failure nobody waits for any more is not an error to log

    async def _persist(self, stream_id: str, chunk: Chunk, fut: asyncio.Future,
                       session_futs: list, gap: int, source: str) -> dict[str, Any]:
        try:
            if session_futs:
                await asyncio.gather(*session_futs)
            ack = await fut
        except BaseException:  # KafkaUnavailable, or cancelled at shutdown
            self.table.failed(stream_id, chunk.seq, self.now())
            raise
        body = {"seq": chunk.seq, "status": "persisted", "partition": ack.partition,
                "offset": ack.offset}
        if gap:
            body["gap_before"] = gap
        self.table.persisted(stream_id, chunk.seq, body, self.now())
        _chunks.add(1, {"source": source})
        _bytes.add(chunk.payload_bytes, {"source": source})
        return body

    async def _await(self, fut: asyncio.Future, stream_id: str, seq: int) -> dict[str, Any]:
        try:
            return await asyncio.wait_for(asyncio.shield(fut), self.ack_timeout_s)
        except TimeoutError:
            raise IngestError(503, "kafka_slow", f"Kafka has not acknowledged seq {seq} yet",
                              retry_after=1) from None
        except KafkaUnavailable as exc:
            raise IngestError(503, "kafka_unavailable", str(exc), retry_after=1) from None

    async def end_session(self, stream_id: str, reason: str, *, wait_s: float | None = None,
                          **attrs: str) -> None:
        """Produce DISCONNECTED for a push that ended, waiting at most ``wait_s`` for the ack.

        A push that ends because Kafka is down must still answer its client at once; the record
        stays queued in the producer and is delivered when Kafka is back.
        """
        rec = self.table.end(stream_id, self.now(), reason, **attrs)
        if rec is None:
            return
        try:
            futs = self._send_sessions([rec])
        except KafkaUnavailable:  # a lost DISCONNECTED is repaired by the idle timeout
            return
        for f in futs:
            f.add_done_callback(lambda f: f.cancelled() or f.exception())
        await asyncio.wait(futs, timeout=wait_s)

    async def expire_idle(self) -> int:
        """Produce DISCONNECTED for idle sessions; returns how many."""
        recs = self.table.expire(self.now())
        if recs:
            await asyncio.gather(*self._send_sessions(recs), return_exceptions=True)
        return len(recs)
