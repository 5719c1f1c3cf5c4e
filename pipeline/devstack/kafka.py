"""Kafka in KRaft mode for development: config rendering, storage formatting, start, readiness.

Every node is a combined controller+broker (``process.roles=broker,controller``); the controller
quorum is all nodes (1 or 3). Node ``i`` (0-based) serves clients on ``port + i`` and the quorum on
``controller_port + i``; node ids are ``i + 1``.
"""

from __future__ import annotations

import base64
import logging
import subprocess
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pipeline.devstack.procs import PidFile, spawn

__all__ = [
    "KAFKA_VERSION",
    "KafkaNode",
    "bootstrap",
    "brokers_ready",
    "format_storage",
    "new_cluster_id",
    "plan_nodes",
    "render_log4j2",
    "render_server_properties",
    "start_node",
    "write_config",
]

KAFKA_VERSION = "4.1.2"
HEAP = ["-Xms256m", "-Xmx512m"]


@dataclass(frozen=True)
class KafkaNode:
    """One combined controller+broker process and where it keeps its files."""

    node_id: int
    port: int
    controller_port: int
    home: Path

    @property
    def data_dir(self) -> Path:
        """The KRaft log directory (metadata and topic data)."""
        return self.home / "data"

    @property
    def pidfile(self) -> PidFile:
        """Where `up` records the broker's pid."""
        return PidFile(self.home / "pid")


def plan_nodes(root: Path, count: int, port: int, controller_port: int) -> list[KafkaNode]:
    """The ``count`` nodes of a cluster living under ``root``."""
    return [KafkaNode(i + 1, port + i, controller_port + i, root / f"kafka-{i + 1}")
            for i in range(count)]


def bootstrap(nodes: Sequence[KafkaNode]) -> str:
    """Bootstrap servers string for clients."""
    return ",".join(f"127.0.0.1:{n.port}" for n in nodes)


#: Failover timing (README, "Failover"). A SIGKILLed node is only noticed by missing
#: heartbeats: the controller fences it after ``broker.session.timeout.ms`` (default 9 s) and only
#: then moves its partition leaderships and drops it from every ISR (an acks=all write waits for
#: every ISR member). If it was the active controller, the others first wait
#: ``controller.quorum.fetch.timeout.ms`` (default 2 s) and elect a new one. Measured on a
#: 3-node dev cluster: 9.6 s (broker) / 11.0 s (controller) of produce stall with the defaults,
#: ~3.5 s / ~5 s with these. Shorter would fence brokers that are merely starved on a shared
#: 2-core box (a fencing is itself a failover), so the session keeps six heartbeats of slack.
_FAILOVER = {
    "broker.heartbeat.interval.ms": 500,
    "broker.session.timeout.ms": 3000,
    "controller.quorum.fetch.timeout.ms": 1000,
    "controller.quorum.election.timeout.ms": 500,
    # A follower that is alive but stuck leaves the ISR after 10 s (default 30 s), so acks=all
    # writes are not held for half a minute; a killed one is dropped at fencing already.
    "replica.lag.time.max.ms": 10_000,
    # Never elect an out-of-sync replica: acknowledged writes must survive a failover.
    "unclean.leader.election.enable": "false",
}


def render_server_properties(node: KafkaNode, nodes: Sequence[KafkaNode]) -> str:
    """``server.properties`` of ``node`` in a cluster of ``nodes`` (loopback only)."""
    n = len(nodes)
    internal_rf = min(3, n)
    voters = ",".join(f"{m.node_id}@127.0.0.1:{m.controller_port}" for m in nodes)
    props = {
        "process.roles": "broker,controller",
        "node.id": node.node_id,
        "controller.quorum.voters": voters,
        "listeners": (f"PLAINTEXT://127.0.0.1:{node.port},"
                      f"CONTROLLER://127.0.0.1:{node.controller_port}"),
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{node.port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": node.data_dir,
        "num.partitions": 1,
        "default.replication.factor": internal_rf,
        "offsets.topic.replication.factor": internal_rf,
        "offsets.topic.num.partitions": 10,
        "transaction.state.log.replication.factor": internal_rf,
        "transaction.state.log.min.isr": min(2, n),
        "transaction.state.log.num.partitions": 4,
        "share.coordinator.state.topic.replication.factor": internal_rf,
        "share.coordinator.state.topic.min.isr": min(2, n),
        "group.initial.rebalance.delay.ms": 0,
        # Topics are created by `camlog topology apply`; a typo must not silently make a topic.
        "auto.create.topics.enable": "false",
        # A dev box has 2 cores: few threads per broker.
        "num.network.threads": 2,
        "num.io.threads": 2,
        "num.recovery.threads.per.data.dir": 1,
        "background.threads": 2,
        "log.cleaner.threads": 1,
        "log.cleaner.dedupe.buffer.size": 16 * 1024 * 1024,
        "message.max.bytes": 4 * 1024 * 1024,
        "replica.fetch.max.bytes": 4 * 1024 * 1024,
        "log.retention.check.interval.ms": 60_000,
        **_FAILOVER,
    }
    lines = ["# Generated by `camlog dev up`; edits are overwritten."]
    lines += [f"{k}={v}" for k, v in props.items()]
    return "\n".join(lines) + "\n"


def render_log4j2(log_file: Path) -> str:
    """log4j2 properties sending the broker's log to ``log_file`` (rolled at 50 MiB, 2 kept)."""
    return "\n".join([
        "status = warn",
        "appender.file.type = RollingFile",
        "appender.file.name = FILE",
        f"appender.file.fileName = {log_file}",
        f"appender.file.filePattern = {log_file}.%i",
        "appender.file.layout.type = PatternLayout",
        "appender.file.layout.pattern = [%d] %p %m (%c)%n",
        "appender.file.policies.type = Policies",
        "appender.file.policies.size.type = SizeBasedTriggeringPolicy",
        "appender.file.policies.size.size = 50MB",
        "appender.file.strategy.type = DefaultRolloverStrategy",
        "appender.file.strategy.max = 2",
        "rootLogger.level = INFO",
        "rootLogger.appenderRef.file.ref = FILE",
        "logger.state.name = state.change.logger",
        "logger.state.level = WARN",
        "",
    ])


def new_cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes in URL-safe base64 without padding, like StorageTool."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()


def _java(libs: Path, node: KafkaNode, main: str, *args: str, jvm: Sequence[str]) -> list[str]:
    return [
        "java", *jvm, "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={node.home / 'log4j2.properties'}",
        f"-Dkafka.logs.dir={node.home}", "-cp", f"{libs}/*", main, *args,
    ]


def write_config(node: KafkaNode, nodes: Sequence[KafkaNode]) -> Path:
    """Write the node's generated config files; returns the server.properties path."""
    node.home.mkdir(parents=True, exist_ok=True)
    (node.home / "log4j2.properties").write_text(render_log4j2(node.home / "server.log"))
    props = node.home / "server.properties"
    props.write_text(render_server_properties(node, nodes))
    return props


def format_storage(libs: Path, nodes: Sequence[KafkaNode], cluster_id: str) -> list[KafkaNode]:
    """Format the KRaft storage of the nodes not yet formatted (in parallel); returns those."""
    todo = [n for n in nodes if not (n.data_dir / "meta.properties").exists()]
    # A short-lived tool: the C1 compiler alone starts it faster.
    jvm = ["-Xmx256m", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC"]
    runs = [
        (n, subprocess.Popen(
            _java(libs, n, "kafka.tools.StorageTool", "format",
                  # `=`: an id may start with '-' (URL-safe base64), which argparse takes for a flag
                  f"--cluster-id={cluster_id}",
                  "-c", str(n.home / "server.properties"), jvm=jvm),
            cwd=n.home, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
        for n in todo
    ]
    for node, proc in runs:
        out, _ = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"formatting {node.data_dir} failed: {out.strip()}")
    return todo


def start_node(libs: Path, node: KafkaNode) -> int:
    """Start the broker process detached; returns its pid."""
    cmd = _java(libs, node, "kafka.Kafka", str(node.home / "server.properties"),
                jvm=[*HEAP, "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20"])
    return spawn(cmd, cwd=node.home, log=node.home / "stdout.log", pidfile=node.pidfile)


def brokers_ready(bootstrap_servers: str, expected: int, timeout: float = 3.0) -> bool:
    """True when a metadata request answers and lists all ``expected`` brokers and a controller."""
    from confluent_kafka import KafkaException

    from pipeline.kafka.clients import admin_client

    admin = admin_client(bootstrap_servers, logger=_QUIET)
    try:
        meta = admin.list_topics(timeout=timeout)
    except KafkaException:
        return False
    return len(meta.brokers) >= expected and meta.controller_id != -1


# librdkafka's "connection refused" noise while brokers start is expected: drop it.
_QUIET = logging.getLogger("camlog.devstack.rdkafka")
_QUIET.setLevel(logging.CRITICAL)
_QUIET.propagate = False
