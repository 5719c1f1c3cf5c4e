"""The pure cutter: coverage, keyframe starts, durations, ids, reordering and crash recovery."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.media.cutter import Cutter
from tests.segmenter.media import TIMESCALE, encode

TARGET, MAX, PART = 2.0, 6.0, 0.5
_, CONFIG = encode("H264", n=2)


@st.composite
def streams(draw):
    """Chunks of one stream: random GOPs (first frame a keyframe), 1-5 frames per chunk."""
    n = draw(st.integers(1, 400))
    step = draw(st.sampled_from([3000, 3600, 6000]))  # 30, 25, 15 fps
    keys = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    gop = draw(st.sampled_from([0, 15, 30, 200]))  # 0 = random keyframes
    frames = []
    for i in range(n):
        key = i == 0 or (keys[i] and draw(st.integers(0, 20)) == 0 if gop == 0 else i % gop == 0)
        frames.append({"pts": i * step, "dts": i * step, "keyframe": key, "data": b"\0\0\1\x41"})
    sizes = draw(st.lists(st.integers(1, 5), min_size=n, max_size=n))
    chunks, i = [], 0
    for seq, size in enumerate(sizes):
        if i >= n:
            break
        part = frames[i:i + size]
        i += size
        chunks.append({"stream_id": "s", "seq": seq, "session_id": "a", "codec": "H264",
                       "codec_config": CONFIG if seq == 0 else None, "timescale": TIMESCALE,
                       "producer_time": 10**15 + part[0]["pts"], "ingest_time": 10**15,
                       "frames": part, "gap_before": 0})
    return chunks


def run(chunks, cutter=None):
    cutter = cutter or Cutter("s", target_s=TARGET, max_s=MAX)
    cuts = []
    for c in chunks:
        step = cutter.feed(c, now=0.0)
        assert not step.rejected
        cuts += step.segments
    return cuts, cutter


def all_cuts(chunks):
    cuts, cutter = run(chunks)
    return cuts + cutter.flush().segments


def summary(cuts):
    return [(c.segment_id, c.sequence, c.decode_time, c.ticks, tuple(f.id for f in c.frames),
             c.independent, c.discontinuity, c.start_time, c.end_time,
             tuple((p.id, p.decode_time, p.durations, p.independent) for p in c.parts))
            for c in cuts]


@settings(max_examples=150, deadline=None)
@given(streams())
def test_every_frame_in_exactly_one_segment_with_valid_cuts(chunks):
    cuts = all_cuts(chunks)
    ids = [f.id for c in cuts for f in c.frames]
    assert ids == [(c["seq"], i) for c in chunks for i in range(len(c["frames"]))]
    assert [c.sequence for c in cuts] == list(range(len(cuts)))
    t = 0
    for n, c in enumerate(cuts):
        assert c.decode_time == t  # tfdt continues exactly
        t += c.ticks
        assert c.independent == c.frames[0].keyframe
        assert c.frames[-1].dts - c.frames[0].dts < MAX * TIMESCALE
        assert c.segment_id == f"{c.frames[0].chunk_seq:012d}-{c.frames[0].index:04d}"
        assert not c.discontinuity
        assert c.ends_run == (n + 1 == len(cuts))  # only the flush ends the run
        if n + 1 < len(cuts):
            nxt = cuts[n + 1]
            span = nxt.frames[0].dts - c.frames[0].dts
            if nxt.independent:  # a normal cut: at a keyframe, at or after the target
                assert span >= TARGET * TIMESCALE
                assert not any(f.keyframe and f.dts - c.frames[0].dts >= TARGET * TIMESCALE
                               for f in c.frames[1:])
            else:  # forced: only when one more part could pass the maximum
                assert c.ticks + PART * TIMESCALE > MAX * TIMESCALE
        assert c.start_time < c.end_time
        # a segment is exactly its parts: frames, durations and decode times line up
        assert [f.id for p in c.parts for f in p.frames] == [f.id for f in c.frames]
        assert tuple(d for p in c.parts for d in p.durations) == c.durations
        assert [p.index for p in c.parts] == list(range(len(c.parts)))
        pt = c.decode_time
        for p in c.parts:
            assert p.decode_time == pt and p.segment_id == c.segment_id
            assert p.sequence == c.sequence and p.ticks <= PART * TIMESCALE
            assert p.independent == p.frames[0].keyframe
            pt += p.ticks


@settings(max_examples=100, deadline=None)
@given(streams(), st.randoms(use_true_random=False))
def test_duplicates_and_small_reorderings_change_nothing(chunks, rnd):
    messy = []
    for c in chunks:
        messy.append(c)
        if rnd.random() < 0.2:
            messy.append(c)  # redelivered duplicate
    for i in range(len(messy) - 1):
        if rnd.random() < 0.2 and messy[i]["seq"] != 0 and messy[i + 1]["seq"] != 0:
            messy[i], messy[i + 1] = messy[i + 1], messy[i]
    assert summary(all_cuts(messy)) == summary(all_cuts(chunks))


@settings(max_examples=150, deadline=None)
@given(streams(), st.data())
def test_crash_and_restore_rebuilds_the_same_segments(chunks, data):
    """Kill after any chunk; resume from the last sealed segment's snapshot and the
    uncommitted chunks (those above the committed settle point): same segments, same ids."""
    expected = summary(all_cuts(chunks))
    k = data.draw(st.integers(0, len(chunks)))
    first = Cutter("s", target_s=TARGET, max_s=MAX)
    sealed, committed = [], -1
    for c in chunks[:k]:
        step = first.feed(c, now=0.0)
        sealed += step.segments
        committed = step.settled_through if step.settled_through is not None else committed
    resume = sealed[-1].resume if sealed else None
    second = Cutter("s", target_s=TARGET, max_s=MAX, snapshot=resume)
    redelivered = [c for c in chunks if c["seq"] > committed]
    rest, second = run(redelivered, second)
    assert summary(sealed + rest + second.flush().segments) == expected


def test_gap_and_config_change_start_a_discontinuity_on_a_keyframe():
    frames, cfg = encode("H264", n=45, gop=15)
    frames2, cfg2 = encode("H264", n=30, width=192, height=96, gop=15)
    from tests.segmenter.media import chunks as mk
    a = mk("s", frames, cfg, per_chunk=5)
    shift = frames[-1]["dts"] + 6000
    moved = [dict(f, pts=f["pts"] + shift, dts=f["dts"] + shift) for f in frames2]
    b = mk("s", moved, cfg2, per_chunk=5, seq0=len(a))
    cutter = Cutter("s")
    cuts = []
    for c in a + b:
        cuts += cutter.feed(c, now=0.0).segments
    cuts += cutter.flush().segments
    assert [c.discontinuity for c in cuts] == [False, False, True]
    assert cuts[2].config.width == 192 and cuts[2].config.init_id != cuts[0].config.init_id
    # a lost chunk: discontinuity, frames up to the next keyframe dropped and reported
    cutter = Cutter("s")
    lost = a[:1] + a[2:]
    out = [cutter.feed(c, now=0.0) for c in lost]
    step = cutter.tick(now=100.0)  # the hole is given up on after the reorder wait
    cuts = [s for o in out for s in o.segments] + step.segments + cutter.flush().segments
    rejected = [r for o in out for r in o.rejected] + step.rejected
    assert cuts[-1].discontinuity and cuts[-1].frames[0].keyframe
    assert rejected and "before the first keyframe" in rejected[0][1]


def test_idle_stream_is_sealed_and_late_chunk_rejected():
    frames, cfg = encode("H264", n=15, gop=15)
    from tests.segmenter.media import chunks as mk
    cs = mk("s", frames, cfg, per_chunk=5)
    cutter = Cutter("s", idle_s=10.0)
    assert cutter.feed(cs[0], now=0.0).segments == []
    assert cutter.tick(now=5.0).segments == []
    step = cutter.tick(now=10.0)
    assert len(step.segments) == 1 and step.settled_through == 0
    cutter.feed(cs[2], now=11.0)
    step = cutter.tick(now=20.0)  # reorder wait over: seq 1 is given up
    late = cutter.feed(cs[1], now=21.0)
    assert late.rejected and "late chunk" in late.rejected[0][1]
    assert cutter.buffered_frames <= 15
    random.seed(0)
