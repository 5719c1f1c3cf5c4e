"""Time index planning: day buckets for a range and gaps between consecutive segments."""

from __future__ import annotations

from itertools import pairwise

from hypothesis import given
from hypothesis import strategies as st

from pipeline.views.timeindex import DAY_US, Gap, covering, day_of, plan_buckets, with_gaps

D = 20_000 * DAY_US


def s(start_s: float, dur_s: float = 2.0, sid: str | None = None) -> dict:
    start = D + int(start_s * 1e6)
    return {"segment_id": sid or f"g{start_s}", "start_time": start,
            "end_time": start + int(dur_s * 1e6), "duration_us": int(dur_s * 1e6)}


def test_buckets_within_one_day_and_across_midnight():
    [q] = plan_buckets(D + 10_000_000, D + 20_000_000, 6_000_000)
    assert (q.day, q.lo, q.hi) == (20_000, D + 4_000_000, D + 20_000_000)
    qs = plan_buckets(D + DAY_US - 3_000_000, D + DAY_US + 5_000_000, 6_000_000)
    assert [q.day for q in qs] == [20_000, 20_001]
    assert qs[0].lo == D + DAY_US - 9_000_000 and qs[0].hi == D + DAY_US
    assert qs[1].lo == D + DAY_US and qs[1].hi == D + DAY_US + 5_000_000
    assert plan_buckets(5, 5, 0) == []


@given(st.integers(0, 10 * DAY_US), st.integers(1, 3 * DAY_US), st.integers(0, 60_000_000))
def test_buckets_tile_the_range_exactly(start, length, max_seg):
    qs = plan_buckets(start, start + length, max_seg)
    assert qs[0].lo == start - max_seg and qs[-1].hi == start + length
    for a, b in pairwise(qs):
        assert a.hi == b.lo and b.day == a.day + 1
    assert all(day_of(q.lo) == q.day == day_of(q.hi - 1) for q in qs)


def test_gaps_between_consecutive_segments_and_at_the_edges():
    segs = [s(0), s(2), s(4), s(10), s(12)]  # hole 6..10
    items = with_gaps(segs, D + 1_000_000, D + 20_000_000)
    kinds = [("gap" if isinstance(i, Gap) else i["segment_id"]) for i in items]
    assert kinds == ["g0", "g2", "g4", "gap", "g10", "g12", "gap"]
    assert items[3] == Gap(D + 6_000_000, D + 10_000_000)
    assert items[-1] == Gap(D + 14_000_000, D + 20_000_000)
    assert isinstance(with_gaps(segs, D, D + 20_000_000, trailing=False)[-1], dict)
    # jitter under the tolerance is not a gap; leading hole is
    items = with_gaps([s(1.05), s(3.0)], D, D + 5_000_000, tolerance_us=100_000)
    assert [isinstance(i, Gap) for i in items] == [True, False, False]


def test_covering_dedups_and_drops_nested():
    segs = [s(2, sid="b"), s(0, sid="a"), s(0, sid="a"), s(0.5, 1.0, sid="inner"), s(9, sid="x")]
    assert [x["segment_id"] for x in covering(segs, D, D + 5_000_000)] == ["a", "b"]
