"""Progressive (faststart) MP4 clips from stored fMP4 segments, remuxed without transcoding.

The moov is computed from the segments' sample tables (their moof/trun boxes), so the file
size and every byte offset are known before the first byte is sent: the body is
``ftyp + moov + mdat header`` followed by slices of the stored segments, streamed one segment at
a time. That makes HTTP Range requests exact (a range maps onto header bytes and segment
slices), and memory stays at one segment however long the clip.
"""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from pipeline.playback.boxes import (
    Fragment,
    TrackInfo,
    box,
    find,
    full_box,
    parse_fragment,
    parse_init,
)

__all__ = ["ClipBuilder", "ClipPlan", "Run"]

_MOVIE_TIMESCALE = 1000
_MATRIX = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)


@dataclass(frozen=True)
class Run:
    """Contiguous sample bytes of one stored segment: ``segment_id`` and ``[start, stop)``."""

    segment_id: str
    start: int
    stop: int

    @property
    def size(self) -> int:
        """Bytes in the run."""
        return self.stop - self.start


@dataclass
class ClipPlan:
    """Everything needed to serve any byte range of the clip: a header and segment runs."""

    header: bytes
    runs: list[Run]
    frames: int
    duration_s: float
    size: int = 0

    def __post_init__(self) -> None:
        self.size = len(self.header) + sum(r.size for r in self.runs)

    async def stream(
        self, fetch: Callable[[str], Awaitable[bytes]], first: int = 0, last: int | None = None
    ) -> AsyncIterator[bytes]:
        """Yield bytes ``first..last`` (inclusive), fetching each needed segment once."""
        last = self.size - 1 if last is None else last
        pos = 0
        if first < len(self.header):
            yield self.header[first:last + 1]
        pos = len(self.header)
        cached_id, cached = None, b""
        for run in self.runs:
            lo, hi = pos, pos + run.size  # this run's place in the body
            pos = hi
            if hi <= first:
                continue
            if lo > last:
                break
            if run.segment_id != cached_id:
                cached_id, cached = run.segment_id, await fetch(run.segment_id)
            a = run.start + max(0, first - lo)
            b = run.stop - max(0, hi - 1 - last)
            yield cached[a:b]


@dataclass
class _Track:
    sizes: list[int] = field(default_factory=list)
    durations: list[int] = field(default_factory=list)
    cts: list[int] = field(default_factory=list)
    keys: list[int] = field(default_factory=list)  # 1-based sample numbers
    chunks: list[tuple[int, int]] = field(default_factory=list)  # (run index, samples)


class ClipBuilder:
    """Feed segments in time order with ``add``; ``plan()`` returns the clip's layout.

    Samples before the last keyframe at or before ``start_us`` and at or after ``end_us`` are
    left out, so the clip starts on a keyframe (no transcoding means no cutting inside a GOP).
    """

    def __init__(self, init: bytes, start_us: int, end_us: int) -> None:
        self.init = init
        self.track: TrackInfo = parse_init(init)
        self.start_us, self.end_us = start_us, end_us
        self._t = _Track()
        self._runs: list[Run] = []

    def add(self, segment_id: str, data: bytes, seg_start_us: int) -> None:
        """Take the samples of one segment whose first sample plays at ``seg_start_us``."""
        frag = parse_fragment(data, self.track)
        ts = self.track.timescale
        times, t = [], 0
        for smp in frag.samples:
            times.append(seg_start_us + t * 1_000_000 // ts)
            t += smp.duration
        idx = [i for i, at in enumerate(times) if at < self.end_us]
        if not self._t.sizes:
            # The clip has not started: begin on the latest keyframe at or before start, else
            # on the first keyframe after it.
            keys = [i for i in idx if frag.samples[i].keyframe]
            before = [i for i in keys if times[i] <= self.start_us]
            if before:
                first = before[-1]
            elif keys:
                first = keys[0]
            else:
                return
            idx = [i for i in idx if i >= first]
        self._take(segment_id, frag, idx)

    def _take(self, segment_id: str, frag: Fragment, idx: list[int]) -> None:
        t = self._t
        run: Run | None = None
        in_run = 0
        for i in idx:
            s = frag.samples[i]
            t.sizes.append(s.size)
            t.durations.append(s.duration)
            t.cts.append(s.cts)
            if s.keyframe:
                t.keys.append(len(t.sizes))
            if run is not None and run.stop == s.offset:
                run = Run(segment_id, run.start, s.offset + s.size)
                in_run += 1
                continue
            if run is not None:
                self._close(run, in_run)
            run, in_run = Run(segment_id, s.offset, s.offset + s.size), 1
        if run is not None:
            self._close(run, in_run)

    def _close(self, run: Run, samples: int) -> None:
        self._t.chunks.append((len(self._runs), samples))
        self._runs.append(run)

    @property
    def frames(self) -> int:
        """Samples taken so far."""
        return len(self._t.sizes)

    def plan(self) -> ClipPlan:
        """The clip layout: header bytes (ftyp+moov+mdat header) and the sample runs."""
        t = self._t
        if not t.sizes:
            raise ValueError("no samples in range")
        payload = sum(t.sizes)
        ftyp = box(b"ftyp", b"isom", struct.pack(">I", 512), b"isomiso2avc1mp41")
        large = payload + 1024 + 32 * len(t.sizes) > 0xFFFF0000
        moov_len = len(self._moov([0] * len(t.chunks), large))
        mdat_hdr = (struct.pack(">I4sQ", 1, b"mdat", 16 + payload) if large
                    else struct.pack(">I4s", 8 + payload, b"mdat"))
        data_start = len(ftyp) + moov_len + len(mdat_hdr)
        offsets, pos = [], data_start
        for run in self._runs:
            offsets.append(pos)
            pos += run.size
        moov = self._moov(offsets, large)
        assert len(moov) == moov_len
        dur = sum(t.durations) / self.track.timescale
        return ClipPlan(ftyp + moov + mdat_hdr, list(self._runs), len(t.sizes), dur)

    def _moov(self, chunk_offsets: list[int], large: bool) -> bytes:
        t, tr = self._t, self.track
        media_dur = sum(t.durations)
        movie_dur = media_dur * _MOVIE_TIMESCALE // tr.timescale
        mvhd = full_box(b"mvhd", 0, 0, struct.pack(">IIII", 0, 0, _MOVIE_TIMESCALE, movie_dur),
                        struct.pack(">IH", 0x10000, 0x100), bytes(10), _MATRIX, bytes(24),
                        struct.pack(">I", 2))
        tkhd = full_box(b"tkhd", 0, 3, struct.pack(">IIIII", 0, 0, 1, 0, movie_dur), bytes(8),
                        struct.pack(">HHHH", 0, 0, 0, 0), _MATRIX,
                        struct.pack(">II", tr.width << 16, tr.height << 16))
        edts = b""
        if t.cts and t.cts[0]:  # B-frames: start presentation at the first frame, not at 0
            edts = box(b"edts", full_box(b"elst", 0, 0, struct.pack(">IIiHH", 1, movie_dur,
                                                                      t.cts[0], 1, 0)))
        mdhd = full_box(b"mdhd", 0, 0, struct.pack(">IIII", 0, 0, tr.timescale, media_dur),
                        struct.pack(">HH", 0x55C4, 0))
        hdlr = self._raw("moov/trak/mdia/hdlr") or full_box(
            b"hdlr", 0, 0, bytes(4), b"vide", bytes(12), b"VideoHandler\x00")
        vmhd = self._raw("moov/trak/mdia/minf/vmhd") or full_box(b"vmhd", 0, 1, bytes(8))
        dinf = self._raw("moov/trak/mdia/minf/dinf") or box(
            b"dinf", full_box(b"dref", 0, 0, struct.pack(">I", 1), full_box(b"url ", 0, 1)))
        stsd = self._raw("moov/trak/mdia/minf/stbl/stsd")
        if stsd is None:
            raise ValueError("init segment has no stsd")
        stbl = box(b"stbl", stsd, _stts(t.durations), _ctts(t.cts), _stss(t.keys, len(t.sizes)),
                   _stsc(t.chunks), _stsz(t.sizes), _stco(chunk_offsets, large))
        minf = box(b"minf", vmhd, dinf, stbl)
        trak = box(b"trak", tkhd, edts, box(b"mdia", mdhd, hdlr, minf))
        return box(b"moov", mvhd, trak)

    def _raw(self, path: str) -> bytes | None:
        b = find(self.init, path)
        return None if b is None else self.init[b.start:b.start + b.size]


def _runs_of(values: list[int]) -> list[tuple[int, int]]:
    out: list[list[int]] = []
    for v in values:
        if out and out[-1][1] == v:
            out[-1][0] += 1
        else:
            out.append([1, v])
    return [(n, v) for n, v in out]


def _stts(durations: list[int]) -> bytes:
    runs = _runs_of(durations)
    return full_box(b"stts", 0, 0, struct.pack(">I", len(runs)),
                    b"".join(struct.pack(">II", n, d) for n, d in runs))


def _ctts(cts: list[int]) -> bytes:
    if not any(cts):
        return b""
    runs = _runs_of(cts)
    return full_box(b"ctts", 1, 0, struct.pack(">I", len(runs)),
                    b"".join(struct.pack(">Ii", n, c) for n, c in runs))


def _stss(keys: list[int], count: int) -> bytes:
    if len(keys) == count:
        return b""  # every sample is a sync sample: stss is omitted
    return full_box(b"stss", 0, 0, struct.pack(">I", len(keys)),
                    b"".join(struct.pack(">I", k) for k in keys))


def _stsc(chunks: list[tuple[int, int]]) -> bytes:
    entries: list[tuple[int, int]] = []
    for i, (_, n) in enumerate(chunks):
        if not entries or entries[-1][1] != n:
            entries.append((i + 1, n))
    return full_box(b"stsc", 0, 0, struct.pack(">I", len(entries)),
                    b"".join(struct.pack(">III", c, n, 1) for c, n in entries))


def _stsz(sizes: list[int]) -> bytes:
    return full_box(b"stsz", 0, 0, struct.pack(">II", 0, len(sizes)),
                    b"".join(struct.pack(">I", s) for s in sizes))


def _stco(offsets: list[int], large: bool) -> bytes:
    if large:
        return full_box(b"co64", 0, 0, struct.pack(">I", len(offsets)),
                        b"".join(struct.pack(">Q", o) for o in offsets))
    return full_box(b"stco", 0, 0, struct.pack(">I", len(offsets)),
                    b"".join(struct.pack(">I", o) for o in offsets))
