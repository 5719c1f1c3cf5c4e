"""Progressive clips from fMP4 segments: ffprobe counts the frames; any byte range is exact."""

import asyncio
import json
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.playback.boxes import find
from pipeline.playback.clip import ClipBuilder
from tests.playback.media import fmp4

T0 = 1_764_072_000_000_000
FPS = 30


@pytest.fixture(scope="module")
def media():
    return fmp4(frames=150, fps=FPS, gop=30)  # five 1-second segments


def build(media, start_us, end_us):
    init, frags = media
    b = ClipBuilder(init, start_us, end_us)
    for i, frag in enumerate(frags):
        seg_start = T0 + i * 1_000_000
        if seg_start + 1_000_000 > start_us and seg_start < end_us:
            b.add(f"s{i}", frag, seg_start)
    return b.plan(), {f"s{i}": f for i, f in enumerate(frags)}


async def body(plan, segs, first=0, last=None):
    async def fetch(sid):
        return segs[sid]
    return b"".join([c async for c in plan.stream(fetch, first, last)])


def ffprobe_frames(path):
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries",
         "stream=nb_read_frames,codec_name,width,height", "-of", "json", str(path)],
        check=True, capture_output=True, text=True).stdout
    return json.loads(out)["streams"][0]


@pytest.mark.parametrize("start_s,end_s,frames", [
    (0, 5, 150),        # everything
    (1.0, 3.0, 60),     # two whole segments
    (1.5, 3.0, 60),     # starts mid-GOP: rewinds to the keyframe at 1.0
    (2.0, 2.5, 15),     # ends mid-segment
])
async def test_clip_frames_counted_by_ffprobe(media, tmp_path, start_s, end_s, frames):
    plan, segs = build(media, T0 + int(start_s * 1e6), T0 + int(end_s * 1e6))
    data = await body(plan, segs)
    assert len(data) == plan.size and plan.frames == frames
    # faststart: moov before mdat
    assert find(data, "moov").start < find(data, "mdat").start
    path = tmp_path / "clip.mp4"
    path.write_bytes(data)
    info = ffprobe_frames(path)
    assert info["codec_name"] == "h264" and (info["width"], info["height"]) == (320, 240)
    assert int(info["nb_read_frames"]) == frames
    dec = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-f", "null", "-"],
                         capture_output=True, text=True)
    assert dec.returncode == 0 and dec.stderr == ""


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_any_range_is_a_slice_of_the_whole(media, data):
    plan, segs = build(media, T0 + 500_000, T0 + 3_200_000)
    whole = asyncio.run(body(plan, segs))
    first = data.draw(st.integers(0, plan.size - 1))
    last = data.draw(st.integers(first, plan.size - 1))
    assert asyncio.run(body(plan, segs, first, last)) == whole[first:last + 1]


async def test_bframes_clip_plays(tmp_path):
    init, frags = fmp4(frames=60, fps=FPS, gop=30, bframes=2)
    b = ClipBuilder(init, T0, T0 + 2_000_000)
    for i, f in enumerate(frags):
        b.add(f"s{i}", f, T0 + i * 1_000_000)
    plan = b.plan()
    data = await body(plan, dict((f"s{i}", f) for i, f in enumerate(frags)))
    path = tmp_path / "b.mp4"
    path.write_bytes(data)
    assert int(ffprobe_frames(path)["nb_read_frames"]) == 60
