"""The two-region dev stack (``camlog dev up --regions dc1,dc2``) on one machine.

Region i (0-based, in the order given) gets:
* a Kafka cluster of its own: one KRaft node on ``9192 + 100*i`` (quorum on that + 10000),
* a Cassandra node of the one multi-DC cluster: datacenter = the region name, on
  ``127.0.0.{i+1}`` with the usual ports (9042 CQL, 7000 gossip), every node a seed,
* a MirrorMaker 2 process mirroring the other regions' ``camlog.*`` topics into its cluster.

The Cassandra node of the first region takes 127.0.0.1:9042, so the one-region stack cannot run
at the same time; `up` says so instead of failing half-way. What was started is recorded in
``<state>/dev/regions.json``; `status` and `down` read it like ``stack.json``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pipeline.devstack import cassandra as cas
from pipeline.devstack import kafka as kaf
from pipeline.devstack import mirror as mm2
from pipeline.devstack.maven import fetch_libs
from pipeline.devstack.procs import PidFile, port_open, wait_until
from pipeline.devstack.stack import Stack, stop_named
from pipeline.errors import CliError
from pipeline.kafka import topics

__all__ = ["Region", "load_regions", "plan_regions", "regions_down", "regions_status",
           "regions_up"]

Say = Callable[[str], None]
KAFKA_BASE_PORT, KAFKA_PORT_STEP = 9192, 100
CQL_PORT, STORAGE_PORT = 9042, 7000


@dataclass(frozen=True)
class Region:
    """One region's processes and where they live."""

    name: str
    index: int
    peers: tuple[str, ...]  # every region's Cassandra address (the seeds), this one included
    stack: Stack

    @property
    def kafka_port(self) -> int:
        """Client port of the region's Kafka node."""
        return KAFKA_BASE_PORT + KAFKA_PORT_STEP * self.index

    @property
    def host(self) -> str:
        """Loopback address of the region's Cassandra node."""
        return f"127.0.0.{self.index + 1}"

    @property
    def kafka(self) -> kaf.KafkaNode:
        """The region's single KRaft node."""
        return kaf.plan_nodes(self.stack.root / self.name, 1, self.kafka_port,
                              self.kafka_port + 10000)[0]

    @property
    def bootstrap(self) -> str:
        """``CAMLOG_KAFKA`` for the region's services."""
        return kaf.bootstrap([self.kafka])

    @property
    def cassandra(self) -> cas.CassandraNode:
        """The region's Cassandra node (datacenter = region name)."""
        return cas.CassandraNode(CQL_PORT, STORAGE_PORT, self.stack.root / self.name / "cassandra",
                                 self.name, address=self.host, seeds=self.peers)

    @property
    def mirror(self) -> mm2.MirrorNode:
        """The MM2 process writing into the region."""
        return mm2.MirrorNode(self.name, self.stack.root / self.name / "mirror")

    def pidfiles(self) -> list[tuple[str, PidFile]]:
        """``(process name, pid file)`` of everything the region runs."""
        return [(f"kafka-{self.name}", self.kafka.pidfile),
                (f"cassandra-{self.name}", self.cassandra.pidfile),
                (f"mirror-{self.name}", self.mirror.pidfile)]


def parse_regions(raw: str) -> list[str]:
    """``"dc1,dc2"`` → ``["dc1", "dc2"]``: two or more distinct alphanumeric names."""
    names = [p.strip() for p in raw.split(",") if p.strip()]
    if len(names) < 2 or len(set(names)) != len(names) or len(names) > 9:
        raise CliError(f"--regions needs 2..9 distinct names, got {raw!r}")
    for n in names:
        if not n.replace("_", "").isalnum() or not n[0].isalpha():
            raise CliError(f"region {n!r}: use letters, digits and '_' (it is a Cassandra DC name)")
    return names


def plan_regions(stack: Stack, names: Sequence[str]) -> list[Region]:
    """The regions ``names`` in this state folder."""
    hosts = tuple(f"127.0.0.{i + 1}" for i in range(len(names)))
    return [Region(n, i, hosts, stack) for i, n in enumerate(names)]


def load_regions(stack: Stack) -> list[Region]:
    """The regions recorded by an earlier `up --regions` ([] when none)."""
    try:
        names = json.loads((stack.root / "regions.json").read_text())["regions"]
    except (OSError, ValueError, KeyError):
        return []
    return plan_regions(stack, names)


def _refuse_clashes(regions: Sequence[Region]) -> None:
    k, c = regions[0].stack.load()
    if (k or c) and any(pf.process() for pf in _single_pidfiles(regions[0].stack)):
        raise CliError("the one-region stack of this state folder is running: "
                       "`camlog dev down` it first")
    for r in regions:
        if r.kafka.pidfile.process() is None:
            for port in (r.kafka.port, r.kafka.controller_port):
                if port_open("127.0.0.1", port):
                    raise CliError(f"port {port} (Kafka of {r.name}) is already in use")
        if r.cassandra.pidfile.process() is None:
            for port in (CQL_PORT, STORAGE_PORT):
                if port_open(r.host, port):
                    raise CliError(f"{r.host}:{port} (Cassandra of {r.name}) is already in use; "
                                   "is the one-region stack running? (`camlog dev down`)")


def _single_pidfiles(stack: Stack) -> list[PidFile]:
    k, c = stack.load()
    out = [stack.cassandra_node(c).pidfile] if c else []
    return out + ([n.pidfile for n in stack.kafka_nodes(k)] if k else [])


def regions_up(stack: Stack, names: Sequence[str],
               apply: Callable[[Region, bool], None] | None, say: Say = print) -> list[Region]:
    """Start every region's Kafka and Cassandra, apply topology, then start MirrorMaker 2."""
    old = [r.name for r in load_regions(stack)]
    if old and old != list(names):
        raise CliError(f"this state folder holds regions {','.join(old)}; "
                       "run `camlog dev down --purge` first")
    regions = plan_regions(stack, names)
    _refuse_clashes(regions)
    stack.root.mkdir(parents=True, exist_ok=True)
    (stack.root / "regions.json").write_text(json.dumps({"regions": list(names)}) + "\n")
    t0 = time.monotonic()
    klibs = fetch_libs("kafka", kaf.KAFKA_VERSION, stack.cache, say=say)
    clibs = fetch_libs("cassandra", cas.CASSANDRA_VERSION, stack.cache, say=say)
    mlibs = fetch_libs("mirror", mm2.MIRROR_VERSION, stack.cache, say=say)
    started = False
    for r in regions:
        node = r.kafka
        if node.pidfile.process() is None:
            kaf.write_config(node, [node])
            cid_file = node.home / "cluster.id"
            if not cid_file.exists():
                cid_file.write_text(kaf.new_cluster_id())
            kaf.format_storage(klibs, [node], cid_file.read_text().strip())
            say(f"started kafka-{r.name} (pid {kaf.start_node(klibs, node)}) on {r.bootstrap}")
            started = True
    for r in regions:  # both at once: every node is a seed, none waits for another
        node = r.cassandra
        if node.pidfile.process() is None:
            cas.write_config(node)
            say(f"started cassandra-{r.name} (pid {cas.start_node(clibs, node)}) "
                f"on {node.address}:{node.port}, dc={r.name}")
            started = True
    for r in regions:
        node = r.kafka
        took = wait_until(lambda n=node: kaf.brokers_ready(kaf.bootstrap([n]), 1),
                          what=f"Kafka of {r.name}", timeout=180, say=say,
                          alive=lambda n=node: n.pidfile.process() is not None)
        say(f"Kafka of {r.name} ready at {r.bootstrap} ({took:.1f}s)")
    for r in regions:
        node = r.cassandra
        took = wait_until(
            lambda n=node: cas.cql_ready(n.port, host=n.address,
                                         peers=len(regions) - 1) is not None,
            what=f"Cassandra of {r.name} (CQL + gossip)", timeout=300, say=say, interval=2.0,
            alive=lambda n=node: n.pidfile.process() is not None)
        say(f"Cassandra of {r.name} ready at {node.address}:{node.port} ({took:.1f}s)")
    if apply is not None and started:
        for i, r in enumerate(regions):
            apply(r, i == 0)  # the keyspace once; topics in every region's cluster
    bootstraps = {r.name: r.bootstrap for r in regions}
    for r in regions:
        if r.mirror.pidfile.process() is None:
            mm2.write_config(r.mirror, bootstraps)
            say(f"started mirror-{r.name} (pid {mm2.start_mirror(mlibs, r.mirror)}): "
                f"{', '.join(n for n in names if n != r.name)} -> {r.name}")
    for r in regions:
        want = {mm2.mirrored_topic(o.name, topics.FRAMES) for o in regions if o is not r}
        took = wait_until(lambda r=r, want=want: want <= _topics(r.bootstrap),
                          what=f"MirrorMaker 2 into {r.name}", timeout=180, say=say,
                          alive=lambda r=r: r.mirror.pidfile.process() is not None)
        say(f"MirrorMaker 2 into {r.name} mirrors {', '.join(sorted(want))} ({took:.1f}s)")
    say(f"camlog dev: {len(regions)} regions up in {time.monotonic() - t0:.1f}s")
    return regions


def _topics(bootstrap: str) -> set[str]:
    from confluent_kafka import KafkaException

    from pipeline.kafka.clients import admin_client

    try:
        return set(admin_client(bootstrap).list_topics(timeout=3).topics)
    except KafkaException:
        return set()


def regions_status(stack: Stack) -> list[dict[str, object]]:
    """One row per process of every region: region, name, pid, address, running, ready."""
    rows: list[dict[str, object]] = []
    for r in load_regions(stack):
        kproc = r.kafka.pidfile.process()
        rows.append({"region": r.name, "name": f"kafka-{r.name}", "version": kaf.KAFKA_VERSION,
                     "pid": kproc.pid if kproc else None, "port": r.kafka.port,
                     "running": kproc is not None,
                     "ready": bool(kproc) and kaf.brokers_ready(r.bootstrap, 1)})
        cproc = r.cassandra.pidfile.process()
        ready = bool(cproc) and cas.cql_ready(CQL_PORT, timeout=3, host=r.host) is not None
        rows.append({"region": r.name, "name": f"cassandra-{r.name}",
                     "version": cas.CASSANDRA_VERSION, "pid": cproc.pid if cproc else None,
                     "port": f"{r.host}:{CQL_PORT}", "running": cproc is not None, "ready": ready})
        mproc = r.mirror.pidfile.process()
        rows.append({"region": r.name, "name": f"mirror-{r.name}", "version": mm2.MIRROR_VERSION,
                     "pid": mproc.pid if mproc else None, "port": "-",
                     "running": mproc is not None, "ready": mproc is not None})
    return rows


def regions_down(stack: Stack, say: Say = print) -> int:
    """Stop every region's processes at once (pid files only); returns how many were stopped."""
    return len(stop_named([pf for r in load_regions(stack) for pf in r.pidfiles()], say))
