"""Playback events to ``camlog.playback`` in the background: serving never waits for Kafka."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from opentelemetry import metrics

from pipeline.events.codec import EncodeError, encode
from pipeline.kafka import topics
from pipeline.kafka.clients import producer as kafka_producer

__all__ = ["TOPIC", "EventSink"]

TOPIC = topics.PLAYBACK
log = logging.getLogger("camlog.playback.events")


class EventSink:
    """Buffers PlaybackEvents in a bounded queue and produces them in batches from a thread.

    ``record`` is O(1) and never blocks or raises: when the queue is full, when Kafka refuses a
    message, or when delivery finally fails (broker down past ``message_timeout_ms``), the event
    is counted in ``dropped`` and in the ``camlog.playback.events_dropped`` metric.
    """

    def __init__(
        self,
        bootstrap: str,
        *,
        region: str = "",
        topic: str = TOPIC,
        max_queue: int = 50_000,
        interval_s: float = 0.2,
        message_timeout_ms: int = 30_000,
        now: Callable[[], float] = time.time,
    ) -> None:
        self._bootstrap = bootstrap
        self._region = region
        self._topic = topic
        self._queue: deque[tuple[float, str, str, dict[str, Any]]] = deque()
        self._max_queue = max_queue
        self._interval = interval_s
        self._timeout_ms = message_timeout_ms
        self._now = now
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._producer: Any = None
        self.sent = 0  # delivered: produced, no longer in the producer, not failed
        self._produced = self._failed = 0
        self.dropped = 0
        meter = metrics.get_meter("camlog.playback")
        self._m_dropped = meter.create_counter(
            "camlog.playback.events_dropped", description="playback events not delivered to Kafka")
        self._m_sent = meter.create_counter(
            "camlog.playback.events_sent", description="playback events delivered to Kafka")

    def record(self, stream_id: str, kind: str, **fields: Any) -> None:
        """Queue one event (fields as in schemas/playback_event.avsc); never blocks."""
        if len(self._queue) >= self._max_queue:
            self._drop(1, "queue_full")
            return
        # Only the clock is read here; the record is built by the producer thread.
        self._queue.append((self._now(), stream_id, kind, fields))

    def start(self) -> None:
        """Create the producer and start the background thread."""
        self._producer = kafka_producer(self._bootstrap, **{
            "client.id": "camlog-playback",
            "linger.ms": 50,
            "batch.num.messages": 10_000,
            "compression.type": "lz4",
            "enable.idempotence": True,
            "partitioner": "murmur2_random",  # same partition per key as Java/aiokafka (Faust)
            "message.timeout.ms": self._timeout_ms,
            "queue.buffering.max.messages": self._max_queue,
            "log_level": 3,
            # a report per failure only: per-event callbacks cost the request path more than
            # the event (they hold the GIL); deliveries are counted from the producer's queue
            "delivery.report.only.error": True,
        })
        self._thread = threading.Thread(target=self._run, name="playback-events", daemon=True)
        self._thread.start()

    def close(self, flush_s: float = 5.0) -> None:
        """Stop the thread, flush what Kafka takes within ``flush_s``; count the rest dropped."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=flush_s + 1)
            self._thread = None
        if self._producer is not None:
            self._drain()
            left = self._producer.flush(flush_s)
            if left:
                self._drop(left, "shutdown")
                self._failed += left
            self._count_sent()
            self._producer = None

    def _drop(self, n: int, reason: str) -> None:
        self.dropped += n
        self._m_dropped.add(n, {"reason": reason})

    def _delivered(self, err: Any, _msg: Any) -> None:
        if err is not None:  # with delivery.report.only.error, the only reports
            self._failed += 1
            self._drop(1, "kafka_error")

    def _count_sent(self) -> None:
        sent = self._produced - len(self._producer) - self._failed
        if sent > self.sent:
            self._m_sent.add(sent - self.sent)
            self.sent = sent

    def _event(self, at: float, stream_id: str, kind: str,
               fields: dict[str, Any]) -> dict[str, Any]:
        ev = {"event_id": _uuid4(),
              "stream_id": stream_id, "kind": kind, "time": int(at * 1_000_000),
              "region": self._region}
        ev.update(fields)
        return ev

    def pending(self) -> list[dict[str, Any]]:
        """The queued events as records (for tests and debugging); does not dequeue."""
        return [self._event(*item) for item in list(self._queue)]

    def _drain(self) -> None:
        producer = self._producer
        while self._queue:
            ev = self._event(*self._queue.popleft())
            try:
                value = encode("PlaybackEvent", ev)
            except EncodeError as exc:
                log.warning("playback event not encodable: %s", exc)
                self._drop(1, "encode")
                continue
            try:
                producer.produce(self._topic, value=value, key=ev["stream_id"].encode(),
                                 on_delivery=self._delivered)
                self._produced += 1
            except BufferError:
                self._drop(1 + len(self._queue), "queue_full")
                self._queue.clear()
            except Exception as exc:  # KafkaException: never let it reach a request
                log.warning("playback event not produced: %s", exc)
                self._drop(1, "kafka_error")
        producer.poll(0)
        self._count_sent()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._drain()
            except Exception:  # the sink must outlive any surprise; count and go on
                log.exception("playback event sink")


_UUID_KEEP = ~(0xF000 << 64) & ~(0xC000 << 48)  # all but the version and variant bits
_UUID_V4 = 0x4000 << 64 | 0x8000 << 48  # version 4, RFC 4122 variant


def _uuid4() -> str:
    """A random (version 4) UUID string, as ``str(uuid.uuid4())`` spells it, for a third of the
    cost (one per served request)."""
    n = random.getrandbits(128) & _UUID_KEEP | _UUID_V4
    h = f"{n:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

