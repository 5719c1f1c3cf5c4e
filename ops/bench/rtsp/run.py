"""RTSP pull benchmark: cameras pulled per puller core vs ``ffmpeg -c copy`` per stream.

    .venv/bin/python -m ops.bench.rtsp.run --cameras 32 --seconds 30
    .venv/bin/python -m ops.bench.rtsp.run --quick           # 4 cameras, 5 s: a smoke run

One GStreamer RTSP test server (``ops/rtsp/testserver.py``, 640x360 at 15 fps, shared media so it
encodes once) is pulled N times. Phase 1: one puller process (``PullHost``, the code ``camlog
puller`` runs) pulls N cameras into Kafka over TCP; its CPU time over the run gives the CPU
fraction per camera and so cameras per core. Phase 2 (same-run baseline): N ``ffmpeg
-rtsp_transport tcp -i URL -c copy -f null -`` processes for the same time, their CPU per stream.
Writes ``ops/bench/results/rtsp.json``. Needs the dev stack (``camlog dev up``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[3]
RESULTS = ROOT / "ops" / "bench" / "results"


def _server(port: int, size: str, fps: int) -> subprocess.Popen:
    proc = subprocess.Popen(["/usr/bin/python3", str(ROOT / "ops/rtsp/testserver.py"), "--port",
                             str(port), "--size", size, "--fps", str(fps), "--gop", str(2 * fps)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().startswith("ready")
    return proc


def _cpu_s(procs: list[psutil.Process]) -> float:
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def _measure(procs: list[subprocess.Popen], seconds: float, warmup: float) -> float:
    """CPU seconds the processes used during ``seconds`` after ``warmup``."""
    ps = [psutil.Process(p.pid) for p in procs]
    time.sleep(warmup)
    c0 = _cpu_s(ps)
    time.sleep(seconds)
    return _cpu_s(ps) - c0


def _child(args: argparse.Namespace) -> int:
    """The puller side: pull ``--cameras`` copies of ``--url`` until stdin closes, print stats."""
    from pipeline.config import load_settings
    from pipeline.ingest.puller import PullHost
    from pipeline.ingest.registry import CameraSpec

    async def go() -> dict:
        host = PullHost(load_settings())
        await host.start()
        for i in range(args.cameras):
            host.pull(CameraSpec(f"{args.prefix}-{i}", args.url))
        await asyncio.to_thread(sys.stdin.read)
        stats = [p.stats for p in host.pulls.values()]
        await host.close()
        return {"frames": sum(s.frames for s in stats),
                "lost_chunks": sum(s.lost_chunks for s in stats),
                "reconnects": sum(max(0, s.connections - 1) for s in stats)}

    print(json.dumps(asyncio.run(go())))
    return 0


def main() -> int:
    """Run both phases and write the result."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cameras", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--warmup", type=float, default=5.0)
    ap.add_argument("--size", default="640x360")
    ap.add_argument("--fps", type=int, default=15)
    ap.add_argument("--quick", action="store_true", help="4 cameras, 5 s")
    ap.add_argument("--json", default=str(RESULTS / "rtsp.json"))
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--url", help=argparse.SUPPRESS)
    ap.add_argument("--prefix", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        return _child(a)
    if a.quick:
        a.cameras, a.seconds, a.warmup = 4, 5.0, 3.0
    from tests.system import free_port

    port = free_port()
    server = _server(port, a.size, a.fps)
    url = f"rtsp://127.0.0.1:{port}/cam"
    try:
        prefix = f"bench-rtsp-{uuid.uuid4().hex[:6]}"
        puller = subprocess.Popen([sys.executable, "-m", "ops.bench.rtsp.run", "--child",
                                   "--cameras", str(a.cameras), "--url", url, "--prefix", prefix],
                                  cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  text=True)
        t0 = time.monotonic()
        puller_cpu = _measure([puller], a.seconds, a.warmup)
        pulled = json.loads(puller.communicate("", timeout=60)[0].strip().splitlines()[-1])
        pulled["fps_per_camera"] = pulled["frames"] / (time.monotonic() - t0) / a.cameras
        ffmpegs = [subprocess.Popen(["ffmpeg", "-nostdin", "-v", "error", "-rtsp_transport", "tcp",
                                     "-i", url, "-c", "copy", "-f", "null", "-"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                   for _ in range(a.cameras)]
        try:
            ffmpeg_cpu = _measure(ffmpegs, a.seconds, a.warmup)
        finally:
            for p in ffmpegs:
                p.terminate()
                p.wait(10)
    finally:
        server.terminate()
        server.wait(10)
    per_cam = puller_cpu / a.seconds / a.cameras  # cores one camera keeps busy
    per_ffmpeg = ffmpeg_cpu / a.seconds / a.cameras
    out = {"cameras": a.cameras, "seconds": a.seconds, "size": a.size, "fps": a.fps,
           "puller_cpu_core_per_camera": per_cam,
           "cameras_per_puller_core": 1 / per_cam if per_cam else None,
           "ffmpeg_copy_cpu_core_per_stream": per_ffmpeg,
           "streams_per_ffmpeg_core": 1 / per_ffmpeg if per_ffmpeg else None,
           "puller_vs_ffmpeg_cpu": per_cam / per_ffmpeg if per_ffmpeg else None,
           "pulled": pulled, "quick": a.quick, "load_avg": psutil.getloadavg()}
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    Path(a.json).write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
