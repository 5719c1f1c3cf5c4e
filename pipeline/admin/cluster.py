"""Reads the state operators ask about: brokers, partitions, ISR, configs, consumer-group lag."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pipeline.errors import CliError

__all__ = [
    "ClusterState",
    "GroupLag",
    "PartitionState",
    "TopicState",
    "read_cluster",
    "read_lag",
    "wait_all",
]


def wait_all(futures: dict, what: str, timeout: float = 30.0) -> dict:
    """Resolve a dict of confluent-kafka futures, turning failures into one CliError."""
    out = {}
    for key, fut in futures.items():
        try:
            out[key] = fut.result(timeout=timeout)
        except Exception as exc:  # KafkaException wraps a KafkaError with the broker's reason
            raise CliError(f"{what} {key}: {exc}") from exc
    return out


@dataclass(frozen=True)
class PartitionState:
    """One partition as the cluster reports it."""

    topic: str
    partition: int
    leader: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]

    @property
    def under_replicated(self) -> bool:
        """Some replica is not in sync."""
        return len(set(self.isr)) < len(self.replicas)


@dataclass(frozen=True)
class TopicState:
    """A topic's partitions and the configs operators care about."""

    name: str
    partitions: tuple[PartitionState, ...]
    config: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ClusterState:
    """Brokers (id -> rack or None) and topics."""

    brokers: dict[int, str | None]
    controller: int
    topics: dict[str, TopicState]

    def assignment(self, topics: Iterable[str] | None = None
                   ) -> dict[tuple[str, int], tuple[int, ...]]:
        """``(topic, partition) -> replicas`` for the planner."""
        names = self.topics if topics is None else topics
        return {(t, p.partition): p.replicas for t in names for p in self.topics[t].partitions}


def read_cluster(admin: Any, topics: Iterable[str] | None = None, configs: bool = True,
                 internal: bool = False) -> ClusterState:
    """Brokers, racks and the partitions (and configs) of ``topics`` (default: all user topics).

    Raises CliError naming any unknown topic.
    """
    from confluent_kafka.admin import ConfigResource

    try:
        md = admin.list_topics(timeout=10)
        desc = admin.describe_cluster(request_timeout=10).result(timeout=15)
    except Exception as exc:
        raise CliError(f"Kafka unreachable: {exc}") from exc
    brokers = {n.id: (n.rack or None) for n in desc.nodes}
    names = sorted(t for t in md.topics if internal or not t.startswith("__"))
    if topics is not None:
        wanted = list(dict.fromkeys(topics))
        missing = [t for t in wanted if t not in md.topics]
        if missing:
            raise CliError(f"unknown topic {', '.join(missing)} (topics: {', '.join(names)})")
        names = wanted
    conf: dict[str, dict[str, str]] = {}
    if configs and names:
        res = wait_all(admin.describe_configs([ConfigResource("topic", n) for n in names]),
                       "describe configs")
        conf = {r.name: {k: e.value for k, e in entries.items()} for r, entries in res.items()}
    out = {}
    for name in names:
        parts = tuple(PartitionState(name, p.id, p.leader, tuple(p.replicas), tuple(p.isrs))
                      for p in sorted(md.topics[name].partitions.values(), key=lambda x: x.id))
        out[name] = TopicState(name, parts, conf.get(name, {}))
    controller = desc.controller.id if desc.controller is not None else -1
    return ClusterState(brokers, controller, out)


@dataclass(frozen=True)
class GroupLag:
    """Committed offsets vs. the end of the log for one consumer group."""

    group: str
    state: str
    partitions: dict[tuple[str, int], tuple[int, int]]  # -> (committed, end)

    def lag(self, tp: tuple[str, int]) -> int:
        """Messages not yet consumed on one partition (no commit yet counts from 0)."""
        committed, end = self.partitions[tp]
        return max(0, end - max(committed, 0))

    @property
    def total(self) -> int:
        """Lag summed over the group's partitions."""
        return sum(self.lag(tp) for tp in self.partitions)


def read_lag(admin: Any, groups: Iterable[str] | None = None) -> list[GroupLag]:
    """Lag of ``groups`` (default: every consumer group with committed offsets)."""
    from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
    from confluent_kafka.admin import OffsetSpec

    try:
        listing = admin.list_consumer_groups(request_timeout=10).result(timeout=15)
    except Exception as exc:
        raise CliError(f"Kafka unreachable: {exc}") from exc
    states = {g.group_id: str(getattr(g.state, "name", g.state)) for g in listing.valid}
    if groups is not None:
        wanted = list(dict.fromkeys(groups))
        missing = [g for g in wanted if g not in states]
        if missing:
            raise CliError(f"unknown consumer group {', '.join(missing)} "
                           f"(groups: {', '.join(sorted(states)) or 'none'})")
    else:
        wanted = sorted(states)
    committed: dict[str, dict[tuple[str, int], int]] = {}
    for g in wanted:
        res = wait_all(admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(g)]),
                       "group offsets")
        committed[g] = {(tp.topic, tp.partition): tp.offset
                        for tp in res[g].topic_partitions if not tp.error}
    tps = {tp for offs in committed.values() for tp in offs}
    ends = {}
    if tps:
        res = wait_all(admin.list_offsets({TopicPartition(t, p): OffsetSpec.latest()
                                           for t, p in sorted(tps)}), "end offsets")
        ends = {(tp.topic, tp.partition): info.offset for tp, info in res.items()}
    return [GroupLag(g, states[g], {tp: (off, ends.get(tp, 0))
                                    for tp, off in sorted(committed[g].items())})
            for g in wanted]
