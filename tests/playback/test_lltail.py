"""The live tail folded from camlog.segments: same window for the same events, whatever the
order, the duplicates or the point an instance started reading from."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.playback.llhls import LLConfig, render
from pipeline.playback.lltail import Tail
from tests.test_llhls import URLS, check_valid

T0 = 1_764_000_000_000_000
CFG = LLConfig.from_settings(0.5, 6.0)


@st.composite
def logs(draw):
    """The camlog.segments events of one stream: parts, then their segment, in log order."""
    n = draw(st.integers(1, 30))
    disc_at = draw(st.sets(st.integers(1, n), max_size=3))
    events, t, count = [], T0, 0
    for msn in range(n):
        k = draw(st.integers(1, 6))
        durs = [draw(st.integers(425_000, 500_000)) for _ in range(k)]
        disc = msn in disc_at
        count += disc
        sid = f"{msn * 10:012d}-0000"
        parts = []
        for i, d in enumerate(durs):
            parts.append({"duration_us": d, "independent": i == 0, "byte_size": 100})
            events.append(("SealedPart", {
                "stream_id": "s", "segment_id": sid, "sequence": msn, "part": i,
                "start_time": t + sum(durs[:i]), "duration_us": d, "independent": i == 0,
                "discontinuity": disc and i == 0, "discontinuity_sequence": count,
                "init_id": "i1", "frame_count": 7, "byte_size": 100, "producer_start": t,
                "ingest_end": t + sum(durs[:i + 1]), "sealed_time": t}))
        events.append(("SealedSegment", {
            "stream_id": "s", "segment_id": sid, "sequence": msn, "start_time": t,
            "duration_us": sum(durs), "independent": True, "discontinuity": disc,
            "init_id": "i1", "parts": parts, "discontinuity_sequence": count,
            "ingest_end": t + sum(durs)}))
        t += sum(durs)
    cut = draw(st.integers(0, len(events)))  # the live edge: later events not written yet
    return events[:cut] or events[:1]


def fold(events, keep=12):
    tail = Tail(keep=keep)
    for kind, e in events:
        tail.fold(kind, e)
    return tail


def text(tail, segments=10):
    w = tail.window(segments)
    return None if w is None else render(w, CFG, URLS)[0]


@settings(max_examples=200, deadline=None)
@given(logs(), st.randoms(use_true_random=False))
def test_duplicates_and_reordering_within_the_tail_change_nothing(events, rnd):
    messy = list(events)
    for i in range(len(messy) - 1):  # neighbours swap: redelivery after a producer retry
        if rnd.random() < 0.3:
            messy[i], messy[i + 1] = messy[i + 1], messy[i]
    messy += [rnd.choice(events) for _ in range(len(events) // 3)]  # duplicates
    assert text(fold(messy)) == text(fold(events))


@settings(max_examples=200, deadline=None)
@given(logs(), st.data())
def test_an_instance_that_started_later_renders_the_same_playlist(events, data):
    """Reading from any point that still covers the window gives byte-identical playlists."""
    full = text(fold(events))
    segment_ends = [i for i, (k, _) in enumerate(events) if k == "SealedSegment"]
    # a rewind that starts right after segment j ended: it sees segments j+1.. whole
    j = data.draw(st.integers(-1, len(segment_ends) - 1))
    start = segment_ends[j] + 1 if j >= 0 else 0
    complete_after = len(segment_ends) - (j + 1)
    if complete_after >= 10 or j < 0:
        assert text(fold(events[start:])) == full


@settings(max_examples=200, deadline=None)
@given(logs())
def test_window_is_valid_ll_hls(events):
    tail = fold(events)
    w = tail.window(10)
    assert w is not None
    check_valid(render(w, CFG, URLS)[0], w)  # the protocol rules of test_llhls
    # the window's discontinuity sequence counts the discontinuities before its first segment
    seen = [e for k, e in events if k == "SealedSegment"]
    firsts = [e for k, e in events if k == "SealedPart" and e["part"] == 0]
    before = {e["sequence"] for e in seen + firsts if e["discontinuity"]
              and e["sequence"] < w.media_sequence}
    assert w.discontinuity_sequence == len(before)
