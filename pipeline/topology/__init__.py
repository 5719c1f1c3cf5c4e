"""Topology as data: Kafka topics and Cassandra tables declared in ``topology/``, applied
idempotently."""

from pipeline.topology.spec import Change, TableSpec, TopicSpec, load_tables, load_topics

__all__ = ["Change", "TableSpec", "TopicSpec", "load_tables", "load_topics"]
