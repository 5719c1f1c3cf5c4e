"""The one Settings → Kafka client configuration mapping (pipeline.kafka.config)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pipeline.events.catalog import TOPIC_EVENTS
from pipeline.kafka import topics
from pipeline.kafka.config import (
    FAILOVER_CONFIG,
    aiokafka_bootstrap,
    consumer_config,
    faust_brokers,
    producer_config,
)

_host = st.from_regex(r"[a-z][a-z0-9.-]{0,20}:[1-9][0-9]{0,4}", fullmatch=True)


@given(st.lists(_host, min_size=1, max_size=4), st.sampled_from([",", ", ", " , "]))
def test_every_library_gets_the_same_brokers(hosts, sep):
    bootstrap = sep.join(hosts)
    assert aiokafka_bootstrap(bootstrap) == hosts
    assert faust_brokers(bootstrap) == [f"kafka://{h}" for h in hosts]
    assert consumer_config(bootstrap, "g")["bootstrap.servers"] == bootstrap


def test_producer_is_idempotent_with_failover_timeouts_and_extras_win():
    conf = producer_config("k:9092", linger_ms=7, **{"client.id": "x"})
    assert conf["enable.idempotence"] is True and conf["acks"] == "all"
    assert conf["linger.ms"] == 7 and conf["client.id"] == "x"
    assert FAILOVER_CONFIG.items() <= conf.items()


def test_the_catalog_names_its_topics_through_the_constants():
    assert set(TOPIC_EVENTS) == set(topics.ALL)
