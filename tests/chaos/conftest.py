"""The chaos harness: the real system as child processes, real dependency faults, and the check
that every acknowledged frame ends up in exactly one stored segment (read back by ffprobe).

Faults are done to the real processes of the dev stack (SIGKILL, SIGSTOP/SIGCONT) and undone
with the same code `camlog dev up` runs, so the next test finds the stack as it was.
"""

from __future__ import annotations

import ast
import signal
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest

from pipeline.config import Settings
from pipeline.devstack.stack import Stack, up
from pipeline.runner import Child, SystemRunner, start_group_at_end
from tests.chaos.cluster import KafkaCluster
from tests.clients import ffprobe_frames
from tests.system import FIGURES, end_offsets, free_port, log_frames, wait_stored

pytestmark = [pytest.mark.services, pytest.mark.slow, pytest.mark.chaos]


class DevStack:
    """The running dev stack's processes, to fault and to restore."""

    def __init__(self, settings: Settings) -> None:
        self.stack = Stack(settings.state_dir)
        self.kafka_spec, self.cassandra_spec = self.stack.load()

    def cassandra(self) -> psutil.Process:
        """The Cassandra JVM (fails the test if the stack has none running)."""
        assert self.cassandra_spec, "the dev stack has no Cassandra"
        proc = self.stack.cassandra_node(self.cassandra_spec).pidfile.process()
        assert proc is not None, "Cassandra is not running"
        return proc

    def kill_cassandra(self, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to Cassandra; after SIGKILL wait until it is gone."""
        proc = self.cassandra()
        proc.send_signal(sig)
        if sig == signal.SIGKILL:
            proc.wait(30)

    def start_cassandra(self) -> float:
        """Start Cassandra again as `camlog dev up` does; seconds until CQL answers."""
        t0 = time.monotonic()
        up(self.stack, None, self.cassandra_spec, apply=None, say=lambda _line: None)
        return time.monotonic() - t0

    def kafka(self) -> list[psutil.Process]:
        """The broker JVMs."""
        assert self.kafka_spec, "the dev stack has no Kafka"
        procs = [n.pidfile.process() for n in self.stack.kafka_nodes(self.kafka_spec)]
        assert all(procs), "a Kafka broker is not running"
        return procs  # type: ignore[return-value]

    def kill_kafka(self, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to every broker; after SIGKILL wait until they are gone."""
        procs = self.kafka()
        for p in procs:
            p.send_signal(sig)
        if sig == signal.SIGKILL:
            psutil.wait_procs(procs, timeout=30)

    def start_kafka(self) -> float:
        """Start the brokers again as `camlog dev up` does; seconds until metadata answers."""
        t0 = time.monotonic()
        up(self.stack, self.kafka_spec, None, apply=None, say=lambda _line: None)
        return time.monotonic() - t0

    def restore(self) -> None:
        """Whatever a test did: continue stopped processes, start missing ones."""
        for proc in psutil.process_iter():
            try:
                if proc.status() == psutil.STATUS_STOPPED:
                    proc.send_signal(signal.SIGCONT)
            except psutil.Error:
                pass
        up(self.stack, self.kafka_spec, self.cassandra_spec, apply=None, say=lambda _line: None)


@pytest.fixture
def devstack(services: Settings) -> Iterator[DevStack]:
    """The dev stack, restored after the test whatever it did."""
    ds = DevStack(services)
    try:
        yield ds
    finally:
        ds.restore()


@dataclass
class Outcome:
    """What one stream looks like after a run: log, store and an independent decoder agree?"""

    logged_frames: int
    stored_frames: int
    decoded_frames: int
    duplicate_segments: int
    sequences_contiguous: bool


@dataclass
class ChaosSystem:
    """Bridge, worker and playback on free ports in a consumer group of their own."""

    settings: Settings
    runner: SystemRunner
    prefix: str
    group: str
    since: dict[int, int]
    t0_us: int
    tmp: Path
    worker_args: tuple[str, ...] = ()
    cameras: list[Child] = field(default_factory=list)

    def child(self, name: str) -> Child:
        """The newest child process called ``name``."""
        return next(c for c in reversed(self.runner.children) if c.name == name)

    def start_cameras(self, count: int, seconds: float, name: str = "cam",
                      *extra: str, bridge: str | None = None) -> Child:
        """``camlog camera`` with ``count`` simulated cameras for ``seconds`` (to ``bridge``)."""
        cam = self.runner.spawn(f"camera-{name}", "camera", "--count", str(count), "--stream",
                                f"{self.prefix}-{name}", "--fps", "15", "--size", "320x180",
                                "--gop", "1", "--duration", str(seconds), "--bridge",
                                f"http://{bridge or self.settings.bridge_addr}", *extra)
        self.cameras.append(cam)
        return cam

    def restart(self, name: str, sig: int = signal.SIGKILL, env: dict[str, str] | None = None,
                ) -> Child:
        """Kill child ``name`` with ``sig`` and start it again with the same arguments (and
        ``env`` added to its environment: an upgrade)."""
        old = self.child(name)
        old.stop(timeout=0.1 if sig == signal.SIGKILL else 10.0, sig=sig)
        new = Child(old.name, old.argv, {**old.env, **(env or {})}, old.log)
        new.start()
        self.runner.children.append(new)
        return new

    @staticmethod
    def camera_result(cam: Child, timeout: float) -> dict[str, Any]:
        """Wait for a camera run to end and parse its ``done: {...}`` summary line."""
        cam.proc.wait(timeout)
        assert cam.proc.returncode == 0, cam.tail()
        line = next(ln for ln in reversed(cam.log.read_text().splitlines())
                    if ln.startswith("done: "))
        return ast.literal_eval(line.removeprefix("done: "))

    def outcome(self, timeout: float = 90.0) -> dict[str, Outcome]:
        """Per stream: frames in the log, frames stored, frames ffprobe decodes from storage."""
        logged = {s: sum(v.values())
                  for s, v in log_frames(self.settings, self.since, self.prefix).items()}
        t1_us = int(time.time() * 1e6)
        counts, segments = wait_stored(self.settings, logged, self.t0_us - 60_000_000,
                                       t1_us + 60_000_000, self.tmp, timeout=timeout)
        out = {}
        for s, (segs, path, _inits) in segments.items():
            seqs = [x.sequence for x in segs]
            out[s] = Outcome(
                logged_frames=logged[s], stored_frames=counts[s],
                decoded_frames=len(ffprobe_frames(path)) if segs else 0,
                duplicate_segments=len(segs) - len({x.segment_id for x in segs}),
                sequences_contiguous=seqs == list(range(seqs[0], seqs[0] + len(seqs)))
                if seqs else True)
        return out


def assert_exactly_once(outcome: dict[str, Outcome], streams: set[str]) -> None:
    """Every logged frame stored once and decodable; no stream missing."""
    assert set(outcome) == streams, (sorted(outcome), sorted(streams))
    for s, o in outcome.items():
        assert o.stored_frames == o.logged_frames, (s, o)
        assert o.decoded_frames == o.logged_frames, (s, o)
        assert o.duplicate_segments == 0 and o.sequences_contiguous, (s, o)


@contextmanager
def system_on(services: Settings, tmp_path: Path) -> Iterator[ChaosSystem]:
    """Start a fresh system (new group, new stream prefix) against ``services``' Kafka."""
    prefix = f"chaos{uuid.uuid4().hex[:6]}"
    settings = services.replace(bridge_addr=f"127.0.0.1:{free_port()}",
                                playback_addr=f"127.0.0.1:{free_port()}", idle_timeout_s=5.0)
    runner = SystemRunner(settings, tmp_path / "logs", telemetry="none")
    group = f"camlog-worker-{prefix}"
    try:
        assert start_group_at_end(settings, group)
        args = ("--app-id", group, "--stream-prefix", prefix)
        runner.start_services(worker_args=args, group=group)
        yield ChaosSystem(settings, runner, prefix, group, end_offsets(settings, "camlog.frames"),
                          int(time.time() * 1e6), tmp_path, args)
    finally:
        runner.stop()


@pytest.fixture
def chaos_system(services: Settings, tmp_path: Path) -> Iterator[ChaosSystem]:
    """A fresh system (new group, new stream prefix) for one chaos test."""
    with system_on(services, tmp_path) as system:
        yield system


@pytest.fixture(scope="module")
def kafka_cluster(services: Settings, tmp_path_factory: pytest.TempPathFactory,
                  ) -> Iterator[KafkaCluster]:
    """A three-broker KRaft cluster of the module's own (RF 3, min.insync 2), purged after."""
    cluster = KafkaCluster(tmp_path_factory.mktemp("kafka3"),
                           Path(services.state_dir).resolve() / "cache")
    try:
        cluster.start(services)
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def chaos_system3(services: Settings, kafka_cluster: KafkaCluster, tmp_path: Path,
                  ) -> Iterator[ChaosSystem]:
    """A fresh system on the three-broker cluster (Cassandra stays the dev stack's)."""
    kafka_cluster.restart_missing()  # a node an earlier test killed
    with system_on(services.replace(kafka=kafka_cluster.bootstrap), tmp_path) as system:
        yield system


def report(name: str, **figures: Any) -> None:
    """Keep a chaos case's figures for the run's summary (printed at the end of pytest)."""
    FIGURES.append(f"chaos {name}: " + "  ".join(f"{k}={v}" for k, v in figures.items()))
