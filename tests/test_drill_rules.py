"""The region-outage drill's exactly-once check (pure): what it accepts and what it reports."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from hypothesis import given
from hypothesis import strategies as st

from pipeline.devstack.drill import exactly_once


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
