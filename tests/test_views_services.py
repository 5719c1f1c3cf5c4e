"""View agents against real Kafka + Cassandra: live manifest, time index, device state, stats."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pipeline.events import encode
from pipeline.views.timeindex import Gap, day_of

pytestmark = [pytest.mark.services, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
IDLE_S = 15.0


class Worker:
    """The view agents in a child process (``tests/worker_proc.py``), restartable."""

    def __init__(self, app_id: str, tmp: Path) -> None:
        self.app_id, self.tmp, self.proc = app_id, tmp, None
        self.ready = tmp / f"{app_id}.ready"
        self.log = tmp / f"{app_id}.log"

    def start(self, timeout: float = 120.0) -> None:
        self.ready.unlink(missing_ok=True)
        env = dict(os.environ, CAMLOG_IDLE_TIMEOUT_S=str(IDLE_S), PYTHONPATH=str(ROOT))
        with open(self.log, "ab") as fh:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tests.worker_proc", self.app_id, str(self.ready),
                 "pipeline.agents.views"],
                cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(lambda: self.ready.exists() or self.proc.poll() is not None, timeout)
        assert self.proc.poll() is None, self.log.read_text()[-3000:]
        assert self.ready.exists(), "worker not ready: " + self.log.read_text()[-3000:]

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


def wait_for(cond: Callable[[], Any], timeout: float = 60.0, every: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = cond()
        if got or time.monotonic() > deadline:
            return got
        time.sleep(every)


@pytest.fixture
def worker(services, tmp_path):
    w = Worker(f"views-test-{uuid.uuid4().hex[:8]}", tmp_path)
    w.start()
    yield w
    w.stop()


def processed(settings, group: str, positions: list[tuple[str, int, int]],
              timeout: float = 120.0) -> bool:
    """Wait until the worker's consumer group committed past every (topic, partition, offset)."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": settings.kafka, "group.id": group,
                  "enable.auto.commit": False})
    want: dict[tuple[str, int], int] = {}
    for t, p, o in positions:
        want[(t, p)] = max(want.get((t, p), -1), o)
    try:
        def done() -> bool:
            got = c.committed([TopicPartition(t, p) for t, p in want], timeout=10)
            return all(tp.offset > want[(tp.topic, tp.partition)] for tp in got)
        return bool(wait_for(done, timeout, 0.5))
    finally:
        c.close()


T_SEG = 2_000_000


def segment_event(sid: str, seq: int, start: int, disc: bool = False) -> dict:
    return {
        "stream_id": sid, "segment_id": f"{sid}-{seq}", "sequence": seq, "start_time": start,
        "end_time": start + T_SEG, "producer_start": start, "producer_end": start + T_SEG,
        "ingest_start": start + 10_000, "ingest_end": start + T_SEG + 10_000,
        "duration_us": T_SEG, "frame_count": 60, "byte_size": 50_000 + seq, "independent": True,
        "init_id": "init-a", "discontinuity": disc, "codec": "avc1.64001f", "width": 640,
        "height": 360, "first_chunk_seq": seq * 10, "last_chunk_seq": seq * 10 + 9,
        "sealed_time": start + T_SEG + 20_000,
    }


def index_row(session, seg: dict) -> None:
    """Write the segment's time-index row the way the segmenter does."""
    session.execute(
        "INSERT INTO segments (stream_id, day, start_time, segment_id, sequence, end_time, "
        "duration_us, init_id, discontinuity, independent, byte_size) "
        "VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
        (seg["stream_id"], day_of(seg["start_time"]), seg["start_time"], seg["segment_id"],
         seg["sequence"], seg["end_time"], seg["duration_us"], seg["init_id"],
         seg["discontinuity"], True, seg["byte_size"]))


def full_rows(session, sid: str) -> tuple:
    m = session.execute(
        "SELECT stream_id, media_sequence, discontinuity_sequence, target_duration, "
        "window_entries, ended, updated_time, WRITETIME(media_sequence) AS w1, "
        "WRITETIME(window_entries) AS w2, WRITETIME(target_duration) AS w3 "
        "FROM live_manifest WHERE stream_id=%s", (sid,)).one()
    from pipeline.topology.spec import load_tables

    cols = ", ".join(next(t for t in load_tables() if t.name == "device_state").columns)
    d = session.execute(
        f"SELECT {cols}, WRITETIME(online) AS w_online, WRITETIME(segments) AS w_segments, "
        "WRITETIME(discontinuities) AS w_disc, WRITETIME(session_id) AS w_session "
        "FROM device_state WHERE stream_id=%s", (sid,)).one()
    return (m and m._asdict(), d and d._asdict())


def test_manifest_time_index_device_state_idempotent_and_offline(
        worker, services, produce, cassandra_session, stream_id):
    import asyncio

    from pipeline.store.views import ViewStore

    sid, now = stream_id, int(time.time() * 1_000_000)
    t0 = now - 40 * 1_000_000
    session = {"stream_id": sid, "session_id": "sess-1", "kind": "CONNECTED", "time": now,
               "reason": "", "codec": None, "width": 640, "height": 360, "source": "SDK",
               "attributes": {}}
    # 10 segments; a 6 s hole between seq 4 and 5, where a new discontinuity starts
    segs = []
    for seq in range(10):
        start = t0 + seq * T_SEG + (6_000_000 if seq >= 5 else 0)
        segs.append(segment_event(sid, seq, start, disc=seq in (0, 5)))
        index_row(cassandra_session, segs[-1])

    def send_all() -> list:
        pos = [("camlog.sessions", *produce("camlog.sessions", encode("SessionChange", session),
                                            key=sid))]
        for s in segs:
            pos.append(("camlog.segments", *produce("camlog.segments",
                                                   encode("SealedSegment", s), key=sid)))
        return pos

    positions = send_all()

    def manifest():
        row = cassandra_session.execute(
            "SELECT * FROM live_manifest WHERE stream_id=%s", (sid,)).one()
        return row if row and row.media_sequence == 4 and row.window_entries and \
            json.loads(row.window_entries)[-1]["sequence"] == 9 else None

    row = wait_for(manifest, 60)
    assert row is not None, worker.log.read_text()[-3000:]
    entries = json.loads(row.window_entries)
    assert [e["sequence"] for e in entries] == [4, 5, 6, 7, 8, 9]
    assert row.discontinuity_sequence == 1 and row.target_duration == 2
    assert entries[1]["discontinuity"] and entries[0]["start_time"] == segs[4]["start_time"]
    assert not row.ended

    def device():
        d = cassandra_session.execute("SELECT * FROM device_state WHERE stream_id=%s",
                                      (sid,)).one()
        return d if d and d.segments == 10 and d.online is not None else None

    d = wait_for(device, 60)
    assert d is not None, worker.log.read_text()[-3000:]
    assert d.online and d.session_id == "sess-1" and d.connected_since == now
    assert d.discontinuities == 2

    # time index: a range across the hole yields the segments in order with one gap
    async def index():
        store = ViewStore(services, cassandra_session)
        await store.start()
        return await store.segments_in_range(sid, segs[3]["start_time"] + 500_000,
                                             segs[6]["end_time"])

    items = asyncio.run(index())
    assert [("gap" if isinstance(i, Gap) else i["sequence"]) for i in items] == \
        [3, 4, "gap", 5, 6]
    gap = items[2]
    assert (gap.start_time, gap.end_time) == (segs[4]["end_time"], segs[5]["start_time"])

    assert processed(services, worker.app_id, positions)
    before = full_rows(cassandra_session, sid)
    positions = send_all()  # the same events again
    assert processed(services, worker.app_id, positions)
    after = full_rows(cassandra_session, sid)
    assert after[0] == before[0]
    # the device row may only have changed by going offline (idle timeout); all else is equal
    strip = {"online", "w_online", "updated_time"}
    assert {k: v for k, v in after[1].items() if k not in strip} == \
        {k: v for k, v in before[1].items() if k not in strip}

    # nothing more is sent: offline after the idle timeout, stamped last_seen + timeout
    off = wait_for(lambda: (r := full_rows(cassandra_session, sid)[1]) and not r["online"] and r,
                   60)
    assert off, worker.log.read_text()[-3000:]
    assert off["w_online"] == off["last_seen"] + int(IDLE_S * 1_000_000)

    # an explicit stop ends the live playlist
    stop = dict(session, kind="STREAM_STOPPED", time=now + 1_000)
    produce("camlog.sessions", encode("SessionChange", stop), key=sid)
    assert wait_for(lambda: cassandra_session.execute(
        "SELECT ended FROM live_manifest WHERE stream_id=%s", (sid,)).one().ended, 30)


def playback_events(sid: str, minute0: int) -> list[dict]:
    out = []
    kinds = ["MANIFEST", "SEGMENT", "SEGMENT", "INIT", "THUMBNAIL"]
    for m in range(2):
        for i in range(60 + 7 * m):
            out.append({
                "event_id": str(uuid.uuid4()), "stream_id": sid, "kind": kinds[i % 5],
                "time": minute0 + m * 60_000_000 + i * 890_000, "viewer": f"v{i % (3 + m)}",
                "status": 404 if i % 17 == 0 else 200, "bytes": 1000 * (i % 5) + i,
                "latency_ms": 1.0, "startup_ms": None, "rebuffers": None, "error": None,
                "region": "dc1"})
    return out


def expected(events: list[dict], minute: int) -> dict:
    es = [e for e in events if minute <= e["time"] < minute + 60_000_000]
    return {"manifest_requests": sum(e["kind"] == "MANIFEST" for e in es),
            "segment_requests": sum(e["kind"] in ("SEGMENT", "INIT") for e in es),
            "other_requests": sum(e["kind"] == "THUMBNAIL" for e in es),
            "bytes": sum(e["bytes"] for e in es), "errors": sum(e["status"] >= 400 for e in es),
            "viewers": len({e["viewer"] for e in es})}


def test_playback_minutes_exact_across_a_restart(worker, services, produce, cassandra_session,
                                                  stream_id):
    minute0 = (int(time.time()) // 60 - 3) * 60_000_000  # two minutes, both already closed
    events = playback_events(stream_id, minute0)
    half = len(events) // 2

    def send(evs) -> list:
        return [("camlog.playback", *produce("camlog.playback", encode("PlaybackEvent", e),
                                             key=stream_id)) for e in evs]

    first = send(events[:half])
    assert processed(services, worker.app_id, first[: half // 2])
    worker.stop(signal.SIGKILL)  # a crash while events are in flight: some get redelivered
    worker.start()
    # redeliveries of events already counted before the crash, then the rest
    assert processed(services, worker.app_id, first + send(events[:20] + events[half:]))

    def rows():
        got = cassandra_session.execute(
            "SELECT * FROM playback_minute WHERE stream_id=%s AND day=%s AND minute>=%s "
            "AND minute<%s", (stream_id, day_of(minute0), minute0, minute0 + 120_000_000))
        out = {r.minute: r._asdict() for r in got}
        ok = all(m in out and {k: out[m][k] for k in expected(events, m)} == expected(events, m)
                 for m in (minute0, minute0 + 60_000_000))
        return out if ok else None

    got = wait_for(rows, 60)
    assert got, (rows.__name__, worker.log.read_text()[-3000:])
    hour = minute0 - minute0 % 3_600_000_000
    if minute0 + 60_000_000 < hour + 3_600_000_000:  # both minutes in the same hour
        h = cassandra_session.execute(
            "SELECT bytes, segment_requests FROM playback_hour WHERE stream_id=%s AND month=%s "
            "AND hour=%s", (stream_id, _month(hour), hour)).one()
        assert h.bytes == sum(e["bytes"] for e in events)


def _month(t_us: int) -> int:
    import datetime as dt

    d = dt.datetime.fromtimestamp(t_us / 1e6, dt.UTC)
    return d.year * 100 + d.month


def test_undecodable_event_is_dead_lettered_and_counted(worker, services, produce,
                                                         cassandra_session, stream_id):
    from confluent_kafka import Consumer, TopicPartition

    from pipeline.events import decode

    c = Consumer({"bootstrap.servers": services.kafka, "group.id": f"t-{uuid.uuid4().hex}",
                  "enable.auto.commit": False})
    md = c.list_topics("camlog.dlq", timeout=10).topics["camlog.dlq"]
    starts = {p: c.get_watermark_offsets(TopicPartition("camlog.dlq", p), timeout=10)[1]
              for p in md.partitions}
    c.assign([TopicPartition("camlog.dlq", p, o) for p, o in starts.items()])
    produce("camlog.segments", b"\xc3\x01garbage!", key=stream_id)
    found = None
    deadline = time.monotonic() + 60
    try:
        while found is None and time.monotonic() < deadline:
            msg = c.poll(1.0)
            if msg is None or msg.error():
                continue
            rec = decode("DeadLetter", msg.value())
            if rec["stream_id"] == stream_id:
                found = rec
    finally:
        c.close()
    assert found, worker.log.read_text()[-3000:]
    assert found["topic"] == "camlog.segments" and found["stage"] == "views.segments"
    assert "fingerprint" in found["reason"] and found["original"] == b"\xc3\x01garbage!"
    # every consumer group reading camlog.segments on the shared stack (other workers) may
    # dead-letter the same bytes too, so the count is at least one
    row = wait_for(lambda: (r := cassandra_session.execute(
        "SELECT dlq FROM device_state WHERE stream_id=%s", (stream_id,)).one()) and r.dlq, 60)
    assert row and row >= 1
