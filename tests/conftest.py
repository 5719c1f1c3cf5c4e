"""Shared fixtures: settings, and the real Kafka and Cassandra started by ``camlog dev up``."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from pipeline.config import Settings, ensure_dev_secret, load_settings
from tests.regions.stack import two_regions  # noqa: F401  (one two-region stack for all tests)


def pytest_configure(config: pytest.Config) -> None:
    """Like ``camlog dev up``, make the development device-token secret once (loading settings
    writes nothing), so tests that load settings themselves find it on a bare clone too."""
    ensure_dev_secret(load_settings())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Chaos tests run last: they fault the shared dev stack (and restore it) after the rest.

    Two-region tests run after them: they stop the shared stack for their own (and restore it).
    """
    items.sort(key=lambda item: (item.get_closest_marker("regions") is not None,
                                 item.get_closest_marker("chaos") is not None))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print the figures whole-system tests measured (chaos outcomes, recovery times)."""
    from tests.system import FIGURES

    if FIGURES:
        terminalreporter.section("measured figures")
        for line in FIGURES:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def settings() -> Settings:
    """Settings from the environment, as ``make test`` sets it (default ports, state in .camlog)."""
    from pipeline.auth.keys import ensure_dev_key

    s = ensure_dev_secret(load_settings())
    ensure_dev_key(s)  # viewer tokens need the dev ES256 key (`camlog token keygen`)
    return s


def _require_services(settings: Settings) -> None:
    """Tests marked ``services`` need the stack; start it (or reuse a running one) once."""
    from confluent_kafka.admin import AdminClient

    try:
        AdminClient({"bootstrap.servers": settings.kafka}).list_topics(timeout=3)
        from pipeline.store.cluster import connect

        connect(settings, timeout=3).cluster.shutdown()
        return
    except Exception:
        pass
    if os.environ.get("CAMLOG_TEST_NO_START"):
        pytest.fail(f"Kafka ({settings.kafka}) or Cassandra ({settings.cassandra}) not reachable")
    from pipeline.cli import main

    assert main(["dev", "up"]) == 0, "camlog dev up failed"


@pytest.fixture(scope="session")
def services(settings: Settings) -> Settings:
    """Real Kafka + Cassandra reachable with the topology applied."""
    _require_services(settings)
    return settings


@pytest.fixture(scope="session")
def cassandra_session(services: Settings) -> Iterator[Any]:
    """A driver session on the camlog keyspace (LOCAL_QUORUM by default)."""
    from pipeline.store.cluster import connect

    session = connect(services, services.keyspace)
    yield session
    session.cluster.shutdown()


@pytest.fixture
def stream_id() -> str:
    """A stream id no other test uses."""
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def produce(services: Settings) -> Iterator[Callable[..., tuple[int, int]]]:
    """``produce(topic, value, key=None, headers=None) -> (partition, offset)``, acks=all,
    synchronous."""
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": services.kafka, "enable.idempotence": True, "acks": "all",
                  "partitioner": "murmur2_random"})

    def _produce(topic: str, value: bytes, key: str | bytes | None = None,
                 headers: list | None = None) -> tuple[int, int]:
        out: dict = {}

        def cb(err, msg):
            out["err"], out["msg"] = err, msg

        p.produce(topic, value=value, key=key, headers=headers, on_delivery=cb)
        p.flush(30)
        assert out.get("err") is None, out.get("err")
        return out["msg"].partition(), out["msg"].offset()

    yield _produce
    p.flush(30)


def read_back(settings: Settings, topic: str, partition: int, offset: int, count: int = 1,
              timeout: float = 30.0) -> list:
    """Read ``count`` messages from an exact position (no consumer group, no commits)."""
    import time

    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": settings.kafka, "group.id": f"test-{uuid.uuid4().hex}",
                  "enable.auto.commit": False})
    c.assign([TopicPartition(topic, partition, offset)])
    out, deadline = [], time.monotonic() + timeout
    try:
        while len(out) < count and time.monotonic() < deadline:
            msg = c.poll(1.0)
            if msg is not None and not msg.error():
                out.append(msg)
    finally:
        c.close()
    return out
