"""Annex-B parsing and CMAF muxing, checked by ffprobe on the concatenated init + segments."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.media.annexb import (
    MediaError,
    is_keyframe,
    parameter_sets,
    parse_config,
    split_nals,
    to_length_prefixed,
)
from pipeline.media.cutter import Cutter
from pipeline.media.fmp4 import build_init, iter_boxes, render_cut
from tests.segmenter.media import TIMESCALE, chunks, encode, ffprobe_frames


@pytest.mark.parametrize("codec,size,prefix", [
    ("H264", (160, 96), "avc1.42c0"), ("H264", (322, 180), "avc1.42c0"),
    ("H265", (160, 96), "hvc1.1.6.L"),
])
def test_parameter_sets_give_size_and_codec_string(codec, size, prefix):
    frames, cfg = encode(codec, n=3, width=size[0], height=size[1])
    info = parse_config(codec, cfg)
    assert (info.width, info.height) == size and info.codec_string.startswith(prefix)
    assert is_keyframe(codec, frames[0]["data"]) and not is_keyframe(codec, frames[1]["data"])
    assert parameter_sets(codec, frames[1]["data"]) is None


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=40).filter(
    lambda b: b"\0\0" not in b and not b.endswith(b"\0") and b[0] != 0), max_size=8))
def test_split_nals_round_trip(nals):
    data = b"".join(b"\0\0\0\1" + n for n in nals)
    assert split_nals(data) == nals


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(["H264", "H265"]), st.binary(max_size=64))
def test_garbage_parameter_sets_parse_or_raise_media_error(codec, junk):
    head = bytes([0x67 if codec == "H264" else 0x42, 0x01])
    try:
        info = parse_config(codec, b"\0\0\0\1" + head + junk)
    except MediaError:
        return
    assert info.width > 0 and info.height > 0


@pytest.mark.parametrize("codec", ["H264", "H265"])
def test_init_plus_segments_is_one_file_ffprobe_reads(codec, tmp_path):
    frames, cfg = encode(codec, n=75, gop=15)  # 5 s at 15 fps -> cuts at 2 s and 4 s
    cutter = Cutter("s", target_s=2.0, max_s=6.0)
    cuts = []
    for c in chunks("s", frames, cfg, per_chunk=4, codec=codec):
        cuts += cutter.feed(c, now=0.0).segments
    cuts += cutter.flush().segments
    assert len(cuts) == 3 and len({c.config.init_id for c in cuts}) == 1
    init = build_init(codec, cfg, cuts[0].config.width, cuts[0].config.height, TIMESCALE)
    assert init == build_init(codec, cfg, cuts[0].config.width, cuts[0].config.height, TIMESCALE)
    assert [k for k, _, _ in iter_boxes(init.data)] == ["ftyp", "moov"]
    path = tmp_path / "all.mp4"
    path.write_bytes(init.data + b"".join(render_cut(c, init) for c in cuts))
    pts, stream = ffprobe_frames(str(path))
    assert len(pts) == len(frames) == 75
    assert pts == [f["pts"] * init.timescale // TIMESCALE for f in frames]
    assert (stream["width"], stream["height"]) == (160, 96)
    assert stream["codec_tag_string"] == ("avc1" if codec == "H264" else "hvc1")
    # each segment alone (after the init) also decodes, starting at its own tfdt
    path.write_bytes(init.data + render_cut(cuts[1], init))
    pts1, _ = ffprobe_frames(str(path))
    assert pts1[0] == cuts[1].decode_time and len(pts1) == len(cuts[1].frames)


def test_samples_carry_no_parameter_sets():
    frames, _ = encode("H264", n=1)
    sample = to_length_prefixed("H264", frames[0]["data"])
    types = []
    off = 0
    while off < len(sample):
        n = int.from_bytes(sample[off:off + 4], "big")
        types.append(sample[off + 4] & 0x1F)
        off += 4 + n
    assert 5 in types and not {7, 8, 9} & set(types)
