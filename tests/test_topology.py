"""Topology: pure diffing, and apply/diff against the real Kafka and Cassandra."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.topology.spec import (
    TableSpec,
    TopicSpec,
    diff_table,
    diff_topic,
    effective_topic,
    load_tables,
    load_topics,
    resolve_options,
    table_cql,
    twcs_window_hours,
)

TOPIC = TopicSpec("x", 6, 3, {"retention.ms": "1000", "min.insync.replicas": "2"})


def test_declared_topology_names_every_event_topic_and_table():
    from pipeline.events import TOPICS

    assert set(TOPICS) <= {t.name for t in load_topics()}
    assert {"segments", "segment_data", "init_segments", "live_manifest", "device_state",
            "playback_minute", "playback_hour"} <= {t.name for t in load_tables()}


@pytest.mark.parametrize("brokers,rf,isr", [(1, 1, "1"), (2, 2, "1"), (3, 3, "2"), (5, 3, "2")])
def test_replication_is_capped_by_brokers(brokers, rf, isr):
    eff = effective_topic(TOPIC, brokers)
    assert eff.replication_factor == rf and eff.config["min.insync.replicas"] == isr


def test_topic_diff():
    assert [c.description for c in diff_topic(TOPIC, None, {})] == ["create (6 partitions, rf 3)"]
    assert diff_topic(TOPIC, 6, dict(TOPIC.config)) == []
    changes = diff_topic(TOPIC, 3, {"retention.ms": "5", "min.insync.replicas": "2"})
    assert [c.description for c in changes] == ["partitions 3 -> 6", "retention.ms = 1000 (was 5)"]
    shrink = diff_topic(TOPIC, 9, dict(TOPIC.config))
    assert len(shrink) == 1 and not shrink[0].applicable


def test_table_diff_adds_columns_and_never_drops():
    spec = TableSpec("t", {"k": "text", "v": "int", "s": "bigint static"}, ("k",), (),
                     {"default_time_to_live": 60})
    cql = table_cql("ks", spec)
    assert "PRIMARY KEY ((k))" in cql and "s bigint static" in cql
    changes = diff_table("ks", spec, {"k": "text", "extra": "int"}, {"default_time_to_live": 60})
    assert changes[0][0].description == "add column v int"
    assert [cql for _, cql in changes] == ["ALTER TABLE ks.t ADD v int",
                                           "ALTER TABLE ks.t ADD s bigint static"]
    wrong = diff_table("ks", spec, {"k": "int", "v": "int", "s": "bigint"},
                       {"default_time_to_live": 0})
    assert not wrong[0][0].applicable
    assert "ALTER TABLE ks.t WITH default_time_to_live = 60" in [q for _, q in wrong]


@pytest.mark.services
def test_apply_creates_everything_then_is_a_no_op(services, capsys):
    from pipeline.cli import main

    ks = f"topo_{uuid.uuid4().hex[:8]}"
    assert main(["topology", "apply", "--cassandra-only", "--into", ks]) == 0
    assert "change(s)" in capsys.readouterr().out
    assert main(["topology", "apply", "--into", ks]) == 0
    assert "no changes" in capsys.readouterr().out
    assert main(["topology", "diff", "--into", ks]) == 0

    from pipeline.store.cluster import connect

    session = connect(services)
    try:
        tables = {r.table_name for r in session.execute(
            "SELECT table_name FROM system_schema.tables WHERE keyspace_name=%s", (ks,))}
        assert {t.name for t in load_tables()} <= tables
        rep = session.execute(
            "SELECT replication FROM system_schema.keyspaces WHERE keyspace_name=%s",
            (ks,)).one().replication
        assert rep["class"].endswith("NetworkTopologyStrategy") and rep[services.region] == "1"
    finally:
        session.execute(f"DROP KEYSPACE IF EXISTS {ks}")
        session.cluster.shutdown()


@pytest.mark.services
def test_diff_detects_a_drifted_topic_and_apply_repairs_it(services, capsys):
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource

    from pipeline.cli import main
    from pipeline.topology.kafka import admin_client

    admin = admin_client(services)
    entry = ConfigEntry("retention.ms", "12345", incremental_operation=AlterConfigOpType.SET)
    for f in admin.incremental_alter_configs(
            [ConfigResource("topic", "camlog.sessions", incremental_configs=[entry])]).values():
        f.result(30)
    assert main(["topology", "diff", "--kafka-only"]) == 1
    assert "topic camlog.sessions: retention.ms = 2592000000 (was 12345)" in capsys.readouterr().out
    assert main(["topology", "apply", "--kafka-only"]) == 0
    assert "changed topic camlog.sessions" in capsys.readouterr().out
    assert main(["topology", "diff", "--kafka-only"]) == 0


def test_map_options_render_and_match_as_cassandra_reports_them():
    from pipeline.topology.spec import _cql_value, option_matches

    twcs = {"class": "TimeWindowCompactionStrategy", "compaction_window_unit": "HOURS",
            "compaction_window_size": "6"}
    assert _cql_value(twcs) == ("{'class': 'TimeWindowCompactionStrategy', "
                                "'compaction_window_size': '6', 'compaction_window_unit': 'HOURS'}")
    reported = {"class": "org.apache.cassandra.db.compaction.TimeWindowCompactionStrategy",
                "compaction_window_size": "6", "compaction_window_unit": "HOURS",
                "max_threshold": "32", "min_threshold": "4"}
    assert option_matches(twcs, reported)
    assert not option_matches(twcs, {**reported, "compaction_window_size": "1"})
    assert not option_matches(twcs, {"class": "SizeTieredCompactionStrategy"})
    assert option_matches({"enabled": "false"}, {"enabled": "false"})
    assert not option_matches({"enabled": "false"}, {"class": "LZ4Compressor"})
    assert option_matches(604800, 604800) and not option_matches(604800, None)


@given(days=st.integers(1, 3650))
def test_twcs_windows_follow_the_retention(days):
    hours = twcs_window_hours(days)
    assert hours >= 1 and 20 <= days * 24 / hours <= 40
    media = {t.name: resolve_options(t, days) for t in load_tables()}
    for name in ("segments", "segment_data"):
        opts = media[name].options
        assert opts["default_time_to_live"] == days * 86_400
        assert opts["compaction"]["compaction_window_size"] == str(hours)


def test_media_bytes_are_not_compressed_and_metadata_is():
    tables = {t.name: resolve_options(t, 7) for t in load_tables()}
    assert tables["segment_data"].options["compaction"]["compaction_window_size"] == "6"
    for name, t in tables.items():
        want = {"enabled": "false"} if name in ("segment_data", "init_segments") else \
            {"class": "LZ4Compressor"}
        assert t.options["compression"] == want, name
        assert "retention" not in table_cql("ks", t)


def test_option_drift_plans_an_alter_and_names_classes_briefly():
    spec = resolve_options(next(t for t in load_tables() if t.name == "segment_data"), 7)
    defaults = {"default_time_to_live": 0, "gc_grace_seconds": 864000,
                "compaction": {"class": "org.apache.cassandra.db.compaction."
                               "SizeTieredCompactionStrategy", "max_threshold": "32"},
                "compression": {"chunk_length_in_kb": "16",
                                "class": "org.apache.cassandra.io.compress.LZ4Compressor"}}
    plan = diff_table("ks", spec, {c: t.replace(" static", "") for c, t in spec.columns.items()},
                      defaults)
    by_key = {cql.split(" WITH ")[1].split(" = ")[0]: (c, cql) for c, cql in plan}
    assert set(by_key) == {"default_time_to_live", "gc_grace_seconds", "compaction", "compression"}
    change, cql = by_key["compaction"]
    assert "was {class: SizeTieredCompactionStrategy" in change.description
    assert cql == ("ALTER TABLE ks.segment_data WITH compaction = {'class': "
                   "'TimeWindowCompactionStrategy', 'compaction_window_size': '6', "
                   "'compaction_window_unit': 'HOURS'}")
    assert by_key["compression"][1] == ("ALTER TABLE ks.segment_data WITH compression = "
                                        "{'enabled': 'false'}")


@pytest.mark.services
def test_apply_brings_an_existing_keyspace_to_the_declared_options(services, capsys):
    """A keyspace made with Cassandra's defaults (STCS, LZ4, no TTL), as before the options were
    declared: diff shows the drift, apply ALTERs it, the options read back from system_schema,
    and a second apply changes nothing."""
    from pipeline.cli import main
    from pipeline.store.cluster import connect
    from pipeline.topology.cassandra import apply_cassandra, plan_cassandra

    ks = f"topo_{uuid.uuid4().hex[:8]}"
    bare = [TableSpec(t.name, t.columns, t.partition_key, t.clustering, {}, t.doc)
            for t in load_tables()]
    session = connect(services)
    try:
        apply_cassandra(session, plan_cassandra(session, services, ks, bare))
        assert main(["topology", "diff", "--cassandra-only", "--into", ks]) == 1
        out = capsys.readouterr().out
        assert (f"drift table {ks}.segment_data: compaction = {{class: TimeWindowCompaction"
                f"Strategy, compaction_window_size: 6, compaction_window_unit: HOURS}} (was "
                f"{{class: SizeTieredCompactionStrategy") in out
        assert f"drift table {ks}.init_segments: compression = {{enabled: false}}" in out
        assert f"table {ks}.device_state" not in out  # LZ4 is Cassandra's default already

        assert main(["topology", "apply", "--cassandra-only", "--into", ks]) == 0
        assert "change(s)" in capsys.readouterr().out
        rows = {r.table_name: r for r in session.execute(
            "SELECT table_name, compaction, compression, default_time_to_live, gc_grace_seconds "
            "FROM system_schema.tables WHERE keyspace_name = %s", (ks,))}
        for name in ("segments", "segment_data"):
            r = rows[name]
            assert r.compaction["class"].endswith(".TimeWindowCompactionStrategy"), name
            c = r.compaction
            window = (c["compaction_window_unit"], c["compaction_window_size"])
            assert window == ("HOURS", str(twcs_window_hours(services.retention_days)))
            assert r.default_time_to_live == services.retention_days * 86_400
            assert r.gc_grace_seconds == 10800
        for name in ("segment_data", "init_segments"):
            assert rows[name].compression == {"enabled": "false"}, name
        for name in ("segments", "live_manifest", "device_state", "playback_minute"):
            assert rows[name].compression["class"].endswith(".LZ4Compressor"), name
        assert rows["device_state"].compaction["class"].endswith(".SizeTieredCompactionStrategy")

        assert main(["topology", "apply", "--cassandra-only", "--into", ks]) == 0
        assert "no changes" in capsys.readouterr().out
        assert plan_cassandra(session, services, ks) == []
        assert main(["topology", "diff", "--cassandra-only", "--into", ks]) == 0
    finally:
        session.execute(f"DROP KEYSPACE IF EXISTS {ks}", timeout=60)
        session.cluster.shutdown()
