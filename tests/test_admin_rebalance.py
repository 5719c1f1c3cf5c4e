"""Operator tools on a real three-broker KRaft cluster: rebalance under load, describe, bad input.

The cluster is started with ``camlog dev up --kafka-brokers 3`` in a temporary state folder on
free ports (or reused from ``CAMLOG_TEST_KAFKA3=host:port,...``), and stopped afterwards.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.cli import main
from tests.chaos.cluster import CONTROLLER_OFFSET, free_base

pytestmark = [pytest.mark.services, pytest.mark.slow]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, settings) -> Iterator[tuple[str, Path]]:
    """``(bootstrap, state_dir)`` of a three-broker cluster."""
    existing = os.environ.get("CAMLOG_TEST_KAFKA3")
    state = tmp_path_factory.mktemp("kafka3")
    if existing:
        yield existing, state
        return
    from pipeline.devstack.kafka import KAFKA_VERSION

    cached = Path(settings.state_dir).resolve() / "cache" / f"kafka-{KAFKA_VERSION}"
    if (cached / "libs" / ".complete").exists():  # reuse jars instead of fetching again
        (state / "cache").mkdir()
        (state / "cache" / cached.name).symlink_to(cached)
    port = free_base(4)  # four of each: the last test adds a fourth broker
    base = ["--state-dir", str(state)]
    rc = main([*base, "dev", "up", "--kafka-brokers", "3", "--no-cassandra", "--no-topology",
               "--kafka-port", str(port), "--controller-port", str(port + CONTROLLER_OFFSET)])
    assert rc == 0, "camlog dev up --kafka-brokers 3 failed"
    try:
        yield f"127.0.0.1:{port},127.0.0.1:{port + 1},127.0.0.1:{port + 2}", state
    finally:
        main([*base, "dev", "down", "--purge"])
        shutil.rmtree(state, ignore_errors=True)


def _camlog(cluster, *argv: str) -> int:
    bootstrap, state = cluster
    return main(["--kafka", bootstrap, "--state-dir", str(state), *argv])


def _create_skewed(bootstrap: str, topic: str, partitions: int = 6) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    skew = [[1, 2] if p % 2 else [2, 1] for p in range(partitions)]  # nothing on broker 3
    fut = admin.create_topics([NewTopic(topic, partitions, replica_assignment=skew,
                                        config={"min.insync.replicas": "1"})])
    fut[topic].result(timeout=30)


def _describe(cluster, capsys, topic: str) -> dict:
    capsys.readouterr()
    assert _camlog(cluster, "topics", "describe", topic, "--json") == 0
    return json.loads(capsys.readouterr().out)


def test_rebalance_under_load_moves_replicas_without_losing_messages(cluster, capsys):
    from confluent_kafka import Consumer, Producer

    bootstrap, _ = cluster
    topic = f"skew-{uuid.uuid4().hex[:8]}"
    _create_skewed(bootstrap, topic)
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True,
                         "acks": "all", "linger.ms": 5})
    acked: list[bytes] = []
    failed: list[str] = []

    def on_delivery(err, msg):
        (failed.append(str(err)) if err else acked.append(msg.value()))

    filler = os.urandom(2000)
    for i in range(2000):  # ~4 MB already on brokers 1 and 2, so replicas really have to copy
        producer.produce(topic, key=f"cam-{i % 40}", value=b"%08d" % i + filler,
                         on_delivery=on_delivery)
    producer.flush(60)

    stop = threading.Event()

    def produce_while_moving():
        i = 2000
        while not stop.is_set():
            producer.produce(topic, key=f"cam-{i % 40}", value=b"%08d" % i + filler[:100],
                             on_delivery=on_delivery)
            producer.poll(0.002)
            i += 1
        producer.flush(60)

    seen: Counter = Counter()
    done_consuming = threading.Event()

    def consume():
        c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"g-{topic}",
                      "auto.offset.reset": "earliest", "enable.auto.commit": True})
        c.subscribe([topic])
        try:
            while not done_consuming.is_set():
                for m in c.consume(500, timeout=0.5):
                    if not m.error():
                        seen[m.value()[:8]] += 1
        finally:
            c.close()

    threads = [threading.Thread(target=produce_while_moving), threading.Thread(target=consume)]
    for t in threads:
        t.start()
    try:
        rc = _camlog(cluster, "topics", "rebalance", topic, "--execute", "--throttle", "2000000")
    finally:
        stop.set()
        threads[0].join(120)
    assert rc == 0
    out = capsys.readouterr().out
    assert "replicas in sync" in out

    # every acknowledged message arrives; wait (bounded) for the consumer to catch up
    want = Counter(v[:8] for v in acked)
    for _ in range(240):
        if all(seen[k] >= 1 for k in want):
            break
        threading.Event().wait(0.5)
    done_consuming.set()
    threads[1].join(60)
    assert not failed, failed[:3]
    assert len(want) == len(acked) > 2000
    missing = [k for k in want if not seen[k]]
    assert not missing, f"{len(missing)} of {len(want)} acknowledged messages never consumed"

    doc = _describe(cluster, capsys, topic)
    parts = doc["topics"][topic]["partitions"]
    replicas = Counter(b for p in parts for b in p["replicas"])
    leaders = Counter(p["leader"] for p in parts)
    assert replicas == Counter({1: 4, 2: 4, 3: 4})
    assert leaders == Counter({1: 2, 2: 2, 3: 2})
    for p in parts:
        assert sorted(p["isr"]) == sorted(p["replicas"]) and not p["under_replicated"]
        assert p["leader"] == p["replicas"][0]
        assert p["size"] and p["size"] > 0
    assert _throttles(bootstrap, topic) == {}

    # planning again finds nothing to do
    assert _camlog(cluster, "topics", "rebalance", topic) == 0
    assert "already balanced" in capsys.readouterr().out


def _throttles(bootstrap: str, topic: str) -> dict[str, str]:
    from confluent_kafka.admin import AdminClient, ConfigResource

    admin = AdminClient({"bootstrap.servers": bootstrap})
    out = {}
    resources = [ConfigResource("topic", topic)]
    resources += [ConfigResource("broker", str(b)) for b in (1, 2, 3)]
    for res in resources:
        for r, fut in admin.describe_configs([res]).items():  # one broker resource per call
            for k, e in fut.result(timeout=30).items():
                if "throttled" in k and e.value:
                    out[f"{r.name}:{k}"] = e.value
    return out


def test_add_partitions_only_grows_and_warns(cluster, capsys):
    topic = f"grow-{uuid.uuid4().hex[:8]}"
    _create_skewed(cluster[0], topic, partitions=3)
    assert _camlog(cluster, "topics", "add-partitions", topic, "2") == 2
    assert "can only grow" in capsys.readouterr().err
    assert _camlog(cluster, "topics", "add-partitions", topic, "6") == 0
    err = capsys.readouterr().err
    assert "different partition" in err and "50%" in err
    assert len(_describe(cluster, capsys, topic)["topics"][topic]["partitions"]) == 6


def test_lag_reports_a_groups_backlog(cluster, capsys):
    from confluent_kafka import Consumer, Producer, TopicPartition

    bootstrap, _ = cluster
    topic = f"lag-{uuid.uuid4().hex[:8]}"
    _create_skewed(bootstrap, topic, partitions=2)
    p = Producer({"bootstrap.servers": bootstrap})
    for i in range(30):
        p.produce(topic, value=b"x", partition=i % 2)
    p.flush(30)
    group = f"lag-{topic}"
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    c.commit(offsets=[TopicPartition(topic, 0, 5), TopicPartition(topic, 1, 15)],
             asynchronous=False)
    c.close()
    capsys.readouterr()
    assert _camlog(cluster, "topics", "lag", "--group", group, "--json") == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc[group]["partitions"] == {f"{topic}[0]": 10, f"{topic}[1]": 0}
    assert doc[group]["total"] == 10
    assert _camlog(cluster, "topics", "lag", "--group", group, "--watch", "--count", "2",
                   "--interval", "0.1") == 0
    assert capsys.readouterr().out.count("total lag=10") == 2


@pytest.mark.parametrize("argv,message", [
    (["topics", "describe", "no-such-topic"], "unknown topic no-such-topic"),
    (["topics", "add-partitions", "no-such-topic", "4"], "unknown topic no-such-topic"),
    (["topics", "rebalance", "no-such-topic"], "unknown topic no-such-topic"),
    (["topics", "rebalance", "--brokers", "1,2,9"], "broker 9 does not exist"),
    (["topics", "rebalance", "--brokers", "1,x"], "comma-separated broker ids"),
    (["topics", "rebalance", "--throttle", "0"], "--throttle must be a positive"),
    (["topics", "lag", "--group", "no-such-group"], "unknown consumer group no-such-group"),
])
def test_bad_input_is_a_clear_error(cluster, capsys, argv, message):
    assert _camlog(cluster, *argv) == 2
    assert message in capsys.readouterr().err


def test_rebalance_moves_replicas_onto_an_added_broker(cluster, capsys):
    """Start a fourth (broker-only) node, rebalance, and see it take its share."""
    from pipeline.devstack import kafka as kaf
    from pipeline.devstack.procs import stop
    from pipeline.devstack.stack import Stack

    bootstrap, state = cluster
    stack = Stack(state)
    spec, _ = stack.load()
    if spec is None:
        pytest.skip("needs the cluster this module starts (not CAMLOG_TEST_KAFKA3)")
    topic = f"grow4-{uuid.uuid4().hex[:8]}"
    _create_skewed(bootstrap, topic, partitions=8)
    nodes = stack.kafka_nodes(spec)
    libs = stack.cache / f"kafka-{spec.version}" / "libs"
    node = kaf.KafkaNode(4, spec.port + 3, spec.controller_port + 3, stack.root / "kafka-4")
    kaf.write_config(node, nodes)
    props = kaf.render_server_properties(node, nodes)  # voters: the three existing nodes
    props = props.replace("process.roles=broker,controller", "process.roles=broker")
    props = re.sub(r"^listeners=.*$", f"listeners=PLAINTEXT://127.0.0.1:{node.port}", props,
                   flags=re.MULTILINE)
    (node.home / "server.properties").write_text(props)
    meta = (nodes[0].data_dir / "meta.properties").read_text()
    kaf.format_storage(libs, [node], re.search(r"^cluster.id=(.+)$", meta, re.MULTILINE).group(1))
    kaf.start_node(libs, node)
    try:
        deadline = time.monotonic() + 120
        while not kaf.brokers_ready(bootstrap, 4) and time.monotonic() < deadline:
            time.sleep(1)
        assert kaf.brokers_ready(bootstrap, 4), (node.home / "server.log").read_text()[-2000:]
        assert _camlog(cluster, "topics", "rebalance", topic, "--execute") == 0
        parts = _describe(cluster, capsys, topic)["topics"][topic]["partitions"]
        assert Counter(b for p in parts for b in p["replicas"]) == Counter({1: 4, 2: 4, 3: 4, 4: 4})
        assert Counter(p["leader"] for p in parts) == Counter({1: 2, 2: 2, 3: 2, 4: 2})
        assert all(sorted(p["isr"]) == sorted(p["replicas"]) for p in parts)
    finally:
        stop([node.pidfile])
