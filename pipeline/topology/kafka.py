"""Reads the Kafka side of the topology from a cluster and applies declared topics."""

from __future__ import annotations

from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
)

from pipeline.config import Settings
from pipeline.errors import CamlogError
from pipeline.kafka.clients import admin_client as kafka_admin_client
from pipeline.topology.spec import Change, TopicSpec, diff_topic, effective_topic, load_topics

__all__ = ["admin_client", "apply_topics", "plan_topics"]


def admin_client(settings: Settings) -> AdminClient:
    """An AdminClient for ``settings.kafka``."""
    return kafka_admin_client(settings.kafka, **{"socket.timeout.ms": 10000})


def _wait(futures: dict, what: str, timeout: float = 30.0) -> dict:
    out = {}
    for key, fut in futures.items():
        try:
            out[key] = fut.result(timeout=timeout)
        except Exception as exc:  # confluent-kafka raises KafkaException with a KafkaError inside
            raise CamlogError(f"{what} {key}: {exc}") from exc
    return out


def plan_topics(admin: AdminClient,
                specs: list[TopicSpec] | None = None) -> list[tuple[Change, TopicSpec]]:
    """The changes that would bring the cluster's topics to the declaration."""
    try:
        md = admin.list_topics(timeout=10)
    except Exception as exc:
        raise CamlogError(f"Kafka unreachable: {exc}") from exc
    brokers = len(md.brokers)
    wanted = [effective_topic(s, brokers) for s in (specs or load_topics())]
    existing = [s.name for s in wanted if s.name in md.topics]
    configs: dict[str, dict[str, str]] = {}
    if existing:
        res = _wait(admin.describe_configs([ConfigResource("topic", n) for n in existing]),
                    "describe")
        for resource, entries in res.items():
            configs[resource.name] = {k: e.value for k, e in entries.items()}
    plan = []
    for spec in wanted:
        parts = len(md.topics[spec.name].partitions) if spec.name in md.topics else None
        plan += [(c, spec) for c in diff_topic(spec, parts, configs.get(spec.name, {}))]
    return plan


def apply_topics(admin: AdminClient, plan: list[tuple[Change, TopicSpec]]) -> list[Change]:
    """Apply a plan from :func:`plan_topics`; returns what was changed."""
    create = {s.name: s for c, s in plan if c.applicable and c.description.startswith("create")}
    grow = {s.name: s for c, s in plan if c.applicable and c.description.startswith("partitions")}
    reconfig = {s.name: s for c, s in plan if c.applicable and " = " in c.description}
    if create:
        _wait(admin.create_topics([
            NewTopic(s.name, s.partitions, s.replication_factor, config=dict(s.config))
            for s in create.values()
        ]), "create topic")
    if grow:
        _wait(admin.create_partitions([NewPartitions(n, s.partitions) for n, s in grow.items()]),
              "add partitions")
    for name, spec in reconfig.items():
        if name in create:
            continue
        entries = [ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET)
                   for k, v in spec.config.items()]
        _wait(admin.incremental_alter_configs(
            [ConfigResource("topic", name, incremental_configs=entries)]), "alter config")
    return [c for c, _ in plan if c.applicable]
