"""Every event type goes through its real Kafka topic and comes back equal, trace context
included."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings

from pipeline.events import EVENTS, decode_any, encode
from pipeline.telemetry import extract_context, get_tracer, inject_headers
from tests.avro_strategies import records
from tests.conftest import read_back


@pytest.mark.services
@pytest.mark.parametrize("name", sorted(EVENTS))
def test_event_round_trips_through_its_topic(services, produce, name):
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

    trace.set_tracer_provider(TracerProvider()) if not isinstance(
        trace.get_tracer_provider(), TracerProvider) else None
    ev = EVENTS[name]
    sent = []

    @hsettings(max_examples=3, deadline=None, suppress_health_check=list(HealthCheck))
    @given(records(ev.schema))
    def one(record):
        with get_tracer("test").start_as_current_span("produce") as span:
            data = encode(name, record)
            pos = produce(ev.topic, data, key=b"roundtrip", headers=inject_headers())
            sent.append((pos, data, span.get_span_context().trace_id))

    one()
    for (partition, offset), data, trace_id in sent:
        [msg] = read_back(services, ev.topic, partition, offset)
        got_ev, record = decode_any(msg.value())
        assert got_ev is ev and msg.value() == data
        assert encode(name, record) == data
        ctx = trace.get_current_span(extract_context(msg.headers())).get_span_context()
        assert ctx.trace_id == trace_id
