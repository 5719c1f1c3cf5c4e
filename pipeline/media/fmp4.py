"""CMAF fragmented MP4: the init segment (ftyp+moov) from PyAV, media segments (moof+mdat) by hand.

Why not mux media segments with PyAV too: FFmpeg's mov muxer (checked with av 18 / FFmpeg 7,
movflags ``empty_moov+default_base_moof`` with ``frag_custom`` or ``frag_keyframe``) rebases the
first packet of every output to ``tfdt = 0`` and restarts ``mfhd`` sequence numbers at 1, and it
writes a fresh ftyp/moov per output. Exact ``baseMediaDecodeTime`` continuity per segment would
need one long-lived muxer per stream, whose state a crash loses. A moof+mdat is ~40 lines of
``struct`` and is a pure function of (sequence, decode time, samples), which is exactly what a
rebuilt-after-crash segment needs to come out byte-identical.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from pipeline.media.annexb import MediaError
from pipeline.media.segment import Cut, PartCut

__all__ = ["InitSegment", "Sample", "build_init", "build_media_segment", "iter_boxes",
           "render_cut", "render_part"]

_DEMUXER = {"H264": "h264", "H265": "hevc"}


@dataclass(frozen=True)
class InitSegment:
    """An init segment's bytes and the track facts media segments must agree with."""

    data: bytes
    track_id: int
    timescale: int  # mdhd timescale the muxer chose


@dataclass(frozen=True)
class Sample:
    """One access unit as it goes into ``mdat`` (times in the track timescale)."""

    data: bytes  # length-prefixed NAL units (``annexb.to_length_prefixed``)
    duration: int
    cts_offset: int  # pts - dts
    keyframe: bool


def iter_boxes(data: bytes, start: int = 0, end: int | None = None):
    """Yield ``(type, payload_start, box_end)`` for the boxes laid side by side in ``data``."""
    end = len(data) if end is None else end
    off = start
    while off + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, off)
        header = 8
        if size == 1:
            size, header = struct.unpack_from(">Q", data, off + 8)[0], 16
        elif size == 0:
            size = end - off
        if size < header or off + size > end:
            raise MediaError(f"box {kind!r} at {off} overruns its parent")
        yield kind.decode("latin-1"), off + header, off + size
        off += size


def _child(data: bytes, path: Sequence[str], start: int = 0, end: int | None = None) -> int:
    """Payload start of the box at ``path`` (e.g. moov/trak/mdia/mdhd)."""
    for kind, body, box_end in iter_boxes(data, start, end):
        if kind == path[0]:
            return body if len(path) == 1 else _child(data, path[1:], body, box_end)
    raise MediaError(f"init segment has no {'/'.join(path)}")


def build_init(codec: str, config: bytes, width: int, height: int, timescale: int) -> InitSegment:
    """Mux an init segment for Annex-B parameter sets with PyAV (no frames, no transcoding)."""
    import av  # heavy import kept local: only sealing workers need it

    try:
        src = av.open(io.BytesIO(config), format=_DEMUXER[codec])
    except (av.FFmpegError, KeyError) as exc:
        raise MediaError(f"PyAV cannot read the {codec} parameter sets: {exc}") from exc
    out_buf = io.BytesIO()
    with src:
        template = src.streams.video[0]
        out = av.open(out_buf, "w", format="mp4",
                      options={"movflags": "empty_moov+default_base_moof+frag_custom"})
        stream = out.add_stream_from_template(template)
        stream.time_base = Fraction(1, timescale)
        # The raw demuxer only learns the size from a frame; the SPS already told us.
        stream.codec_context.width, stream.codec_context.height = width, height
        if codec == "H265":
            stream.codec_tag = "hvc1"  # parameter sets out of band, as Safari/HLS want
        out.start_encoding()
        out.close()
    raw = out_buf.getvalue()
    # Keep only ftyp+moov: closing a fragmented file also appends an mfra index we do not want.
    kept = b"".join(raw[b - 8:e] for k, b, e in iter_boxes(raw) if k in ("ftyp", "moov"))
    tkhd = _child(kept, ["moov", "trak", "tkhd"])
    track_id = struct.unpack_from(">I", kept, tkhd + (20 if kept[tkhd] == 1 else 12))[0]
    mdhd = _child(kept, ["moov", "trak", "mdia", "mdhd"])
    scale = struct.unpack_from(">I", kept, mdhd + (20 if kept[mdhd] == 1 else 12))[0]
    if b"avcC" not in kept and b"hvcC" not in kept:
        raise MediaError("PyAV wrote an init segment without a decoder configuration record")
    return InitSegment(kept, track_id, scale)


def _box(kind: bytes, *payload: bytes) -> bytes:
    body = b"".join(payload)
    return struct.pack(">I4s", 8 + len(body), kind) + body


def _full(kind: bytes, version: int, flags: int, *payload: bytes) -> bytes:
    return _box(kind, struct.pack(">I", (version << 24) | flags), *payload)


_KEY_FLAGS = 0x02000000  # sample_depends_on = 2 (independent)
_DELTA_FLAGS = 0x01010000  # sample_depends_on = 1, sample_is_non_sync_sample = 1


def build_media_segment(sequence_number: int, track_id: int, base_decode_time: int,
                        samples: Sequence[Sample]) -> bytes:
    """One CMAF fragment (moof+mdat) whose ``tfdt`` is ``base_decode_time`` (track timescale)."""
    if not samples:
        raise MediaError("a media segment needs at least one sample")
    entries = b"".join(struct.pack(">IIIi", s.duration, len(s.data),
                                   _KEY_FLAGS if s.keyframe else _DELTA_FLAGS, s.cts_offset)
                       for s in samples)
    trun_flags = 0x000001 | 0x000100 | 0x000200 | 0x000400 | 0x000800
    # data_offset counts from the moof start (default-base-is-moof) to the first mdat byte.
    moof_len = 8 + 16 + 8 + 16 + 20 + (12 + 8 + len(entries))
    trun = _full(b"trun", 1, trun_flags, struct.pack(">Ii", len(samples), moof_len + 8), entries)
    traf = _box(b"traf",
                _full(b"tfhd", 0, 0x020000, struct.pack(">I", track_id)),
                _full(b"tfdt", 1, 0, struct.pack(">Q", base_decode_time)),
                trun)
    moof = _box(b"moof", _full(b"mfhd", 0, 0, struct.pack(">I", sequence_number & 0xFFFFFFFF)),
                traf)
    assert len(moof) == moof_len, (len(moof), moof_len)
    return moof + _box(b"mdat", *(s.data for s in samples))


#: mfhd sequence numbers: (segment sequence + 1) * this + part index, increasing across parts
#: and segments (a segment holds at most max_s / part_target parts, 60 at 6 s / 0.1 s).
PARTS_PER_SEGMENT = 128


def render_part(part: PartCut, init: InitSegment) -> bytes:
    """The moof+mdat of a CMAF part, in the init segment's track and timescale."""
    src = part.config.timescale

    def scale(t: int) -> int:  # boundaries are scaled, not durations, so rounding never drifts
        return t if init.timescale == src else t * init.timescale // src

    samples, t = [], part.decode_time
    for f, d in zip(part.frames, part.durations, strict=True):
        samples.append(Sample(f.data, scale(t + d) - scale(t), scale(f.pts - f.dts), f.keyframe))
        t += d
    return build_media_segment((part.sequence + 1) * PARTS_PER_SEGMENT + part.index,
                               init.track_id, scale(part.decode_time), samples)


def render_cut(cut: Cut, init: InitSegment) -> bytes:
    """A whole segment: its parts' bytes, concatenated (what storage holds, row by row)."""
    return b"".join(render_part(p, init) for p in cut.parts)
