"""``apply_all`` / ``diff_all``: the whole declared topology against the running cluster."""

from __future__ import annotations

from pipeline.config import Settings
from pipeline.topology.cassandra import apply_cassandra, plan_cassandra
from pipeline.topology.kafka import admin_client, apply_topics, plan_topics
from pipeline.topology.spec import Change

__all__ = ["apply_all", "diff_all"]


def diff_all(settings: Settings, kafka: bool = True, cassandra: bool = True,
             keyspace: str | None = None) -> list[Change]:
    """Every difference between ``topology/`` and the clusters (applicable or not)."""
    out: list[Change] = []
    if kafka:
        out += [c for c, _ in plan_topics(admin_client(settings))]
    if cassandra:
        from pipeline.store.cluster import connect

        session = connect(settings)
        try:
            out += [c for c, _ in plan_cassandra(session, settings, keyspace)]
        finally:
            session.cluster.shutdown()
    return out


def apply_all(settings: Settings, brokers: int | None = None, kafka: bool = True,
              cassandra: bool = True, keyspace: str | None = None) -> list[Change]:
    """Create what is missing and fix what drifted; never deletes. Returns what changed.

    ``brokers`` is accepted for callers that know the cluster size; the live broker count is used.
    """
    done: list[Change] = []
    if kafka:
        admin = admin_client(settings)
        done += apply_topics(admin, plan_topics(admin))
    if cassandra:
        from pipeline.store.cluster import connect

        session = connect(settings)
        try:
            done += apply_cassandra(session, plan_cassandra(session, settings, keyspace))
        finally:
            session.cluster.shutdown()
    return done
