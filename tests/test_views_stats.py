"""Playback stats: windows recomputed from deduplicated hits; redelivery never double counts."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from pipeline.views.stats import (
    EXACT_VIEWERS,
    HOUR_US,
    MINUTE_US,
    StatsBook,
    ViewerSketch,
    aggregate,
    hit_of,
)

T0 = 1_764_000_000_000_000  # on a minute boundary

kinds = st.sampled_from(["MANIFEST", "SEGMENT", "INIT", "CLIP", "THUMBNAIL", "BEACON"])
events = st.lists(st.builds(
    lambda k, t, b, v, status, su, rb: {
        "event_id": str(uuid.UUID(int=t * 7 + b)), "stream_id": "s", "kind": k, "time": T0 + t,
        "bytes": b, "viewer": f"v{v}", "status": status, "startup_ms": su, "rebuffers": rb,
        "error": None},
    kinds, st.integers(0, 3 * MINUTE_US), st.integers(0, 10**6), st.integers(0, 5),
    st.sampled_from([200, 206, 404, 500]), st.one_of(st.none(), st.floats(0, 5000)),
    st.one_of(st.none(), st.integers(0, 3))), max_size=60, unique_by=lambda e: e["event_id"])


def run(evs, now_us):
    book = StatsBook({}, grace_us=0)
    for e in evs:
        book.add(e["event_id"], hit_of(e))
    return {(r.resolution, r.start_us): r for r in book.due(now_us)}


@hsettings(max_examples=150, deadline=None)
@given(events, st.data())
def test_redelivery_and_order_never_change_the_rows(evs, data):
    again = data.draw(st.lists(st.sampled_from(evs), max_size=30)) if evs else []
    shuffled = data.draw(st.permutations(evs))
    now = T0 + HOUR_US * 2
    a, b = run(evs, now), run(list(shuffled) + again + list(evs), now)
    assert {k: (r.to_row(), r.write_ts) for k, r in a.items()} == \
        {k: (r.to_row(), r.write_ts) for k, r in b.items()}
    total = sum(r.stats.bytes for (res, _), r in a.items() if res == "minute")
    assert total == sum(e["bytes"] for e in evs)


def test_exact_counts_per_minute_and_hour_rollup():
    evs = []
    for m in range(2):
        for i in range(10):
            evs.append({"event_id": f"{m}-{i}", "stream_id": "s", "time": T0 + m * MINUTE_US + i,
                        "kind": "MANIFEST" if i < 3 else "SEGMENT", "bytes": 100,
                        "viewer": f"v{i % 4}", "status": 200 if i else 500})
    evs.append({"event_id": "b", "stream_id": "s", "time": T0 + 5, "kind": "BEACON",
                "startup_ms": 250.0, "rebuffers": 2, "viewer": "v9"})
    rows = run(evs, T0 + 3 * MINUTE_US)
    m0 = rows[("minute", T0)].to_row()
    assert (m0["manifest_requests"], m0["segment_requests"], m0["other_requests"]) == (3, 7, 0)
    assert (m0["bytes"], m0["errors"], m0["viewers"]) == (1000, 1, 5)
    assert (m0["startup_ms_sum"], m0["startup_samples"], m0["rebuffers"]) == (250.0, 1, 2)
    assert m0["day"] == T0 // 86_400_000_000 and m0["minute"] == T0
    h = rows[("hour", T0 - T0 % HOUR_US)]
    assert h.stats.bytes == 2000 and h.stats.viewers == 5 and h.stats.events == 21
    assert h.to_row()["month"] == 202511
    # the open minute is not flushed; later events grow the write timestamp
    assert ("minute", T0 + MINUTE_US) not in run(evs, T0 + 2 * MINUTE_US - 1)


def test_flushed_windows_are_not_rewritten_and_old_hits_are_evicted():
    store: dict = {}
    book = StatsBook(store, grace_us=0)
    for i in range(5):
        book.add(f"e{i}", hit_of({"stream_id": "s", "time": T0 + i, "kind": "SEGMENT"}, 2))
    rows = book.due(T0 + MINUTE_US)
    assert [r.resolution for r in rows] == ["minute", "hour"]
    for r in rows:
        book.mark_flushed(r)
    assert book.due(T0 + MINUTE_US) == []
    assert not book.add("e1", hit_of({"stream_id": "s", "time": T0 + 1, "kind": "SEGMENT"}))
    assert book.evictable(2, T0 + MINUTE_US) == []
    hour_end = T0 - T0 % HOUR_US + HOUR_US
    assert sorted(book.evictable(1, hour_end)) == []
    ids = book.evictable(2, hour_end)
    assert sorted(ids) == [f"e{i}" for i in range(5)]
    for eid in ids:
        book.forget(eid)
    assert store == {} and book.due(hour_end) == []
    # a rebuilt book (after restart) sees the same windows
    book2 = StatsBook({"x": hit_of({"stream_id": "s", "time": T0, "kind": "CLIP"}).to_list()}, 0)
    book2.rebuild()
    assert book2.due(T0 + MINUTE_US)[0].stats.other_requests == 1


def test_viewer_sketch_exact_then_estimate():
    sk = ViewerSketch()
    for i in range(EXACT_VIEWERS):
        sk.add(f"v{i}")
        sk.add(f"v{i}")
    assert sk.estimate() == EXACT_VIEWERS
    for i in range(EXACT_VIEWERS, 50_000):
        sk.add(f"v{i}")
    assert abs(sk.estimate() - 50_000) / 50_000 < 0.08
    assert aggregate([]).viewers == 0
