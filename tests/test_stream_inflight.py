"""A device waiting on Kafka is not idle: a stall longer than the idle timeout keeps its session."""

from __future__ import annotations

from pipeline.ingest.streams import StreamTable

CFG = b"\0\0\0\1\x67cfg\0\0\0\1\x68p"


def _admit(t: StreamTable, seq: int, now: float, key: bool = True):
    return t.admit("s", seq, "H264", keyframe_first=key, config=CFG if key else None,
                   width=640, height=360, now=now)


def _ack(seq: int) -> dict:
    return {"seq": seq, "status": "persisted", "partition": 0, "offset": seq}


def test_a_chunk_waiting_on_kafka_keeps_the_session_open():
    t = StreamTable(idle_timeout_s=5)
    first = _admit(t, 1, now=0.0)
    assert t.expire(now=30.0) == []  # in flight for 30 s: not idle
    t.persisted("s", 1, _ack(1), now=30.0)
    nxt = _admit(t, 2, now=30.2, key=False)
    assert nxt.session_id == first.session_id and nxt.sessions == ()
    assert [r["kind"] for r in t.expire(now=36.0)] == []  # seq 2 still in flight


def test_a_failed_chunk_counts_as_seen_and_its_retry_continues_the_session():
    t = StreamTable(idle_timeout_s=5)
    first = _admit(t, 1, now=0.0)
    t.failed("s", 1, now=35.0)  # delivery timeout
    retry = _admit(t, 1, now=36.0)
    assert retry.session_id == first.session_id and retry.sessions == ()


def test_a_quiet_stream_still_goes_idle():
    t = StreamTable(idle_timeout_s=5)
    first = _admit(t, 1, now=0.0)
    t.persisted("s", 1, _ack(1), now=0.1)
    assert [r["kind"] for r in t.expire(now=6.0)] == ["DISCONNECTED"]
    again = _admit(t, 2, now=7.0)
    assert again.session_id != first.session_id
    assert [r["kind"] for r in again.sessions] == ["CONNECTED"]
