"""A stream whose frames moved between regions' logs, cut by each region's segmenter.

Real Cassandra, one DC: the regions are the segmenters' ``region`` settings.

The device streamed to dc1, dc1 died with chunks acked but not yet cut, the device moved to dc2
and re-sent its open GOP there; then dc1 came back and its worker re-read its log. Each region
resumes from what its own log carried (``segment_resume``), so dc1's leftovers are cut rather
than skipped behind dc2's newer segments, and the segment both regions cut from the re-sent GOP
is kept once, as the later copy. Every frame ends up in exactly one indexed segment.
"""

from __future__ import annotations

import tempfile

import pytest
from faust.types import TP

from pipeline.agents.segmenter import Delivery, Segmenter
from pipeline.events import encode
from pipeline.store.segments import InitRow, SegmentRow, SegmentStore
from tests.segmenter.media import chunks, ffprobe_frames
from tests.segmenter.media import encode as encode_media

pytestmark = [pytest.mark.services, pytest.mark.slow]

TP0 = TP("camlog.frames", 0)
T0 = 1_700_000_000_000_000


def _row(sid: str, seg: str, start: int, ingest_end: int) -> SegmentRow:
    return SegmentRow(sid, start // 86_400_000_000, start, seg, 0, start + 2_000_000, start,
                      start + 2_000_000, start, ingest_end, 2_000_000, 30, 5, True, "i", False,
                      "avc1", 16, 16, 0, 5, 0, 90000, 1, ingest_end, "{}", "[]", 0)


async def test_the_later_copy_of_a_segment_cut_in_two_regions_is_kept(services, stream_id):
    store = SegmentStore(services)
    await store.start()
    try:
        for order in ((1, 2), (2, 1)):  # whichever region seals first
            sid = f"{stream_id}-{order[0]}"
            early = _row(sid, "x", T0, T0 + 100)
            late = _row(sid, "x", T0 + 3_000_000, T0 + 9_000)
            copies = {1: early, 2: late}
            for region in order:
                row = copies[region]
                await store.put_part(sid, "x", 0, b"copy%d" % region, row.ingest_end)
                kept = await store.seal_segment(row, region=f"dc{region}", check=True)
                assert kept is (region == 2 or order[0] == 1)
            rows = await store.segments_between(sid, T0 - 10_000_000, T0 + 60_000_000)
            assert [(r.segment_id, r.start_time) for r in rows] == [("x", late.start_time)]
            assert await store.segment_bytes(sid, "x") == b"copy2"
            assert (await store.resume_point(sid, "dc1")).start_time == early.start_time
        # both sealed before either saw the other's seal (each DC's read ran first): two index
        # rows, and every read still finds the later copy only
        sid = f"{stream_id}-race"
        early, late = _row(sid, "x", T0 + 3_000_000, T0 + 100), _row(sid, "x", T0, T0 + 9_000)
        for row, data in ((early, b"early"), (late, b"later")):
            await store.put_part(sid, "x", 0, data, row.ingest_end)
            assert await store.seal_segment(row, region="dc1", check=False)
        rows = await store.segments_between(sid, T0 - 10_000_000, T0 + 60_000_000)
        assert [(r.segment_id, r.start_time) for r in rows] == [("x", late.start_time)]
        assert await store.segment_bytes(sid, "x") == b"later"
    finally:
        await store.close()


async def _cut(settings, region: str, recs: list[dict], idle: bool = True) -> list[int]:
    """Feed ``recs`` to a segmenter of ``region``; returns the chunk seqs it acked."""
    clock = [recs[-1]["ingest_time"] / 1e6]
    acked: list[int] = []

    async def publish(topic, key, value, headers):
        return None

    seg = Segmenter(settings.replace(region=region), SegmentStore(settings), publish,
                    ack=acked.append, now=lambda: clock[0])
    await seg.start()
    try:
        key = recs[0]["stream_id"].encode()
        for rec in recs:
            await seg.handle_batch([Delivery(TP0, rec["seq"], key, encode("FrameChunk", rec),
                                             [], rec["seq"])])
        clock[0] += 3  # past the reorder wait: a hole in the seqs is given up on
        await seg.tick()
        if idle:
            clock[0] += settings.idle_timeout_s + 1
            await seg.tick()
        for t in list(seg.inflight):
            await t
    finally:
        await seg.close()
    return acked


async def test_a_stream_split_across_regions_is_cut_once_after_the_outage(services, stream_id):
    frames, cfg = encode_media("H264", n=150, gop=30)  # 10 s, a keyframe every 2 s
    recs = chunks(stream_id, frames, cfg, per_chunk=5, t0_us=T0)  # 30 chunks, 6 per GOP
    # dc1 cut chunks 0..8 (segment 0 sealed) and died; chunks 9..15 were acked in its log.
    acked = await _cut(services, "dc1", recs[:9], idle=False)
    assert max(acked) == 5
    # The device moved to dc2 at chunk 16 and re-sent its open GOP (chunks 12..15) first; dc2
    # stamps them later and opens a session of its own.
    moved = [{**r, "ingest_time": r["ingest_time"] + 3_000_000, "session_id": "s2"}
             for r in recs[12:]]
    await _cut(services, "dc2", moved)
    # dc1 is back: its worker re-reads its log from the last commit (chunk 6 on).
    back = await _cut(services, "dc1", recs[6:16])
    assert max(back) == 15  # all of dc1's chunks are settled

    store = SegmentStore(services)
    await store.start()
    try:
        rows = await store.segments_between(stream_id, T0 - 60_000_000, T0 + 120_000_000)
        spans = [(r.first_chunk_seq, r.last_chunk_seq) for r in rows]
        assert spans == [(0, 5), (6, 11), (12, 17), (18, 23), (24, 29)], spans
        assert [r.discontinuity for r in rows] == [False, False, True, False, False]
        init = await store.init_segment(stream_id, rows[0].init_id)
        for r in rows:  # each segment decodes to its frames: no frame lost, none twice
            data = await store.segment_bytes(stream_id, r.segment_id)
            assert data is not None
            with tempfile.NamedTemporaryFile(suffix=".mp4") as f:
                f.write(init.data + data)
                f.flush()
                pts, _ = ffprobe_frames(f.name)
            assert len(pts) == r.frame_count == 30
    finally:
        await store.close()


async def test_an_init_segment_keeps_its_earliest_sighting(services, stream_id):
    """A restarted worker, or the other region, writes the init segment again, stamped with a
    later chunk: the first sighting's ``created`` stays, as a rebuild from the log finds it."""
    store = SegmentStore(services)
    await store.start()
    try:
        for created in (T0 + 5_000_000, T0, T0 + 9_000_000):  # any order of writers
            await store.put_init(InitRow(stream_id, "i", "avc1", 16, 16, b"c", b"d", created))
        assert (await store.init_segment(stream_id, "i")).created == T0
    finally:
        await store.close()
