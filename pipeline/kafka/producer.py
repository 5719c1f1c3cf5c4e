"""An asyncio face on confluent-kafka's idempotent producer: ``await send(...)`` = Kafka acked."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from typing import Any

from pipeline.kafka.config import producer_config

__all__ = ["Ack", "EventProducer", "KafkaUnavailable"]


@dataclass(frozen=True)
class Ack:
    """Where Kafka stored an event."""

    partition: int
    offset: int


class KafkaUnavailable(Exception):
    """Kafka did not take the event (queue full, timeout, broker down): tell the client to retry."""


class EventProducer:
    """Idempotent (acks=all) producer whose delivery reports resolve asyncio futures.

    Created without network; ``start()`` builds the client and a poll thread, ``close()`` flushes.
    """

    def __init__(self, bootstrap: str, *, queue_max_messages: int = 20000,
                 queue_max_kbytes: int = 262144, delivery_timeout_ms: int = 10000,
                 linger_ms: int = 2, extra: dict[str, Any] | None = None):
        self._config = producer_config(
            bootstrap, queue_max_messages=queue_max_messages, queue_max_kbytes=queue_max_kbytes,
            delivery_timeout_ms=delivery_timeout_ms, linger_ms=linger_ms, **(extra or {}))
        self._producer: Any = None
        self._kafka_exc: type[Exception] = Exception
        self._thread: threading.Thread | None = None
        self._running = False

    @property
    def config(self) -> dict[str, Any]:
        """The librdkafka configuration the client is built with (a copy)."""
        return dict(self._config)

    async def start(self) -> None:
        """Create the client and the thread that serves delivery reports."""
        from confluent_kafka import KafkaException, Producer

        self._kafka_exc = KafkaException
        self._producer = Producer(self._config)
        self._running = True
        self._thread = threading.Thread(target=self._poll_loop, name="kafka-poll", daemon=True)
        self._thread.start()

    def _poll_loop(self) -> None:
        while self._running:
            self._producer.poll(0.05)

    @property
    def queue_depth(self) -> int:
        """Messages waiting in the client for delivery."""
        return len(self._producer) if self._producer is not None else 0

    async def send(self, topic: str, key: bytes, value: bytes,
                   headers: list[tuple[str, bytes]] | None = None) -> Ack:
        """Produce and wait for the broker's acknowledgement; ``KafkaUnavailable`` otherwise."""
        fut = self.enqueue(topic, key, value, headers)
        return await fut

    def enqueue(self, topic: str, key: bytes, value: bytes,
                headers: list[tuple[str, bytes]] | None = None) -> asyncio.Future[Ack]:
        """Hand the event to the client now (keeping call order) and return its ack future."""
        if self._producer is None:
            raise KafkaUnavailable("producer not started")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Ack] = loop.create_future()

        def on_delivery(err: Any, msg: Any) -> None:
            if err is not None:
                loop.call_soon_threadsafe(_fail, fut, KafkaUnavailable(f"kafka: {err.str()}"))
            else:
                loop.call_soon_threadsafe(_ok, fut, Ack(msg.partition(), msg.offset()))

        try:
            self._producer.produce(topic, value=value, key=key, headers=headers,
                                   on_delivery=on_delivery)
        except BufferError:
            raise KafkaUnavailable("producer queue is full") from None
        except self._kafka_exc as exc:
            raise KafkaUnavailable(f"kafka: {exc}") from None
        return fut

    def ping(self, timeout: float = 2.0) -> bool:
        """Blocking check that a broker answers metadata requests (call from a thread)."""
        if self._producer is None:
            return False
        try:
            md = self._producer.list_topics(timeout=timeout)
            return bool(md.brokers)
        except (self._kafka_exc, RuntimeError):  # no broker answered in time
            return False

    async def close(self, timeout: float = 10.0) -> None:
        """Deliver what is queued (up to ``timeout``) and stop the poll thread."""
        if self._producer is None:
            return
        await asyncio.to_thread(self._producer.flush, timeout)
        self._running = False
        if self._thread:
            await asyncio.to_thread(self._thread.join, 2)
        self._producer = None


def _ok(fut: asyncio.Future, ack: Ack) -> None:
    if not fut.done():
        fut.set_result(ack)


def _fail(fut: asyncio.Future, exc: Exception) -> None:
    if not fut.done():
        fut.set_exception(exc)
