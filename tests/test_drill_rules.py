"""The region-outage drill's exactly-once check (pure): what it accepts and what it reports."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from types import SimpleNamespace

from hypothesis import given
from hypothesis import strategies as st

from pipeline.devstack.drill import exactly_once
from pipeline.store.segments import later_copies


@dataclass(frozen=True)
class Seg:
    segment_id: str
    first_chunk_seq: int
    last_chunk_seq: int
    frame_count: int


def _cut(frames: dict[int, int], bounds: list[int]) -> list[Seg]:
    seqs = sorted(frames)
    edges = [0, *sorted(set(bounds)), len(seqs)]
    out = []
    for a, b in itertools.pairwise(edges):
        if a < b:
            part = seqs[a:b]
            out.append(Seg(f"s{part[0]}", part[0], part[-1], sum(frames[q] for q in part)))
    return out


chunk_frames = st.dictionaries(st.integers(0, 200), st.integers(1, 8), min_size=1, max_size=60)


@given(chunk_frames, st.data())
def test_contiguous_segments_that_hold_every_chunk_pass(frames, data):
    frames = {q: n for q, n in zip(range(len(frames)), frames.values(), strict=True)}
    bounds = data.draw(st.lists(st.integers(1, max(1, len(frames) - 1)), max_size=10))
    assert exactly_once(frames, _cut(frames, bounds)) == []


@given(chunk_frames, st.data())
def test_a_lost_chunk_or_a_duplicated_one_is_reported(frames, data):
    frames = {q: n for q, n in zip(range(len(frames)), frames.values(), strict=True)}
    segs = _cut(frames, data.draw(st.lists(st.integers(1, max(1, len(frames) - 1)),
                                           max_size=10)))
    victim = data.draw(st.sampled_from(segs))
    lost = [s for s in segs if s is not victim]
    assert any("in no segment" in p for p in exactly_once(frames, lost))
    dup = Seg("dup", victim.first_chunk_seq, victim.last_chunk_seq, victim.frame_count)
    assert any("in segments" in p for p in exactly_once(frames, [*segs, dup]))


def test_a_segment_missing_frames_of_its_chunks_is_reported():
    frames = {0: 3, 1: 3}
    assert exactly_once(frames, [Seg("a", 0, 1, 5)]) == [
        "segment a holds 5 frames, its chunks 0..1 6"]


@given(st.lists(st.tuples(st.sampled_from("abcd"), st.integers(0, 50), st.integers(0, 50)),
                max_size=30))
def test_a_read_keeps_the_later_copy_of_each_segment_whatever_the_order(copies):
    """``later_copies``: one row per segment id, the one with the latest write (ingest_end),
    ordered by start time, and the same answer for any order the rows come in."""
    rows = [SimpleNamespace(segment_id=i, start_time=t, ingest_end=w) for i, t, w in copies]
    kept = later_copies(rows)
    assert sorted(r.segment_id for r in kept) == sorted({i for i, _, _ in copies})
    for r in kept:
        assert (r.ingest_end, r.start_time) == max((w, t) for i, t, w in copies
                                                   if i == r.segment_id)
    assert [r.start_time for r in kept] == sorted(r.start_time for r in kept)
    assert [(r.segment_id, r.start_time) for r in later_copies(rows[::-1])] == \
        [(r.segment_id, r.start_time) for r in kept]
