"""The dev stack as a whole: what `up` started (``<state>/dev/stack.json``), up/status/down."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from pipeline.devstack import cassandra as cas
from pipeline.devstack import kafka as kaf
from pipeline.devstack.maven import fetch_libs
from pipeline.devstack.procs import PidFile, port_open, stop, wait_until
from pipeline.errors import CliError

__all__ = ["CassandraSpec", "KafkaSpec", "Stack", "down", "status", "stop_named", "up"]

Say = Callable[[str], None]


def _say(line: str) -> None:
    print(line, flush=True)


@dataclass(frozen=True)
class KafkaSpec:
    """A KRaft cluster of ``brokers`` combined nodes on consecutive ports."""

    brokers: int = 1
    port: int = 9092
    controller_port: int = 19092
    version: str = kaf.KAFKA_VERSION
    cluster_id: str = ""


@dataclass(frozen=True)
class CassandraSpec:
    """One Cassandra node; ``region`` is its datacenter name."""

    port: int = 9042
    storage_port: int = 7000
    region: str = "dc1"
    version: str = cas.CASSANDRA_VERSION


@dataclass(frozen=True)
class Stack:
    """Paths and recorded specs of the dev stack in one state folder."""

    state_dir: Path

    def __post_init__(self) -> None:
        # Generated configs hold absolute paths: processes run with their own working folder.
        object.__setattr__(self, "state_dir", Path(self.state_dir).resolve())

    @property
    def root(self) -> Path:
        """Everything `up` starts lives here (``down --purge`` removes it)."""
        return self.state_dir / "dev"

    @property
    def cache(self) -> Path:
        """Downloaded jars, kept across ``down --purge``."""
        return self.state_dir / "cache"

    def load(self) -> tuple[KafkaSpec | None, CassandraSpec | None]:
        """The specs recorded by earlier `up` runs."""
        try:
            raw = json.loads((self.root / "stack.json").read_text())
        except (OSError, ValueError):
            return None, None
        k, c = raw.get("kafka"), raw.get("cassandra")
        return (KafkaSpec(**k) if k else None), (CassandraSpec(**c) if c else None)

    def save(self, k: KafkaSpec | None, c: CassandraSpec | None) -> None:
        """Record what is (or was) started here."""
        self.root.mkdir(parents=True, exist_ok=True)
        data = {"kafka": asdict(k) if k else None, "cassandra": asdict(c) if c else None}
        (self.root / "stack.json").write_text(json.dumps(data, indent=2) + "\n")

    def kafka_nodes(self, k: KafkaSpec) -> list[kaf.KafkaNode]:
        """The Kafka nodes of spec ``k``."""
        return kaf.plan_nodes(self.root, k.brokers, k.port, k.controller_port)

    def cassandra_node(self, c: CassandraSpec) -> cas.CassandraNode:
        """The Cassandra node of spec ``c``."""
        return cas.CassandraNode(c.port, c.storage_port, self.root / "cassandra", c.region)


def _check_compatible(old: object, new: object, what: str, has_data: bool) -> None:
    if old is None or not has_data:
        return
    fields = ("brokers", "port", "controller_port", "storage_port", "region", "version")
    diff = [f for f in fields if hasattr(new, f) and getattr(old, f) != getattr(new, f)]
    if diff:
        was = ", ".join(f"{f}={getattr(old, f)}" for f in diff)
        raise CliError(f"{what} here was set up with other {', '.join(diff)} ({was}); "
                       "run `camlog dev down --purge` first")


def _start_kafka(stack: Stack, spec: KafkaSpec, say: Say) -> list[int]:
    """Start the cluster's missing nodes (formatting new ones); returns the started pids."""
    nodes = stack.kafka_nodes(spec)
    if all(n.pidfile.process() for n in nodes):
        return []
    libs = fetch_libs("kafka", spec.version, stack.cache, say=say)
    todo = [n for n in nodes if not n.pidfile.process()]
    for node in todo:
        for port in (node.port, node.controller_port):
            if port_open("127.0.0.1", port):
                raise CliError(f"port {port} is already in use (not by this stack)")
        kaf.write_config(node, nodes)
    for node in kaf.format_storage(libs, todo, spec.cluster_id):
        say(f"formatted KRaft storage of kafka-{node.node_id} (cluster {spec.cluster_id})")
    started = []
    for node in todo:
        started.append(kaf.start_node(libs, node))
        say(f"started kafka-{node.node_id} (pid {started[-1]}) on 127.0.0.1:{node.port}")
    return started


def _start_cassandra(stack: Stack, spec: CassandraSpec, say: Say) -> list[int]:
    node = stack.cassandra_node(spec)
    if node.pidfile.process():
        return []
    libs = fetch_libs("cassandra", spec.version, stack.cache, say=say)
    for port in (node.port, node.storage_port):
        if port_open("127.0.0.1", port):
            raise CliError(f"port {port} is already in use (not by this stack)")
    cas.write_config(node)
    pid = cas.start_node(libs, node)
    say(f"started cassandra (pid {pid}) on 127.0.0.1:{node.port}, dc={spec.region}")
    return [pid]


def up(stack: Stack, kafka: KafkaSpec | None, cassandra: CassandraSpec | None,
       apply: Callable[[KafkaSpec | None, CassandraSpec | None], None] | None,
       say: Say = _say) -> bool:
    """Start what is missing, wait for real readiness, then ``apply`` the topology.

    Returns False (and changes nothing) when everything asked for already runs; it still waits
    for readiness then, in case an earlier `up` was interrupted while they were starting.
    """
    old_k, old_c = stack.load()
    if kafka:
        has_data = any((n.data_dir / "meta.properties").exists()
                       for n in stack.kafka_nodes(old_k or kafka))
        _check_compatible(old_k, kafka, "Kafka", has_data)
        cluster_id = old_k.cluster_id if old_k and has_data else kaf.new_cluster_id()
        kafka = KafkaSpec(**{**asdict(kafka), "cluster_id": cluster_id})
    if cassandra:
        _check_compatible(old_c, cassandra, "Cassandra",
                          (stack.root / "cassandra" / "data").exists())
    t0 = time.monotonic()
    stack.save(kafka or old_k, cassandra or old_c)  # before formatting: keeps the cluster id
    started: list[int] = []
    if kafka:
        started += _start_kafka(stack, kafka, say)
    if cassandra:
        started += _start_cassandra(stack, cassandra, say)
    applied = stack.root / "topology.applied"
    if not started and (apply is None or applied.exists()):
        _wait_ready(stack, kafka, cassandra, lambda _: None, say)  # an interrupted earlier `up`?
        say("camlog dev: already running, nothing to do (`camlog dev status` for details)")
        return False
    _wait_ready(stack, kafka, cassandra, say, say)
    if apply is not None:
        applied.unlink(missing_ok=True)
        apply(kafka, cassandra)
        applied.touch()
    say(f"camlog dev: up in {time.monotonic() - t0:.1f}s")
    return True


def _wait_ready(stack: Stack, kafka: KafkaSpec | None, cassandra: CassandraSpec | None,
                report: Say, say: Say) -> None:
    """Block until a metadata request lists every broker and a CQL query answers."""
    if kafka:
        nodes = stack.kafka_nodes(kafka)
        took = wait_until(lambda: kaf.brokers_ready(kaf.bootstrap(nodes), len(nodes)),
                          what=f"Kafka ({len(nodes)} broker(s))", timeout=180, say=say,
                          alive=lambda: all(n.pidfile.process() for n in nodes))
        report(f"Kafka {kafka.version} ready at {kaf.bootstrap(nodes)} ({took:.1f}s)")
    if cassandra:
        node = stack.cassandra_node(cassandra)
        took = wait_until(lambda: cas.cql_ready(node.port) is not None,
                          what="Cassandra (CQL)", timeout=240, say=say, interval=2.0,
                          alive=lambda: node.pidfile.process() is not None)
        report(f"Cassandra {cassandra.version} ready at 127.0.0.1:{node.port} ({took:.1f}s)")


def status(stack: Stack) -> list[dict[str, object]]:
    """One row per process `up` started: name, pid, port, running, ready."""
    k, c = stack.load()
    rows: list[dict[str, object]] = []
    if k:
        nodes = stack.kafka_nodes(k)
        ready = kaf.brokers_ready(kaf.bootstrap(nodes), len(nodes))
        for n in nodes:
            proc = n.pidfile.process()
            rows.append({"name": f"kafka-{n.node_id}", "version": k.version,
                         "pid": proc.pid if proc else None, "port": n.port,
                         "running": proc is not None, "ready": bool(proc) and ready})
    if c:
        node = stack.cassandra_node(c)
        proc = node.pidfile.process()
        release = cas.cql_ready(node.port, timeout=3) if proc else None
        rows.append({"name": "cassandra", "version": c.version,
                     "pid": proc.pid if proc else None, "port": node.port,
                     "running": proc is not None, "ready": release is not None})
    return rows


def stop_named(pidfiles: list[tuple[str, PidFile]], say: Say = _say) -> list[int]:
    """Stop the named processes all at once, saying which; returns the pids stopped."""
    names = {}
    for name, pf in pidfiles:
        proc = pf.process()
        if proc is not None:
            names[proc.pid] = name
    if names:
        say(f"stopping {', '.join(names.values())} ...")
    stopped = stop([pf for _, pf in pidfiles], timeout=60)
    for pid in stopped:
        say(f"stopped {names.get(pid, '?')} (pid {pid})")
    return stopped


def down(stack: Stack, purge: bool, say: Say = _say) -> int:
    """Stop what `up` started (pid files only); with ``purge`` also delete its data."""
    k, c = stack.load()
    pidfiles = []
    if c:
        pidfiles.append(("cassandra", stack.cassandra_node(c).pidfile))
    if k:
        pidfiles += [(f"kafka-{n.node_id}", n.pidfile) for n in stack.kafka_nodes(k)]
    stopped = stop_named(pidfiles, say)
    if purge and stack.root.exists():
        shutil.rmtree(stack.root)
        say(f"removed {stack.root}")
    if not stopped and not purge:
        say("camlog dev: nothing was running")
    return len(stopped)
