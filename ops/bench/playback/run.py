"""Playback benchmark: cached live playlist and a ~500 KB segment, camlog vs nginx, same run.

    .venv/bin/python -m ops.bench.playback.run [--seconds 10] [--connections 64] [--workers 1]

Writes one stream into Cassandra (store modules, real H.264 fMP4), starts ``camlog playback``
and an nginx (Debian package) serving the very same bytes from a temp folder with the same
number of worker processes, then drives each URL with ``wrk`` (a separate process, keep-alive)
and prints requests/s and p99 latency, each as a ratio to nginx. The same objects are also
fetched through ``camlog edge`` (nginx + njs JWT check + proxy cache) in front of that origin:
``edge_ratio`` is edge ÷ nginx from disk (goal >= 0.9), ``rps_ratio`` origin ÷ nginx (goals
>= 0.3 playlist, >= 0.8 segment). ``--profile DIR`` records a py-spy flame graph of the origin
per URL. Results go to ``ops/bench/results/playback.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from fractions import Fraction
from pathlib import Path

from pipeline.auth.keys import viewer_keys
from pipeline.auth.viewer import issue as issue_viewer
from pipeline.config import load_settings

ROOT = Path(__file__).resolve().parents[3]
RESULTS = ROOT / "ops/bench/results/playback.json"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _big_segment(target: int = 500_000):
    """One fMP4 segment (one GOP) of noisy 640x360 H.264, cut at about ``target`` bytes."""
    import av
    import numpy as np

    from pipeline.media.annexb import parameter_sets, to_length_prefixed
    from pipeline.media.fmp4 import Sample, build_init, build_media_segment

    fps, w, h = 30, 640, 360
    ctx = av.CodecContext.create("libx264", "w")
    ctx.width, ctx.height, ctx.pix_fmt = w, h, "yuv420p"
    ctx.time_base, ctx.framerate = Fraction(1, fps), fps
    ctx.bit_rate = 3_000_000
    ctx.options = {"g": str(fps), "bf": "0", "preset": "ultrafast", "tune": "zerolatency"}
    rng = np.random.default_rng(1)
    packets = []
    for i in range(fps):
        img = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
        frame = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p")
        frame.pts = i
        packets += ctx.encode(frame)
    packets += ctx.encode(None)
    config = parameter_sets("H264", bytes(packets[0]))
    init = build_init("H264", config, w, h, 90000)
    tick = 90000 // fps
    samples, size = [], 0
    for p in packets:
        if size >= target:
            break
        samples.append(Sample(to_length_prefixed("H264", bytes(p)), tick, 0, bool(p.is_keyframe)))
        size += len(samples[-1].data)
    return init, build_media_segment(1, init.track_id, 0, samples), len(samples)


async def _write_stream(settings, sid: str) -> tuple[str, str, int]:
    """Store six segments (the big one last) and the live window; returns ids and size."""
    from pipeline.store.cluster import connect
    from pipeline.store.segments import SegmentStore
    from pipeline.store.views import ViewStore
    from tests.playback.feed import Feed, Recording

    init, seg, frames = await asyncio.to_thread(_big_segment)
    rec = Recording(init.data, uuid.uuid4().hex[:16], 640, 360, 30, [(seg, frames)])
    session = await asyncio.to_thread(connect, settings, settings.keyspace)
    feed = Feed(sid, rec, SegmentStore(settings, session), ViewStore(settings, session))
    await feed.segments_store.start()
    await feed.views_store.start()
    await feed.put_init()
    now = int(time.time()) * 1_000_000
    for i in range(6):
        await feed.publish(0, now - (6 - i) * 1_000_000)
    session.cluster.shutdown()
    return feed.rows[-1].segment_id, rec.init_id, len(seg)


def _wait_ready(url: str, timeout: float = 30) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} not ready")


def _nginx(root: Path, port: int, workers: int) -> subprocess.Popen:
    conf = root / "nginx.conf"
    conf.write_text(f"""
worker_processes {workers};
daemon off;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on; tcp_nopush on; tcp_nodelay on;
    keepalive_requests 1000000; keepalive_timeout 120;
    types {{ application/vnd.apple.mpegurl m3u8; video/iso.segment m4s; }}
    server {{
        listen 127.0.0.1:{port} reuseport;
        root {root}/www;
        add_header Cache-Control "public, max-age=1";
    }}
}}
""")
    return subprocess.Popen(["nginx", "-c", str(conf), "-p", str(root)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _wrk(url: str, connections: int, seconds: int, threads: int) -> dict:
    out = subprocess.run(["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s",
                          "--latency", url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    m = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE)
    p99 = float(m.group(1)) * _UNITS[m.group(2)]
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    return {"rps": rps, "p99_ms": p99, "non_2xx": int(non2xx.group(1)) if non2xx else 0,
            "socket_errors": errors.group(0) if errors else ""}


def _edge(work: Path, origin: str, urls: dict[str, str], workers: int,
          env: dict[str, str]) -> tuple[subprocess.Popen, dict[str, str]]:
    """``camlog edge`` in front of the origin; the benchmark URLs rewritten to go through it."""
    port = _free_port()
    with open(work / "edge.log", "wb") as log:  # the child has its own copy of the descriptor
        proc = subprocess.Popen(
            [sys.executable, "-m", "pipeline", "edge", "--addr", f"127.0.0.1:{port}", "--origin",
             origin, "--prefix", str(work / "edge"), "--workers", str(workers)],
            env=env, stdout=subprocess.DEVNULL, stderr=log)
    _wait_ready(f"http://127.0.0.1:{port}/_edge/healthz")
    return proc, {k: u.replace(f"http://{origin}", f"http://127.0.0.1:{port}")
                  for k, u in urls.items()}


def _profile(pid: int, url: str, args: argparse.Namespace, name: str) -> str:
    """A py-spy flame graph of the origin while wrk loads ``url`` (the bench extra has py-spy)."""
    args.profile.mkdir(parents=True, exist_ok=True)
    out = args.profile / f"origin-{name}.svg"
    spy = subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record",
                            "--pid", str(pid), "--duration", str(args.seconds), "--rate", "250",
                            "--nonblocking", "-o", str(out)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wrk(url, args.connections, args.seconds, args.threads)
    spy.wait(args.seconds + 30)
    return str(out)


def _median(runs: list[dict]) -> dict:
    """The run with the median requests/s (its own p99 kept with it), plus all runs."""
    ordered = sorted(runs, key=lambda r: r["rps"])
    return {**ordered[len(ordered) // 2], "runs": [(r["rps"], r["p99_ms"]) for r in runs]}


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--workers", type=int, default=1, help="playback and nginx processes")
    ap.add_argument("--threads", type=int, default=1, help="wrk threads")
    ap.add_argument("--no-events", action="store_true", help="run camlog playback --no-events")
    ap.add_argument("--repeat", type=int, default=3,
                    help="alternate camlog/nginx runs per URL; the median run is reported")
    ap.add_argument("--no-edge", action="store_true", help="skip the camlog edge (nginx + njs)")
    ap.add_argument("--token-in-path", action="store_true",
                    help="ask /v1/t/<token>/streams/... instead of ?token= (no per-viewer bytes)")
    ap.add_argument("--profile", type=Path,
                    help="record a py-spy flame graph of the origin per URL into this folder")
    args = ap.parse_args(argv)
    for tool in ("wrk", "nginx"):
        if shutil.which(tool) is None:
            print(f"{tool} missing: apt-get install -y {tool}", file=sys.stderr)
            return 2
    load_before = os.getloadavg()[0]
    settings = load_settings()
    sid = f"bench-{uuid.uuid4().hex[:8]}"
    seg_id, _init_id, seg_size = asyncio.run(_write_stream(settings, sid))
    tok = issue_viewer(viewer_keys(settings), [sid], 3600, time.time())
    work = Path(tempfile.mkdtemp(prefix="camlog-bench-"))
    work.chmod(0o755)  # nginx workers run as an unprivileged user and must read www/
    pb_port, ng_port = _free_port(), _free_port()
    env = {**os.environ, "CAMLOG_TELEMETRY": "none", "CAMLOG_LOG_LEVEL": "WARNING"}
    with open(work / "playback.log", "wb") as log:  # the child has its own copy
        server = subprocess.Popen(
            [sys.executable, "-m", "pipeline", "playback", "--addr", f"127.0.0.1:{pb_port}",
             "--workers", str(args.workers), *(["--no-events"] if args.no_events else [])],
            env=env, stdout=subprocess.DEVNULL, stderr=log)
    nginx = edge = None
    try:
        _wait_ready(f"http://127.0.0.1:{pb_port}/readyz")
        if args.token_in_path:  # /v1/t/<token>/streams/...: the same playlist for every viewer
            base, q = f"http://127.0.0.1:{pb_port}/v1/t/{tok}/streams/{sid}", ""
        else:
            base, q = f"http://127.0.0.1:{pb_port}/v1/streams/{sid}", f"?token={tok}"
        urls = {"playlist": f"{base}/live.m3u8{q}", "segment": f"{base}/segments/{seg_id}.m4s{q}"}
        www = work / "www"
        www.mkdir()
        for name, url in urls.items():  # the very bytes camlog serves, for nginx to serve
            with urllib.request.urlopen(url) as r:
                (www / ("live.m3u8" if name == "playlist" else "seg.m4s")).write_bytes(r.read())
        nginx = _nginx(work, ng_port, args.workers)
        _wait_ready(f"http://127.0.0.1:{ng_port}/live.m3u8")
        static = {"playlist": f"http://127.0.0.1:{ng_port}/live.m3u8",
                  "segment": f"http://127.0.0.1:{ng_port}/seg.m4s"}
        if not args.no_edge:  # the same objects through the edge cache, same run
            edge, edge_urls = _edge(work, f"127.0.0.1:{pb_port}", urls, args.workers, env)
        results: dict = {"token_in_path": args.token_in_path,
                         "connections": args.connections, "seconds": args.seconds,
                         "workers": args.workers, "segment_bytes": seg_size,
                         "playlist_bytes": (www / "live.m3u8").stat().st_size,
                         "cpus": os.cpu_count(), "load_before": load_before}
        for name in ("playlist", "segment"):
            _wrk(urls[name], 8, 2, args.threads)  # warm both caches and connections
            runs_c, runs_n = [], []
            for _ in range(args.repeat):  # interleaved so both see the same background load
                runs_c.append(_wrk(urls[name], args.connections, args.seconds, args.threads))
                runs_n.append(_wrk(static[name], args.connections, args.seconds, args.threads))
            camlog, base_ = _median(runs_c), _median(runs_n)
            results[name] = {"camlog": camlog, "nginx": base_,
                             "rps_ratio": camlog["rps"] / base_["rps"],
                             "p99_ratio": camlog["p99_ms"] / base_["p99_ms"]}
            if edge is not None:
                _wrk(edge_urls[name], 8, 2, args.threads)
                e = _median([_wrk(edge_urls[name], args.connections, args.seconds, args.threads)
                             for _ in range(args.repeat)])
                results[name]["edge"] = e
                results[name]["edge_ratio"] = e["rps"] / base_["rps"]
            if args.profile is not None:
                results[name]["profile"] = _profile(server.pid, urls[name], args, name)
    finally:
        server.terminate()
        server.wait(10)
        for proc in (nginx, edge):
            if proc is not None:
                proc.terminate()
                proc.wait(15)
    print(f"playback benchmark: {args.connections} keep-alive connections, {args.seconds} s, "
          f"{args.workers} worker(s), wrk {args.threads} thread(s), {os.cpu_count()} CPUs")
    print(f"{'':10} {'camlog rps':>11} {'p99 ms':>8} {'nginx rps':>11} {'p99 ms':>8} "
          f"{'rps ratio':>10} {'p99 ratio':>10}")
    for name in ("playlist", "segment"):
        r = results[name]
        print(f"{name:10} {r['camlog']['rps']:11.0f} {r['camlog']['p99_ms']:8.2f} "
              f"{r['nginx']['rps']:11.0f} {r['nginx']['p99_ms']:8.2f} {r['rps_ratio']:10.2f} "
              f"{r['p99_ratio']:10.2f}")
        if "edge" in r:
            print(f"{'  edge':10} {r['edge']['rps']:11.0f} {r['edge']['p99_ms']:8.2f} "
                  f"{'':11} {'':8} {r['edge_ratio']:10.2f}   (edge / nginx from disk)")
    print(f"(segment {seg_size} bytes, playlist {results['playlist_bytes']} bytes; median of "
          f"{args.repeat} interleaved runs; load average before: {load_before:.1f})")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2))
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
