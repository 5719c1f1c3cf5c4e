"""Just enough ISO-BMFF reading to turn fMP4 fragments into sample tables (pure, no PyAV)."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

__all__ = [
    "Box",
    "BoxError",
    "Fragment",
    "Sample",
    "TrackInfo",
    "box",
    "find",
    "full_box",
    "iter_boxes",
    "parse_fragment",
    "parse_init",
]

_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"moof", b"traf", b"mvex", b"edts",
               b"dinf"}


class BoxError(ValueError):
    """Bytes that are not the ISO-BMFF structure camlog writes."""


@dataclass(frozen=True)
class Box:
    """One box: its type, where it starts in the buffer, its header length and its total size."""

    type: bytes
    start: int
    header: int
    size: int

    @property
    def body(self) -> slice:
        """The slice of the buffer holding the payload."""
        return slice(self.start + self.header, self.start + self.size)


def iter_boxes(buf: bytes | memoryview, start: int = 0, end: int | None = None) -> Iterator[Box]:
    """The boxes laid end to end in ``buf[start:end]``."""
    end = len(buf) if end is None else end
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", buf, pos)
        header = 8
        if size == 1:
            if pos + 16 > end:
                raise BoxError("truncated largesize")
            (size,) = struct.unpack_from(">Q", buf, pos + 8)
            header = 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            raise BoxError(f"box {kind!r} at {pos} overruns its parent")
        yield Box(bytes(kind), pos, header, size)
        pos += size


def find(buf: bytes | memoryview, path: str, start: int = 0, end: int | None = None) -> Box | None:
    """The first box along ``path`` such as ``"moov/trak/mdia/mdhd"``."""
    first, _, rest = path.partition("/")
    for b in iter_boxes(buf, start, end):
        if b.type == first.encode():
            if not rest:
                return b
            if b.type in _CONTAINERS:
                found = find(buf, rest, b.body.start, b.body.stop)
                if found is not None:
                    return found
    return None


def box(kind: bytes, *parts: bytes) -> bytes:
    """Serialize a box (32-bit size; callers keep boxes below 4 GiB)."""
    payload = b"".join(parts)
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def full_box(kind: bytes, version: int, flags: int, *parts: bytes) -> bytes:
    """Serialize a full box (version and 24-bit flags before the payload)."""
    return box(kind, struct.pack(">I", (version << 24) | flags), *parts)


@dataclass(frozen=True)
class TrackInfo:
    """What an init segment says about its one video track."""

    timescale: int
    track_id: int
    width: int
    height: int
    default_duration: int = 0
    default_size: int = 0
    default_flags: int = 0


def parse_init(init: bytes) -> TrackInfo:
    """Timescale, track id, size and ``trex`` defaults of the first track of an init segment."""
    mdhd = find(init, "moov/trak/mdia/mdhd")
    tkhd = find(init, "moov/trak/tkhd")
    if mdhd is None or tkhd is None:
        raise BoxError("init segment has no track")
    version = init[mdhd.body.start]
    off = mdhd.body.start + (20 if version == 1 else 12)
    (timescale,) = struct.unpack_from(">I", init, off)
    tv = init[tkhd.body.start]
    (track_id,) = struct.unpack_from(">I", init, tkhd.body.start + (20 if tv == 1 else 12))
    w, h = struct.unpack_from(">II", init, tkhd.start + tkhd.size - 8)
    trex = find(init, "moov/mvex/trex")
    d = (0, 0, 0)
    if trex is not None:
        d = struct.unpack_from(">III", init, trex.body.start + 12)
    return TrackInfo(timescale, track_id, w >> 16, h >> 16, *d)


@dataclass(frozen=True)
class Sample:
    """One access unit of a fragment: where its bytes are and its timing in track units."""

    offset: int  # within the fragment's bytes
    size: int
    duration: int
    cts: int  # composition offset
    keyframe: bool


@dataclass
class Fragment:
    """A parsed moof+mdat: decode time of the first sample and the samples in order."""

    decode_time: int
    samples: list[Sample] = field(default_factory=list)


def _is_key(flags: int) -> bool:
    return not flags & 0x00010000  # sample_is_non_sync_sample unset


def parse_fragment(buf: bytes, track: TrackInfo) -> Fragment:
    """Sample table of every ``moof`` in ``buf`` (the stored segment bytes), in order."""
    frag: Fragment | None = None
    for moof in iter_boxes(buf):
        if moof.type != b"moof":
            continue
        for traf in iter_boxes(buf, moof.body.start, moof.body.stop):
            if traf.type != b"traf":
                continue
            d_dur, d_size, d_flags = track.default_duration, track.default_size, track.default_flags
            base = moof.start
            tfdt = 0
            for b in iter_boxes(buf, traf.body.start, traf.body.stop):
                p = b.body.start
                vf = struct.unpack_from(">I", buf, p)[0]
                version, flags = vf >> 24, vf & 0xFFFFFF
                if b.type == b"tfhd":
                    q = p + 8
                    if flags & 0x1:
                        (base,) = struct.unpack_from(">Q", buf, q)
                        q += 8
                    if flags & 0x2:
                        q += 4
                    if flags & 0x8:
                        (d_dur,) = struct.unpack_from(">I", buf, q)
                        q += 4
                    if flags & 0x10:
                        (d_size,) = struct.unpack_from(">I", buf, q)
                        q += 4
                    if flags & 0x20:
                        (d_flags,) = struct.unpack_from(">I", buf, q)
                elif b.type == b"tfdt":
                    fmt = ">Q" if version == 1 else ">I"
                    (tfdt,) = struct.unpack_from(fmt, buf, p + 4)
                    if frag is None:
                        frag = Fragment(tfdt)
                elif b.type == b"trun":
                    if frag is None:
                        frag = Fragment(tfdt)
                    (count,) = struct.unpack_from(">I", buf, p + 4)
                    q = p + 8
                    data = base
                    if flags & 0x1:
                        (rel,) = struct.unpack_from(">i", buf, q)
                        data = base + rel
                        q += 4
                    first_flags = None
                    if flags & 0x4:
                        (first_flags,) = struct.unpack_from(">I", buf, q)
                        q += 4
                    for i in range(count):
                        dur, size, sflags, cts = d_dur, d_size, d_flags, 0
                        if flags & 0x100:
                            (dur,) = struct.unpack_from(">I", buf, q)
                            q += 4
                        if flags & 0x200:
                            (size,) = struct.unpack_from(">I", buf, q)
                            q += 4
                        if flags & 0x400:
                            (sflags,) = struct.unpack_from(">I", buf, q)
                            q += 4
                        elif i == 0 and first_flags is not None:
                            sflags = first_flags
                        if flags & 0x800:
                            (cts,) = struct.unpack_from(">i" if version else ">I", buf, q)
                            q += 4
                        if data + size > len(buf):
                            raise BoxError("sample data beyond the fragment")
                        frag.samples.append(Sample(data, size, dur, cts, _is_key(sflags)))
                        data += size
    if frag is None:
        raise BoxError("no moof/traf in segment")
    return frag
