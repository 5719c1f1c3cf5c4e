"""The wire codec: round trips for every event, one DecodeError for every kind of bad bytes."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from pipeline.events import EVENTS, DecodeError, decode, decode_any, encode
from pipeline.events.codec import MAGIC
from tests.avro_strategies import records


def _normal(v):
    """float32 fields round-trip through single precision."""
    if isinstance(v, float):
        return struct.unpack("<f", struct.pack("<f", v))[0] if abs(v) < 3.4e38 else v
    if isinstance(v, dict):
        return {k: _normal(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_normal(x) for x in v]
    return v


@pytest.mark.parametrize("name", sorted(EVENTS))
def test_every_event_round_trips(name):
    ev = EVENTS[name]

    @hsettings(max_examples=60, deadline=None)
    @given(records(ev.schema))
    def check(record):
        data = encode(name, record)
        assert data[:2] == MAGIC and data[2:10] == ev.fingerprint
        got_ev, got = decode_any(data)
        assert got_ev is ev
        floats = {f["name"] for f in ev.schema["fields"] if "float" in str(f["type"])}
        for k, v in record.items():
            if k in floats:
                assert _normal(got[k]) == _normal(v)
            else:
                assert got[k] == v

    check()


def _dead_letter() -> bytes:
    return encode("DeadLetter", {"topic": "camlog.frames", "partition": 1, "offset": 7,
                                 "original": b"\x00\x01", "reason": "bad", "stage": "test",
                                 "time": 1_700_000_000_000_000})


@pytest.mark.parametrize("cut", [0, 1, 5, 9, 10, 12, 20])
def test_truncated_bytes_raise_decode_error(cut):
    data = _dead_letter()
    with pytest.raises(DecodeError) as ei:
        decode_any(data[:cut])
    assert "truncated" in ei.value.reason


def test_foreign_fingerprint_names_the_fingerprint():
    data = bytearray(_dead_letter())
    data[2:10] = b"\x11" * 8
    with pytest.raises(DecodeError, match="unknown schema fingerprint 1111111111111111"):
        decode_any(bytes(data))


def test_wrong_marker_and_trailing_bytes():
    with pytest.raises(DecodeError, match="marker"):
        decode_any(b"{json: true, not avro}")
    with pytest.raises(DecodeError, match="trailing"):
        decode_any(_dead_letter() + b"\x00")
    with pytest.raises(DecodeError, match="expected FrameChunk"):
        decode("FrameChunk", _dead_letter())


@hsettings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_garbage_never_raises_anything_but_decode_error(blob):
    for data in (blob, MAGIC + EVENTS["FrameChunk"].fingerprint + blob):
        try:
            decode_any(data)
        except DecodeError as exc:
            assert exc.reason
