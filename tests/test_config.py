"""Settings: defaults, environment, validation, secrets kept out of repr."""

from __future__ import annotations

import pytest

from pipeline.config import ConfigError, ensure_dev_secret, load_settings


def test_defaults_and_dev_secret_is_generated_once(tmp_path):
    env = {"CAMLOG_STATE_DIR": str(tmp_path)}
    assert not load_settings(env).keys and not (tmp_path / "secret").exists()  # no side effect
    a, b = ensure_dev_secret(load_settings(env)), load_settings(env)
    assert a.kafka == "127.0.0.1:9092" and a.cassandra == ("127.0.0.1:9042",)
    assert a.keyspace == "camlog" and a.replication == {"dc1": 1}
    assert a.keys == b.keys and a.signing_kid == "dev"
    assert (tmp_path / "secret").stat().st_mode & 0o077 == 0
    assert "dev=" not in repr(a) and str(a.keys["dev"]) not in repr(a)


def test_environment_overrides(tmp_path):
    s = load_settings({
        "CAMLOG_STATE_DIR": str(tmp_path), "CAMLOG_KAFKA": "k1:9092,k2:9092",
        "CAMLOG_CASSANDRA": "c1:9142,c2", "CAMLOG_REGION": "eu", "CAMLOG_REPLICATION": "eu:3,us:3",
        "CAMLOG_SECRET": "new=abcdefghijklmnopq,old=0123456789abcdefg",
        "CAMLOG_SEGMENT_TARGET_S": "4",
    })
    assert s.kafka == "k1:9092,k2:9092"
    assert s.cassandra_hosts == [("c1", 9142), ("c2", 9042)]
    assert s.replication == {"eu": 3, "us": 3} and s.region == "eu"
    assert s.signing_kid == "new" and set(s.keys) == {"new", "old"}
    assert s.segment_target_s == 4.0


@pytest.mark.parametrize("env,msg", [
    ({"CAMLOG_SEGMENT_TARGET_S": "abc"}, "CAMLOG_SEGMENT_TARGET_S"),
    ({"CAMLOG_SEGMENT_TARGET_S": "10", "CAMLOG_SEGMENT_MAX_S": "5"}, "SEGMENT_MAX_S"),
    ({"CAMLOG_REPLICATION": "dc1"}, "CAMLOG_REPLICATION"),
    ({"CAMLOG_SECRET": "short"}, "CAMLOG_SECRET"),
    ({"CAMLOG_TELEMETRY": "zipkin"}, "unknown exporter"),
    ({"CAMLOG_KEYSPACE": "drop table;"}, "CAMLOG_KEYSPACE"),
])
def test_bad_values_are_named(tmp_path, env, msg):
    with pytest.raises(ConfigError, match=msg):
        load_settings({"CAMLOG_STATE_DIR": str(tmp_path), **env})
