"""HLS rendering from view rows: live windows and gap-aware recordings."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from pipeline.playback.hls import program_date_time, render_live, render_vod
from pipeline.views.manifest import reduce_segments
from pipeline.views.timeindex import Gap, with_gaps

T0 = 1_764_000_000_000_000  # 2025-11-24T16:00:00Z


def seg(seq, disc=False, init="i0", dur=2_000_000, start=None, independent=True):
    start = T0 + seq * 2_000_000 if start is None else start
    return {"stream_id": "s", "segment_id": f"g{seq}", "sequence": seq, "start_time": start,
            "end_time": start + dur, "duration_us": dur, "init_id": init, "discontinuity": disc,
            "independent": independent, "byte_size": 10, "ingest_end": start + dur}


def url(e):
    return f"seg/{e['segment_id']}.m4s"


def init_url(i):
    return f"init/{i}.mp4"


def tag(text, name):
    return [line.split(":", 1)[1] for line in text.splitlines() if line.startswith(name + ":")]


def test_live_playlist_from_a_manifest_row():
    events = [seg(i, disc=i == 4, init="i1" if i >= 4 else "i0") for i in range(7)]
    row = dict(reduce_segments("s", events, 4).to_row(), ended=False)
    text = render_live(row, url, init_url)
    lines = text.splitlines()
    assert lines[:2] == ["#EXTM3U", "#EXT-X-VERSION:7"]
    assert tag(text, "#EXT-X-TARGETDURATION") == ["2"]
    assert tag(text, "#EXT-X-MEDIA-SEQUENCE") == ["3"]
    assert tag(text, "#EXT-X-DISCONTINUITY-SEQUENCE") == ["0"]
    assert "#EXT-X-INDEPENDENT-SEGMENTS" in lines
    assert tag(text, "#EXT-X-MAP") == ['URI="init/i0.mp4"', 'URI="init/i1.mp4"']
    assert [x for x in lines if x.endswith(".m4s")] == [f"seg/g{i}.m4s" for i in range(3, 7)]
    assert lines.index("#EXT-X-DISCONTINUITY") < lines.index("seg/g4.m4s")
    assert lines.index("#EXT-X-DISCONTINUITY") > lines.index("seg/g3.m4s")
    assert tag(text, "#EXT-X-PROGRAM-DATE-TIME")[0] == "2025-11-24T16:00:06.000Z"
    assert tag(text, "#EXTINF") == ["2.000,"] * 4
    assert "#EXT-X-ENDLIST" not in lines
    assert "#EXT-X-ENDLIST" in render_live(dict(row, ended=True), url, init_url)
    later = dict(reduce_segments("s", [*events, seg(7), seg(8)], 4).to_row())
    assert tag(render_live(later, url, init_url), "#EXT-X-DISCONTINUITY-SEQUENCE") == ["1"]


def test_live_hole_keeps_media_sequence_numbers():
    row = reduce_segments("s", [seg(0), seg(1), seg(3), seg(4)], 5).to_row()
    text = render_live(row, url, init_url, url_for_gap=lambda n: f"gap/{n}")
    lines = text.splitlines()
    uris = [x for x in lines if x and not x.startswith("#")]
    assert uris == ["seg/g0.m4s", "seg/g1.m4s", "gap/2", "seg/g3.m4s", "seg/g4.m4s"]
    assert lines[lines.index("gap/2") - 2] == "#EXT-X-GAP"
    # a window whose first sequence has not arrived starts with a placeholder
    row = reduce_segments("s", [seg(5), seg(7)], 3).to_row()
    uris = [x for x in render_live(row, url, init_url).splitlines() if x and x[0] != "#"]
    assert uris == ["seg/g5.m4s", "gap-6.m4s", "seg/g7.m4s"]


def test_not_independent_when_a_forced_cut_is_in_the_window():
    row = reduce_segments("s", [seg(0), seg(1, independent=False)], 3).to_row()
    assert "#EXT-X-INDEPENDENT-SEGMENTS" not in render_live(row, url, init_url)


def test_target_duration_rounds_up():
    row = reduce_segments("s", [seg(0, dur=2_100_000), seg(1, dur=1_500_000)], 3).to_row()
    assert tag(render_live(row, url, init_url), "#EXT-X-TARGETDURATION") == ["3"]


def test_vod_with_gap_as_discontinuity_and_as_gap_segments():
    segs = [seg(0), seg(1), seg(2, start=T0 + 10_000_000, init="i1", disc=False), seg(3,
            start=T0 + 12_000_000, init="i1")]
    items = with_gaps(segs, T0, T0 + 14_000_000)
    assert any(isinstance(i, Gap) for i in items)
    text = render_vod(items, url, init_url)
    lines = text.splitlines()
    assert tag(text, "#EXT-X-PLAYLIST-TYPE") == ["VOD"] and lines[-1] == "#EXT-X-ENDLIST"
    assert lines.count("#EXT-X-DISCONTINUITY") == 1
    assert lines.index("#EXT-X-DISCONTINUITY") == lines.index("seg/g1.m4s") + 1
    assert tag(text, "#EXT-X-MAP") == ['URI="init/i0.mp4"', 'URI="init/i1.mp4"']
    assert tag(text, "#EXT-X-PROGRAM-DATE-TIME")[2] == "2025-11-24T16:00:10.000Z"
    gapped = render_vod(items, url, init_url, gap_mode="gap", ended=False)
    gl = gapped.splitlines()
    assert gl.count("#EXT-X-GAP") == 3  # 6 s hole in target-duration (2 s) pieces
    assert "#EXT-X-DISCONTINUITY" not in gl and "#EXT-X-ENDLIST" not in gl
    assert tag(gapped, "#EXT-X-PLAYLIST-TYPE") == ["EVENT"]
    total = sum(float(x.rstrip(",")) for x in tag(gapped, "#EXTINF"))
    assert abs(total - 14.0) < 1e-6


def test_vod_leading_gap_is_not_a_discontinuity():
    items = with_gaps([seg(1), seg(2)], T0, T0 + 6_000_000)
    assert isinstance(items[0], Gap)
    text = render_vod(items, url, init_url)
    assert "#EXT-X-DISCONTINUITY" not in text.splitlines()


@hsettings(max_examples=100, deadline=None)
@given(st.integers(0, 4_102_444_800_000_000))
def test_program_date_time_format(t):
    s = program_date_time(t)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", s)
