"""The Segmenter without Faust: real Cassandra, publish captured, clock injected, acks in order."""

from __future__ import annotations

import pytest
from faust.types import TP
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from pipeline.agents.segmenter import Delivery, Segmenter
from pipeline.events import decode_any, encode
from pipeline.store.segments import SegmentStore
from tests.segmenter.media import chunks
from tests.segmenter.media import encode as encode_media

pytestmark = pytest.mark.services

_EXPORTER = InMemorySpanExporter()
TP0 = TP("camlog.frames", 0)


def _spans_enabled() -> bool:
    if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
        trace.set_tracer_provider(provider)
        return True
    return False


async def test_batches_ack_after_sealing_and_traces_continue(services, stream_id):
    tracing = _spans_enabled()
    clock = [1000.0]
    published: list[tuple[str, bytes, bytes]] = []
    acked: list[int] = []

    async def publish(topic, key, value, headers):
        published.append((topic, key, value))

    seg = Segmenter(services, SegmentStore(services), publish, ack=acked.append,
                    now=lambda: clock[0])
    await seg.start()
    frames, cfg = encode_media("H264", n=45, gop=15)  # 3 s: one cut at 2 s, 1 s left pending
    trace_id = 0x1234567890ABCDEF1234567890ABCDEF
    header = [("traceparent", f"00-{trace_id:032x}-00f067aa0ba902b7-01".encode())]
    recs = chunks(stream_id, frames, cfg, per_chunk=5, t0_us=int(clock[0] * 1e6))
    try:
        await seg.handle(TP0, 0, stream_id.encode(), b"junk", header, 0)
        batch = [Delivery(TP0, off, stream_id.encode(), encode("FrameChunk", rec), header, off)
                 for off, rec in enumerate(recs, start=1)]
        for i in range(0, len(batch), 4):  # batches straddle the cut
            await seg.handle_batch(batch[i:i + 4])
        for t in list(seg.inflight):
            await t
        # the first segment (chunks 0-5, frames 0-29) is sealed; chunk 6 onwards pending
        assert acked == list(range(7))
        clock[0] += services.idle_timeout_s + 1
        await seg.tick()
        for t in list(seg.inflight):
            await t
        assert acked == list(range(len(recs) + 1))
    finally:
        await seg.close()
    topics = [t for t, _, _ in published]
    assert topics.count("camlog.dlq") == 1
    announced = [decode_any(v) for t, _, v in published if t == "camlog.segments"]
    events = [r for ev, r in announced if ev.name == "SealedSegment"]
    assert [e["frame_count"] for e in events] == [30, 15]
    assert [e["sequence"] for e in events] == [0, 1]
    # each segment's parts were announced before it, and add up to it exactly
    for e in events:
        i = next(n for n, (ev, r) in enumerate(announced) if r is e)
        parts = [r for ev, r in announced[:i] if ev.name == "SealedPart"
                 and r["segment_id"] == e["segment_id"]]
        assert [r["part"] for r in parts] == list(range(len(e["parts"]))) and parts
        assert sum(r["frame_count"] for r in parts) == e["frame_count"]
        assert sum(r["byte_size"] for r in parts) == e["byte_size"]
        assert [r["duration_us"] for r in parts] == [p["duration_us"] for p in e["parts"]]
        assert all(r["duration_us"] <= services.part_target_s * 1e6 for r in parts)
        assert parts[0]["independent"]
    if tracing:
        spans = [s for s in _EXPORTER.get_finished_spans() if s.name == "segmenter.batch"]
        assert spans and all(s.context.trace_id == trace_id for s in spans)
        assert all(link.context.trace_id == trace_id for s in spans for link in s.links)


async def test_a_batch_between_revoke_and_assignment_is_left_for_the_re_read(services, stream_id):
    """The take buffer can yield events fetched before a rebalance after the revoke and before
    the assignment, still under the current generation. Fed, the stream's first chunk (its
    parameter sets) would be dropped with the revoke and the next one dead-lettered with no codec
    configuration; left alone, both come again from the committed offset and are cut."""
    published: list[str] = []
    acked: list[int] = []

    async def publish(topic, key, value, headers):
        published.append(topic)

    clock = [1000.0]
    seg = Segmenter(services, SegmentStore(services), publish, ack=acked.append,
                    now=lambda: clock[0])
    await seg.start()
    frames, cfg = encode_media("H264", n=45, gop=15)
    recs = chunks(stream_id, frames, cfg, per_chunk=5, t0_us=int(clock[0] * 1e6))
    batch = [Delivery(TP0, off, stream_id.encode(), encode("FrameChunk", rec), [], off)
             for off, rec in enumerate(recs)]
    try:
        await seg.handle_batch(batch[:1])
        await seg.revoke({TP0})
        await seg.handle_batch(batch[1:4])  # stale: fetched before the rebalance
        assert stream_id not in seg.streams and acked == [] and "camlog.dlq" not in published
        seg.assigned({TP0})
        await seg.handle_batch(batch)  # the re-read from the committed offset
        clock[0] += services.idle_timeout_s + 1
        await seg.tick()
        for t in list(seg.inflight):
            await t
    finally:
        await seg.close()
    assert acked == list(range(len(recs))) and "camlog.dlq" not in published
    assert published.count("camlog.segments") > 0
