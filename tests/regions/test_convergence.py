"""Views written by both regions converge in both DCs (LWW by event time), and the trade-off:
EACH_QUORUM fails while a DC is down, LOCAL_QUORUM goes on (and reaches the other DC later).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
import uuid

import pytest
from cassandra import ConsistencyLevel
from cassandra.query import SimpleStatement

from pipeline.store.cluster import StoreUnavailable, aexecute
from pipeline.store.segments import SegmentRow, SegmentStore
from pipeline.store.views import ViewStore
from pipeline.views.timeindex import day_of

pytestmark = [pytest.mark.services, pytest.mark.regions, pytest.mark.slow]


async def _eventually(read, want, what: str, limit: float = 60.0):
    """Poll ``read()`` until it equals ``want`` (replication to the other DC is asynchronous)."""
    deadline = time.monotonic() + limit
    got = None
    while time.monotonic() < deadline:
        got = await read()
        if got == want:
            return got
        await asyncio.sleep(0.2)
    raise AssertionError(f"{what}: still {got!r}, expected {want!r}")


def _segment(stream: str, start: int, region: str, ingest_end: int) -> SegmentRow:
    """The same segment (same stream, start and deterministic id) as sealed by ``region``."""
    return SegmentRow(
        stream_id=stream, day=day_of(start), start_time=start, segment_id=f"{stream}-{start}",
        sequence=7, end_time=start + 2_000_000, producer_start=start, producer_end=start,
        ingest_start=start, ingest_end=ingest_end, duration_us=2_000_000,
        frame_count=30 if region == "dc1" else 31, byte_size=3, independent=True,
        init_id="i", discontinuity=False, codec="avc1.64001f", width=320, height=240,
        first_chunk_seq=0, last_chunk_seq=9, decode_time=0, timescale=90000, parts=1,
        sealed_time=ingest_end, resume=region)


async def test_concurrent_writes_from_both_regions_read_the_same_winner_in_both_dcs(two_regions):
    rng = random.Random(14)
    stores = {dc: (ViewStore(two_regions[dc]), SegmentStore(two_regions[dc]))
              for dc in ("dc1", "dc2")}
    for v, s in stores.values():
        await v.start()
        await s.start()
    try:
        t0 = int(time.time() * 1_000_000)
        start = t0 - 60_000_000
        cases = []
        for i in range(20):
            stream = f"lww-{uuid.uuid4().hex[:8]}-{i}"
            ts = {"dc1": t0 + rng.randrange(1, 5_000_000), "dc2": t0 + rng.randrange(1, 5_000_000)}
            if ts["dc1"] == ts["dc2"]:
                ts["dc2"] += 1
            cases.append((stream, ts, max(ts, key=ts.get)))
        writes = []
        for stream, ts, _ in cases:
            for dc, (views, segs) in stores.items():
                writes.append(views.write_device(
                    stream, {"codec": f"H264-{dc}", "session_id": dc, "last_seen": ts[dc]}, ts[dc]))
                writes.append(segs.put_segment(_segment(stream, start, dc, ts[dc]), dc.encode()))
        rng.shuffle(writes)
        await asyncio.gather(*writes)  # both regions at once, in no particular order

        for stream, ts, winner in cases:
            for dc, (views, segs) in stores.items():  # each DC read through its own region
                async def device(views=views, stream=stream):
                    row = await views.get_device_state(stream)
                    return row and (row["session_id"], row["codec"], row["last_seen"])

                async def segment(segs=segs, stream=stream):
                    rows = await segs.segments_between(stream, start, start + 1)
                    data = await segs.segment_bytes(stream, f"{stream}-{start}")
                    return [(r.resume, r.frame_count, r.ingest_end) for r in rows], data

                await _eventually(device, (winner, f"H264-{winner}", ts[winner]),
                                  f"device_state of {stream} in {dc}")
                want_frames = 30 if winner == "dc1" else 31
                await _eventually(segment, ([(winner, want_frames, ts[winner])], winner.encode()),
                                  f"segment of {stream} in {dc}")
    finally:
        for v, s in stores.values():
            await v.close()
            await s.close()


async def test_each_quorum_fails_while_a_dc_is_down_local_quorum_does_not(two_regions):
    views = ViewStore(two_regions["dc1"])
    remote = ViewStore(two_regions["dc2"])
    await views.start()
    await remote.start()
    stream = f"cl-{uuid.uuid4().hex[:8]}"
    cql = "UPDATE device_state USING TIMESTAMP %s SET codec = %s WHERE stream_id = %s"
    pid = two_regions.cassandra_pid("dc2")
    session = views._session
    try:
        os.kill(pid, signal.SIGSTOP)  # dc2's only replica stops answering
        try:
            each = SimpleStatement(cql, consistency_level=ConsistencyLevel.EACH_QUORUM)
            with pytest.raises(StoreUnavailable):
                await aexecute(session, each, (1, "each", stream))
            local = SimpleStatement(cql, consistency_level=ConsistencyLevel.LOCAL_QUORUM)
            await aexecute(session, local, (2, "local", stream))
            row = await views.get_device_state(stream)
            assert row is not None and row["codec"] == "local"
        finally:
            os.kill(pid, signal.SIGCONT)

        async def in_dc2():
            row = await remote.get_device_state(stream)
            return row and row["codec"]

        # the write dc1 took alone reaches dc2 once it answers again (hints / the queued mutation)
        await _eventually(in_dc2, "local", f"device_state of {stream} in dc2", limit=120)
    finally:
        await views.close()
        await remote.close()
