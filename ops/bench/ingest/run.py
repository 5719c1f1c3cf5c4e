"""Ingest benchmark: N simulated cameras through ``camlog bridge`` into Kafka vs raw production.

    .venv/bin/python -m ops.bench.ingest.run --cameras 100 --seconds 20

Phase 1 (paced): N cameras at their real frame rate; reports frames/s, MB/s, ack p50/p99 and
the bridge's RSS/CPU. Phase 2 (saturated): the same cameras send as fast as acks come back, to
find the bridge's sustained MB/s. Phase 3 (baseline): one confluent-kafka producer (idempotent,
acks=all) producing FrameChunk events of the same sizes as fast as it can, in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import uuid

import aiohttp
import psutil

from ops.bench.baseline import raw_kafka
from pipeline.auth.tokens import issue
from pipeline.config import load_settings
from pipeline.device.camera import Camera, FleetConfig, run_fleet
from pipeline.device.client import ChunkUploader
from pipeline.device.pattern import encode_loop
from pipeline.ingest.framing import Frame
from tests.bridge_helpers import BridgeProc


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


async def _paced(url, settings, loops, n, fps, seconds, chunk_frames, prefix):
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:
        cams = []
        for i in range(n):
            sid = f"{prefix}-{i}"
            tok = issue(settings.keys, None, "device", [sid], 3600, time.time())
            up = ChunkUploader(s, url, sid, tok, chunk_frames=chunk_frames, keep_latencies=True)
            cams.append(Camera(sid, loops[i % len(loops)], up, phase=i // len(loops)))
        res = await run_fleet(cams, FleetConfig(fps, seconds, chunk_frames, progress_s=5.0),
                              report=lambda line: print("  " + line, file=sys.stderr))
        lat = [x for c in cams for x in c.uploader.stats.ack_ms]
    return res, lat


async def _saturated(url, settings, loop, n, seconds, chunk_frames, prefix):
    sizes: list[int] = []
    deadline = time.monotonic() + seconds
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:
        async def one(i: int) -> int:
            sid = f"{prefix}-sat-{i}"
            tok = issue(settings.keys, None, "device", [sid], 3600, time.time())
            up = ChunkUploader(s, url, sid, tok, chunk_frames=chunk_frames, max_buffer_chunks=10**6)
            task = asyncio.create_task(up.run())
            k = 0
            while time.monotonic() < deadline:
                while up.buffered < 4:  # keep the pipe full, one in flight
                    f = loop.frames[k % len(loop.frames)]
                    up.add_frame(Frame(k * 6000, k * 6000, f.keyframe, f.data))
                    sizes.append(len(f.data))
                    k += 1
                await asyncio.sleep(0.001)
            task.cancel()
            return up.stats.acked_frames

        t0 = time.monotonic()
        acked = await asyncio.gather(*(one(i) for i in range(n)))
        elapsed = time.monotonic() - t0
    avg = statistics.mean(sizes) if sizes else 0
    return sum(acked), sum(acked) * avg / elapsed / 1e6, elapsed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cameras", type=int, default=100)
    ap.add_argument("--fps", type=float, default=15)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--size", default="640x360")
    ap.add_argument("--bitrate", type=int, default=500_000)
    ap.add_argument("--chunk-frames", type=int, default=1)
    ap.add_argument("--saturate-cameras", type=int, default=20)
    ap.add_argument("--json", help="write results here")
    args = ap.parse_args()
    settings = load_settings()
    w, h = map(int, args.size.split("x"))
    loops = [encode_loop(v, fps=args.fps, width=w, height=h, bitrate=args.bitrate, gop_s=2)
             for v in range(4)]
    bridge = BridgeProc(kafka=settings.kafka, extra=["--rate", "10000", "--burst", "10000"]).start()
    proc = psutil.Process(bridge.proc.pid)
    prefix = f"bench-{uuid.uuid4().hex[:6]}"
    out: dict = {"cameras": args.cameras, "fps": args.fps, "size": args.size,
                 "bitrate": args.bitrate, "chunk_frames": args.chunk_frames}
    try:
        proc.cpu_percent()
        me = psutil.Process()
        me.cpu_percent()
        cpu0, mine0 = sum(proc.cpu_times()[:2]), sum(me.cpu_times()[:2])
        res, lat = asyncio.run(_paced(bridge.url, settings, loops, args.cameras, args.fps,
                                      args.seconds, args.chunk_frames, prefix))
        media = sum(len(f.data) for f in loops[0].frames) / len(loops[0].frames)
        out.update(
            paced_frames_per_s=res["acked_frames"] / res["elapsed_s"],
            paced_mb_per_s=res["acked_frames"] * media / res["elapsed_s"] / 1e6,
            ack_p50_ms=_pct(lat, 0.5), ack_p99_ms=_pct(lat, 0.99), acks=len(lat),
            retries=res["retries"], dropped_frames=res["dropped_frames"],
            bridge_rss_mb=proc.memory_info().rss / 1e6, bridge_cpu_pct=proc.cpu_percent(),
            cameras_cpu_pct=me.cpu_percent(),
            # CPU time per acknowledged chunk: the capacity figure that survives a busy machine
            bridge_cpu_ms_per_chunk=(sum(proc.cpu_times()[:2]) - cpu0) * 1000 / max(1, len(lat)),
            cameras_cpu_ms_per_chunk=(sum(me.cpu_times()[:2]) - mine0) * 1000 / max(1, len(lat)))
        n, mbps, _el = asyncio.run(_saturated(bridge.url, settings, loops[0],
                                              args.saturate_cameras, args.seconds / 2,
                                              args.chunk_frames, prefix))
        out.update(saturated_frames=n, bridge_sustained_mb_per_s=mbps,
                   bridge_rss_after_mb=proc.memory_info().rss / 1e6)
    finally:
        bridge.stop()
    # baseline: the same payloads produced straight to a private topic (acks=all, idempotent)
    raw = raw_kafka(settings.kafka, loops[0], args.chunk_frames, args.seconds / 2, consume=False)
    fps_raw = raw["messages"] * args.chunk_frames / raw["seconds"]
    mb_raw = raw["media_mb_per_s"]
    out.update(raw_frames_per_s=fps_raw, raw_mb_per_s=mb_raw,
               ratio_bridge_to_raw=out["bridge_sustained_mb_per_s"] / mb_raw if mb_raw else 0,
               load_avg=psutil.getloadavg())
    print(json.dumps(out, indent=2))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
