"""What every agent does to an event before its handler sees it, in one place.

The segmenter and the view agents share these: the stream-prefix filter, the trace of a batch
(continue the first traced event, link the others), checking that a view's event is the one
its topic carries (``record_of``), dead-lettering an event that cannot be decoded (published
before the bad event is acked), and waiting out a Cassandra outage.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context

from pipeline.agents.supervise import KAFKA_TRANSIENT
from pipeline.events import EVENTS, DecodeError, decode_any, encode
from pipeline.kafka import topics
from pipeline.retry import patiently
from pipeline.store.cluster import StoreUnavailable
from pipeline.telemetry import extract_context
from pipeline.views.checks import problem

__all__ = ["Send", "dead_letter", "ours", "record_of", "stored", "trace_links"]

_SOURCES = {topics.SEGMENTS: "SealedSegment", topics.SESSIONS: "SessionChange",
            topics.FRAMES: "FrameChunk", topics.DLQ: "DeadLetter",
            topics.PLAYBACK: "PlaybackEvent"}
#: Events that belong on a topic but no view folds (LL-HLS playlists follow SealedPart live),
#: and their current fingerprints, so the common case is skipped without decoding.
_PASSED = {topics.SEGMENTS: frozenset({"SealedPart"})}
_PASSED_FP = {t: frozenset(EVENTS[n].fingerprint for n in names) for t, names in _PASSED.items()}

#: Publishes one message (key, value) to camlog.dlq and returns once Kafka has it.
Send = Callable[[bytes | None, bytes], Awaitable[None]]


def ours(key: bytes | None, prefix: bytes) -> bool:
    """Whether an event's stream key is this deployment's (every key is, without a prefix)."""
    return not prefix or (key or b"").startswith(prefix)


def trace_links(headers: Iterable[Any]) -> tuple[Context | None, list[trace.Link]]:
    """The first traced event's context (the batch span continues it) and links to each one."""
    parent, links = None, {}
    for h in headers:
        if h:
            ctx = extract_context(h)
            sc = trace.get_current_span(ctx).get_span_context()
            if sc.is_valid:
                parent = parent or ctx
                links.setdefault((sc.trace_id, sc.span_id), trace.Link(sc))
    return parent, list(links.values())


async def dead_letter(send: Send, *, topic: str, partition: int, offset: int,
                      key: bytes | None, original: bytes, reason: str, stage: str,
                      stream_id: str | None, time_us: int) -> None:
    """Publish a DeadLetter for an event no handler can take, retried while Kafka is away."""
    value = encode("DeadLetter", {
        "topic": topic, "partition": partition, "offset": offset, "key": key,
        "original": original, "reason": reason, "stage": stage, "stream_id": stream_id,
        "time": time_us})
    await patiently(lambda: send(key, value), "publish", KAFKA_TRANSIENT)


async def stored(op: Callable[[], Awaitable[Any]], what: str) -> Any:
    """A store call, waited out while Cassandra is unavailable: delayed, never skipped."""
    return await patiently(op, what, (StoreUnavailable,))


def record_of(topic: str, value: bytes | None) -> dict[str, Any] | None:
    """The view record of an event, None for one no view folds; ``DecodeError`` when bad."""
    if value and bytes(value[2:10]) in _PASSED_FP.get(topic, ()):
        return None
    ev, record = decode_any(value)
    if ev.name in _PASSED.get(topic, ()):
        return None
    if ev.name != _SOURCES[topic]:
        raise DecodeError(f"expected {_SOURCES[topic]} on {topic}, got {ev.name}")
    reason = problem(ev.name, record)
    if reason is not None:
        raise DecodeError(reason)
    return record
