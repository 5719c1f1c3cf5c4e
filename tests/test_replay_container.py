"""Container files from encoded datums: any reader gets the records back; reruns are identical."""

from __future__ import annotations

import contextlib
import io

import fastavro
import fastavro._read
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.errors import CliError
from pipeline.events.catalog import EVENTS
from pipeline.events.codec import decode, encode
from pipeline.replay.container import ContainerWriter, sync_marker
from pipeline.replay.timespec import format_time, parse_time
from tests.avro_strategies import records


@contextlib.contextmanager
def _raw_timestamps():
    """Arbitrary test longs are not all valid datetimes: read timestamp-micros as plain ints."""
    saved = fastavro._read.LOGICAL_READERS.pop("long-timestamp-micros")
    try:
        yield
    finally:
        fastavro._read.LOGICAL_READERS["long-timestamp-micros"] = saved


def _write(ev, datums, codec, block_bytes):
    buf = io.BytesIO()
    w = ContainerWriter(buf, ev.file.read_text(), sync_marker(b"seed"), {"camlog.x": b"1"},
                        codec, block_bytes)
    for d in datums:
        w.append(d)
    w.close()
    return buf.getvalue()


@pytest.mark.parametrize("name", sorted(EVENTS))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), codec=st.sampled_from(["null", "deflate"]),
       block=st.sampled_from([1, 200, 1 << 20]))
def test_fastavro_reads_back_what_was_copied(name, data, codec, block):
    ev = EVENTS[name]
    recs = data.draw(st.lists(records(ev.schema), max_size=20))
    wire = [encode(ev, r) for r in recs]
    blob = _write(ev, [w[10:] for w in wire], codec, block)
    with _raw_timestamps():
        back = list(fastavro.reader(io.BytesIO(blob)))
    assert back == [decode(ev, w) for w in wire]
    assert blob == _write(ev, [w[10:] for w in wire], codec, block)
    header = fastavro.reader(io.BytesIO(blob)).metadata
    assert header["camlog.x"] == "1"


def test_embedded_schema_keeps_logical_types():
    ev = EVENTS["SessionChange"]
    blob = _write(ev, [], "null", 1024)
    assert '"timestamp-micros"' in fastavro.reader(io.BytesIO(blob)).metadata["avro.schema"]


@pytest.mark.parametrize("text,us", [
    ("2026-11-25T12:00:00Z", 1795608000_000000),
    ("2026-11-25T13:00:00+01:00", 1795608000_000000),
    ("2026-11-25 12:00:00", 1795608000_000000),
    ("1795608000", 1795608000_000000),
    ("1795608000.000001", 1795608000_000001),
])
def test_times(text, us):
    assert parse_time(text) == us
    assert parse_time(format_time(us)) == us


@pytest.mark.parametrize("text", ["yesterday", "", "12:00", "2026-13-01"])
def test_bad_times(text):
    with pytest.raises(CliError, match="bad time"):
        parse_time(text)
