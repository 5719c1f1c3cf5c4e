"""LL-HLS playlists and blocking reload on the pure renderer, checked by a small strict parser."""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.media.parts import PartPlanner, PlannedPart
from pipeline.playback.llhls import (
    Hold,
    LivePart,
    LiveSegment,
    LiveWindow,
    LLConfig,
    Playlist,
    Problem,
    Request,
    Urls,
    advance_part_limit,
    decide,
    parse_request,
    part_status,
    render,
)
from tests.segmenter.test_parts import streams as parts_streams

T0 = 1_764_000_000_000_000
CFG = LLConfig.from_settings(0.5, 6.0)
MARK = "__CAMLOG_TOKEN__"
URLS = Urls(segment=lambda s: f"segments/{s.segment_id}.m4s?token={MARK}",
            part=lambda msn, n: f"parts/{msn}.{n}.m4s?token={MARK}",
            init=lambda i: f"init/{i}.mp4?token={MARK}")

# -- a small strict parser ------------------------------------------------------------------
_ATTR = re.compile(r'([A-Z0-9-]+)=("[^"\n]*"|[^",\s]+)(?:,|$)')
_HEADER = {"EXT-X-VERSION", "EXT-X-TARGETDURATION", "EXT-X-SERVER-CONTROL", "EXT-X-PART-INF",
           "EXT-X-MEDIA-SEQUENCE", "EXT-X-DISCONTINUITY-SEQUENCE", "EXT-X-INDEPENDENT-SEGMENTS",
           "EXT-X-SKIP"}
_PDT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
_DEC = re.compile(r"\d+(\.\d+)?")


def attrs(value: str) -> dict[str, str]:
    """An attribute list; fails on anything the RFC grammar does not allow."""
    out, pos = {}, 0
    while pos < len(value):
        m = _ATTR.match(value, pos)
        assert m, f"bad attribute list {value!r} at {pos}"
        assert m.group(1) not in out, f"duplicate attribute {m.group(1)}"
        out[m.group(1)] = m.group(2).strip('"')
        pos = m.end()
    assert not value.endswith(","), value
    return out


def parse(text: str) -> dict:
    """Header tags, segments (each with its effective map, parts, pdt...), trailing parts, hint."""
    assert text.endswith("\n") and "\r" not in text
    lines = text[:-1].split("\n")
    assert lines[0] == "#EXTM3U"
    head: dict[str, str] = {}
    segs, cur, mp, hint, ended = [], None, None, None, False

    def fresh():
        return {"disc": False, "map": mp, "pdt": None, "parts": [], "dur": None, "uri": None}

    cur = fresh()
    expect_uri = False
    for line in lines[1:]:
        if expect_uri:
            assert line and not line.startswith("#"), line
            cur["uri"], cur["map"] = line, mp
            segs.append(cur)
            cur, expect_uri = fresh(), False
            continue
        assert line.startswith("#EXT"), f"not a tag: {line!r}"
        assert hint is None and not ended, f"{line} after the preload hint / endlist"
        name, _, value = line[1:].partition(":")
        if name in _HEADER:
            assert not segs and cur == fresh() and name not in head, f"misplaced {name}"
            head[name] = value
        elif name == "EXT-X-DISCONTINUITY":
            assert not value
            cur["disc"] = True
        elif name == "EXT-X-MAP":
            mp = attrs(value)["URI"]
            cur["map"] = mp
        elif name == "EXT-X-PROGRAM-DATE-TIME":
            assert _PDT.fullmatch(value), value
            cur["pdt"] = value
        elif name == "EXT-X-PART":
            a = attrs(value)
            assert set(a) <= {"DURATION", "URI", "INDEPENDENT"} and _DEC.fullmatch(a["DURATION"])
            assert a.get("INDEPENDENT", "YES") == "YES"
            cur["parts"].append((float(a["DURATION"]), a["URI"], "INDEPENDENT" in a))
        elif name == "EXTINF":
            dur, comma, _title = value.partition(",")
            assert comma and _DEC.fullmatch(dur), value
            cur["dur"], expect_uri = float(dur), True
        elif name == "EXT-X-PRELOAD-HINT":
            a = attrs(value)
            assert a["TYPE"] == "PART" and set(a) == {"TYPE", "URI"}
            hint = a["URI"]
        elif name == "EXT-X-ENDLIST":
            ended = True
        else:
            raise AssertionError(f"unexpected tag {name}")
    assert not expect_uri
    cur["map"] = mp
    return {"head": head, "segments": segs, "current": cur, "hint": hint, "ended": ended}


def check_valid(text: str, window: LiveWindow) -> dict:
    """Protocol rules every LL playlist obeys."""
    pl = parse(text)
    h = pl["head"]
    assert int(h["EXT-X-VERSION"]) >= 9
    td = int(h["EXT-X-TARGETDURATION"])
    sc = attrs(h["EXT-X-SERVER-CONTROL"])
    pt = float(attrs(h["EXT-X-PART-INF"])["PART-TARGET"])
    assert sc["CAN-BLOCK-RELOAD"] == "YES"
    assert float(sc["PART-HOLD-BACK"]) >= 3 * pt - 1e-9
    assert float(sc["CAN-SKIP-UNTIL"]) >= 6 * td
    every = [*pl["segments"], pl["current"]]
    for s in pl["segments"]:
        assert s["uri"] and s["pdt"] and s["map"] and round(s["dur"]) <= td
    for s in every:
        for dur, _uri, _ind in s["parts"]:
            assert dur <= pt  # no part longer than PART-TARGET, as written
    # parts are listed for at least the last three target durations
    segs = pl["segments"]
    edge = sum(s["dur"] for s in segs) + sum(p[0] for p in pl["current"]["parts"])
    t = 0.0
    for s in segs:
        t += s["dur"]
        if t > edge - 3 * td + 1e-3:
            assert s["parts"], "a segment within 3 target durations lost its parts"
    # the preload hint names the part after the last one listed
    if window.ended:
        assert pl["ended"] and pl["hint"] is None
    else:
        msn = int(h["EXT-X-MEDIA-SEQUENCE"]) + int(attrs(h.get("EXT-X-SKIP", "SKIPPED-SEGMENTS=0"))
                                                   ["SKIPPED-SEGMENTS"]) + len(segs)
        nxt = len(pl["current"]["parts"])  # 0 when nothing of the next segment is out yet
        assert pl["hint"] == URLS.part(msn, nxt)
    return pl


# -- windows --------------------------------------------------------------------------------
@st.composite
def segment(draw, seq: int, start: int, init: str, complete: bool):
    n = draw(st.integers(1, 12) if complete else st.integers(0, 5))
    parts = []
    for i in range(n):
        last = complete and i == n - 1
        lo = 1 if last else math.ceil(0.85 * CFG.part_target_us)
        parts.append(LivePart(draw(st.integers(lo, CFG.part_target_us)), i == 0))
    dur = sum(p.duration_us for p in parts)
    return LiveSegment(seq, f"{seq:012d}-0000", start, init, tuple(parts),
                       dur if complete else 0, True, draw(st.booleans()) and seq % 3 == 0)


@st.composite
def windows(draw, max_segments: int = 30):
    ms = draw(st.integers(0, 10_000))
    n = draw(st.integers(0, max_segments))
    with_current = draw(st.booleans())
    ended = not with_current and draw(st.integers(0, 5)) == 0
    segs, t, init = [], T0, "i0"
    for k in range(n):
        if draw(st.integers(0, 8)) == 0:
            init = f"i{k}"
        s = draw(segment(ms + k, t, init, True))
        segs.append(s)
        t += s.duration_us
    cur = draw(segment(ms + n, t, init, False)) if with_current else None
    return LiveWindow(tuple(segs), cur, ms, draw(st.integers(0, 50)), ended)


@settings(max_examples=200, deadline=None)
@given(windows())
def test_playlists_are_valid_ll_hls(window):
    text, skipped = render(window, CFG, URLS)
    assert skipped == 0
    pl = check_valid(text, window)
    assert len(pl["segments"]) == len(window.segments)
    assert text == render(window, CFG, URLS)[0]  # a pure function: same bytes on every instance
    assert MARK in text or not (window.segments or window.current)


@settings(max_examples=200, deadline=None)
@given(windows(max_segments=60))
def test_delta_plus_skipped_segments_rebuilds_the_full_playlist(window):
    full_text, _ = render(window, CFG, URLS)
    delta_text, skipped = render(window, CFG, URLS, skip=True)
    full, delta = parse(full_text), check_valid(delta_text, window)
    if skipped:
        assert delta["head"]["EXT-X-SKIP"] == f"SKIPPED-SEGMENTS={skipped}"
    head = {k: v for k, v in delta["head"].items() if k != "EXT-X-SKIP"}
    assert head == full["head"]
    assert full["segments"][:skipped] + delta["segments"] == full["segments"]
    assert (delta["current"], delta["hint"]) == (full["current"], full["hint"])
    # only segments wholly older than CAN-SKIP-UNTIL from the live edge, and all of those
    until = float(attrs(full["head"]["EXT-X-SERVER-CONTROL"])["CAN-SKIP-UNTIL"])
    edge = sum(s.duration_us for s in window.segments) + sum(
        p.duration_us for p in (window.current.parts if window.current else ()))
    ends = [sum(s.duration_us for s in window.segments[:i + 1])
            for i in range(len(window.segments))]
    assert all(e <= edge - until * 1e6 for e in ends[:skipped])
    assert skipped == len(ends) or ends[skipped] > edge - until * 1e6


def oracle(window: LiveWindow, msn: int, part: int | None) -> bool:
    """Whether (msn, part) is available, straight from the spec's words."""
    if msn < window.media_sequence:
        return True  # it was there before it slid out of the window
    if part is None:
        return any(s.sequence >= msn for s in window.segments)
    have = [(s.sequence, i) for s in window.segments for i in range(len(s.parts))]
    if window.current is not None:
        have += [(window.current.sequence, i) for i in range(len(window.current.parts))]
    return any(p >= (msn, part) for p in have)


@settings(max_examples=400, deadline=None)
@given(windows(max_segments=8), st.data())
def test_blocking_reload_rules(window, data):
    last = window.last_complete
    msn = data.draw(st.one_of(st.none(), st.integers(max(0, last - 3), last + 4)))
    part = data.draw(st.one_of(st.none(), st.integers(0, 12)))
    skip = data.draw(st.booleans())
    arrived = data.draw(st.floats(0, 1e6))
    waited = data.draw(st.sampled_from([0.0, 1.0, CFG.hold_s - 0.01, CFG.hold_s, 100.0]))
    out = decide(window, Request(msn, part, skip), CFG, URLS, arrived=arrived,
                 now=arrived + waited)
    if part is not None and msn is None:
        assert isinstance(out, Problem) and out.status == 400
        return
    if msn is None or window.ended:
        assert isinstance(out, Playlist) and out.blocking == (msn is not None)
        return
    seq, idx = window.newest_part
    too_far = part is not None and (
        (msn == seq and part - idx > advance_part_limit(CFG)) or
        (msn > seq and part + 1 > advance_part_limit(CFG)))
    if msn > last + 2 or too_far:
        assert isinstance(out, Problem) and out.status == 400
    elif oracle(window, msn, part):
        assert isinstance(out, Playlist) and out.blocking
        assert out.text == render(window, CFG, URLS, skip=skip)[0]
    elif waited >= CFG.hold_s:
        assert isinstance(out, Problem) and out.status == 503 and out.retry_after
    else:
        assert out == Hold(msn, part, arrived + CFG.hold_s)


def test_a_hold_is_released_by_the_part_it_waits_for():
    """hls.js asks for the part after the last one; past a segment's end it means (msn + 1, 0)."""
    def seg(seq, n, complete):
        parts = tuple(LivePart(500_000, i == 0) for i in range(n))
        return LiveSegment(seq, f"s{seq}", T0 + seq * 2_000_000, "i0", parts,
                           500_000 * n if complete else 0)
    req = Request(msn=4, part=4)
    w1 = LiveWindow((seg(3, 4, True),), seg(4, 4, False), 3)
    assert isinstance(decide(w1, req, CFG, URLS, arrived=0, now=0), Hold)
    w2 = LiveWindow((seg(3, 4, True), seg(4, 4, True)), None, 3)  # 4 closed with 4 parts
    assert isinstance(decide(w2, req, CFG, URLS, arrived=0, now=1), Hold)
    assert part_status(w2, 4, 4) == "gone"  # the preload hint (4, 4) will never exist: 404
    w3 = LiveWindow(w2.segments, seg(5, 1, False), 3)
    out = decide(w3, req, CFG, URLS, arrived=0, now=2)
    assert isinstance(out, Playlist) and out.blocking
    assert parse(out.text)["hint"] == URLS.part(5, 1)
    assert decide(w3, Request(msn=4), CFG, URLS, arrived=0, now=2).blocking


@pytest.mark.parametrize(("query", "expected"), [
    ({}, Request()),
    ({"_HLS_msn": "12"}, Request(12)),
    ({"_HLS_msn": "12", "_HLS_part": "0", "_HLS_skip": "YES"}, Request(12, 0, True)),
    ({"_HLS_skip": "v2"}, Request(skip=True)),
    ({"_HLS_part": "1"}, 400),
    ({"_HLS_msn": "-1"}, 400),
    ({"_HLS_msn": "1.5"}, 400),
    ({"_HLS_msn": ""}, 400),
    ({"_HLS_msn": "١٢"}, 400),  # Arabic-Indic digits are digits, not decimal ASCII
    ({"_HLS_msn": "9" * 19}, 400),
    ({"_HLS_msn": "3", "_HLS_part": "x"}, 400),
    ({"_HLS_skip": "NO"}, 400),
    ({"_HLS_skip": "yes"}, 400),
])
def test_parse_request(query, expected):
    out = parse_request(query)
    if expected == 400:
        assert isinstance(out, Problem) and out.status == 400
    else:
        assert out == expected


def test_part_status():
    parts = (LivePart(500_000, True), LivePart(500_000))
    w = LiveWindow((LiveSegment(7, "a", T0, "i0", parts, 1_000_000),),
                   LiveSegment(8, "b", T0 + 1_000_000, "i0", parts[:1]), 7)
    assert [part_status(w, 7, 1), part_status(w, 7, 2), part_status(w, 8, 0),
            part_status(w, 8, 1), part_status(w, 9, 0), part_status(w, 6, 0)] == [
        "ready", "gone", "ready", "pending", "pending", "unknown"]


def test_config_is_fixed_and_checked():
    assert (CFG.part_target_us, CFG.target_duration, advance_part_limit(CFG)) == (500_000, 6, 6)
    text, _ = render(LiveWindow(), CFG, URLS)
    assert "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.50000," \
           "CAN-SKIP-UNTIL=36.0" in text and "PART-TARGET=0.50000" in text
    with pytest.raises(ValueError):
        LLConfig(hold_back_parts=2.5)
    with pytest.raises(ValueError):
        LLConfig(skip_target_durations=5)
    with pytest.raises(ValueError):
        LLConfig(part_target_us=7_000_000, target_duration=6)
    with pytest.raises(ValueError):
        LiveWindow((LiveSegment(1, "a", T0, "i0"),), None, 0)  # not from the media sequence


@settings(max_examples=60, deadline=None)
@given(parts_streams(), st.integers(1, 8), st.booleans())
def test_planner_output_makes_valid_playlists(chunks, window_len, stop_early):
    """Wiring check: parts from ``PartPlanner`` folded into a window render valid LL-HLS."""
    planner = PartPlanner(timescale=90000, part_target_s=0.5, target_s=2.0, max_s=6.0)
    events = []
    for chunk in chunks[:len(chunks) // 2] if stop_early else chunks:
        for f in chunk:
            events += planner.feed(f).events
        events += planner.end_chunk().events
    if not stop_early:
        events += planner.flush().events
    done, open_parts, t = [], [], T0
    for e in events:
        if isinstance(e, PlannedPart):
            open_parts.append(LivePart(e.ticks * 1_000_000 // 90000, e.independent))
        else:
            dur = sum(p.duration_us for p in open_parts)
            done.append(LiveSegment(len(done), e.segment_id, t, "i0", tuple(open_parts), dur,
                                    e.independent))
            open_parts, t = [], t + dur
    cur = LiveSegment(len(done), "next", t, "i0", tuple(open_parts)) if stop_early else None
    segs = tuple(done[-window_len:])
    ms = segs[0].sequence if segs else len(done)
    window = LiveWindow(segs, cur, ms, 0, ended=not stop_early)
    check_valid(render(window, CFG, URLS)[0], window)
