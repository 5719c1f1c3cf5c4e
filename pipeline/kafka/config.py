"""The one mapping from ``Settings.kafka`` (a bootstrap list) to each client library's settings.

librdkafka (confluent-kafka) takes ``bootstrap.servers`` as a string, aiokafka a list of
``host:port``, Faust a list of ``kafka://host:port`` URLs; the failover timeouts every producer
uses are here too so the bridge, the puller and the playback event sink agree.
"""

from __future__ import annotations

from typing import Any

__all__ = ["FAILOVER_CONFIG", "aiokafka_bootstrap", "client_config", "consumer_config",
           "faust_brokers", "hosts", "producer_config"]

#: Client side of a broker failover (README, "Failover"). A produce request to a leader that
#: hangs (SIGSTOP, partition) holds the partition's later messages until it times out, because
#: the idempotent producer keeps order: 5 s, not 30 s, covers an acks=all write waiting for a dead
#: follower to be fenced (3 s in the dev stack). Reconnecting to a broker that came back waits at
#: most 1 s (default 10 s, which added up to 10 s after an outage); metadata is refreshed every
#: 10 s anyway so leadership moves without errors are seen soon.
FAILOVER_CONFIG: dict[str, Any] = {
    "request.timeout.ms": 5000,
    "socket.timeout.ms": 10000,
    "reconnect.backoff.max.ms": 1000,
    "retry.backoff.ms": 100,
    "retry.backoff.max.ms": 500,
    "topic.metadata.refresh.interval.ms": 10000,
    "metadata.max.age.ms": 30000,
}


def hosts(bootstrap: str) -> list[str]:
    """``"a:9092, b:9092"`` → ``["a:9092", "b:9092"]``."""
    return [h.strip() for h in bootstrap.split(",") if h.strip()]


def client_config(bootstrap: str, **extra: Any) -> dict[str, Any]:
    """librdkafka settings for any client (admin, consumer, producer) of ``bootstrap``."""
    return {"bootstrap.servers": bootstrap, **extra}


def consumer_config(bootstrap: str, group: str, **extra: Any) -> dict[str, Any]:
    """librdkafka consumer settings: a group id (librdkafka requires one even to only assign)."""
    return client_config(bootstrap, **{"group.id": group, **extra})


def producer_config(bootstrap: str, *, queue_max_messages: int = 20000,
                    queue_max_kbytes: int = 262144, delivery_timeout_ms: int = 10000,
                    linger_ms: int = 2, **extra: Any) -> dict[str, Any]:
    """The idempotent, acks=all producer every camlog event is written with."""
    return client_config(bootstrap, **{
        "enable.idempotence": True,
        "partitioner": "murmur2_random",  # same partition per key as Java/aiokafka (Faust)
        "acks": "all",
        "linger.ms": linger_ms,
        "compression.type": "none",  # media does not compress; don't burn CPU
        "queue.buffering.max.messages": queue_max_messages,
        "queue.buffering.max.kbytes": queue_max_kbytes,
        "delivery.timeout.ms": delivery_timeout_ms,
        "message.max.bytes": 2097152,
        "client.id": "camlog-bridge",
        "socket.nagle.disable": True,  # small produce requests must not wait for delayed ACKs
        **FAILOVER_CONFIG,
        **extra,
    })


def aiokafka_bootstrap(bootstrap: str) -> list[str]:
    """aiokafka's ``bootstrap_servers``."""
    return hosts(bootstrap)


def faust_brokers(bootstrap: str) -> list[str]:
    """Faust's ``broker`` setting."""
    return [f"kafka://{h}" for h in hosts(bootstrap)]
