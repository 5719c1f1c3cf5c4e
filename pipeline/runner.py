"""Starts and stops camlog's own services as child processes (used by ``camlog demo``, tests,
benchmarks)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.config import Settings
from pipeline.errors import CamlogError
from pipeline.kafka import topics

__all__ = ["METRICS_PORTS", "Child", "SystemRunner", "http_ok", "start_group_at_end", "views_group",
           "worker_ready"]

#: The topics camlog's worker consumes.
WORKER_TOPICS = (topics.FRAMES, topics.SEGMENTS, topics.SESSIONS, topics.PLAYBACK,
                 topics.DLQ)

#: Prometheus scrape ports of the demo's processes (documented in the README).
METRICS_PORTS = {"bridge": 9464, "worker": 9465, "playback": 9466, "camera": 9467, "views": 9468}


@dataclass
class Child:
    """One supervised child process with its log file."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen | None = None

    def start(self) -> None:
        """Start the process in its own process group, output to its log file."""
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as fh:  # the child has its own copy of the descriptor
            self.proc = subprocess.Popen(self.argv, env=self.env, stdout=fh,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)

    @property
    def alive(self) -> bool:
        """True while the process runs."""
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 10.0, sig: int = signal.SIGTERM) -> None:
        """Signal the whole process group, then SIGKILL it if it outlives ``timeout``."""
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, sig)
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
        except ProcessLookupError:
            pass

    def tail(self, n: int = 20) -> str:
        """The last lines of its log, for error messages."""
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


def http_ok(url: str) -> bool:
    """True when GET ``url`` answers 200 within 2 s (readiness probes)."""
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status == 200
    except Exception:
        return False


def views_group(group: str) -> str:
    """The consumer group of a worker's view process (``camlog worker`` runs views apart)."""
    return f"{group}-views"


def worker_ready(settings: Settings, group: str = "camlog-worker", views: bool = True) -> bool:
    """The worker's consumer groups (segmenter, and views unless told not) are STABLE with
    members (they own partitions)."""
    from confluent_kafka.admin import AdminClient

    groups = [group, views_group(group)] if views else [group]
    try:
        admin = AdminClient({"bootstrap.servers": settings.kafka})
        found = admin.describe_consumer_groups(groups)
        for g in groups:
            desc = found[g].result(timeout=5)
            if not (str(desc.state).upper().endswith("STABLE") and len(desc.members) > 0):
                return False
        return True
    except Exception:
        return False


def start_group_at_end(settings: Settings, group: str,
                       topics: tuple[str, ...] = WORKER_TOPICS) -> bool:
    """Commit the current end offsets for a worker's consumer groups that have none yet.

    A new deployment (demo, canary, test) then starts exactly at the head of the log with no
    race against producers; an existing group is left alone. Both of a worker's groups (its
    segmenter's ``group`` and its views' ``views_group(group)``) are seeded with the same
    offsets. Returns True when ``group`` was seeded.
    """
    from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, TopicPartition
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": settings.kafka})
    listing = admin.list_consumer_groups(request_timeout=10).result(timeout=15)
    existing = {g.group_id for g in listing.valid}
    groups = [g for g in (group, views_group(group)) if g not in existing]
    if group not in groups:
        return False
    probe = Consumer({"bootstrap.servers": settings.kafka, "group.id": f"{group}-probe"})
    try:
        md = probe.list_topics(timeout=10)
        tps = [TopicPartition(t, p,
                              probe.get_watermark_offsets(TopicPartition(t, p), timeout=10)[1])
               for t in topics for p in md.topics[t].partitions]
    finally:
        probe.close()
    for g in groups:  # one group per call (the admin API's rule)
        futs = admin.alter_consumer_group_offsets([ConsumerGroupTopicPartitions(g, tps)])
        for fut in futs.values():
            fut.result(timeout=30)
    return True


@dataclass
class SystemRunner:
    """Bridge, worker and playback as child processes sharing one settings object via env."""

    settings: Settings
    log_dir: Path
    telemetry: str = "prometheus"
    extra_env: dict[str, str] = field(default_factory=dict)
    children: list[Child] = field(default_factory=list)
    #: Scrape port per child name; None: ``METRICS_PORTS`` when telemetry includes prometheus.
    metrics_ports: dict[str, int] | None = None

    def _env(self, name: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update({
            "CAMLOG_KAFKA": self.settings.kafka,
            "CAMLOG_CASSANDRA": ",".join(self.settings.cassandra),
            "CAMLOG_KEYSPACE": self.settings.keyspace,
            "CAMLOG_STATE_DIR": str(self.settings.state_dir),
            "CAMLOG_REGION": self.settings.region,
            "CAMLOG_TELEMETRY": self.telemetry,
            "CAMLOG_METRICS_PORT": str(self._ports().get(name, 0)),
            # the worker's view child (a worker named worker-2 gets none: one port, one process)
            "CAMLOG_VIEWS_METRICS_PORT": str(self._ports().get("views", 0) if name == "worker"
                                             else 0),
            "CAMLOG_BRIDGE_ADDR": self.settings.bridge_addr,
            "CAMLOG_PLAYBACK_ADDR": self.settings.playback_addr,
            "CAMLOG_IDLE_TIMEOUT_S": str(self.settings.idle_timeout_s),
            "CAMLOG_SEGMENT_TARGET_S": str(self.settings.segment_target_s),
            "CAMLOG_SEGMENT_MAX_S": str(self.settings.segment_max_s),
            "PYTHONUNBUFFERED": "1",
        })
        env.update(self.extra_env)
        return env

    def _ports(self) -> dict[str, int]:
        if self.metrics_ports is not None:
            return self.metrics_ports
        return METRICS_PORTS if "prometheus" in self.telemetry else {}

    def spawn(self, name: str, *args: str) -> Child:
        """Start ``camlog <args>`` as child ``name``."""
        child = Child(name, [sys.executable, "-m", "pipeline", *args], self._env(name),
                      self.log_dir / f"{name}.log")
        child.start()
        self.children.append(child)
        return child

    def wait(self, what: str, ready: Callable[[], bool], timeout: float = 90.0,
             child: Child | None = None) -> None:
        """Poll ``ready`` until true; fail with the child's log tail if it dies or times out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready():
                return
            if child is not None and not child.alive:
                raise CamlogError(f"{what} exited early:\n{child.tail()}")
            time.sleep(0.3)
        tail = child.tail() if child else ""
        raise CamlogError(f"{what} not ready after {timeout:.0f}s\n{tail}")

    def start_services(self, worker_args: tuple[str, ...] = (),
                       group: str = "camlog-worker") -> None:
        """Start bridge, worker and playback and wait until each is really ready.

        ``worker_args`` go to ``camlog worker`` (e.g. ``--app-id``); ``group`` is its consumer
        group.
        """
        bridge = self.spawn("bridge", "bridge")
        worker = self.spawn("worker", "worker", *worker_args)
        playback = self.spawn("playback", "playback")
        self.wait("bridge", lambda: http_ok(f"http://{self.settings.bridge_addr}/readyz"),
                  child=bridge)
        self.wait("playback", lambda: http_ok(f"http://{self.settings.playback_addr}/readyz"),
                  child=playback)
        self.wait("worker", lambda: worker_ready(self.settings, group), timeout=120, child=worker)

    def stop(self) -> None:
        """Stop every child, newest first."""
        for child in reversed(self.children):
            child.stop()
        self.children.clear()

    def __enter__(self) -> SystemRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
