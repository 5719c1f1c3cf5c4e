"""Real processes for edge tests: playback origins with Prometheus metrics, live feeds into the
real Cassandra, and ``camlog edge``; plus reading the origins' request counts."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.playback.feed import Feed, record
from tests.system import free_port

__all__ = ["LiveFeeds", "Proc", "origin_requests", "start_edge", "start_origin"]

_METRIC = "camlog_playback_request_duration_milliseconds"


@dataclass
class Proc:
    """A started child: its address (host:port), metrics port, log, and how it was started."""

    addr: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    metrics_port: int = 0
    proc: subprocess.Popen | None = None

    def start(self, ready_path: str, timeout_s: float = 60.0) -> None:
        with open(self.log, "ab") as fh:
            self.proc = subprocess.Popen(self.argv, env=self.env, stdout=fh, stderr=fh,
                                         start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                with urllib.request.urlopen(f"http://{self.addr}{ready_path}", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.argv[3]} did not start:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def start_origin(log_dir: Path) -> Proc:
    """``camlog playback`` on a free port, Prometheus metrics on another, no Kafka events."""
    port, mport = free_port(), free_port()
    env = {**os.environ, "CAMLOG_TELEMETRY": "prometheus", "CAMLOG_METRICS_PORT": str(mport),
           "CAMLOG_BRIDGE_ADDR": ""}
    p = Proc(f"127.0.0.1:{port}", [sys.executable, "-m", "pipeline", "playback", "--addr",
                                   f"127.0.0.1:{port}", "--no-events"], env,
             log_dir / f"origin-{port}.log", mport)
    p.start("/readyz")
    return p


def start_edge(origins: list[Proc], prefix: Path, workers: int = 2) -> Proc:
    """``camlog edge`` in front of ``origins`` with its own prefix."""
    port = free_port()
    argv = [sys.executable, "-m", "pipeline", "edge", "--addr", f"127.0.0.1:{port}",
            "--prefix", str(prefix), "--workers", str(workers)]
    for o in origins:
        argv += ["--origin", o.addr]
    p = Proc(f"127.0.0.1:{port}", argv, dict(os.environ), prefix.parent / f"edge-{port}.log")
    prefix.mkdir(parents=True, exist_ok=True)
    p.start("/_edge/healthz")
    return p


def origin_requests(origin: Proc) -> Counter:
    """Requests the origin counted, by (route, status class), from its Prometheus endpoint."""
    with urllib.request.urlopen(f"http://127.0.0.1:{origin.metrics_port}/metrics",
                                timeout=5) as r:
        text = r.read().decode()
    out: Counter = Counter()
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == f"{_METRIC}_count":
                out[(s.labels["route"], s.labels["status"])] += int(s.value)
    return out


class LiveFeeds(threading.Thread):
    """Live streams written into Cassandra as the worker would, one 1 s segment per second."""

    def __init__(self, settings: object, stream_ids: list[str]) -> None:
        super().__init__(daemon=True)
        self.settings, self.stream_ids = settings, stream_ids
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self._stop_flag = threading.Event()

    def run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # surfaced by the fixture
            self.error = exc
            self.ready.set()

    async def _main(self) -> None:
        from pipeline.store.cluster import connect
        from pipeline.store.segments import SegmentStore
        from pipeline.store.views import ViewStore

        s = self.settings
        session = await asyncio.to_thread(connect, s, s.keyspace)
        seg, views = SegmentStore(s, session), ViewStore(s, session)
        await seg.start()
        await views.start()
        rec = await asyncio.to_thread(record, 6)
        now = int(time.time()) * 1_000_000
        feeds = [Feed(sid, rec, seg, views) for sid in self.stream_ids]
        for f in feeds:
            await f.put_init()
            for i in range(3):
                await f.publish(i, now - (3 - i) * 1_000_000)
        self.ready.set()
        stop = asyncio.Event()
        waiter = asyncio.create_task(asyncio.to_thread(self._stop_flag.wait))
        waiter.add_done_callback(lambda _: stop.set())
        async with asyncio.TaskGroup() as tg:
            for f in feeds:
                tg.create_task(f.run_live(3, now, stop))
        await waiter
        session.cluster.shutdown()

    def stop(self) -> None:
        self._stop_flag.set()
        self.join(15)
