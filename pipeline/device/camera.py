"""Simulated cameras: replay pre-encoded GOP loops with fresh timestamps through the SDK.

All cameras share one asyncio loop, one ``aiohttp`` session and one frame clock; the expensive
part (libx264) runs once per pattern variant, so hundreds of cameras fit on two cores.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from pipeline.device.client import ChunkUploader
from pipeline.device.pattern import GopLoop
from pipeline.ingest.framing import Frame

__all__ = ["Camera", "FleetConfig", "run_fleet", "stream_names"]


def stream_names(name: str, count: int) -> list[str]:
    """``NAME`` for one camera, ``NAME-1`` … ``NAME-N`` otherwise."""
    return [name] if count == 1 else [f"{name}-{i}" for i in range(1, count + 1)]


@dataclass(frozen=True)
class FleetConfig:
    """How the fleet runs."""

    fps: float
    duration_s: float | None = None
    chunk_frames: int = 1
    progress_s: float = 2.0
    max_buffer_chunks: int = 2000


class Camera:
    """One simulated camera: a loop, a phase into it, and its uploader."""

    def __init__(self, stream_id: str, loop: GopLoop, uploader: ChunkUploader, phase: int):
        self.stream_id, self.loop, self.uploader = stream_id, loop, uploader
        starts = loop.gop_starts
        self._pos = starts[phase % len(starts)]
        self.frames = 0
        self.start_us = 0

    def tick(self, now_us: int, step_90k: float) -> None:
        """Hand the next frame of the loop to the uploader, re-stamped."""
        src = self.loop.frames[self._pos]
        self._pos = (self._pos + 1) % len(self.loop.frames)
        if not self.start_us:
            self.start_us = now_us
        pts = int(self.frames * step_90k)
        self.uploader.add_frame(Frame(pts, pts, src.keyframe, src.data), producer_time_us=now_us)
        self.frames += 1


async def run_fleet(cameras: list[Camera], cfg: FleetConfig,
                    report: Callable[[str], None] = print,
                    now: Callable[[], float] = time.time) -> dict[str, float]:
    """Drive every camera at ``cfg.fps`` until ``duration_s`` (or cancelled); print progress."""
    tasks = [asyncio.create_task(c.uploader.run()) for c in cameras]
    step = 90000 / cfg.fps
    # Real cameras are not phase-locked: spread them over `slots` instants of each frame period
    # so the bridge sees a steady request rate instead of one burst per frame.
    slots = max(1, min(len(cameras), 16))
    groups = [cameras[i::slots] for i in range(slots)]
    period = 1.0 / cfg.fps / slots
    t0 = now()
    next_tick = t0
    slot = 0
    last_report, last_frames, last_acked = t0, 0, 0

    def totals() -> tuple[int, int]:
        return (sum(c.frames for c in cameras),
                sum(c.uploader.stats.acked_frames for c in cameras))

    try:
        while cfg.duration_s is None or now() - t0 < cfg.duration_s:
            t = now()
            for c in groups[slot]:
                c.tick(int(t * 1_000_000), step)
            slot = (slot + 1) % slots
            next_tick += period
            await asyncio.sleep(max(0.0, next_tick - now()))
            if now() - last_report >= cfg.progress_s:
                frames, acked = totals()
                dt = now() - last_report
                up = sum(1 for c in cameras if c.uploader.stats.acked)
                retries = sum(c.uploader.stats.retries for c in cameras)
                dropped = sum(c.uploader.stats.dropped_frames for c in cameras)
                statuses: dict[int, int] = {}
                for c in cameras:
                    for code, n in c.uploader.stats.statuses.items():
                        statuses[code] = statuses.get(code, 0) + n
                report(f"cameras up {up}/{len(cameras)}  frames/s {(frames - last_frames) / dt:.0f}"
                       f"  acked/s {(acked - last_acked) / dt:.0f}  retries {retries}"
                       f"  dropped {dropped}  buffered {sum(c.uploader.buffered for c in cameras)}"
                       f"  retry-after {sum(c.uploader.stats.retry_after for c in cameras)}"
                       f"  http {statuses}")
                last_report, last_frames, last_acked = now(), frames, acked
        await asyncio.gather(*(c.uploader.close(timeout=30) for c in cameras))
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    frames, acked = totals()
    elapsed = now() - t0
    return {"frames": frames, "acked_frames": acked, "elapsed_s": elapsed,
            "retries": sum(c.uploader.stats.retries for c in cameras),
            "dropped_frames": sum(c.uploader.stats.dropped_frames for c in cameras),
            "resent_frames": sum(c.uploader.stats.resent_frames for c in cameras),
            "rejected": sum(c.uploader.stats.rejected for c in cameras),
            "retry_after": sum(c.uploader.stats.retry_after for c in cameras)}
