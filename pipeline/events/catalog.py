"""Loads ``schemas/*.avsc`` once: each event's parsed schema, fingerprint and topic."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastavro
from fastavro.schema import fingerprint, to_parsing_canonical_form

from pipeline.config import ConfigError, env_setting
from pipeline.kafka import topics

__all__ = ["BY_FINGERPRINT", "EVENTS", "SCHEMA_DIR", "TOPICS", "TOPIC_EVENTS", "EventType",
           "WriterSchema", "load_schema"]

#: ``Settings.schema_dir`` (``CAMLOG_SCHEMA_DIR``), read once: every event type below is built
#: from it at import time, so each process speaks one release's schemas.
SCHEMA_DIR: Path = env_setting("schema_dir")


def _strip_logical(node: Any) -> Any:
    """Drop logicalType annotations so timestamps stay plain int microseconds in Python.

    The wire bytes and the Parsing Canonical Form (hence the fingerprint) are unchanged.
    """
    if isinstance(node, dict):
        return {k: _strip_logical(v) for k, v in node.items() if k != "logicalType"}
    if isinstance(node, list):
        return [_strip_logical(v) for v in node]
    return node


def load_schema(path: Path) -> dict:
    """Read an ``.avsc`` file as JSON."""
    return json.loads(path.read_text())


@dataclass(frozen=True)
class EventType:
    """One event of the catalog."""

    name: str  # e.g. "FrameChunk"
    topic: str
    file: Path
    schema: dict  # the .avsc as written (logical types kept)
    parsed: Any  # fastavro-parsed, logical types stripped
    fingerprint: bytes  # CRC-64-AVRO, 8 bytes little-endian as written on the wire

    @property
    def canonical(self) -> str:
        """Parsing Canonical Form of the schema."""
        return to_parsing_canonical_form(self.parsed)


_TOPIC_OF = {  # the first event named for a topic is its primary one (``TOPICS``)
    "FrameChunk": topics.FRAMES,
    "SealedSegment": topics.SEGMENTS,
    "SealedPart": topics.SEGMENTS,
    "SessionChange": topics.SESSIONS,
    "PlaybackEvent": topics.PLAYBACK,
    "DeadLetter": topics.DLQ,
    "CameraConfig": topics.CAMERAS,
}


def _parse(schema: dict) -> tuple[Any, bytes]:
    # The parse hint lets fastavro skip re-parsing the schema on every read and write (~4x
    # faster per event); the canonical form and fingerprint are the same either way.
    parsed = fastavro.parse_schema(copy.deepcopy(_strip_logical(schema)))
    # fastavro gives the Rabin fingerprint's bytes little-endian, as the spec writes them.
    return parsed, bytes.fromhex(fingerprint(to_parsing_canonical_form(parsed), "CRC-64-AVRO"))


def _load(path: Path) -> EventType:
    schema = load_schema(path)
    parsed, fp = _parse(schema)
    name = schema["name"]
    return EventType(name, _TOPIC_OF.get(name, ""), path, schema, parsed, fp)


@dataclass(frozen=True)
class WriterSchema:
    """A schema data may have been written with: the current one or a released older version."""

    event: EventType  # the current (reader) event type
    parsed: Any  # the writer's parsed schema
    current: bool


EVENTS: dict[str, EventType] = {e.name: e for e in map(_load, sorted(SCHEMA_DIR.glob("*.avsc")))}
if _missing := sorted(set(_TOPIC_OF) - set(EVENTS)):
    raise ConfigError(f"CAMLOG_SCHEMA_DIR={SCHEMA_DIR}: no schema for {', '.join(_missing)}")
#: Topic → its primary event type; ``TOPIC_EVENTS`` has every type a topic carries.
TOPICS: dict[str, EventType] = {}
TOPIC_EVENTS: dict[str, frozenset[str]] = {}
for _name, _topic in _TOPIC_OF.items():
    TOPICS.setdefault(_topic, EVENTS[_name])
    TOPIC_EVENTS[_topic] = TOPIC_EVENTS.get(_topic, frozenset()) | {_name}


def _writers() -> dict[bytes, WriterSchema]:
    out: dict[bytes, WriterSchema] = {}
    for ev in EVENTS.values():
        for old in sorted((SCHEMA_DIR / "history" / ev.name).glob("*.avsc")):
            parsed, fp = _parse(load_schema(old))
            out[fp] = WriterSchema(ev, parsed, False)
        out[ev.fingerprint] = WriterSchema(ev, ev.parsed, True)
    return out


#: Fingerprint → writer schema; older released versions are resolved to the current schema.
BY_FINGERPRINT: dict[bytes, WriterSchema] = _writers()
