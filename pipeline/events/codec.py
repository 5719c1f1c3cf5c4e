"""Avro single-object encoding (spec §"Single object encoding"): C3 01, 8-byte fingerprint, body."""

from __future__ import annotations

import io
from typing import Any

from fastavro import schemaless_reader, schemaless_writer

from pipeline.events.catalog import BY_FINGERPRINT, EVENTS, EventType

__all__ = ["MAGIC", "DecodeError", "EncodeError", "decode", "decode_any", "encode"]

MAGIC = b"\xc3\x01"
_HEADER = len(MAGIC) + 8


class DecodeError(ValueError):
    """Bytes that are not a valid camlog event; ``reason`` says why in words."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class EncodeError(ValueError):
    """A record that does not match its schema."""


def _event(name: str | EventType) -> EventType:
    return name if isinstance(name, EventType) else EVENTS[name]


def encode(name: str | EventType, record: dict[str, Any]) -> bytes:
    """Encode ``record`` as event ``name`` (e.g. ``"FrameChunk"``) in single-object encoding."""
    ev = _event(name)
    buf = io.BytesIO()
    buf.write(MAGIC)
    buf.write(ev.fingerprint)
    try:
        schemaless_writer(buf, ev.parsed, record, strict_allow_default=True)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise EncodeError(f"{ev.name}: {exc}") from exc
    return buf.getvalue()


def decode_any(data: bytes | None) -> tuple[EventType, dict[str, Any]]:
    """Decode bytes of any known event; returns the event type and the record."""
    if data is None:
        raise DecodeError("empty message (tombstone)")
    if len(data) < _HEADER:
        raise DecodeError(f"truncated: {len(data)} bytes is shorter than the 10-byte header")
    if data[:2] != MAGIC:
        raise DecodeError(f"not Avro single-object encoding: marker {data[:2].hex()} != c301")
    fp = bytes(data[2:_HEADER])
    writer = BY_FINGERPRINT.get(fp)
    if writer is None:
        raise DecodeError(f"unknown schema fingerprint {fp.hex()} (not in schemas/)")
    ev = writer.event
    buf = io.BytesIO(data)
    buf.seek(_HEADER)
    try:
        record = schemaless_reader(buf, writer.parsed, None if writer.current else ev.parsed)
    except EOFError:
        raise DecodeError(f"truncated {ev.name} body ({len(data)} bytes)") from None
    except Exception as exc:  # fastavro raises many types on garbage; one error type leaves here
        raise DecodeError(f"corrupt {ev.name} body: {type(exc).__name__}: {exc}") from exc
    if buf.tell() != len(data):
        raise DecodeError(f"{len(data) - buf.tell()} trailing bytes after {ev.name} body")
    return ev, record


def decode(name: str | EventType, data: bytes | None) -> dict[str, Any]:
    """Decode bytes that must be event ``name``."""
    ev, record = decode_any(data)
    want = _event(name)
    if ev is not want:
        raise DecodeError(f"expected {want.name}, got {ev.name}")
    return record
