"""The chunk framing: round trips, each malformation, and a fuzz test (parse or FramingError)."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.ingest.framing import (
    FRAME_HEADER,
    HEADER,
    MAGIC,
    Chunk,
    Frame,
    FramingError,
    encode_chunk,
    parse_chunk,
)

frames = st.lists(
    st.tuples(st.integers(0, 2**40), st.integers(0, 1000), st.booleans(),
              st.binary(min_size=1, max_size=64)),
    min_size=1, max_size=20,
).map(lambda fs: tuple(Frame(pts + d, pts, k, data) for (pts, d, k, data) in sorted(fs)))
chunks = st.builds(Chunk, st.integers(0, 2**63 - 1), st.sampled_from(["H264", "H265"]),
                   st.integers(1, 10_000_000), st.integers(-(2**63), 2**63 - 1), frames)


@given(chunks)
def test_round_trip(chunk):
    assert parse_chunk(encode_chunk(chunk)) == chunk


@settings(max_examples=2000, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_arbitrary_bytes(body):
    with contextlib.suppress(FramingError):
        parse_chunk(body)


@settings(max_examples=1000, deadline=None)
@given(chunks, st.data())
def test_fuzz_mutated_valid_chunks(chunk, data):
    body = bytearray(encode_chunk(chunk))
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(body) - 1))
        body[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(body)))
    with contextlib.suppress(FramingError):
        parse_chunk(bytes(body[:cut]))


def _one(**kw):
    c = Chunk(7, "H264", 90000, 1, (Frame(0, 0, True, b"\0\0\1\x65"),))
    return bytearray(encode_chunk(c))


@pytest.mark.parametrize("mutate, reason", [
    (lambda b: b[:10], "truncated"),
    (lambda b: b"XXXX" + b[4:], "bad_magic"),
    (lambda b: b[:4] + b"\x02" + b[5:], "bad_version"),
    (lambda b: b[:5] + b"\x09" + b[6:], "unknown_codec"),
    (lambda b: b[:6] + b"\x00\x01" + b[8:], "bad_flags"),
    (lambda b: b[:16] + struct.pack(">I", 0) + b[20:], "bad_timescale"),
    (lambda b: b[:28] + struct.pack(">H", 0) + b[30:], "frame_count"),
    (lambda b: b[:28] + struct.pack(">H", 2) + b[30:], "truncated"),
    (lambda b: b[:-1], "truncated"),
    (lambda b: b + b"\0", "trailing_bytes"),
    (lambda b: b[:HEADER.size + 16] + b"\x03" + b[HEADER.size + 17:], "bad_flags"),
])
def test_each_malformation(mutate, reason):
    with pytest.raises(FramingError) as ei:
        parse_chunk(bytes(mutate(_one())))
    assert ei.value.reason == reason


def test_size_limit():
    body = encode_chunk(Chunk(1, "H264", 90000, 0, (Frame(0, 0, True, b"x" * 5000),)))
    assert parse_chunk(body, max_bytes=len(body)).frames[0].data == b"x" * 5000
    with pytest.raises(FramingError) as ei:
        parse_chunk(body, max_bytes=len(body) - 1)
    assert ei.value.reason == "too_large"


def test_layout_is_documented_sizes():
    assert (HEADER.size, FRAME_HEADER.size, MAGIC) == (30, 21, b"CLGC")
