"""LL-HLS figures of ``make bench``: part latency, player latency, events per camera-second.

Part latency of a part = the moment a blocking playlist request returns listing it - the capture
time of its first frame (``SealedPart.producer_start``: the simulated camera's clock, this box's
clock). Each viewer behaves like hls.js: it asks for the hinted part (``_HLS_msn``/``_HLS_part``)
as soon as the previous answer arrives. Reported as p50/p99 and as ratios to PART-TARGET.

Player latency: hls.js (lowLatencyMode) in headless Chromium on the watch page, ``now -
playingDate`` sampled each second after it settled, as a ratio to PART-HOLD-BACK.

Events per camera-second on camlog.frames: the same cameras with part-sized chunks and with
one-frame chunks (what the SDK sent before), counted from the log.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Callable
from typing import Any

from ops.bench.system import BenchSystem, TrialSpec, stream_ids
from ops.bench.trials import pct

__all__ = ["events_per_camera_second", "part_latency_run", "player_latency_run"]

Report = Callable[[str], None]
_HINT = re.compile(r'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="parts/(\d+)\.(\d+)\.m4s')
_PART = re.compile(r'#EXT-X-PART:[^\n]*URI="parts/(\d+)\.(\d+)\.m4s')


class _PartTimes(threading.Thread):
    """Follows camlog.segments (assigned, from the end) for the capture time of each part."""

    def __init__(self, bootstrap: str, prefix: str) -> None:
        super().__init__(daemon=True)
        self.bootstrap, self.prefix = bootstrap, prefix.encode()
        self.capture: dict[tuple[str, int, int], int] = {}
        # where the time goes: ingest of its last frame, stored (sealed_time), on the log (µs)
        self.stages: dict[tuple[str, int, int], tuple[int, int, int]] = {}
        self.stop = threading.Event()
        self.ready = threading.Event()

    def run(self) -> None:
        from confluent_kafka import OFFSET_END, TopicPartition

        from pipeline.events import decode_any
        from pipeline.kafka import topics
        from pipeline.kafka.clients import consumer

        c = consumer(self.bootstrap, "bench-ll-unused", **{"enable.auto.commit": False})
        meta = c.list_topics(topics.SEGMENTS, 10).topics[topics.SEGMENTS]
        c.assign([TopicPartition(topics.SEGMENTS, p, OFFSET_END) for p in meta.partitions])
        self.ready.set()
        try:
            while not self.stop.is_set():
                for m in c.consume(500, 0.2):
                    if m.error() or not (m.key() or b"").startswith(self.prefix):
                        continue
                    ev, r = decode_any(m.value())
                    if ev.name == "SealedPart":
                        key = (r["stream_id"], r["sequence"], r["part"])
                        self.capture[key] = r["producer_start"]
                        self.stages[key] = (r["ingest_end"], r["sealed_time"],
                                            m.timestamp()[1] * 1000)
        finally:
            c.close()


async def _viewer(base: str, sid: str, token: str, until: Callable[[], bool],
                  seen: dict, stats: dict) -> None:
    import aiohttp

    url = f"{base}/v1/streams/{sid}/live.m3u8"
    query: dict[str, str] = {"token": token}
    primed = False  # parts in the first LL answer were there before we asked: not timed
    async with aiohttp.ClientSession() as http:
        while not until():
            try:
                async with http.get(url, params=query,
                                    timeout=aiohttp.ClientTimeout(total=30)) as resp:
                    body = await resp.text()
                    status = resp.status
            except (aiohttp.ClientError, TimeoutError):
                status, body = 0, ""
            t = time.time()
            stats[status] = stats.get(status, 0) + 1
            hint = _HINT.search(body) if status == 200 else None
            if hint is None:  # not LL yet (no parts): ask again shortly
                query = {"token": token}
                await asyncio.sleep(0.2)
                continue
            for m in _PART.finditer(body):
                seen.setdefault((sid, int(m.group(1)), int(m.group(2))), t if primed else None)
            primed = True
            query = {"token": token, "_HLS_msn": hint.group(1), "_HLS_part": hint.group(2)}


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


def part_latency_run(system: BenchSystem, spec: TrialSpec, report: Report,
                     part_target_s: float) -> dict:
    """``spec.cameras`` cameras with part-sized chunks, one blocking viewer per stream."""
    from pipeline.auth.keys import viewer_keys
    from pipeline.auth.viewer import issue

    stream = system.new_stream(f"ll-n{spec.cameras}")
    names = stream_ids(stream, spec.cameras)
    token = issue(viewer_keys(system.settings), [f"{stream}*"], 3600, time.time())
    times = _PartTimes(system.settings.kafka, stream)
    times.start()
    times.ready.wait(30)
    report(f"  {spec.cameras} cameras {spec.size} for {spec.seconds:.0f}s, one blocking viewer "
           "each ...")
    cam = system.spawn_cameras(spec, stream)
    seen: dict = {}
    stats: dict = {}
    settle_until = time.time() + 8  # first parts of every stream: start-up, not steady state

    async def main() -> None:
        await asyncio.gather(*(_viewer(system.playback_url, n, token, lambda: not cam.alive,
                                       seen, stats) for n in names))

    asyncio.run(main())
    stopped = time.time() - 1.0  # a stream's last part waits for the idle seal: not steady state
    summary = system.finish_cameras(cam, timeout=5)
    time.sleep(1)
    times.stop.set()
    times.join(10)
    timed = {k: t - times.capture[k] / 1e6 for k, t in seen.items()
             if t is not None and k in times.capture and settle_until <= t
             and times.capture[k] / 1e6 < stopped - 2 * part_target_s}
    lat = list(timed.values())
    slow = sorted((round(v, 3), *k) for k, v in timed.items() if v > 2 * part_target_s)
    p50, p99 = pct(lat, 0.5), pct(lat, 0.99)
    stages = {}  # p50/p99 of each leg, over the timed parts: where a slow part lost its time
    legs = {"capture_to_ingested_s": lambda c, s, k, v: s[0] - c,
            "ingested_to_stored_s": lambda c, s, k, v: s[1] - s[0],
            "stored_to_logged_s": lambda c, s, k, v: s[2] - s[1],
            "logged_to_viewer_s": lambda c, s, k, v: v * 1e6 - (s[2] - c)}
    for name, leg in legs.items():
        xs = [leg(times.capture[k], times.stages[k], k, v) / 1e6 for k, v in timed.items()
              if k in times.stages]
        stages[name] = {"p50": pct(xs, 0.5), "p99": pct(xs, 0.99)}
    out = {"cameras": spec.cameras, "size": spec.size, "seconds": spec.seconds,
           "camera": summary, "parts_seen": len(lat), "responses": {str(k): v for k, v in
                                                                   stats.items()},
           "part_target_s": part_target_s, "part_latency_p50_s": p50,
           "part_latency_p99_s": p99,
           "part_latency_p50_ratio": None if p50 is None else round(p50 / part_target_s, 3),
           "part_latency_p99_ratio": None if p99 is None else round(p99 / part_target_s, 3),
           "stages": stages,
           "latencies_s": [round(x, 4) for x in lat],
           "slow_parts": slow[-50:]}  # (latency, stream, msn, part) beyond 2x PART-TARGET
    report(f"    part latency p50 {p50} s, p99 {p99} s over {len(lat)} parts "
           f"(x{out['part_latency_p50_ratio']} / x{out['part_latency_p99_ratio']} PART-TARGET)")
    report("    legs p50/p99 s: " + ", ".join(
        f"{k.removesuffix('_s')} {_r(v['p50'])}/{_r(v['p99'])}" for k, v in stages.items()))
    return out


def player_latency_run(system: BenchSystem, spec: TrialSpec, report: Report,
                       part_hold_back_s: float, settle_s: float = 12.0) -> dict:
    """hls.js in Chromium on one camera's watch page; latency samples after ``settle_s``."""
    from playwright.sync_api import sync_playwright

    from pipeline.auth.keys import viewer_keys
    from pipeline.auth.viewer import issue

    stream = system.new_stream("player")
    token = issue(viewer_keys(system.settings), [f"{stream}*"], 3600, time.time())
    cam = system.spawn_cameras(spec, stream)
    sid = stream_ids(stream, spec.cameras)[0]
    samples: list[float] = []
    blocking = 0
    with sync_playwright() as pw:
        chrome = pw.chromium.launch(executable_path="/usr/bin/chromium", args=[
            "--headless", "--no-sandbox", "--disable-gpu",
            "--autoplay-policy=no-user-gesture-required"])
        try:
            page = chrome.new_page()
            reqs: list[str] = []
            page.on("request", lambda r: reqs.append(r.url))
            time.sleep(3)
            page.goto(f"{system.playback_url}/watch/{sid}?token={token}")
            t0 = time.monotonic()
            while cam.alive and time.monotonic() - t0 < spec.seconds:
                time.sleep(1)
                lat = page.evaluate("() => window.camlogPlayer.latencyS")
                if lat is not None and time.monotonic() - t0 > settle_s:
                    samples.append(float(lat))
            blocking = sum(1 for u in reqs if "_HLS_part=" in u)
        finally:
            chrome.close()
    system.finish_cameras(cam, timeout=5)
    p50 = pct(samples, 0.5)
    out = {"samples_s": [round(s, 3) for s in samples], "player_latency_p50_s": p50,
           "player_latency_p99_s": pct(samples, 0.99), "part_hold_back_s": part_hold_back_s,
           "player_latency_ratio": None if p50 is None else round(p50 / part_hold_back_s, 3),
           "blocking_requests": blocking}
    report(f"    hls.js latency p50 {p50} s = x{out['player_latency_ratio']} PART-HOLD-BACK "
           f"({blocking} blocking playlist requests)")
    return out


def events_per_camera_second(system: BenchSystem, spec: TrialSpec, report: Report) -> dict:
    """FrameChunk events per camera-second with part chunks and with one-frame chunks."""
    from ops.bench.system import count_chunks

    out: dict[str, Any] = {}
    for name, frames in (("part_chunks", None), ("one_frame_chunks", 1)):
        stream = system.new_stream(f"ev-{name}")
        run = TrialSpec(spec.cameras, spec.size, spec.seconds, spec.fps, chunk_frames=frames,
                        bitrate=spec.bitrate)
        since = time.time()
        cam = system.spawn_cameras(run, stream)
        summary = system.finish_cameras(cam, timeout=spec.seconds + 30)
        n = count_chunks(system.settings, stream, since)
        out[name] = {"events": n, "camera": summary,
                     "per_camera_second": round(n / (spec.cameras * spec.seconds), 2)}
        report(f"    {name}: {out[name]['per_camera_second']} events per camera-second")
    return out
