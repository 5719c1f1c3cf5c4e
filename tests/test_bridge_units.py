"""Pure parts of ingest: stream table (seq, dedup, sessions), rate limiter, SDK drop policy."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.device.client import ChunkUploader
from pipeline.ingest.framing import Frame
from pipeline.ingest.problems import IngestError
from pipeline.ingest.ratelimit import RateLimiter
from pipeline.ingest.streams import StreamTable

CFG = b"\0\0\0\1\x67cfg\0\0\0\1\x68p"


def _admit(t, seq, now, key=True, cfg=CFG, codec="H264", size=(640, 360)):
    return t.admit("s", seq, codec, keyframe_first=key, config=cfg if key else None,
                   width=size[0], height=size[1], now=now)


def test_first_chunk_needs_keyframe_and_params():
    t = StreamTable(10)
    for key, cfg in ((False, None), (True, None)):
        with pytest.raises(IngestError) as ei:
            t.admit("s", 0, "H264", keyframe_first=key, config=cfg, width=0, height=0, now=0)
        assert (ei.value.status, ei.value.problem) == (422, "needs_keyframe")


def test_sessions_dedup_gap_and_regression():
    t = StreamTable(10)
    a = _admit(t, 5, 0.0)
    assert [e["kind"] for e in a.sessions] == ["CONNECTED"] and a.codec_config == CFG
    ack = {"seq": 5, "status": "persisted", "partition": 0, "offset": 1}
    t.persisted("s", 5, ack)
    assert _admit(t, 5, 1.0).ack == ack  # retry: same ack, nothing to produce
    b = _admit(t, 8, 1.0, key=False)
    assert b.gap_before == 2 and not b.sessions and b.codec_config is None
    with pytest.raises(IngestError) as ei:
        _admit(t, 6, 1.0, key=False)
    assert ei.value.status == 409
    c = _admit(t, 9, 2.0, size=(1280, 720), cfg=CFG + b"x")
    assert [e["kind"] for e in c.sessions] == ["CONFIG_CHANGED"] and c.codec_config
    assert c.sessions[0]["width"] == 1280
    assert t.expire(12.5) == []  # seqs 8 and 9 still wait for Kafka: the device is not idle
    for seq in (8, 9):
        t.persisted("s", seq, {**ack, "seq": seq}, now=2.0)
    assert [e["kind"] for e in t.expire(12.5)] == ["DISCONNECTED"]
    assert t.expire(13) == []
    d = _admit(t, 10, 20.0, key=False)  # known stream resumes mid-GOP after idle: new session
    assert [e["kind"] for e in d.sessions] == ["CONNECTED"] and d.session_id != a.session_id
    assert t.end("s", 21.0, "push ended")["kind"] == "DISCONNECTED"


@given(st.lists(st.floats(0, 0.5), min_size=1, max_size=200))
def test_rate_limiter_never_exceeds_rate_plus_burst(gaps):
    rl, now, allowed = RateLimiter(rate=10, burst=5), 0.0, 0
    for g in gaps:
        now += g
        if rl.take("k", now) == 0:
            allowed += 1
    assert allowed <= 5 + 10 * now + 1e-9


def test_rate_limiter_retry_after():
    rl = RateLimiter(rate=2, burst=1)
    assert rl.take("k", 0) == 0
    assert rl.take("k", 0) == pytest.approx(0.5)


async def test_sdk_drops_oldest_gop_when_buffer_full():
    up = ChunkUploader(None, "http://x", "s", "t", chunk_frames=1, max_buffer_chunks=5)
    for i in range(12):
        up.add_frame(Frame(i, i, i % 4 == 0, b"\0\0\1\x65"))
    # GOPs start at 0, 4, 8: two whole GOPs went, the buffer still starts at a keyframe
    assert up.buffered <= 5 and up.stats.dropped_chunks == 12 - up.buffered
    assert up._buffer[0].frames[0].keyframe
    seqs = [c.seq for c in up._buffer]
    assert seqs == sorted(seqs)


@given(fps=st.sampled_from([5, 10, 12.5, 15, 25, 29.97, 30, 60]),
       part=st.sampled_from([0.2, 0.33, 0.5, 1.0]), gop=st.integers(1, 120),
       n=st.integers(1, 400))
def test_sdk_chunks_are_parts(fps, part, gop, n):
    """Default chunking: no chunk longer than the part target, every chunk but the last of a GOP
    at least 85 % of it (when a GOP is long enough), a keyframe always starts a chunk."""
    up = ChunkUploader(None, "http://x", "s", "t", part_target_s=part, max_buffer_chunks=10**6)
    step = 90000 / fps
    for i in range(n):
        t = round(i * step)
        up.add_frame(Frame(t, t, i % gop == 0, b"\0\0\1\x65"))
    chunks = list(up._buffer)
    frames = [f for c in chunks for f in c.frames]
    assert [f.pts for f in frames] == [round(i * step) for i in range(len(frames))]
    limit = part * 90000 + 1
    for k, c in enumerate(chunks):
        span = c.frames[-1].pts + step - c.frames[0].pts
        assert span <= limit or len(c.frames) == 1, (k, span)
        assert all(not f.keyframe for f in c.frames[1:])
        nxt = chunks[k + 1] if k + 1 < len(chunks) else None
        if nxt is not None and not nxt.frames[0].keyframe:
            assert span >= 0.85 * part * 90000 - step / 2 or step > 0.15 * part * 90000, (k, span)
