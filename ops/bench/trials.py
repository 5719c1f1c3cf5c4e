"""Runs against the whole system: capacity trials (pass/fail) and the glass-to-playable run."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable

from ops.bench.system import BenchSystem, TrialSpec, progress_samples, stream_ids

__all__ = ["capacity_trial", "latency_run", "pct"]

Report = Callable[[str], None]
#: Seconds after the fleet starts before lag counts (new streams' first segments settle).
WARM_S = 5.0
_SEG = re.compile(r"segments/([^/?.]+)\.m4s")


def pct(values: list[float], q: float) -> float | None:
    """The ``q`` quantile (nearest rank) of ``values``; None when empty."""
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def _chunk_frames(spec: TrialSpec) -> int:
    # mirrors `camlog camera`: 1 frame per request up to 20 cameras, else ~200 ms per request
    if spec.chunk_frames:
        return spec.chunk_frames
    return 1 if spec.cameras <= 20 else max(1, round(spec.fps / 5))


def _settle(system: BenchSystem, report: Report, timeout: float = 90.0) -> float | None:
    """After a failed trial, wait for the worker to catch up so the next trial starts clean."""
    t0 = time.monotonic()
    msgs, lag_s = system.lag()
    while lag_s is not None and lag_s > 5 and time.monotonic() - t0 < timeout:
        report(f"    settling: worker {lag_s:.0f}s behind ({msgs} messages)")
        time.sleep(3)
        msgs, lag_s = system.lag()
    return lag_s


class _CpuShare:
    """CPU use per process between its first and last sample (a camera child exits first)."""

    def __init__(self, system: BenchSystem) -> None:
        self.system = system
        self.first: dict[str, tuple[float, float]] = {}
        self.last: dict[str, tuple[float, float]] = {}

    def sample(self) -> None:
        now = time.monotonic()
        for name, secs in self.system.cpu_seconds().items():
            self.first.setdefault(name, (now, secs))
            self.last[name] = (now, secs)

    def percent(self) -> dict[str, float]:
        """Percent of one core per process name."""
        return {k: round(100 * (self.last[k][1] - v[1]) / (self.last[k][0] - v[0]), 1)
                for k, v in self.first.items() if self.last[k][0] > v[0]}


def capacity_trial(system: BenchSystem, spec: TrialSpec, report: Report) -> dict:
    """Run ``spec``; it passes when the cameras kept pace, every frame was acknowledged and
    stored, acks finished promptly and the worker's lag stayed under ``spec.max_lag_s``."""
    stream = system.new_stream(f"cap{spec.size}-n{spec.cameras}")
    names = stream_ids(stream, spec.cameras)
    start_us = int(time.time() * 1e6)
    cam = system.spawn_cameras(spec, stream)
    t0, fleet_t0, over, reason = time.monotonic(), None, 0, None
    cpu = _CpuShare(system)
    samples: list[dict] = []
    report(f"  trial {spec.cameras} cameras {spec.size} for {spec.seconds:.0f}s ...")
    while cam.alive:
        time.sleep(3)
        system.check_alive()
        log = cam.log.read_text(errors="replace")
        if fleet_t0 is None and "camera(s) ->" in log:
            fleet_t0 = time.monotonic()
        prog = progress_samples(log)
        lag, lag_s = system.lag()
        t = time.monotonic() - (fleet_t0 or t0)
        if fleet_t0 is not None:  # CPU shares from the fleet's start
            cpu.sample()
        sample = {"t": round(t, 1), "fleet": fleet_t0 is not None, "lag_msgs": lag, "lag_s": lag_s,
                  "frames_per_s": prog[-1][0] if prog else None,
                  "acked_per_s": prog[-1][1] if prog else None}
        samples.append(sample)
        report(f"    t={t:5.0f}s  lag {'?' if lag_s is None else f'{lag_s:5.1f}s'}  "
               f"frames/s {sample['frames_per_s']}  acked/s {sample['acked_per_s']}")
        warm = fleet_t0 is not None and t > WARM_S
        over = over + 1 if warm and lag_s is not None and lag_s > spec.max_lag_s else 0
        if over >= 2:
            reason = f"worker more than {spec.max_lag_s:.0f}s behind"
        want = spec.cameras * spec.fps
        recent = [p[1] for p in prog[-3:]] if warm and len(prog) >= 5 else []
        if len(recent) == 3 and max(recent) < 0.8 * want:
            reason = "acknowledgements fell behind (bridge or Kafka saturated)"
        if time.monotonic() - t0 > spec.seconds + 120:
            reason = "cameras did not finish"
        if reason:
            break
    cpu_pct = cpu.percent()
    report(f"    CPU % of one core: {cpu_pct}")
    summary = system.finish_cameras(cam, timeout=1 if reason else 60)
    out = {"cameras": spec.cameras, "size": spec.size, "seconds": spec.seconds,
           "fps": spec.fps, "chunk_frames": _chunk_frames(spec), "stream": stream,
           "camera": summary, "cpu_pct": cpu_pct, "samples": samples}
    if reason:
        out.update(passed=False, reason=reason, settle_lag=_settle(system, report))
        report(f"  -> FAIL ({reason})")
        return out
    frames, acked = summary.get("frames", 0), summary.get("acked_frames", 0)
    t_end = time.monotonic()
    rows = system.drain(names, start_us, acked, report=report)
    drain_s = time.monotonic() - t_end  # worker still behind when the cameras stopped
    stored_frames = sum(r.frame_count for r in rows)
    stored_bytes = sum(r.byte_size for r in rows)
    checks = {
        "camera_reported": bool(summary),
        "kept_pace": frames >= 0.97 * spec.cameras * spec.fps * spec.seconds,
        "all_acked": acked == frames and not summary.get("dropped_frames")
        and not summary.get("rejected"),
        "acks_prompt": summary.get("elapsed_s", 1e9) - spec.seconds <= 15,
        "no_loss": stored_frames >= acked > 0,
        "lag_bounded": all(s["lag_s"] is None or s["lag_s"] <= spec.max_lag_s
                           for s in samples if s["fleet"] and s["t"] > WARM_S),
        "drained_promptly": drain_s <= system.idle_timeout_s + spec.max_lag_s + 5,
    }
    failed = [k for k, ok in checks.items() if not ok]
    out.update(passed=not failed, reason=", ".join(failed) or None, checks=checks,
               frames=frames, acked_frames=acked, stored_frames=stored_frames,
               stored_bytes=stored_bytes, segments=len(rows), drain_s=drain_s,
               stored_mb_per_s=stored_bytes / spec.seconds / 1e6,
               max_lag_s=max((s["lag_s"] or 0 for s in samples if s["fleet"]), default=0))
    if failed:
        out["settle_lag"] = _settle(system, report)
    report(f"  -> {'PASS' if not failed else 'FAIL (' + out['reason'] + ')'}: "
           f"{acked}/{frames} acked, {stored_frames} stored, {out['stored_mb_per_s']:.2f} MB/s")
    return out


async def _poll(url: str, names: list[str], token: str, until: Callable[[], bool],
                seen: dict, stats: dict, interval: float) -> None:
    """Fetch every live playlist each ``interval``; remember when each segment first showed."""
    import aiohttp

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as s:
        async def one(sid: str) -> None:
            try:
                async with s.get(f"{url}/v1/streams/{sid}/live.m3u8",
                                 params={"token": token}) as r:
                    body = await r.text()
                    stats[r.status] = stats.get(r.status, 0) + 1
            except Exception as exc:
                stats[type(exc).__name__] = stats.get(type(exc).__name__, 0) + 1
                return
            now = time.time()
            for seg in _SEG.findall(body):
                seen.setdefault((sid, seg), now)

        while not until():
            t = time.monotonic()
            await asyncio.gather(*(one(n) for n in names))
            await asyncio.sleep(max(0.0, t + interval - time.monotonic()))


def latency_run(system: BenchSystem, spec: TrialSpec, report: Report,
                interval: float = 0.1) -> dict:
    """Cameras through the whole system while a viewer polls each live playlist every 100 ms.

    Glass-to-playable of a segment = first time it appears in its live playlist - the ingest
    time of its first frame (``segments.ingest_start``). Segments sealed by the idle timeout
    after the cameras stop are not seen (polling ends with the cameras) and so not counted.
    """
    from pipeline.auth.keys import viewer_keys
    from pipeline.auth.viewer import issue as issue_viewer

    stream = system.new_stream(f"live{spec.size}-n{spec.cameras}")
    names = stream_ids(stream, spec.cameras)
    token = issue_viewer(viewer_keys(system.settings), [f"{stream}*"], 3600, time.time())
    start_us = int(time.time() * 1e6)
    report(f"  {spec.cameras} cameras {spec.size} for {spec.seconds:.0f}s; polling "
           f"{len(names)} live playlists every {interval * 1000:.0f} ms ...")
    cam = system.spawn_cameras(spec, stream)
    seen: dict = {}
    stats: dict = {}
    last = [time.monotonic()]

    def until() -> bool:
        if time.monotonic() - last[0] > 10:
            last[0] = time.monotonic()
            system.check_alive()
            report(f"    {len(seen)} segments seen, playlist responses {stats}")
        return not cam.alive

    asyncio.run(_poll(system.playback_url, names, token, until, seen, stats, interval))
    summary = system.finish_cameras(cam, timeout=5)
    rows = system.drain(names, start_us, summary.get("acked_frames", 0), report=report)
    points = []
    for r in rows:
        t = seen.get((r.stream_id, r.segment_id))
        if t is None:
            continue
        points.append({"stream": r.stream_id, "seen": t, "ingest_start": r.ingest_start / 1e6,
                       "sealed": r.sealed_time / 1e6, "duration_s": r.duration_us / 1e6,
                       "bytes": r.byte_size, "frames": r.frame_count,
                       "glass_to_playable_s": t - r.ingest_start / 1e6,
                       "seal_s": (r.sealed_time - r.ingest_start) / 1e6,
                       "sealed_to_playlist_s": t - r.sealed_time / 1e6})
    points.sort(key=lambda p: p["seen"])
    g2p = [p["glass_to_playable_s"] for p in points]
    seal = [p["seal_s"] for p in points]
    s2p = [p["sealed_to_playlist_s"] for p in points]
    return {"cameras": spec.cameras, "size": spec.size, "seconds": spec.seconds,
            "fps": spec.fps, "stream": stream, "camera": summary, "poll_interval_s": interval,
            "playlist_responses": {str(k): v for k, v in stats.items()},
            "segments_stored": len(rows), "segments_seen": len(points),
            "stored_frames": sum(r.frame_count for r in rows),
            "segment_duration_p50_s": pct([r.duration_us / 1e6 for r in rows], 0.5),
            "glass_to_playable_p50_s": pct(g2p, 0.5), "glass_to_playable_p99_s": pct(g2p, 0.99),
            "seal_p50_s": pct(seal, 0.5), "seal_p99_s": pct(seal, 0.99),
            "sealed_to_playlist_p50_s": pct(s2p, 0.5),
            "sealed_to_playlist_p99_s": pct(s2p, 0.99),
            "points": points,
            "stored": [{"sealed": r.sealed_time / 1e6, "bytes": r.byte_size,
                        "frames": r.frame_count} for r in rows]}
