"""The segmenter worker against real Kafka and Cassandra: bytes, events, crashes, DLQ."""

from __future__ import annotations

import json
import time
import uuid
from itertools import pairwise
from pathlib import Path

import pytest

from pipeline.events import decode, decode_any, encode
from pipeline.views.timeindex import day_of
from tests.segmenter.kafka_util import WorkerProcess, end_offsets, fresh_group, read_from
from tests.segmenter.media import TIMESCALE, chunks, ffprobe_frames
from tests.segmenter.media import encode as encode_media

pytestmark = [pytest.mark.services, pytest.mark.slow]

PREFIX = "segt-"
ENV = {"CAMLOG_IDLE_TIMEOUT_S": "2"}


def _sid() -> str:
    return f"{PREFIX}{uuid.uuid4().hex[:10]}"


def _t0() -> int:
    return int(time.time() * 1e6)


def _rows(session, sid: str, t0: int) -> list:
    out = []
    for day in (day_of(t0) - 1, day_of(t0), day_of(t0) + 1):
        out += session.execute("SELECT * FROM segments WHERE stream_id=%s AND day=%s",
                               (sid, day)).all()
    return sorted(out, key=lambda r: r.start_time)


def _wait_frames(session, sid: str, t0: int, n: int, timeout: float = 90.0) -> list:
    deadline = time.monotonic() + timeout
    while True:
        rows = _rows(session, sid, t0)
        if sum(r.frame_count for r in rows) >= n or time.monotonic() > deadline:
            return rows
        time.sleep(0.5)


def _bytes(session, sid: str, segment_id: str) -> bytes:
    parts = session.execute("SELECT part, data, parts FROM segment_data WHERE stream_id=%s "
                            "AND segment_id=%s", (sid, segment_id)).all()
    assert parts and len(parts) == parts[0].parts
    return b"".join(p.data for p in parts)


def _file(session, sid: str, rows: list, path: Path) -> tuple[list[int], dict]:
    init = session.execute("SELECT data FROM init_segments WHERE stream_id=%s AND init_id=%s",
                           (sid, rows[0].init_id)).one()
    path.write_bytes(init.data + b"".join(_bytes(session, sid, r.segment_id) for r in rows))
    return ffprobe_frames(str(path))


def _produce(produce, topic: str, sid: str, records: list[dict]) -> None:
    for rec in records:
        produce(topic, encode("FrameChunk", rec), key=sid)


@pytest.fixture(scope="module")
def worker(services, tmp_path_factory):
    group = fresh_group(services.kafka)
    log = tmp_path_factory.mktemp("worker") / "worker.log"
    proc = WorkerProcess(group, log, PREFIX, **ENV).start()
    yield proc
    proc.stop()


def _segment_event(m, sid: str) -> bool:
    """A SealedSegment of stream ``sid`` (camlog.segments also carries SealedPart)."""
    return m.key() == sid.encode() and decode_any(m.value())[0].name == "SealedSegment"


def test_frames_become_playable_segments_and_events(worker, services, produce, cassandra_session,
                                                    tmp_path):
    sid, t0 = _sid(), _t0()
    seg_start = end_offsets(services.kafka, "camlog.segments")
    dlq_start = end_offsets(services.kafka, "camlog.dlq")
    frames, cfg = encode_media("H264", n=75, gop=15)
    produce("camlog.frames", b"\x00garbage, not avro", key=sid)  # must not stop the agent
    _produce(produce, "camlog.frames", sid, chunks(sid, frames, cfg, per_chunk=3, t0_us=t0))
    rows = _wait_frames(cassandra_session, sid, t0, len(frames))
    assert sum(r.frame_count for r in rows) == 75
    assert [r.sequence for r in rows] == list(range(len(rows)))
    pts, stream = _file(cassandra_session, sid, rows, tmp_path / "all.mp4")
    assert pts == [f["pts"] * stream_ts(stream) // TIMESCALE for f in frames]
    # every stored row was announced, with the same values (a rebalance may announce twice)
    events: dict[str, dict] = {}

    def first_announcement(m) -> bool:
        if not _segment_event(m, sid):
            return False
        ev = decode("SealedSegment", m.value())
        return events.setdefault(ev["segment_id"], ev) is ev

    read_from(services.kafka, "camlog.segments", seg_start, first_announcement, len(rows))
    for r in rows:
        ev = events[r.segment_id]
        for name in ("sequence", "start_time", "end_time", "frame_count", "byte_size",
                     "init_id", "discontinuity", "independent", "first_chunk_seq"):
            assert ev[name] == getattr(r, name), name
    dead = read_from(services.kafka, "camlog.dlq", dlq_start,
                     lambda m: m.key() == sid.encode()
                     and decode("DeadLetter", m.value())["stage"] == "segmenter", 1)
    letter = decode("DeadLetter", dead[0].value())
    assert letter["original"] == b"\x00garbage, not avro" and letter["offset"] >= 0
    assert "Avro" in letter["reason"] or "marker" in letter["reason"]


def stream_ts(stream: dict) -> int:
    return int(stream["time_base"].split("/")[1])


def test_resolution_change_starts_new_init_and_discontinuity(worker, produce, cassandra_session,
                                                             tmp_path):
    sid, t0 = _sid(), _t0()
    a, cfg_a = encode_media("H264", n=45, gop=15)
    b, cfg_b = encode_media("H264", n=45, width=192, height=96, gop=15)
    shift = a[-1]["dts"] + 6000
    b = [dict(f, pts=f["pts"] + shift, dts=f["dts"] + shift) for f in b]
    recs = chunks(sid, a, cfg_a, per_chunk=3, t0_us=t0)
    recs += chunks(sid, b, cfg_b, per_chunk=3, seq0=len(recs), t0_us=t0)
    _produce(produce, "camlog.frames", sid, recs)
    rows = _wait_frames(cassandra_session, sid, t0, 90)
    assert sum(r.frame_count for r in rows) == 90
    inits = list(dict.fromkeys(r.init_id for r in rows))
    assert len(inits) == 2
    first_b = next(r for r in rows if r.init_id == inits[1])
    assert first_b.discontinuity and first_b.width == 192 and first_b.independent
    assert not any(r.discontinuity for r in rows if r.sequence != first_b.sequence)
    for init_id, n in zip(inits, (45, 45), strict=True):
        part = [r for r in rows if r.init_id == init_id]
        pts, stream = _file(cassandra_session, sid, part, tmp_path / f"{init_id}.mp4")
        assert len(pts) == n and stream["width"] == (160 if init_id == inits[0] else 192)


def test_sigkill_mid_segment_loses_and_duplicates_nothing(services, produce, cassandra_session,
                                                          tmp_path):
    sid, t0 = _sid(), _t0()
    seg_start = end_offsets(services.kafka, "camlog.segments")
    frames, cfg = encode_media("H264", n=150, gop=15)
    recs = chunks(sid, frames, cfg, per_chunk=2, t0_us=t0)
    group = fresh_group(services.kafka)
    proc = WorkerProcess(group, tmp_path / "w1.log", PREFIX, **ENV).start()
    try:
        _produce(produce, "camlog.frames", sid, recs[:40])  # 80 frames: 2 segments + a partial
        deadline = time.monotonic() + 90
        while len(_rows(cassandra_session, sid, t0)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(_rows(cassandra_session, sid, t0)) == 2
        proc.kill()  # the third segment's frames are pending, unacked
        _produce(produce, "camlog.frames", sid, recs[40:])
        proc = WorkerProcess(group, tmp_path / "w2.log", PREFIX, **ENV).start()
        rows = _wait_frames(cassandra_session, sid, t0, 150)
    finally:
        proc.stop()
    assert sum(r.frame_count for r in rows) == 150
    assert [r.sequence for r in rows] == list(range(len(rows)))
    assert len({r.segment_id for r in rows}) == len(rows)
    for prev, nxt in pairwise(rows):
        assert prev.end_time == nxt.start_time
        assert nxt.decode_time == prev.decode_time + prev.duration_us * prev.timescale // 1_000_000
    pts, stream = _file(cassandra_session, sid, rows, tmp_path / "all.mp4")
    assert pts == [f["pts"] * stream_ts(stream) // TIMESCALE for f in frames]
    msgs = read_from(services.kafka, "camlog.segments", seg_start,  # duplicates allowed
                     lambda m: _segment_event(m, sid), 2 * len(rows), timeout=15)
    by_id: dict[str, set] = {}
    for m in msgs:
        ev = decode("SealedSegment", m.value())
        ev.pop("sealed_time")
        by_id.setdefault(ev["segment_id"], set()).add(json.dumps(ev, sort_keys=True))
    assert set(by_id) == {r.segment_id for r in rows}
    assert all(len(v) == 1 for v in by_id.values())  # re-sent events describe the same segment


def test_handover_to_another_worker_rebuilds_pending_segment(services, produce,
                                                             cassandra_session, tmp_path):
    """Two workers share the group; the first leaves mid-segment; the second finishes."""
    sid, t0 = _sid(), _t0()
    frames, cfg = encode_media("H264", n=120, gop=15)
    recs = chunks(sid, frames, cfg, per_chunk=2, t0_us=t0)
    group = fresh_group(services.kafka)
    first = WorkerProcess(group, tmp_path / "a.log", PREFIX, **ENV).start()
    second = WorkerProcess(group, tmp_path / "b.log", PREFIX, **ENV)
    try:
        _produce(produce, "camlog.frames", sid, recs[:35])  # 70 frames: 2 segments + partial
        deadline = time.monotonic() + 90
        while len(_rows(cassandra_session, sid, t0)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        second.start()
        time.sleep(5)  # let it join; the group rebalances
        first.stop()  # leaves the group with the third segment's frames unacked
        _produce(produce, "camlog.frames", sid, recs[35:])
        rows = _wait_frames(cassandra_session, sid, t0, 120)
    finally:
        first.stop()
        second.stop()
    assert sum(r.frame_count for r in rows) == 120
    assert [r.sequence for r in rows] == list(range(len(rows)))
    pts, stream = _file(cassandra_session, sid, rows, tmp_path / "all.mp4")
    assert pts == [f["pts"] * stream_ts(stream) // TIMESCALE for f in frames]
