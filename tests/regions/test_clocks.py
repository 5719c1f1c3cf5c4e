"""A worker whose clock is 2 s off (another region's, say) cuts the same segments in the same
order and keeps device state steady: every stored time comes from the log, never the worker.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.media.cutter import Cutter
from pipeline.views.device_state import (
    DeviceState,
    EventClock,
    columns,
    expire,
    on_chunk,
    summarize_chunk,
)
from tests.segmenter.test_cutter import MAX, TARGET, streams, summary

SKEWS = (-2.0, 0.0, 2.0)
# Short enough that judging idleness by a wall clock 2 s ahead (+1 s of lag) would flap.
IDLE_US = 2_500_000


def _cut_with_clock(chunks: list[dict], skew: float) -> list:
    """Feed the chunks as a worker whose clock reads wall + skew (10 chunks/s, ticking)."""
    cutter = Cutter("s", target_s=TARGET, max_s=MAX)
    wall, cuts = 1_000.0, []
    for c in chunks:
        wall += 0.1
        cuts += cutter.feed(c, now=wall + skew).segments
        cuts += cutter.tick(now=wall + skew).segments
    return cuts + cutter.flush().segments


@settings(max_examples=40, deadline=None)
@given(streams())
def test_segments_do_not_depend_on_the_worker_clock(chunks):
    runs = [summary(_cut_with_clock(chunks, s)) for s in SKEWS]
    assert runs[0] == runs[1] == runs[2]
    starts = [cut[7] for cut in runs[0]]  # start_time, in sequence order
    assert starts == sorted(starts) and [cut[1] for cut in runs[0]] == list(range(len(starts)))


def _chunk(seq: int, ingest_us: int) -> dict:
    return {"stream_id": "s", "seq": seq, "session_id": "a", "codec": "H264", "width": 320,
            "height": 240, "timescale": 90000, "producer_time": ingest_us - 40_000,
            "ingest_time": ingest_us, "gap_before": 0,
            "frames": [{"pts": seq * 6000, "dts": seq * 6000, "keyframe": seq % 10 == 0,
                        "data": b"\0\0\1\x41"}]}


@settings(max_examples=60, deadline=None)
@given(skew=st.floats(-2.0, 2.0), delays=st.lists(st.floats(0.0, 1.0), min_size=5, max_size=60))
def test_device_state_does_not_flap_with_a_skewed_worker(skew, delays):
    """Chunks every 0.5 s read by a worker 2 s off: never offline while they come, the cells
    stamped with the chunks' ingest times, and offline at last_seen + idle timeout afterwards."""
    t0 = 1_800_000_000_000_000
    results = {}
    for worker_skew in (skew, 0.0):
        state, clock = DeviceState("s"), EventClock()
        for seq, delay in enumerate(delays):
            ingest = t0 + seq * 500_000
            wall = ingest / 1e6 + delay + worker_skew  # read some time later, by a skewed clock
            state = on_chunk(state, summarize_chunk(_chunk(seq, ingest))) or state
            clock.observe(ingest, wall)
            cells, ts = columns(state, "chunk")
            assert ts == ingest and cells["last_seen"] == ingest  # event time, not the worker's
            for later in (0.0, 0.25, 0.5):  # between this chunk and the next one
                assert expire(state, clock.now_us(wall + later), IDLE_US) is None
        last = t0 + (len(delays) - 1) * 500_000
        gone = expire(state, clock.now_us(last / 1e6 + worker_skew + 30), IDLE_US)
        assert gone is not None and gone.offline_time == last + IDLE_US
        results[worker_skew] = (columns(state, "chunk"), columns(gone, "offline"))
    assert results[skew] == results[0.0]  # two regions' workers with different clocks agree
