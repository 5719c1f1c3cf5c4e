"""The spike bench's pure parts: the camera progress line as the SDK reports it, and the
saturation/recovery verdict over per-second samples."""

from __future__ import annotations

import asyncio

from ops.bench.spike import _device, saturation
from pipeline.device.camera import Camera, FleetConfig, run_fleet
from pipeline.device.client import UploadStats


class _Uploader:
    """Stands in for the SDK's uploader: stats only, nothing is sent."""

    def __init__(self, stats: UploadStats, buffered: int):
        self.stats, self.buffered = stats, buffered

    def add_frame(self, frame, producer_time_us=None) -> None:
        self.stats.acked_frames += 1

    async def run(self) -> None:
        await asyncio.Event().wait()

    async def close(self, timeout=None) -> None:
        return None


def test_progress_line_carries_what_the_sdk_saw():
    from pipeline.device.pattern import encode_loop

    loop = encode_loop(0, fps=10, width=64, height=64, bitrate=50_000, gop_s=1)
    stats = [UploadStats(statuses={429: 2, 503: 1}, retry_after=3, dropped_frames=4),
             UploadStats(statuses={503: 5}, retry_after=5)]
    cams = [Camera(f"c{i}", loop, _Uploader(s, 7), 0) for i, s in enumerate(stats)]
    lines: list[str] = []
    asyncio.run(run_fleet(cams, FleetConfig(10, 0.6, progress_s=0.2), report=lines.append))
    dev = _device("\n".join(lines))
    assert dev["http"] == {429: 2, 503: 6}
    assert (dev["retry_after"], dev["buffered"], dev["dropped"]) == (8, 14, 4)


def _sample(t, lag_s=0.5, frames=150, acked=150, new=None, cpu=None):
    return {"t": t, "frames_per_s": frames, "acked_per_s": acked, "http_new": new or {},
            "lag_s": lag_s, "lag_msgs": 0, "cpu_pct": cpu or {}, "buffered": 0, "dropped": 0,
            "retry_after": 0}


def test_saturation_orders_what_gave_way_and_times_recovery():
    samples = [_sample(t) for t in range(10)]  # base: lag 0.5 s
    samples += [_sample(10, frames=1500, acked=1500, cpu={"worker": 97.0}),
                _sample(12, frames=1500, acked=900, new={503: 4}),
                _sample(15, lag_s=9.0, frames=1500, acked=1400),
                _sample(20, lag_s=12.0),  # spike over at 20
                _sample(25, lag_s=3.0), _sample(28, lag_s=1.2)]
    v = saturation(samples, (10.0, 20.0), base_fps=150)
    assert [s["what"] for s in v["saturated"]] == [
        "CPU worker", "acks (bridge/Kafka)", "device back-pressure (429/503)", "worker lag"]
    assert v["first_saturated"] == "CPU worker"
    assert v["recovery_s"] == 8.0 and v["responses"] == {"503": 4}


def test_no_spike_window_no_verdict():
    assert saturation([_sample(0)], None, 150)["first_saturated"] is None
