"""The whole system for benchmarks: bridge, a private worker and playback as child processes.

Everything runs under a private stream prefix and a private worker consumer group (committed at
the topics' ends before it starts), on free ports, so a benchmark neither sees nor disturbs other
streams. Trials drive ``camlog camera`` children and judge them from the camera's own report,
the worker's lag and the segments found in Cassandra.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import os
import re
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.config import Settings
from pipeline.kafka import topics
from pipeline.runner import Child, SystemRunner, http_ok, start_group_at_end, worker_ready

__all__ = [
    "BenchSystem",
    "TrialSpec",
    "camera_summary",
    "progress_samples",
    "stored_segments",
    "stream_ids",
]

_PROGRESS = re.compile(r"frames/s (\d+)\s+acked/s (\d+)\s+retries (\d+)\s+dropped (\d+)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stream_ids(stream: str, count: int) -> list[str]:
    """The ids ``camlog camera --stream S --count N`` uses."""
    from pipeline.device.camera import stream_names

    return stream_names(stream, count)


async def _stored(settings: Settings, streams: list[str], start_us: int, end_us: int) -> list:
    from pipeline.store.segments import SegmentStore

    store = SegmentStore(settings)
    await store.start()
    try:
        out: list = []
        for i in range(0, len(streams), 32):
            batch = await asyncio.gather(*(store.segments_between(s, start_us, end_us)
                                           for s in streams[i:i + 32]))
            out += [row for rows in batch for row in rows]
        return out
    finally:
        await store.close()


def stored_segments(settings: Settings, streams: list[str], start_us: int, end_us: int) -> list:
    """Every stored segment row of ``streams`` overlapping [start, end)."""
    return asyncio.run(_stored(settings, streams, start_us, end_us))


@dataclass(frozen=True)
class TrialSpec:
    """One camera fleet to run against the system."""

    cameras: int
    size: str
    seconds: float
    fps: float = 15.0
    chunk_frames: int | None = None  # None: the camera CLI's own choice
    bitrate: str = "500k"
    max_lag_s: float = 15.0  # worker lag (seconds behind) that counts as unbounded
    variants: int | None = None  # distinct encoded patterns (fewer = faster camera start-up)


@dataclass
class BenchSystem:
    """Bridge, worker (private group and prefix) and playback on free ports."""

    settings: Settings
    log_dir: Path
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    idle_timeout_s: float = 3.0
    bridge_metrics: bool = False  # a Prometheus scrape port on the bridge (the soak reads it)
    worker_one_process: bool = False  # segmenter and views in one Faust app (the old shape)

    def __post_init__(self) -> None:
        self.prefix = f"bench-{self.run_id}-"
        self.app_id = f"camlog-bench-{self.run_id}"
        self.settings = self.settings.replace(
            bridge_addr=f"127.0.0.1:{_free_port()}", playback_addr=f"127.0.0.1:{_free_port()}",
            idle_timeout_s=self.idle_timeout_s)
        root = str(Path(__file__).resolve().parents[2])  # workers import ops.bench.live_views
        path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
        self.metrics_ports = {"bridge": _free_port()} if self.bridge_metrics else {}
        self.runner = SystemRunner(self.settings, self.log_dir, telemetry="none",
                                   extra_env={"CAMLOG_LOG_LEVEL": "WARNING", "PYTHONPATH": path},
                                   metrics_ports=self.metrics_ports)
        self._admin = None
        self._trials = 0
        self._service_pids: dict[str, int] = {}
        self._peek = None  # a consumer that reads the oldest uncommitted message's timestamp

    @property
    def bridge_url(self) -> str:
        """Where cameras push."""
        return f"http://{self.settings.bridge_addr}"

    @property
    def playback_url(self) -> str:
        """Where viewers pull."""
        return f"http://{self.settings.playback_addr}"

    def start(self) -> None:
        """Start the three services and wait until each is really ready."""
        from pipeline.topology.kafka import admin_client

        self._admin = admin_client(self.settings)
        try:  # Kafka and Cassandra too, when `camlog dev up` started them, for CPU shares
            from pipeline.devstack.stack import Stack, status

            self._service_pids = {str(r["name"]): int(r["pid"])
                                  for r in status(Stack(self.settings.state_dir)) if r["pid"]}
        except Exception:
            self._service_pids = {}
        start_group_at_end(self.settings, self.app_id)  # its segmenter and view groups
        r = self.runner
        bridge = r.spawn("bridge", "bridge", "--rate", "10000", "--burst", "10000")
        worker = r.spawn("worker", "worker", "--only", "pipeline.agents.segmenter",
                         "--only", "ops.bench.live_views", "--app-id", self.app_id,
                         "--stream-prefix", self.prefix,
                         *(["--one-process"] if self.worker_one_process else []))
        playback = r.spawn("playback", "playback")
        r.wait("bridge", lambda: http_ok(f"{self.bridge_url}/readyz"), child=bridge)
        r.wait("playback", lambda: http_ok(f"{self.playback_url}/readyz"), child=playback)
        r.wait("worker", self._worker_ready, timeout=120, child=worker)

    def _worker_ready(self) -> bool:
        """Both of the worker's private groups (segmenter, views) are STABLE with members."""
        return worker_ready(self.settings, self.app_id, views=not self.worker_one_process)

    def stop(self) -> None:
        """Stop every child this system started."""
        self.runner.stop()
        if self._peek is not None:
            self._peek.close()
            self._peek = None

    def check_alive(self) -> None:
        """Fail loudly when a service died mid-benchmark."""
        from pipeline.errors import CamlogError

        for c in self.runner.children:
            if c.name in ("bridge", "worker", "playback") and not c.alive:
                raise CamlogError(f"{c.name} exited:\n{c.tail()}")

    def processes(self) -> dict[str, list]:
        """psutil processes per name: each live child (with its own children), Kafka, Cassandra."""
        import psutil

        pids: dict[str, list[int]] = {}  # children of one kind (two camera fleets) add up
        for c in self.runner.children:
            if c.proc is not None and c.alive:
                pids.setdefault(c.name.split("-", 1)[0], []).append(c.proc.pid)
        pids.update({k: [v] for k, v in self._service_pids.items()})
        out = {}
        for name, group in pids.items():
            for pid in group:
                try:
                    proc = psutil.Process(pid)
                    out.setdefault(name, []).extend([proc, *proc.children(recursive=True)])
                except psutil.Error:
                    continue
        return out

    def _per_process(self, measure: Callable) -> dict[str, float]:
        import psutil

        out = {}
        for name, procs in self.processes().items():
            try:
                out[name] = sum(measure(p) for p in procs)
            except psutil.Error:
                continue
        return out

    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds used so far by each child (with its own children) and by Kafka/Cassandra."""
        return self._per_process(lambda p: sum(p.cpu_times()[:2]))

    def rss_bytes(self) -> dict[str, float]:
        """Resident memory of each child (with its own children) and of Kafka/Cassandra."""
        return self._per_process(lambda p: p.memory_info().rss)

    def lag(self) -> tuple[int | None, float | None]:
        """The worker's lag on camlog.frames: (messages, seconds).

        Seconds = age of the oldest message not yet committed, so other producers' traffic on
        the shared topic counts for what it costs the worker, not per message of ours.
        """
        from confluent_kafka import TopicPartition

        from pipeline.admin.cluster import read_lag
        from pipeline.kafka.clients import consumer

        try:
            (g,) = read_lag(self._admin, [self.app_id])
        except Exception:
            return None, None
        parts = {tp: (max(c, 0), e) for tp, (c, e) in g.partitions.items()
                 if tp[0] == topics.FRAMES}
        msgs = sum(e - c for c, e in parts.values() if e > c)
        behind = [TopicPartition(t, p, c) for (t, p), (c, e) in parts.items() if e > c]
        if not behind:
            return msgs, 0.0
        if self._peek is None:
            self._peek = consumer(self.settings.kafka, f"{self.app_id}-peek", **{
                "enable.auto.commit": False, "fetch.max.bytes": 1 << 20,
                "max.partition.fetch.bytes": 1 << 16, "queued.max.messages.kbytes": 2048})
        first: dict[int, int] = {}
        self._peek.assign(behind)
        try:
            deadline = time.monotonic() + 3
            while len(first) < len(behind) and time.monotonic() < deadline:
                m = self._peek.poll(0.2)
                if m is not None and not m.error():
                    first.setdefault(m.partition(), m.timestamp()[1])
        finally:
            self._peek.unassign()
        if not first:
            return msgs, None
        return msgs, max(0.0, time.time() - min(first.values()) / 1000)

    def lag_frames(self) -> int | None:
        """The worker's consumer lag on camlog.frames, in messages (None when unknown)."""
        from pipeline.admin.cluster import read_lag

        try:
            (g,) = read_lag(self._admin, [self.app_id])
        except Exception:
            return None
        return sum(g.lag(tp) for tp in g.partitions if tp[0] == topics.FRAMES)

    def new_stream(self, tag: str) -> str:
        """A fresh stream name under the private prefix."""
        self._trials += 1
        return f"{self.prefix}{tag}-{self._trials}"

    def spawn_cameras(self, spec: TrialSpec, stream: str, *extra: str) -> Child:
        """``camlog camera`` for ``spec`` (plus ``extra`` options) as a child process."""
        args = ["camera", "--count", str(spec.cameras), "--fps", str(spec.fps),
                "--size", spec.size, "--bitrate", spec.bitrate, "--stream", stream,
                "--duration", str(spec.seconds), "--bridge", self.bridge_url]
        if spec.variants:
            args += ["--variants", str(spec.variants)]
        if spec.chunk_frames:
            args += ["--chunk-frames", str(spec.chunk_frames)]
        args += extra
        return self.runner.spawn(f"camera-{stream.removeprefix(self.prefix)}", *args)

    def finish_cameras(self, cam: Child, timeout: float) -> dict:
        """Wait for a camera child; its ``done:`` summary (empty when it never got there)."""
        deadline = time.monotonic() + timeout
        while cam.alive and time.monotonic() < deadline:
            time.sleep(0.5)
        cam.stop()
        self.runner.children.remove(cam)
        return camera_summary(cam.log.read_text(errors="replace"))

    def drain(self, streams: list[str], start_us: int, acked: int, timeout: float = 60.0,
              report: Callable[[str], None] = print) -> list:
        """Wait until the acked frames are all in stored segments (or nothing moves for 20 s)."""
        t0 = time.monotonic()
        last, last_change, rows = -1, t0, []
        time.sleep(self.idle_timeout_s + 1)  # the last segment of each stream seals on idle
        while time.monotonic() - t0 < timeout:
            rows = stored_segments(self.settings, streams, start_us,
                                   int(time.time() * 1e6) + 60_000_000)
            frames = sum(r.frame_count for r in rows)
            if frames >= acked:
                break
            if frames != last:
                last, last_change = frames, time.monotonic()
            elif time.monotonic() - last_change > 20:
                break
            report(f"    draining: {frames}/{acked} frames stored, lag {self.lag_frames()}")
            time.sleep(3)
        return rows


def camera_summary(log: str) -> dict:
    """The camera CLI's final ``done: {...}`` dict plus its last progress figures."""
    out: dict = {}
    for line in log.splitlines():
        if line.startswith("done: "):
            with contextlib.suppress(ValueError, SyntaxError):
                out.update(ast.literal_eval(line[6:]))
    return out


def progress_samples(log: str) -> list[tuple[int, int, int, int]]:
    """(frames/s, acked/s, retries, dropped) from each camera progress line, in order."""
    return [tuple(map(int, m.groups())) for m in _PROGRESS.finditer(log)]


def count_chunks(settings: Settings, prefix: str, since_s: float) -> int:
    """FrameChunk events on camlog.frames keyed under ``prefix`` since ``since_s`` (epoch s)."""
    from confluent_kafka import TopicPartition

    from pipeline.kafka.clients import consumer

    c = consumer(settings.kafka, "bench-count-unused", **{"enable.auto.commit": False})
    try:
        parts = c.list_topics(topics.FRAMES, 10).topics[topics.FRAMES].partitions
        tps = [TopicPartition(topics.FRAMES, p, int(since_s * 1000)) for p in parts]
        starts = c.offsets_for_times(tps, 10)
        todo, n, want = {}, 0, prefix.encode()
        for tp in starts:
            hi = c.get_watermark_offsets(TopicPartition(topics.FRAMES, tp.partition), 10)[1]
            if 0 <= tp.offset < hi:
                todo[tp.partition] = hi
        c.assign([t for t in starts if t.partition in todo])
        idle = 0
        while todo and idle < 50:
            msgs = c.consume(1000, 0.2)
            idle = 0 if msgs else idle + 1
            for m in msgs:
                if m.error():
                    continue
                n += (m.key() or b"").startswith(want)
                if m.offset() + 1 >= todo.get(m.partition(), 0):
                    todo.pop(m.partition(), None)
        return n
    finally:
        c.close()
