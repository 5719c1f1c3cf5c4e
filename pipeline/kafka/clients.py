"""confluent-kafka and aiokafka clients built from the one configuration mapping (``config``)."""

from __future__ import annotations

from typing import Any

from pipeline.kafka.config import aiokafka_bootstrap, client_config, consumer_config

__all__ = ["admin_client", "aio_client", "aio_consumer", "consumer", "producer"]


def admin_client(bootstrap: str, **extra: Any) -> Any:
    """A confluent-kafka ``AdminClient``."""
    from confluent_kafka.admin import AdminClient

    return AdminClient(client_config(bootstrap, **extra))


def consumer(bootstrap: str, group: str, **extra: Any) -> Any:
    """A confluent-kafka ``Consumer`` in ``group``."""
    from confluent_kafka import Consumer

    return Consumer(consumer_config(bootstrap, group, **extra))


def producer(bootstrap: str, **extra: Any) -> Any:
    """A plain confluent-kafka ``Producer`` (``EventProducer`` is the asyncio, acked one)."""
    from confluent_kafka import Producer

    return Producer(client_config(bootstrap, **extra))


def aio_consumer(bootstrap: str, *topics: str, **kwargs: Any) -> Any:
    """An ``AIOKafkaConsumer`` (not started)."""
    from aiokafka import AIOKafkaConsumer

    return AIOKafkaConsumer(*topics, bootstrap_servers=aiokafka_bootstrap(bootstrap), **kwargs)


def aio_client(bootstrap: str, **kwargs: Any) -> Any:
    """A low-level ``AIOKafkaClient`` (raw protocol requests, ``pipeline.admin.wire``)."""
    from aiokafka.client import AIOKafkaClient

    return AIOKafkaClient(bootstrap_servers=aiokafka_bootstrap(bootstrap), **kwargs)
