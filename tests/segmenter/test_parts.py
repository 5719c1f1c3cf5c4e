"""The pure part planner: part and segment bounds, coverage, ids, timeline and crash recovery."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.media.parts import PartPlanner, PlannedPart, SegmentClosed, part_id

TS = 90000
PART, TARGET, MAX = 0.5, 2.0, 6.0
PART_T, MAX_T = round(PART * TS), round(MAX * TS)


@dataclass(frozen=True)
class F:
    """The frame fields the planner reads."""

    chunk_seq: int
    index: int
    dts: int
    keyframe: bool

    @property
    def id(self) -> tuple[int, int]:
        return (self.chunk_seq, self.index)


def planner(**kw) -> PartPlanner:
    return PartPlanner(timescale=TS, part_target_s=PART, target_s=TARGET, max_s=MAX, **kw)


@st.composite
def streams(draw, slow: bool = False):
    """Chunks (lists of frames) of one run: a frame rate, jitter, GOPs, 1-20 frames per chunk."""
    n = draw(st.integers(1, 300))
    if slow:
        step = draw(st.sampled_from([9000, 18000, 30000, 60000]))  # 10, 5, 3, 1.5 fps
    else:
        step = draw(st.sampled_from([3000, 3600, 4500, 6000]))  # 30, 25, 20, 15 fps
    jitter = draw(st.sampled_from([0, 0, 90, 450]))
    gop = draw(st.sampled_from([0, 15, 30, 50, 60, 400]))  # 0 = random keyframes
    sizes = draw(st.lists(st.integers(1, 20), min_size=n, max_size=n))
    noise = draw(st.lists(st.integers(-jitter, jitter), min_size=n, max_size=n))
    keys = draw(st.lists(st.integers(0, 40), min_size=n, max_size=n))
    dts = [i * step + (noise[i] if 0 < i < n - 1 else 0) for i in range(n)]
    frames = []
    for i in range(n):
        key = i == 0 or (keys[i] == 0 if gop == 0 else i % gop == 0)
        frames.append((dts[i], key))
    chunks, i, seq = [], 0, 0
    while i < n:
        part = frames[i:i + sizes[seq]]
        chunks.append([F(seq, k, d, key) for k, (d, key) in enumerate(part)])
        i += len(part)
        seq += 1
    return chunks


def run(chunks, p=None, skip_through=None):
    """Feed chunks (frames after ``skip_through`` only), end each chunk, flush; all events."""
    p = p or planner()
    events = []
    for chunk in chunks:
        fed = False
        for f in chunk:
            if skip_through is not None and f.id <= skip_through:
                continue
            events += p.feed(f).events
            fed = True
        if fed:
            events += p.end_chunk().events
    return events + p.flush().events


def parts_of(events):
    return [e for e in events if isinstance(e, PlannedPart)]


def check_structure(chunks, events, *, min_ratio: bool):
    frames = [f for c in chunks for f in c]
    parts = parts_of(events)
    assert [f for p in parts for f in p.frames] == frames  # every frame in exactly one part
    assert len({p.id for p in parts}) == len(parts)
    segs = [e for e in events if isinstance(e, SegmentClosed)]
    assert isinstance(events[-1], SegmentClosed)
    by_seg: dict[str, list[PlannedPart]] = {}
    for p in parts:
        by_seg.setdefault(p.segment_id, []).append(p)
    assert [s.segment_id for s in segs] == list(by_seg)
    for s in segs:
        ps = by_seg[s.segment_id]
        assert [p.index for p in ps] == list(range(s.parts))
        assert s.ticks == sum(p.ticks for p in ps) <= MAX_T
        first = ps[0].frames[0]
        assert s.segment_id == f"{first.chunk_seq:012d}-{first.index:04d}"
        assert s.independent == first.keyframe
        for p in ps:
            assert p.id == part_id(s.segment_id, p.index)
            assert p.independent == p.frames[0].keyframe
            assert all(d >= 1 for d in p.durations) and len(p.durations) == len(p.frames)
            assert p.ticks <= PART_T  # never longer than PART-TARGET
        if min_ratio:
            for p in ps[:-1]:
                assert p.ticks >= 0.85 * PART_T, (p.ticks, [f.dts for f in p.frames])
    return segs, by_seg


@settings(max_examples=200, deadline=None)
@given(streams())
def test_parts_bounded_cover_all_frames_and_segments_concatenate(chunks):
    events = run(chunks)
    segs, by_seg = check_structure(chunks, events, min_ratio=True)
    # a segment's frames are exactly its parts' frames, and cuts are at keyframes past target
    for a, b in pairwise(segs):
        nxt = by_seg[b.segment_id][0].frames[0]
        if b.independent and a.ticks + PART_T <= MAX_T:
            assert a.ticks >= round(TARGET * TS) or not nxt.keyframe
        if not b.independent:
            assert a.ticks + PART_T > MAX_T  # only forced cuts start without a keyframe


@settings(max_examples=100, deadline=None)
@given(streams(slow=True))
def test_slow_streams_never_get_a_part_longer_than_the_target(chunks):
    events = run(chunks)
    check_structure(chunks, events, min_ratio=False)
    assert sum(p.dropped_ticks for p in parts_of(events)) >= 0


@settings(max_examples=150, deadline=None)
@given(streams(), st.data())
def test_restore_from_any_part_gives_identical_parts(chunks, data):
    events = run(chunks)
    parts = parts_of(events)
    k = data.draw(st.integers(0, len(parts) - 1))
    at = events.index(parts[k])
    again = run(chunks, planner(snapshot=parts[k].resume), skip_through=parts[k].frames[-1].id)
    assert again == events[at + 1:]


@settings(max_examples=100, deadline=None)
@given(streams())
def test_timeline_drifts_by_at_most_one_estimate(chunks):
    parts = parts_of(run(chunks))
    out, t0 = 0, parts[0].frames[0].dts
    frames = [f for c in chunks for f in c]
    worst = max([b.dts - a.dts for a, b in pairwise(frames)] + [1])
    for p in parts:
        for f, d in zip(p.frames, p.durations, strict=True):
            assert abs(out - (f.dts - t0)) <= worst
            out += d


def test_sdk_chunks_cut_with_full_become_one_part_each():
    """A camera cutting chunks with ``full``/``end_chunk`` gets parts closed at its chunk ends."""
    sdk, frames = planner(), [F(0, i, i * 3000, i % 60 == 0) for i in range(600)]
    chunks, cur = [], []
    for f in frames:
        plan = sdk.feed(f)
        for p in plan.parts:  # closed on arrival: the frames before this one form a chunk
            chunks.append(list(p.frames))
            cur = cur[len(p.frames):]
        cur.append(f)
        if sdk.full():
            for p in sdk.end_chunk().parts:
                chunks.append(list(p.frames))
            cur = []
    chunks.append(cur)
    chunks = [[F(n, i, f.dts, f.keyframe) for i, f in enumerate(c)] for n, c in enumerate(chunks)]
    seg = planner()
    closed_at_chunk_end = 0
    for c in chunks[:-1]:
        early = [p for f in c for p in seg.feed(f).parts]
        late = seg.end_chunk().parts
        assert not early or early[0].frames[-1] != c[-1]
        closed_at_chunk_end += [p.frames for p in late] == [tuple(c)]
    assert closed_at_chunk_end == len(chunks) - 1  # every chunk closed as its own part
    assert {len(c) for c in chunks[:-1]} == {15}  # 30 fps, 0.5 s: full parts


@pytest.mark.parametrize(("per_chunk", "sizes"), [(15, [15] * 4), (1, [13] * 4 + [8])])
def test_constant_30fps_parts_close_at_chunk_ends(per_chunk, sizes):
    """Part-sized chunks give full parts; one-frame chunks close as soon as a part is valid."""
    p, events = planner(), []
    for i in range(181):
        events += p.feed(F(i // per_chunk, i % per_chunk, i * 3000, i % 60 == 0)).events
        if i % per_chunk == per_chunk - 1:
            events += p.end_chunk().events
    segs = [e for e in events if isinstance(e, SegmentClosed)]
    assert [(s.parts, s.ticks) for s in segs] == [(len(sizes), 180000)] * 3
    assert [len(e.frames) for e in parts_of(events)] == sizes * 3


def test_stall_is_clamped_and_counted():
    p = planner()
    events = []
    for i, d in enumerate([0, 3000, 6000, 6000 + 80000, 6000 + 83000]):
        events += p.feed(F(i, 0, d, i == 0)).events
    events += p.flush().events
    parts = parts_of(events)
    assert all(x.ticks <= PART_T for x in parts)
    assert sum(x.dropped_ticks for x in parts) == 80000 - 3000 - PART_T + 3000


def test_idle_tick_flushes_with_the_injected_clock():
    clock = [0.0]
    p = planner(now=lambda: clock[0], idle_s=5.0)
    p.feed(F(0, 0, 0, True))
    p.feed(F(1, 0, 3000, False))
    assert not p.tick().events
    clock[0] = 5.0
    events = p.tick().events
    assert [type(e) for e in events] == [PlannedPart, SegmentClosed]
    assert parts_of(events)[0].durations == (3000, 3000)


def test_bad_configuration_and_snapshot_version_are_refused():
    with pytest.raises(ValueError):
        PartPlanner(part_target_s=3.0, target_s=2.0)
    with pytest.raises(ValueError):
        planner(snapshot={"v": 99})
