"""Device state reducer: sessions, chunk summaries, segments, dead letters and the idle timeout."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pipeline.views.device_state import (
    DeviceState,
    columns,
    effective_online,
    expire,
    on_chunk,
    on_chunks,
    on_dlq,
    on_segment,
    on_session,
    summarize_chunk,
)

T0 = 1_764_000_000_000_000


def chunk(seq, t_us, gap=0, session="a", frames=5, skew=-20_000, key=True):
    return {
        "stream_id": "s", "seq": seq, "session_id": session, "codec": "H264", "width": 640,
        "height": 360, "timescale": 90000, "producer_time": t_us + skew, "ingest_time": t_us,
        "frames": [{"pts": (seq * frames + i) * 3000, "dts": (seq * frames + i) * 3000,
                    "keyframe": key and i == 0, "data": b"x" * 1000} for i in range(frames)],
        "gap_before": gap,
    }


def test_session_then_chunks_then_idle_offline():
    s = DeviceState("s")
    s = on_session(s, {"kind": "CONNECTED", "session_id": "a", "time": T0})
    assert s.online and s.connected_since == T0
    cols, ts = columns(s, "session")
    assert ts == T0 and cols["online"] is True and cols["updated_time"] == T0
    # 30 fps: 5 frames per chunk, one chunk every 5/30 s
    for i in range(10):
        s = on_chunk(s, summarize_chunk(chunk(i, T0 + 1_000_000 + i * 166_667)))
    assert abs(s.fps - 30.0) < 0.01
    assert abs(s.bitrate - 5 * 1000 * 8 * 6) < 50  # 5 kB every 1/6 s = 240 kbit/s
    assert s.skew_us == -20_000 and s.codec == "H264" and (s.width, s.height) == (640, 360)
    assert s.last_keyframe == s.last_frame_ingest == T0 + 1_000_000 + 9 * 166_667
    assert expire(s, s.last_seen + 9_999_999, 10_000_000) is None
    off = expire(s, s.last_seen + 10_000_000, 10_000_000)
    assert off is not None and not off.online
    cols, ts = columns(off, "offline")
    assert cols == {"online": False, "updated_time": ts} and ts == s.last_seen + 10_000_000
    assert expire(off, s.last_seen + 99_000_000, 10_000_000) is None
    assert effective_online({"online": True, "last_seen": 1}, 20, 10) is False


def test_replayed_chunks_and_segments_do_not_double_count():
    s = DeviceState("s")
    cs = [summarize_chunk(chunk(i, T0 + i * 1000, gap=1 if i in (3, 6) else 0)) for i in range(8)]
    s = on_chunks(s, cs)
    assert s.gaps == 2 and s.last_chunk_seq == 7
    assert on_chunks(s, cs) is None
    segs = [{"sequence": i, "discontinuity": i in (0, 4), "end_time": T0 + i, "ingest_end": T0 + i}
            for i in range(6)]
    for g in segs + segs[::-1]:
        s = on_segment(s, g) or s
    assert s.segments == 6 and s.discontinuities == 2
    for d in [{"time": T0 + 1}, {"time": T0 + 2}, {"time": T0 + 1}]:
        s = on_dlq(s, d) or s
    assert s.dlq == 2


def test_disconnect_and_stale_session_events():
    s = on_session(DeviceState("s"), {"kind": "CONNECTED", "session_id": "a", "time": T0})
    d = on_session(s, {"kind": "DISCONNECTED", "session_id": "a", "time": T0 + 5})
    assert not d.online and d.last_seen == T0 + 5
    assert on_session(d, {"kind": "CONNECTED", "session_id": "a", "time": T0}) is None
    # a chunk after the disconnect brings it back with a new connected_since
    back = on_chunk(d, summarize_chunk(chunk(0, T0 + 100, session="b")))
    assert back.online and back.connected_since == T0 + 100 and back.session_id == "b"


def test_row_round_trip_keeps_counters():
    s = on_chunks(DeviceState("s"), [summarize_chunk(chunk(i, T0 + i, gap=i)) for i in range(4)])
    row = {**columns(s, "chunk")[0], "stream_id": "s", "segments": 3, "discontinuities": 1}
    back = DeviceState.from_row(row, "s")
    assert back.gaps == 3 and back.last_chunk_seq == 3 and back.segments == 3
    assert on_chunk(back, summarize_chunk(chunk(2, T0 + 2))) is None


@given(st.lists(st.integers(0, 30), max_size=40))
def test_gap_count_is_a_function_of_the_highest_seqs_seen(seqs):
    s = DeviceState("s")
    for q in seqs:
        s = on_chunk(s, summarize_chunk(chunk(q, T0 + q, gap=q % 2))) or s
    twice = s
    for q in seqs:
        twice = on_chunk(twice, summarize_chunk(chunk(q, T0 + q, gap=q % 2))) or twice
    assert twice == s


def test_event_clock_follows_a_lagging_consumer_then_the_wall_clock():
    from pipeline.views.device_state import EventClock

    c = EventClock()
    assert c.now_us(100.0) == 100_000_000  # nothing seen: wall clock
    c.observe(90_000_000, 100.0)  # processing events 10 s behind
    assert c.now_us(100.5) == 90_500_000
    c.observe(89_000_000, 101.0)  # older event: no change
    assert c.now_us(101.0) == 91_000_000
    c.observe(99_900_000, 100.0 + 10)  # caught up (never ahead of the wall clock)
    assert c.now_us(115.0) == 104_900_000 and c.now_us(200.0) == 189_900_000


@given(st.integers(0, 6), st.integers(-50_000, 50_000))
def test_connected_since_does_not_depend_on_topic_order(at, session_offset):
    """The session change and its chunks come from two topics: wherever the change falls among
    the chunks, the session is connected since the earliest of them."""
    cs = [summarize_chunk(chunk(i, T0 + i * 166_667)) for i in range(6)]
    up = {"kind": "CONNECTED", "session_id": "a", "time": T0 + session_offset}
    s = DeviceState("s")
    for c in cs[:at]:
        s = on_chunk(s, c)
    s = on_session(s, up)
    for c in cs[at:]:
        s = on_chunk(s, c)
    assert s.online and s.connected_since == min(T0, T0 + session_offset)
