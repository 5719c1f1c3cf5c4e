"""`camlog dev`: config rendering (fast), and a real three-broker KRaft cluster (slow)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest

from pipeline.devstack import cassandra as cas
from pipeline.devstack import kafka as kaf
from pipeline.devstack.maven import OPS_DIR
from pipeline.devstack.procs import PidFile
from pipeline.devstack.stack import KafkaSpec, Stack, up
from pipeline.errors import CliError
from tests.chaos.cluster import CONTROLLER_OFFSET, free_base


def _props(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if line and line[0] != "#")


@pytest.mark.parametrize("brokers, internal_rf, min_isr", [(1, "1", "1"), (3, "3", "2")])
def test_kraft_config_per_node(tmp_path: Path, brokers: int, internal_rf: str, min_isr: str):
    nodes = kaf.plan_nodes(tmp_path, brokers, port=29092, controller_port=39092)
    voters = ",".join(f"{i + 1}@127.0.0.1:{39092 + i}" for i in range(brokers))
    for i, node in enumerate(nodes):
        p = _props(kaf.render_server_properties(node, nodes))
        assert p["node.id"] == str(i + 1)
        assert p["process.roles"] == "broker,controller"
        assert p["controller.quorum.voters"] == voters
        assert p["listeners"] == (f"PLAINTEXT://127.0.0.1:{29092 + i},"
                                  f"CONTROLLER://127.0.0.1:{39092 + i}")
        assert p["advertised.listeners"] == f"PLAINTEXT://127.0.0.1:{29092 + i}"
        assert p["log.dirs"] == str(tmp_path / f"kafka-{i + 1}" / "data")
        assert p["offsets.topic.replication.factor"] == internal_rf
        assert p["transaction.state.log.min.isr"] == min_isr
    assert kaf.bootstrap(nodes) == ",".join(f"127.0.0.1:{29092 + i}" for i in range(brokers))


def test_cluster_id_is_kraft_shaped():
    ids = {kaf.new_cluster_id() for _ in range(50)}
    assert len(ids) == 50
    assert all(len(i) == 22 and "=" not in i for i in ids)


def test_cassandra_config_uses_ports_region_and_small_heap(tmp_path: Path):
    node = cas.CassandraNode(port=19042, storage_port=17000, home=tmp_path, region="eu-west")
    yaml = cas.render_yaml(node)
    assert "native_transport_port: 19042\n" in yaml
    assert "storage_port: 17000\n" in yaml
    assert 'seeds: "127.0.0.1:17000"' in yaml
    assert "endpoint_snitch: GossipingPropertyFileSnitch\n" in yaml
    assert "num_tokens: 16\n" in yaml
    assert f"  - {tmp_path / 'data' / 'data'}\n" in yaml
    assert cas.render_rackdc("eu-west").splitlines()[0] == "dc=eu-west"
    argv = cas.jvm_args(tmp_path, node)
    assert "-Xmx1g" in argv and "-Dcassandra-foreground=yes" in argv
    assert "--add-opens=java.base/java.lang=ALL-UNNAMED" in argv
    assert argv[-1] == "org.apache.cassandra.service.CassandraDaemon"
    assert argv[argv.index("-cp") + 1].startswith(f"{node.conf_dir}:")


def test_pidfile_ignores_a_reused_pid(tmp_path: Path):
    pf = PidFile(tmp_path / "pid")
    assert pf.process() is None
    pf.write(os.getpid())
    assert pf.process() is not None and pf.process().pid == os.getpid()
    pid, created = pf.read()
    pf.path.write_text(f'{{"pid": {pid}, "created": {created - 1000}}}')
    assert pf.process() is None


def test_up_refuses_a_differently_shaped_cluster_over_old_data(tmp_path: Path):
    stack = Stack(tmp_path)
    stack.save(KafkaSpec(brokers=1, cluster_id="x"), None)
    (stack.kafka_nodes(KafkaSpec())[0].data_dir).mkdir(parents=True)
    (stack.kafka_nodes(KafkaSpec())[0].data_dir / "meta.properties").write_text("")
    with pytest.raises(CliError, match=r"other brokers.*down --purge"):
        up(stack, KafkaSpec(brokers=3), None, apply=None, say=lambda _: None)
    assert not any(n.pidfile.path.exists() for n in stack.kafka_nodes(KafkaSpec(brokers=3)))


def test_stack_resolves_state_dir(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    stack = Stack(Path(".camlog"))
    assert stack.root == tmp_path / ".camlog" / "dev"
    assert stack.cache == tmp_path / ".camlog" / "cache"


@pytest.mark.parametrize("component, prop, version", [
    ("kafka", "kafka.version", kaf.KAFKA_VERSION),
    ("cassandra", "cassandra.version", cas.CASSANDRA_VERSION),
])
def test_ops_pom_declares_the_version_the_code_runs(component: str, prop: str, version: str):
    pom = (OPS_DIR / component / "pom.xml").read_text()
    assert f"<{prop}>{version}</{prop}>" in pom


def _camlog(state: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMLOG_")}
    cmd = [sys.executable, "-m", "pipeline", "--state-dir", str(state), "dev", *args]
    done = subprocess.run(cmd, check=False, capture_output=True, text=True, env=env, timeout=600)
    print(done.stdout, done.stderr)
    return done


@pytest.mark.slow
def test_three_broker_cluster_replicates_and_stops_cleanly(tmp_path: Path, settings):
    state = tmp_path / "state"
    state.mkdir()
    shared_cache = Path(settings.state_dir).resolve() / "cache"
    shared_cache.mkdir(parents=True, exist_ok=True)
    (state / "cache").symlink_to(shared_cache)  # reuse downloaded jars
    base = free_base()
    ports = ("--kafka-port", str(base), "--controller-port", str(base + CONTROLLER_OFFSET))
    up = _camlog(state, "up", "--kafka-brokers", "3", "--no-cassandra", "--no-topology", *ports)
    try:
        assert up.returncode == 0, up.stderr
        again = _camlog(state, "up", "--kafka-brokers", "3", "--no-cassandra", "--no-topology",
                        *ports)
        assert again.returncode == 0 and "already running" in again.stdout

        st = _camlog(state, "status")
        assert st.returncode == 0, st.stdout
        assert st.stdout.count(" ready") == 3
        procs = [n.pidfile.process() for n in Stack(state).kafka_nodes(Stack(state).load()[0])]
        assert all(procs)

        _assert_rf3_topic_in_sync(",".join(f"127.0.0.1:{base + i}" for i in range(3)))
    finally:
        down = _camlog(state, "down", "--purge")
    assert down.returncode == 0, down.stderr
    assert not [p for p in procs if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not (state / "dev").exists()
    for port in (base, base + 1, base + 2):
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0


def _assert_rf3_topic_in_sync(bootstrap: str) -> None:
    from confluent_kafka import Consumer, Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    assert len(admin.list_topics(timeout=10).brokers) == 3
    topic = f"rf3-{uuid.uuid4().hex[:8]}"
    new = NewTopic(topic, num_partitions=3, replication_factor=3,
                   config={"min.insync.replicas": "2"})
    admin.create_topics([new])[topic].result(30)

    def in_sync() -> bool:
        parts = admin.list_topics(topic, timeout=10).topics[topic].partitions
        return len(parts) == 3 and all(len(p.replicas) == 3 and len(p.isrs) == 3
                                       for p in parts.values())

    deadline = time.monotonic() + 120  # a bound on waiting, not an assertion on speed
    while not in_sync():
        assert time.monotonic() < deadline, "ISR never reached 3"
        time.sleep(0.5)

    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all",
                         "enable.idempotence": True})
    for i in range(30):
        producer.produce(topic, key=str(i), value=f"v{i}")
    assert producer.flush(60) == 0
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": topic,
                         "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    got: set[str] = set()
    while len(got) < 30 and time.monotonic() < deadline + 60:
        msg = consumer.poll(1.0)
        if msg is not None and msg.error() is None:
            got.add(msg.value().decode())
    consumer.close()
    assert got == {f"v{i}" for i in range(30)}
