"""The binary chunk framing of ``POST /v1/streams/{id}/chunks`` (version 1): pure encode/parse.

A body carries exactly one chunk; all integers are big-endian, no padding, no trailing bytes.

Chunk header (30 bytes)::

    offset size type  field
    0      4    bytes magic          "CLGC"
    4      1    u8    version        1
    5      1    u8    codec          1 = H.264, 2 = H.265 (others: 415 Unsupported Media Type)
    6      2    u16   flags          reserved, must be 0
    8      8    u64   seq            per-stream sequence number, < 2**63, strictly increasing
    16     4    u32   timescale      pts/dts units per second, 1 .. 10_000_000 (90000 usual)
    20     8    i64   producer_time  device wall clock at the first frame, µs since the epoch
    28     2    u16   frame_count    1 .. 1024

then ``frame_count`` frames, each a 21-byte header followed by its data::

    0      8    i64   pts            presentation timestamp (timescale units)
    8      8    i64   dts            decode timestamp (timescale units), <= pts
    16     1    u8    flags          bit 0 = keyframe (IDR/IRAP); other bits must be 0
    17     4    u32   length         1 .. body limit; bytes of data that follow
    21     len  bytes data           one access unit, Annex-B (00 00 01 / 00 00 00 01 start codes)

Limits: the whole body is at most ``max_bytes`` (the bridge uses ``Settings.chunk_max_bytes``,
1 MiB by default, and answers 413 above it), at most 1024 frames, frames in decode order with
non-decreasing dts. Anything else is one ``FramingError`` whose ``reason`` names the problem.
Parameter sets (SPS/PPS, and VPS for H.265) travel in-band in the keyframe's access unit; the
first chunk of a session must start with such a keyframe.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

__all__ = [
    "CODECS",
    "FRAME_HEADER",
    "HEADER",
    "MAGIC",
    "MAX_FRAMES",
    "RESUME_HEADER",
    "VERSION",
    "Chunk",
    "Frame",
    "FramingError",
    "encode_chunk",
    "parse_chunk",
]

MAGIC = b"CLGC"
#: Request header ``Camlog-Resume: 1``: the stream was already acked (maybe by another region's
#: bridge), so a bridge that has not seen it takes it mid-GOP instead of answering 422.
RESUME_HEADER = "Camlog-Resume"
VERSION = 1
CODECS: dict[int, str] = {1: "H264", 2: "H265"}
_CODEC_IDS = {v: k for k, v in CODECS.items()}
MAX_FRAMES = 1024
MAX_TIMESCALE = 10_000_000
HEADER = struct.Struct(">4sBBHQIqH")
FRAME_HEADER = struct.Struct(">qqBI")
_KEYFRAME = 0x01
_SEQ_MAX = (1 << 63) - 1


class FramingError(ValueError):
    """A chunk body that does not follow the framing; ``reason`` is a short code, str() the
    words."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason  # e.g. "bad_magic", "truncated", "unknown_codec"
        self.detail = detail


@dataclass(frozen=True)
class Frame:
    """One access unit with its timestamps."""

    pts: int
    dts: int
    keyframe: bool
    data: bytes


@dataclass(frozen=True)
class Chunk:
    """One decoded chunk body."""

    seq: int
    codec: str
    timescale: int
    producer_time: int
    frames: tuple[Frame, ...] = field(default_factory=tuple)

    @property
    def payload_bytes(self) -> int:
        """Bytes of media (frame data) carried."""
        return sum(len(f.data) for f in self.frames)


def encode_chunk(chunk: Chunk) -> bytes:
    """Serialize a chunk into the version-1 framing (the SDK's side)."""
    if chunk.codec not in _CODEC_IDS:
        raise FramingError("unknown_codec",
                           f"codec {chunk.codec!r} is not one of {list(_CODEC_IDS)}")
    if not 1 <= len(chunk.frames) <= MAX_FRAMES:
        raise FramingError("frame_count", f"a chunk holds 1..{MAX_FRAMES} frames")
    parts = [HEADER.pack(MAGIC, VERSION, _CODEC_IDS[chunk.codec], 0, chunk.seq, chunk.timescale,
                         chunk.producer_time, len(chunk.frames))]
    for f in chunk.frames:
        parts.append(FRAME_HEADER.pack(f.pts, f.dts, _KEYFRAME if f.keyframe else 0, len(f.data)))
        parts.append(f.data)
    return b"".join(parts)


def parse_chunk(body: bytes, max_bytes: int = 1 << 20) -> Chunk:
    """Parse and bounds-check one chunk body; raise ``FramingError`` for anything malformed."""
    n = len(body)
    if n > max_bytes:
        raise FramingError("too_large", f"chunk of {n} bytes exceeds the {max_bytes}-byte limit")
    if n < HEADER.size:
        raise FramingError("truncated", f"{n} bytes is shorter than the {HEADER.size}-byte header")
    magic, version, codec_id, flags, seq, timescale, producer_time, count = HEADER.unpack_from(body)
    if magic != MAGIC:
        raise FramingError("bad_magic",
                           f"not a camlog chunk (magic {magic.hex()} != {MAGIC.hex()})")
    if version != VERSION:
        raise FramingError("bad_version", f"framing version {version} is not supported (want 1)")
    if codec_id not in CODECS:
        raise FramingError("unknown_codec", f"codec id {codec_id} is not H.264 (1) or H.265 (2)")
    if flags:
        raise FramingError("bad_flags", f"reserved header flags {flags:#x} must be 0")
    if seq > _SEQ_MAX:
        raise FramingError("bad_seq", "seq must be below 2**63")
    if not 1 <= timescale <= MAX_TIMESCALE:
        raise FramingError("bad_timescale", f"timescale {timescale} outside 1..{MAX_TIMESCALE}")
    if not 1 <= count <= MAX_FRAMES:
        raise FramingError("frame_count", f"frame count {count} outside 1..{MAX_FRAMES}")
    view = memoryview(body)
    pos, frames, last_dts = HEADER.size, [], None
    for i in range(count):
        if pos + FRAME_HEADER.size > n:
            raise FramingError("truncated", f"frame {i} header runs past the end of the body")
        pts, dts, fflags, length = FRAME_HEADER.unpack_from(body, pos)
        pos += FRAME_HEADER.size
        if fflags & ~_KEYFRAME:
            raise FramingError("bad_flags", f"frame {i} has reserved flag bits {fflags:#x}")
        if length == 0 or pos + length > n:
            raise FramingError("truncated", f"frame {i} data ({length} bytes) runs past the end")
        if dts > pts:
            raise FramingError("bad_timestamps", f"frame {i} has dts {dts} > pts {pts}")
        if last_dts is not None and dts < last_dts:
            raise FramingError("bad_timestamps", f"frame {i} dts goes backwards")
        frames.append(Frame(pts, dts, bool(fflags & _KEYFRAME), bytes(view[pos:pos + length])))
        pos += length
        last_dts = dts
    if pos != n:
        raise FramingError("trailing_bytes", f"{n - pos} bytes after the last frame")
    return Chunk(seq, CODECS[codec_id], timescale, producer_time, tuple(frames))
