"""W3C trace context carried in Kafka message headers (``traceparent``/``tracestate``)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from opentelemetry import propagate
from opentelemetry.context import Context

__all__ = ["extract_context", "inject_headers"]

KafkaHeaders = Sequence[tuple[str, bytes | str | None]] | dict | None


def inject_headers(headers: list[tuple[str, bytes]] | None = None,
                   context: Context | None = None) -> list[tuple[str, bytes]]:
    """Append the current (or given) trace context to a Kafka header list and return it."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=context)
    out = list(headers or [])
    out += [(k, v.encode()) for k, v in carrier.items()]
    return out


def _pairs(headers: KafkaHeaders) -> Iterable[tuple[str, bytes | str | None]]:
    if not headers:
        return ()
    return headers.items() if isinstance(headers, dict) else headers


def extract_context(headers: KafkaHeaders) -> Context:
    """The trace context found in Kafka headers (confluent-kafka, aiokafka or Faust shapes)."""
    carrier = {}
    for k, v in _pairs(headers):
        if isinstance(k, bytes):
            k = k.decode("latin-1")
        if v is None:
            continue
        carrier[k.lower()] = v.decode("latin-1") if isinstance(v, (bytes, bytearray)) else str(v)
    return propagate.extract(carrier)
