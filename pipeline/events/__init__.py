"""The Avro event catalog and its wire codec (single-object encoding)."""

from pipeline.events.catalog import EVENTS, TOPICS, EventType
from pipeline.events.codec import DecodeError, decode, decode_any, encode

__all__ = ["EVENTS", "TOPICS", "DecodeError", "EventType", "decode", "decode_any", "encode"]
