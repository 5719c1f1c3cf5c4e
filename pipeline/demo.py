"""``camlog demo``: Kafka, Cassandra, bridge, worker, playback and simulated cameras, one status
line."""

from __future__ import annotations

import argparse
import fcntl
import os
import signal
import socket
import sys
import time
import urllib.request
from pathlib import Path

from pipeline.config import Settings
from pipeline.errors import CliError

__all__ = ["register", "scrape", "status_line"]


def scrape(port: int) -> dict[str, float]:
    """Sum of every sample per metric name on a Prometheus endpoint ({} when unreachable)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1) as r:
            text = r.read().decode()
    except Exception:
        return {}
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name_labels, _, value = line.rpartition(" ")
        name = name_labels.split("{", 1)[0]
        try:
            out[name] = out.get(name, 0.0) + float(value)
        except ValueError:
            continue
    return out


def _pick(metrics: dict[str, float], *needles: str) -> float:
    """First metric whose name contains all needles (names differ by exporter suffixes)."""
    for name, value in metrics.items():
        if all(n in name for n in needles) and not name.endswith(("_created", "_bucket")):
            return value
    return 0.0


def _lag(admin: object, group: str = "camlog-worker") -> int | None:
    from pipeline.admin.cluster import read_lag

    try:
        return sum(g.total for g in read_lag(admin, [group]))
    except Exception:
        return None


def status_line(prev: dict[str, float], now: dict[str, float], dt: float, cameras: int,
                lag: int | None) -> str:
    """The one-line live summary: cameras, frames/s in, segments sealed, lag, viewers."""
    fps = (now.get("frames", 0) - prev.get("frames", 0)) / dt if dt > 0 else 0.0
    lag_s = "?" if lag is None else str(lag)
    return (f"cameras {cameras} | frames/s in {fps:7.1f}"
            f" | segments sealed {int(now.get('segments', 0))} | lag {lag_s}"
            f" | viewers {int(now.get('viewers', 0))} | requests {int(now.get('requests', 0))}")


def _port_free(addr: str) -> bool:
    host, _, port = addr.rpartition(":")
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, int(port)))
            return True
        except OSError:
            return False


def _lock(settings: Settings):
    """One demo per state folder: a second one fails at once instead of fighting over ports."""
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    # The open file is the lock: returned and held (open) for the demo's whole life.
    fh = open(settings.state_dir / "demo.lock", "a+")  # noqa: SIM115
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.seek(0)
        holder = fh.read().strip() or "?"
        fh.close()
        raise CliError(f"another camlog demo is running (pid {holder}); "
                       "stop it with Ctrl-C first") from None
    fh.seek(0)
    fh.truncate()
    fh.write(str(os.getpid()))
    fh.flush()
    return fh


def _run(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.auth.keys import viewer_keys
    from pipeline.auth.viewer import issue
    from pipeline.cli import main as camlog
    from pipeline.config import ensure_dev_secret
    from pipeline.runner import METRICS_PORTS, SystemRunner, http_ok, start_group_at_end

    settings = ensure_dev_secret(settings)  # the bridge and cameras share the dev device key
    lock = _lock(settings)
    if args.regions:
        from pipeline.devstack.regiondemo import run

        try:
            return run(args, settings)
        finally:
            lock.close()
    for addr in (settings.bridge_addr, settings.playback_addr, settings.edge_addr):
        if not _port_free(addr):
            raise CliError(f"{addr} is in use by another process; stop it or set "
                           "CAMLOG_BRIDGE_ADDR / CAMLOG_PLAYBACK_ADDR / CAMLOG_EDGE_ADDR")
    stop = {"now": False}

    def on_signal(signum: int, frame: object) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    from pipeline.devstack.stack import Stack, status

    started_stack = not any(r["ready"] for r in status(Stack(settings.state_dir)))
    if camlog(["dev", "up"]) != 0:  # also makes the dev viewer key if there is none
        raise CliError("could not start Kafka and Cassandra (see .camlog/dev logs)")
    runner = SystemRunner(settings, Path(settings.state_dir) / "demo-logs")
    try:
        t0 = time.monotonic()
        # The demo's worker is its own consumer group; new, it starts at the head of the log.
        start_group_at_end(settings, "camlog-demo")
        runner.start_services(worker_args=("--app-id", "camlog-demo"), group="camlog-demo")
        names = ([args.stream] if args.cameras == 1
                 else [f"{args.stream}-{i}" for i in range(1, args.cameras + 1)])
        runner.spawn("camera", "camera", "--count", str(args.cameras), "--stream", args.stream,
                     "--fps", str(args.fps), "--size", args.size,
                     "--bridge", f"http://{settings.bridge_addr}")
        edge = runner.spawn("edge", "edge")  # after playback: it reads the origin's JWKS
        runner.wait("edge", lambda: http_ok(f"http://{settings.edge_addr}/_edge/healthz"),
                    child=edge)
        base = f"http://{settings.edge_addr}"
        token = issue(viewer_keys(settings), [f"{args.stream}*"], 12 * 3600, time.time())
        print(f"\ncamlog is up ({time.monotonic() - t0:.1f}s after Kafka and Cassandra were ready)")
        print(f"  dashboard:  {base}/?token={token}")
        for name in names:
            print(f"  {name:<10}  {base}/watch/{name}?token={token}")
        print(f"  (through the edge cache; the origin is http://{settings.playback_addr})")
        print("  metrics:    " + ", ".join(f"{k} :{v}" for k, v in METRICS_PORTS.items()))
        print("Ctrl-C stops everything the demo started.\n")
        from pipeline.topology.kafka import admin_client

        admin = admin_client(settings)
        prev, last = {}, time.monotonic()
        while not stop["now"]:
            time.sleep(1.0)
            dead = [c.name for c in runner.children if not c.alive]
            if dead:
                print(f"\n{', '.join(dead)} exited; logs in {runner.log_dir}", file=sys.stderr)
                return 1
            b, w, p = (scrape(METRICS_PORTS[n]) for n in ("bridge", "worker", "playback"))
            now_m = {"frames": _pick(w, "camlog_segmenter_frames"),
                     "segments": _pick(w, "camlog_segmenter_segments"),
                     "chunks": _pick(b, "camlog_ingest_chunks"),
                     "viewers": _pick(p, "camlog_playback_viewers"),
                     "requests": _pick(p, "camlog_playback_request_duration", "_count")}
            t = time.monotonic()
            line = status_line(prev, now_m, t - last, args.cameras, _lag(admin, "camlog-demo"))
            print("\r" + line.ljust(110), end="", flush=True)
            prev, last = now_m, t
        print("\nstopping…")
        return 0
    finally:
        runner.stop()
        if started_stack and not args.keep_services:
            camlog(["dev", "down"])
        lock.close()


def register(parser: argparse.ArgumentParser) -> None:
    """Add the demo's options."""
    parser.add_argument("--cameras", type=int, default=4, help="simulated cameras (default 4)")
    parser.add_argument("--fps", type=float, default=15.0)
    parser.add_argument("--size", default="640x360")
    parser.add_argument("--stream", default="cam", help="camera stream name prefix")
    parser.add_argument("--regions", metavar="DC1,DC2",
                        help="two regions on this machine (`camlog dev up --regions`), services "
                             "per region, cameras split between home regions")
    parser.add_argument("--keep-services", action="store_true",
                        help="leave Kafka and Cassandra running on exit")
    parser.set_defaults(func=_run)
