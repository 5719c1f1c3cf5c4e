"""Select events from camlog's topics by time range, stream and type, without a consumer group."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pipeline.config import Settings
from pipeline.errors import CliError
from pipeline.events.catalog import BY_FINGERPRINT, EVENTS, TOPIC_EVENTS, EventType
from pipeline.events.codec import MAGIC, decode_any, encode

__all__ = ["LogEvent", "LogReader", "PartitionRange", "Selection", "event_type_named"]

_HEADER = 10  # single-object encoding: C3 01 + 8-byte fingerprint


def event_type_named(name: str) -> EventType:
    """Resolve ``FrameChunk`` / ``framechunk`` to its event type (CliError when unknown)."""
    for ev in EVENTS.values():
        if ev.name.lower() == name.lower():
            return ev
    raise CliError(f"unknown event type {name!r} (known: {', '.join(sorted(EVENTS))})")


@dataclass(frozen=True)
class Selection:
    """What to read: topics, a half-open time range ``[start_us, end_us)`` and filters."""

    topics: tuple[str, ...]
    start_us: int | None = None
    end_us: int | None = None
    streams: frozenset[str] = field(default_factory=frozenset)
    types: frozenset[str] = field(default_factory=frozenset)  # event names, e.g. "FrameChunk"
    slack_us: int = 60_000_000  # tolerated timestamp disorder within a partition

    def __post_init__(self) -> None:
        if not self.topics:
            raise CliError("select at least one topic (--topic or --type)")
        if self.start_us is not None and self.end_us is not None and self.start_us >= self.end_us:
            raise CliError("empty time range: --from must be before --to")

    def wants(self, key: bytes | None, ev: EventType, record: dict | None = None) -> bool:
        """Whether a message passes the stream and type filters."""
        if self.types and ev.name not in self.types:
            return False
        if not self.streams:
            return True
        if key is not None:
            return key.decode("utf-8", "replace") in self.streams
        return record is not None and record.get("stream_id") in self.streams

    def describe(self) -> dict[str, Any]:
        """A JSON-able description (stable order), used for file metadata and sync markers."""
        return {"topics": list(self.topics), "from_us": self.start_us, "to_us": self.end_us,
                "streams": sorted(self.streams), "types": sorted(self.types),
                "slack_us": self.slack_us}


@dataclass(frozen=True)
class PartitionRange:
    """Offsets ``[start, end)`` of one partition that cover the time range."""

    topic: str
    partition: int
    start: int
    end: int

    @property
    def size(self) -> int:
        """Messages in the range (before filtering)."""
        return max(0, self.end - self.start)


@dataclass(frozen=True, slots=True)
class LogEvent:
    """One selected message with its place in the log."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes
    event: EventType
    current: bool = True  # written with the current schema (else an older released version)

    @property
    def body(self) -> bytes | memoryview:
        """The Avro binary datum in the current schema (older versions are re-encoded)."""
        if self.current:
            return memoryview(self.value)[_HEADER:]  # no copy: export is bound by this loop
        return encode(self.event, self.record())[_HEADER:]

    def record(self) -> dict[str, Any]:
        """The decoded record (timestamps as int µs)."""
        return decode_any(self.value)[1]


class LogReader:
    """Reads a :class:`Selection` partition by partition, in offset order, with assign() only.

    Never joins a consumer group and never commits, so live consumers are untouched. Time
    bounds are turned into offsets with offsets_for_times, so a narrow range reads only itself.
    """

    def __init__(self, settings: Settings, selection: Selection, batch: int = 5000, ahead: int = 4,
                 missing_ok: bool = False):
        self._settings = settings
        self.selection = selection
        self._missing_ok = missing_ok
        self.missing: list[str] = []  # topics skipped because they do not exist (missing_ok)
        self._batch = batch
        self._ahead = max(1, ahead)
        self._consumer: Any = None
        self.skipped = 0  # messages in range that are not camlog events of the topic's type
        self.scanned = 0  # messages read (before filters), for progress

    def start(self) -> None:
        """Connect and check that every topic exists."""
        from confluent_kafka import Consumer

        self._consumer = Consumer(self._config())
        try:
            md = self._consumer.list_topics(timeout=10)
        except Exception as exc:
            raise CliError(f"Kafka unreachable at {self._settings.kafka}: {exc}") from exc
        missing = [t for t in self.selection.topics if t not in md.topics]
        if missing and self._missing_ok:
            self.missing = missing
        elif missing:
            known = ", ".join(sorted(t for t in md.topics if not t.startswith("__")))
            raise CliError(f"unknown topic {', '.join(missing)} (topics: {known})")
        self._partitions = {t: sorted(md.topics[t].partitions) for t in self.selection.topics
                            if t in md.topics}

    def _config(self) -> dict[str, Any]:
        return {
            "bootstrap.servers": self._settings.kafka,
            "group.id": f"camlog-replay-{uuid.uuid4().hex}",  # required by the client; never joined
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": False,
            "fetch.max.bytes": 64 << 20,
            "max.partition.fetch.bytes": 16 << 20,
            "queued.max.messages.kbytes": 64 << 10,  # per read-ahead consumer
        }

    def close(self) -> None:
        """Leave without committing anything."""
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None

    def __enter__(self) -> LogReader:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def ranges(self) -> list[PartitionRange]:
        """Offset ranges per partition (topic order as given, then partition)."""
        from confluent_kafka import TopicPartition

        sel, c = self.selection, self._consumer
        out = []
        for topic in self._partitions:
            parts = self._partitions[topic]
            marks = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
                     for p in parts}
            # Timestamps are CreateTime (the bridge's clock), nearly but not strictly ordered:
            # widen the offset range by the slack and filter on the timestamp itself.
            lo = None if sel.start_us is None else sel.start_us - sel.slack_us
            hi = None if sel.end_us is None else sel.end_us + sel.slack_us
            starts = self._offsets_at(topic, parts, lo, {p: m[0] for p, m in marks.items()},
                                      {p: m[1] for p, m in marks.items()})
            ends = self._offsets_at(topic, parts, hi, {p: m[1] for p, m in marks.items()},
                                    {p: m[1] for p, m in marks.items()})
            out += [PartitionRange(topic, p, starts[p], max(starts[p], ends[p])) for p in parts]
        return out

    def _offsets_at(self, topic: str, parts: list[int], us: int | None, default: dict[int, int],
                    high: dict[int, int]) -> dict[int, int]:
        """First offset whose timestamp is >= ``us`` (the high watermark if none)."""
        from confluent_kafka import TopicPartition

        if us is None:
            return dict(default)
        ms = -(-us // 1000)
        res = self._consumer.offsets_for_times([TopicPartition(topic, p, ms) for p in parts],
                                               timeout=10)
        return {tp.partition: tp.offset if tp.offset >= 0 else high[tp.partition] for tp in res}

    def events(self, ranges: list[PartitionRange] | None = None) -> Iterator[LogEvent]:
        """Selected events, by partition then offset (a stable, reproducible order).

        Partitions are drained one after another, but the next ``ahead`` partitions already
        fetch in the background (one assign()-only consumer each, bounded prefetch), so reading
        in order costs about what reading all partitions at once does.
        """
        from confluent_kafka import Consumer, TopicPartition

        todo = iter([r for r in (ranges if ranges is not None else self.ranges()) if r.size])
        window: list[tuple[PartitionRange, Any]] = []

        def open_next() -> None:
            r = next(todo, None)
            if r is not None:
                c = Consumer(self._config())
                c.assign([TopicPartition(r.topic, r.partition, r.start)])
                window.append((r, c))

        try:
            for _ in range(self._ahead):
                open_next()
            while window:
                r, c = window[0]
                yield from self._read(r, c)
                window.pop(0)
                c.close()
                open_next()
        finally:
            for _, c in window:
                c.close()

    def _read(self, r: PartitionRange, c: Any) -> Iterator[LogEvent]:
        from confluent_kafka import TopicPartition

        sel = self.selection
        expected = TOPIC_EVENTS.get(r.topic)
        # [lo_ms, hi_ms) in Kafka's millisecond timestamps, equivalent to the µs bounds
        lo_ms = -(-sel.start_us // 1000) if sel.start_us is not None else -(1 << 62)
        hi_ms = -(-sel.end_us // 1000) if sel.end_us is not None else 1 << 62
        filtered = bool(sel.streams or sel.types)
        topic, partition, end = r.topic, r.partition, r.end
        pos, idle = r.start, 0
        while pos < end:
            # consume() waits for a full batch or the timeout: never ask for more than is left
            msgs = c.consume(min(self._batch, end - pos), timeout=0.2)
            if not msgs:
                got = c.position([TopicPartition(topic, partition)])[0].offset
                pos = max(pos, got)  # offsets can skip (transaction markers, compaction)
                idle += 1
                if idle >= 300:
                    raise CliError(f"{topic}[{partition}]: no data at offset {pos} "
                                   f"(expected up to {end}) for 60 s")
                continue
            idle = 0
            for m in msgs:  # the hot loop of export: keep it lean
                if m.error():
                    raise CliError(f"reading {topic}[{partition}]: {m.error()}")
                off = m.offset()
                if off >= end:
                    pos = end
                    break
                pos = off + 1
                self.scanned += 1
                ts = m.timestamp()[1]
                if not lo_ms <= ts < hi_ms:  # CreateTime may be out of order within a range
                    continue
                value = m.value()
                writer = (BY_FINGERPRINT.get(value[2:_HEADER])
                          if value and value[:2] == MAGIC else None)
                if writer is None or (expected is not None and writer.event.name not in expected):
                    self.skipped += 1
                    continue
                key = m.key()
                if filtered and not (sel.wants(key, writer.event) or (
                        key is None and sel.wants(None, writer.event, decode_any(value)[1]))):
                    continue
                yield LogEvent(topic, partition, off, ts, key, value, writer.event, writer.current)
