"""Live manifest reducer: order-free, duplicate-proof, bounded, media sequence never backwards."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from pipeline.views.manifest import (
    DISC_MEMORY,
    ManifestState,
    apply_segment,
    ended_from_session,
    reduce_segments,
)

T0 = 1_764_000_000_000_000


def seg(seq: int, disc: bool = False, dur_us: int = 2_000_000, init: str = "i0",
        version: int = 0) -> dict:
    start = T0 + seq * 2_000_000
    return {
        "stream_id": "s", "segment_id": f"s-{seq}-{version}", "sequence": seq,
        "start_time": start, "end_time": start + dur_us, "duration_us": dur_us,
        "init_id": init, "discontinuity": disc, "independent": True, "byte_size": 1000 + seq,
        "ingest_end": start + dur_us + 50_000,
    }


segments = st.lists(
    st.builds(seg, st.integers(0, 60), st.booleans(), st.integers(100_000, 7_500_000),
              st.sampled_from(["i0", "i1"]), st.integers(0, 1)),
    max_size=40,
)


@hsettings(max_examples=300, deadline=None)
@given(segments, st.randoms(use_true_random=False), st.integers(1, 10))
def test_any_permutation_gives_the_same_window(events, rnd, window):
    shuffled = list(events)
    rnd.shuffle(shuffled)
    a = reduce_segments("s", events, window)
    b = reduce_segments("s", shuffled, window)
    assert a.to_row() == b.to_row()
    assert a == b


@hsettings(max_examples=200, deadline=None)
@given(segments, st.integers(1, 10), st.data())
def test_duplicates_change_nothing(events, window, data):
    once = reduce_segments("s", events, window)
    dups = data.draw(st.lists(st.sampled_from(events), max_size=20)) if events else []
    twice = reduce_segments("s", events + dups + events, window)
    assert once == twice
    for e in events:
        assert apply_segment(once, e) is once  # unchanged state is the same object: no write


@hsettings(max_examples=200, deadline=None)
@given(segments, st.integers(1, 10))
def test_window_bounded_and_media_sequence_monotonic(events, window):
    state = ManifestState("s", window)
    ms = ds = 0
    for e in events:
        state = apply_segment(state, e)
        assert len(state.entries) <= window
        assert state.media_sequence >= ms and state.discontinuity_sequence >= ds
        ms, ds = state.media_sequence, state.discontinuity_sequence
        seqs = [x.sequence for x in state.entries]
        assert seqs == sorted(set(seqs))


def test_window_contents_and_counters():
    events = [seg(i, disc=i in (0, 3, 7), dur_us=2_000_000 + (500_000 if i == 2 else 0))
              for i in range(10)]
    s = reduce_segments("s", events, window=4)
    row = s.to_row()
    assert [e["sequence"] for e in json.loads(row["window_entries"])] == [6, 7, 8, 9]
    assert row["media_sequence"] == 6
    assert row["discontinuity_sequence"] == 2  # seq 0 and 3 slid out; 7 is still in the window
    assert row["target_duration"] == 3  # ceil(2.5 s), kept although seq 2 left the window
    assert row["updated_time"] == events[-1]["ingest_end"]


def test_from_row_round_trip_continues_identically():
    events = [seg(i, disc=i % 4 == 0) for i in range(20)]
    full = reduce_segments("s", events, 5)
    part = reduce_segments("s", events[:12], 5)
    restored = ManifestState.from_row(part.to_row(), 5)
    for e in events[12:]:
        restored = apply_segment(restored, e)
    assert restored.to_row() == full.to_row()


def test_discontinuity_memory_is_bounded():
    s = reduce_segments("s", (seg(i, disc=True) for i in range(DISC_MEMORY + 50)), 3)
    assert len(s.disc_seqs) == DISC_MEMORY
    assert s.discontinuity_sequence == DISC_MEMORY + 50 - 3


def test_ended_comes_from_sessions():
    assert ended_from_session({"kind": "STREAM_STOPPED", "time": 5}) == (True, 5)
    assert ended_from_session({"kind": "CONNECTED", "time": 6}) == (False, 6)
    assert ended_from_session({"kind": "CONFIG_CHANGED", "time": 7}) is None
