"""``camlog demo --regions dc1,dc2``: the two-region stack plus bridge, worker and playback per
region, and simulated cameras split between home regions (each failing over to the others).

Region i's services listen on the usual addresses + 100*i (bridge 8080, 8180; playback 8081,
8181) and scrape ports + 10*i; each runs with ``CAMLOG_REGION``, its own Kafka and its own
Cassandra DC (LOCAL_QUORUM). Workers consume their region's log only: the other region's
frames arrive through Cassandra's replication of the views, not by segmenting them twice.
The demo supervises its services: one that dies is started again (``camlog drill
region-outage`` relies on this to bring a killed region's services back).
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

from pipeline.config import Settings
from pipeline.errors import CliError

__all__ = ["RESTART_S", "region_settings", "run"]

RESTART_S = 5.0  # the demo restarts a dead service after this long (and no more often)


def _shift(addr: str, by: int) -> str:
    host, _, port = addr.rpartition(":")
    return f"{host}:{int(port) + by}"


def region_settings(settings: Settings, names: list[str]) -> dict[str, Settings]:
    """Per-region settings: its Kafka, its Cassandra node/DC, its service addresses."""
    from pipeline.devstack.regions import plan_regions
    from pipeline.devstack.stack import Stack

    replication = {n: 1 for n in names}
    return {r.name: settings.replace(
        kafka=r.bootstrap, cassandra=(f"{r.host}:9042",), region=r.name, replication=replication,
        bridge_addr=_shift(settings.bridge_addr, 100 * r.index),
        playback_addr=_shift(settings.playback_addr, 100 * r.index))
        for r in plan_regions(Stack(settings.state_dir), names)}


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Start everything, print per-region URLs, report until Ctrl-C, stop what it started."""
    from pipeline.auth.keys import viewer_keys
    from pipeline.auth.viewer import issue
    from pipeline.cli import main as camlog
    from pipeline.devstack.regions import parse_regions
    from pipeline.runner import METRICS_PORTS, SystemRunner, start_group_at_end

    names = parse_regions(args.regions)
    stop = {"now": False}

    def on_signal(signum: int, frame: object) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if camlog(["dev", "up", "--regions", ",".join(names)]) != 0:
        raise CliError("could not start the regions' Kafka, Cassandra and MirrorMaker 2")
    per = region_settings(settings, names)
    runners: dict[str, SystemRunner] = {}
    try:
        t0 = time.monotonic()
        for i, (name, rs) in enumerate(per.items()):
            ports = {k: v + 10 * i for k, v in METRICS_PORTS.items()}
            runners[name] = runner = SystemRunner(rs, Path(settings.state_dir) / "demo-logs" / name,
                                                  metrics_ports=ports)
            start_group_at_end(rs, "camlog-demo")
            runner.start_services(worker_args=("--app-id", "camlog-demo"), group="camlog-demo")
        from pipeline.device.camera import stream_names

        streams: list[str] = []
        for i, name in enumerate(names):  # cameras split between home regions, in turn
            count = len(range(i, args.cameras, len(names)))
            if not count:
                continue
            order = names[i:] + names[:i]  # home first, then the others
            streams += stream_names(f"{args.stream}-{name}", count)
            bridges = ",".join(f"http://{per[n].bridge_addr}" for n in order)
            runners[name].spawn("camera", "camera", "--count", str(count), "--stream",
                                f"{args.stream}-{name}", "--fps", str(args.fps),
                                "--size", args.size, "--bridge", bridges)
        token = issue(viewer_keys(settings), [f"{args.stream}*"], 12 * 3600, time.time())
        print(f"\ncamlog is up in {len(names)} regions ({time.monotonic() - t0:.1f}s after the "
              "stack was ready)")
        for name, rs in per.items():
            print(f"  {name}: bridge http://{rs.bridge_addr}  dashboard "
                  f"http://{rs.playback_addr}/?token={token}")
        for sid in streams:
            print(f"  {sid:<12} " + "  ".join(
                f"http://{rs.playback_addr}/watch/{sid}?token={token}" for rs in per.values()))
        print("Any region's playback serves every camera. Ctrl-C stops everything the demo "
              "started.\n")
        started = {id(c): time.monotonic() for r in runners.values() for c in r.children}
        while not stop["now"]:
            time.sleep(1.0)
            # A supervisor, as a deployment has one: what dies (a crash, `camlog drill`) is
            # started again, at most every RESTART_S, while its region's Kafka may be down.
            for n, r in runners.items():
                for c in r.children:
                    if not c.alive and time.monotonic() - started.get(id(c), 0) >= RESTART_S:
                        print(f"{n}/{c.name} exited ({c.proc.returncode if c.proc else '?'}); "
                              f"restarting (log {c.log})", file=sys.stderr)
                        c.start()
                        started[id(c)] = time.monotonic()
        print("\nstopping…")
        return 0
    finally:
        for runner in runners.values():
            runner.stop()
        if not args.keep_services:
            camlog(["dev", "down"])
