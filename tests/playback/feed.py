"""Writes a stream into the real Cassandra the way the workers would: segment bytes and index
via ``store.segments``, the live window and device state via ``store.views``; media is H.264
encoded on the fly (PyAV libx264) and muxed by ``media.fmp4``."""

from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import dataclass, field
from typing import Any

from pipeline.media.annexb import to_length_prefixed
from pipeline.media.fmp4 import Sample, build_init, build_media_segment
from pipeline.media.segment import segment_id
from pipeline.store.segments import PART_BYTES, InitRow, SegmentRow
from pipeline.views.manifest import ManifestState, apply_segment
from pipeline.views.timeindex import day_of
from tests.segmenter.media import TIMESCALE, encode


@dataclass
class Recording:
    """An init segment and ready-made media segments (bytes + frame count) of one encode."""

    init: bytes
    init_id: str
    width: int
    height: int
    fps: int
    segments: list[tuple[bytes, int]]


def record(seconds: int, fps: int = 15, width: int = 320, height: int = 240,
           seg_s: int = 1) -> Recording:
    """``seconds`` of H.264 cut into ``seg_s``-second fMP4 segments (one GOP each)."""
    gop = fps * seg_s
    frames, config = encode("H264", seconds * fps, width, height, fps, gop)
    init = build_init("H264", config, width, height, TIMESCALE)
    tick = TIMESCALE // fps
    segs = []
    for k in range(0, len(frames), gop):
        group = frames[k:k + gop]
        samples = [Sample(to_length_prefixed("H264", f["data"]), tick, f["pts"] - f["dts"],
                          f["keyframe"]) for f in group]
        segs.append((build_media_segment(k // gop + 1, init.track_id, k * tick, samples),
                     len(group)))
    init_id = hashlib.blake2b(init.data, digest_size=8).hexdigest()
    return Recording(init.data, init_id, width, height, fps, segs)


@dataclass
class Feed:
    """Publishes a recording's segments for one stream, one call per segment."""

    stream_id: str
    rec: Recording
    segments_store: Any
    views_store: Any
    seg_us: int = 1_000_000
    state: ManifestState | None = None
    rows: list[SegmentRow] = field(default_factory=list)

    async def put_init(self) -> None:
        r = self.rec
        await self.segments_store.put_init(InitRow(
            self.stream_id, r.init_id, "avc1.42c01e", r.width, r.height, b"", r.init,
            int(time.time() * 1e6)))

    async def publish(self, i: int, start_us: int, discontinuity: bool = False) -> SegmentRow:
        """Store segment ``i`` of the recording as playing from ``start_us``."""
        data, frames = self.rec.segments[i % len(self.rec.segments)]
        seq = len(self.rows)
        end = start_us + self.seg_us
        parts = max(1, -(-len(data) // PART_BYTES))
        row = SegmentRow(
            stream_id=self.stream_id, day=day_of(start_us), start_time=start_us,
            segment_id=segment_id(seq * 10, 0), sequence=seq, end_time=end,
            producer_start=start_us, producer_end=end, ingest_start=start_us, ingest_end=end,
            duration_us=self.seg_us, frame_count=frames, byte_size=len(data), independent=True,
            init_id=self.rec.init_id, discontinuity=discontinuity, codec="avc1.42c01e",
            width=self.rec.width, height=self.rec.height, first_chunk_seq=seq * 10,
            last_chunk_seq=seq * 10 + 9, decode_time=0, timescale=TIMESCALE, parts=parts,
            sealed_time=end)
        await self.segments_store.put_segment(row, data)
        self.rows.append(row)
        self.state = apply_segment(self.state or ManifestState(self.stream_id, window=6),
                                   row.as_event())
        await self.views_store.write_manifest(self.state.to_row(), self.state.time_us)
        await self.views_store.write_device(self.stream_id, {
            "online": True, "last_seen": end, "codec": "avc1.42c01e", "width": self.rec.width,
            "height": self.rec.height, "fps": float(self.rec.fps),
            "bitrate": len(data) * 8 * 1_000_000 // self.seg_us, "segments": seq + 1}, end)
        return row

    async def end(self, ts: int) -> None:
        await self.views_store.write_ended(self.stream_id, True, ts)

    async def run_live(self, first: int, start_us: int, stop: asyncio.Event) -> None:
        """Publish one segment per segment duration in real time until ``stop`` is set."""
        i, t = first, start_us
        while not stop.is_set():
            wait = (t + self.seg_us) / 1e6 - time.time()
            if wait > 0:
                try:
                    await asyncio.wait_for(stop.wait(), wait)
                    return
                except TimeoutError:
                    pass
            await self.publish(i, t)
            i, t = i + 1, t + self.seg_us
