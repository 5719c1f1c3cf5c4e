"""A three-broker Kafka cluster of a test's own, and a probe that measures produce stalls.

The default dev stack has one broker, so a broker failover needs a cluster of its own: started
by the same code as `camlog dev up --kafka-brokers 3` in a temporary state folder on free ports,
with camlog's topology applied (RF 3, min.insync.replicas 2). Cassandra stays the shared one.
"""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from pipeline.config import Settings
from pipeline.devstack.stack import KafkaSpec, Stack, down, up
from pipeline.kafka.producer import EventProducer

__all__ = ["AckProbe", "KafkaCluster", "free_base"]


CONTROLLER_OFFSET = 1000


def free_base(span: int = 3) -> int:
    """A port p with p..p+span-1 and p+CONTROLLER_OFFSET.. free to bind on loopback.

    Every port stays below the kernel's ephemeral range (32768+): a port there can be taken by
    any outgoing connection between this check and the broker's bind, which is how a broker of
    this cluster once failed to start in CI. Bindability, not a refused connect, is the test.
    """
    for base in range(23092, 31000 - CONTROLLER_OFFSET, 23):
        ports = [base + i for i in range(span)] + [base + CONTROLLER_OFFSET + i
                                                    for i in range(span)]
        if all(_bindable(p) for p in ports):
            return base
    raise RuntimeError("no free ports")


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _tail(path: Path, n: int = 4) -> list[str]:
    try:
        return path.read_text(errors="replace").splitlines()[-n:]
    except OSError:
        return []


@dataclass
class KafkaCluster:
    """``brokers`` KRaft nodes under ``root`` (jars from ``cache``), camlog's topics applied."""

    root: Path
    cache: Path
    brokers: int = 3
    base: int = field(default_factory=free_base)

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if not (self.root / "cache").exists():
            self.cache.mkdir(parents=True, exist_ok=True)
            (self.root / "cache").symlink_to(self.cache.resolve())
        self.stack = Stack(self.root)
        self.spec = KafkaSpec(brokers=self.brokers, port=self.base,
                              controller_port=self.base + CONTROLLER_OFFSET)

    @property
    def bootstrap(self) -> str:
        """Bootstrap servers of every node."""
        return ",".join(f"127.0.0.1:{self.base + i}" for i in range(self.brokers))

    def start(self, settings: Settings) -> float:
        """Start missing nodes, wait for all, apply the Kafka topology; seconds it took."""
        from pipeline.topology.apply import apply_all

        t0 = time.monotonic()

        def apply(_k: object, _c: object) -> None:
            apply_all(settings.replace(kafka=self.bootstrap), brokers=self.brokers,
                      kafka=True, cassandra=False)

        try:
            up(self.stack, self.spec, None, apply, say=lambda _line: None)
        except RuntimeError as exc:  # say why a node died: its stdout and log tails
            tails = [f"kafka-{n.node_id}: " + " | ".join(_tail(n.home / "stdout.log")
                                                         + _tail(n.home / "server.log"))
                     for n in self.stack.kafka_nodes(self.spec) if not n.pidfile.process()]
            raise RuntimeError(f"{exc}\n" + "\n".join(tails)) from exc
        self.wait_in_sync()
        return time.monotonic() - t0

    def wait_in_sync(self, timeout: float = 120.0) -> None:
        """Until every partition of every topic has a leader that answers and a full ISR.

        Right after topics are created (or a node rejoins) leaderships still move, and a client
        asking too early gets NOT_LEADER_FOR_PARTITION.
        """
        from confluent_kafka import Consumer, KafkaException, TopicPartition

        deadline = time.monotonic() + timeout
        c = Consumer({"bootstrap.servers": self.bootstrap, "group.id": "wait-in-sync"})
        try:
            while True:
                try:
                    md = c.list_topics(timeout=10)
                    parts = [(t, p) for t, tm in md.topics.items() if not t.startswith("__")
                             for p, pm in tm.partitions.items()
                             if pm.leader < 0 or len(pm.isrs) < len(pm.replicas)]
                    if not parts:
                        for t, tm in md.topics.items():
                            for p in tm.partitions:
                                c.get_watermark_offsets(TopicPartition(t, p), timeout=10)
                        return
                except KafkaException as exc:
                    parts = [str(exc)]
                if time.monotonic() > deadline:
                    raise RuntimeError(f"cluster not in sync after {timeout:.0f} s: {parts[:5]}")
                time.sleep(0.5)
        finally:
            c.close()

    def restart_missing(self) -> float:
        """Start the nodes that are not running again; seconds until all answer metadata."""
        t0 = time.monotonic()
        up(self.stack, self.stack.load()[0], None, apply=None, say=lambda _line: None)
        self.wait_in_sync()
        return time.monotonic() - t0

    def process(self, node_id: int) -> psutil.Process:
        """The JVM of node ``node_id`` (1-based)."""
        node = self.stack.kafka_nodes(self.stack.load()[0])[node_id - 1]
        proc = node.pidfile.process()
        assert proc is not None, f"kafka-{node_id} is not running"
        return proc

    def quorum_leader(self) -> int:
        """The node id of the active KRaft controller, as the nodes' quorum-state files say."""
        votes: dict[int, int] = {}
        for node in self.stack.kafka_nodes(self.stack.load()[0]):
            try:
                state = json.loads((node.data_dir / "__cluster_metadata-0" / "quorum-state")
                                   .read_text())
            except (OSError, ValueError):
                continue
            leader = int(state.get("leaderId", -1))
            votes[leader] = votes.get(leader, 0) + 1
        return max(votes, key=votes.get) if votes else -1

    def leader(self, topic: str, partition: int) -> int:
        """The broker id leading ``topic``/``partition`` now."""
        from confluent_kafka.admin import AdminClient

        md = AdminClient({"bootstrap.servers": self.bootstrap}).list_topics(topic, timeout=10)
        return md.topics[topic].partitions[partition].leader

    def kill(self, node_id: int) -> float:
        """SIGKILL node ``node_id``; returns the monotonic time of the kill."""
        proc = self.process(node_id)
        t = time.monotonic()
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        return t

    def stop(self) -> None:
        """Stop every node and delete the cluster's data."""
        down(self.stack, purge=True, say=lambda _line: None)


class AckProbe:
    """Produces one small message per partition every ``interval`` s with the bridge's client
    configuration (idempotent, acks=all) and records when each partition's acks arrive."""

    def __init__(self, bootstrap: str, partitions: int = 6, interval: float = 0.02,
                 topic: str | None = None):
        self.bootstrap, self.partitions, self.interval = bootstrap, partitions, interval
        self.topic = topic or f"probe-{uuid.uuid4().hex[:8]}"
        self.acks: dict[int, list[float]] = {p: [] for p in range(partitions)}
        self.failed = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Create the probe topic (RF 3, min.insync 2) and start producing."""
        from confluent_kafka.admin import AdminClient, NewTopic

        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        new = NewTopic(self.topic, num_partitions=self.partitions, replication_factor=3,
                       config={"min.insync.replicas": "2"})
        admin.create_topics([new])[self.topic].result(30)
        self._thread = threading.Thread(target=self._run, name="ack-probe", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        from confluent_kafka import Producer

        producer = Producer(EventProducer(self.bootstrap).config)

        def delivered(err: object, msg: object) -> None:
            if err is not None:
                self.failed += 1
            else:
                self.acks[msg.partition()].append(time.monotonic())  # type: ignore[attr-defined]

        while not self._stop.is_set():
            for p in range(self.partitions):
                with contextlib.suppress(BufferError):
                    producer.produce(self.topic, b"x" * 100, partition=p, on_delivery=delivered)
            producer.poll(self.interval)
        producer.flush(60)

    def stop(self) -> None:
        """Stop producing and wait for outstanding deliveries."""
        self._stop.set()
        if self._thread:
            self._thread.join(90)

    def stall(self, since: float) -> float:
        """The longest gap between two acks of one partition after ``since`` (seconds)."""
        worst = 0.0
        for times in self.acks.values():
            prev = max((t for t in times if t <= since), default=since)
            for t in (t for t in times if t > since):
                worst = max(worst, t - prev)
                prev = t
        return worst

    def leaders(self) -> dict[int, int]:
        """Partition → leader broker id of the probe topic now."""
        from confluent_kafka.admin import AdminClient

        md = AdminClient({"bootstrap.servers": self.bootstrap}).list_topics(self.topic, timeout=10)
        return {p: m.leader for p, m in md.topics[self.topic].partitions.items()}
