"""Strimzi resources generated from topology/kafka.toml: the committed copy is current and right."""

from __future__ import annotations

import re
import string
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from pipeline.cli import main
from pipeline.topology.k8s import KafkaCluster, generate, topic_resource
from pipeline.topology.spec import TopicSpec, effective_topic, load_topics
from tests.k8s.manifests import K8S, InvalidManifest, validate

GENERATED = K8S / "generated"


def test_committed_files_equal_the_generator_output() -> None:
    files = generate(load_topics())
    assert sorted(p.name for p in GENERATED.iterdir()) == sorted(files)
    for name, text in files.items():
        assert (GENERATED / name).read_text() == text, (
            f"ops/k8s/generated/{name} is stale: run `camlog topology k8s`")


def test_one_topic_resource_per_declared_topic() -> None:
    docs = list(yaml.safe_load_all((GENERATED / "topics.yaml").read_text()))
    topics = {d["spec"]["topicName"]: d for d in docs if d}
    specs = load_topics()
    assert sorted(topics) == sorted(s.name for s in specs)
    for spec in specs:
        eff = effective_topic(spec, KafkaCluster().brokers)
        got = topics[spec.name]
        assert got["metadata"]["labels"]["strimzi.io/cluster"] == "camlog"
        assert (got["spec"]["partitions"], got["spec"]["replicas"]) == (
            eff.partitions, eff.replication_factor)
        assert got["spec"]["config"] == dict(eff.config)


def test_cluster_defaults_come_from_the_topology() -> None:
    kafka = next(d for d in yaml.safe_load_all((GENERATED / "kafka.yaml").read_text())
                 if d and d["kind"] == "Kafka")
    config = kafka["spec"]["kafka"]["config"]
    specs = load_topics()
    assert config["auto.create.topics.enable"] is False
    assert config["min.insync.replicas"] == max(int(s.config["min.insync.replicas"]) for s in specs)
    # The broker must accept the biggest record any topic allows (the DLQ's).
    biggest = max(int(s.config.get("max.message.bytes", 0)) for s in specs)
    assert config["message.max.bytes"] >= biggest


def _run(*args: str) -> int:
    return main(["topology", "k8s", *args])


def test_cli_writes_and_checks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run("--out", str(tmp_path), "--check") == 1  # nothing written yet
    assert _run("--out", str(tmp_path)) == 0
    assert _run("--out", str(tmp_path), "--check") == 0
    topics = tmp_path / "topics.yaml"
    topics.write_text(topics.read_text().replace("partitions: 6", "partitions: 7", 1))
    capsys.readouterr()
    assert _run("--out", str(tmp_path), "--check") == 1
    assert "stale" in capsys.readouterr().out
    assert _run("--out", str(tmp_path), "--brokers", "0") == 2


def test_one_broker_caps_replication() -> None:
    docs = [d for d in yaml.safe_load_all(generate(load_topics(), KafkaCluster(brokers=1))
                                          ["topics.yaml"]) if d]
    assert {d["spec"]["replicas"] for d in docs} == {1}
    assert {d["spec"]["config"]["min.insync.replicas"] for d in docs} == {"1"}


_names = st.text(string.ascii_lowercase + string.digits + ".-", min_size=1, max_size=60).filter(
    lambda n: re.fullmatch(r"[a-z0-9]([a-z0-9.-]*[a-z0-9])?", n) is not None)
_configs = st.dictionaries(st.sampled_from(["retention.ms", "segment.bytes", "cleanup.policy"]),
                           st.text(string.ascii_lowercase + string.digits, min_size=1, max_size=12),
                           max_size=3)


@hsettings(deadline=None)  # the first example compiles the CRD schema
@given(name=_names, partitions=st.integers(1, 1000), rf=st.integers(1, 7),
       isr=st.integers(1, 7), brokers=st.integers(1, 9), config=_configs)
def test_any_declared_topic_makes_a_valid_kafka_topic(name: str, partitions: int, rf: int, isr: int,
                                                      brokers: int, config: dict[str, str]) -> None:
    spec = TopicSpec(name, partitions, rf, {**config, "min.insync.replicas": str(isr)})
    doc = topic_resource(spec, KafkaCluster(brokers=brokers))
    validate(doc)
    assert doc["spec"]["topicName"] == name and "." not in doc["metadata"]["name"]
    assert doc["spec"]["replicas"] == min(rf, brokers)
    isr_out = int(doc["spec"]["config"]["min.insync.replicas"])
    assert 1 <= isr_out <= max(1, doc["spec"]["replicas"] - 1)


def test_a_broken_generated_topic_is_refused() -> None:
    doc = topic_resource(load_topics()[0], KafkaCluster())
    doc["spec"]["partitions"] = 0  # Strimzi: minimum 1
    with pytest.raises(InvalidManifest, match="partitions"):
        validate(doc)
