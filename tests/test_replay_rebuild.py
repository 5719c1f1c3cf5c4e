"""Views are derived from the log: the live worker's keyspace equals a rebuild from Kafka.

A private live worker (``tests/worker_proc.py``: segmenter + views, reading only new events)
writes a fresh "live" keyspace while a stream of real H.264 chunks is produced; then
``camlog replay rebuild`` builds another keyspace from the log alone and ``replay verify`` finds
no difference, until one live cell is corrupted, which it then reports alone. Offline is not in
the log: both streams are rebuilt only after the live sweep marked them offline (one of them
also mid-stream, in a silence longer than the idle timeout), and the rebuild must agree.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.events.codec import encode
from tests.segmenter.media import chunks
from tests.segmenter.media import encode as encode_video

pytestmark = [pytest.mark.services, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
IDLE_S = "15"
PAUSE_US = 20_000_000  # stream B's silence mid-stream: longer than IDLE_S (plus a sweep tick)


def _wait(cond, timeout: float = 90.0, every: float = 0.5):
    deadline = time.monotonic() + timeout
    while not (got := cond()) and time.monotonic() < deadline:
        time.sleep(every)
    return got


def _session(sid: str, kind: str, t_us: int) -> bytes:
    return encode("SessionChange", {"stream_id": sid, "session_id": "s1", "kind": kind,
                                    "time": t_us, "reason": "", "codec": "H264", "width": 0,
                                    "height": 0, "source": "SDK", "attributes": {}})


@pytest.fixture(scope="module")
def live(services, tmp_path_factory):
    """A fresh live keyspace filled by a private worker.

    (keyspace, stream A, t0, t1 = A's last chunk, session, stream B, B's last chunk).
    """
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CAMLOG_IDLE_TIMEOUT_S", IDLE_S)  # the rebuild must time out idle streams alike
        yield from _live(services, tmp_path_factory.mktemp("live"))


def _live(services, tmp_path):
    from confluent_kafka import Producer

    from pipeline.replay.rebuild import ensure_keyspace
    from pipeline.store.cluster import connect

    ks = f"live_{uuid.uuid4().hex[:10]}"
    ensure_keyspace(services, ks)
    app_id, ready = f"replay-test-{uuid.uuid4().hex[:8]}", tmp_path / "ready"
    env = dict(os.environ, CAMLOG_KEYSPACE=ks, CAMLOG_IDLE_TIMEOUT_S=IDLE_S, PYTHONPATH=str(ROOT),
               CAMLOG_KAFKA=services.kafka)
    with open(tmp_path / "worker.log", "ab") as log:  # the child has its own copy
        proc = subprocess.Popen([sys.executable, "-m", "tests.worker_proc", app_id, str(ready)],
                                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    session = connect(services, ks)
    try:
        assert _wait(lambda: ready.exists() or proc.poll() is not None, 180), "worker not ready"
        assert proc.poll() is None, (tmp_path / "worker.log").read_text()[-3000:]
        sid = f"rp-{uuid.uuid4().hex[:10]}"
        frames, cfg = encode_video("H264", n=150, fps=15, gop=15)
        t0 = int(time.time() * 1e6) + 5_000_000
        recs = chunks(sid, frames, cfg, per_chunk=3, t0_us=t0)
        sid_b = f"{sid}-b"  # B: 5 s of frames, 20 s of silence (offline live), 5 s more
        recs_b = chunks(sid_b, frames, cfg, per_chunk=3, t0_us=t0)
        for r in recs_b[len(recs_b) // 2:]:
            r["ingest_time"] += PAUSE_US
            r["producer_time"] += PAUSE_US
        p = Producer({"bootstrap.servers": services.kafka, "enable.idempotence": True})

        def device(cols: str):
            return session.execute(f"SELECT {cols} FROM device_state WHERE stream_id=%s",
                                   (sid,)).one()

        # The live views apply sessions and frames in separate agents, and expire idle streams by
        # the wall clock, so the live end state of a race between a session change and chunks
        # depends on agent timing (a rebuild applies them in log order). Keep the test away from
        # those races: connect first, then stream, then fall silent (offline by idle timeout).
        p.produce("camlog.sessions", key=sid, value=_session(sid, "CONNECTED", t0 - 1000))
        assert p.flush(30) == 0
        assert _wait(lambda: (r := device("session_id")) is not None and r.session_id == "s1", 60)
        # viewers' hits two minutes back: windows the live worker closes and writes at once
        # (produced before the frames, so their log time is inside A's rebuild range)
        hits = _hit_times(t0)
        minute0 = hits[0]
        for i, at in enumerate(hits):
            p.produce("camlog.playback", key=sid, value=encode("PlaybackEvent", {
                "event_id": f"{sid}-{i}", "stream_id": sid, "kind": ["MANIFEST", "SEGMENT"][i % 2],
                "time": at, "viewer": f"v{i % 3}", "status": 200,
                "bytes": 1000 + i, "latency_ms": 1.5, "startup_ms": 300.0 if i == 0 else None,
                "rebuffers": None, "error": None, "region": "dc1"}))
        assert p.flush(30) == 0
        for r in sorted(recs + recs_b, key=lambda r: r["ingest_time"]):
            while time.time() * 1e6 < r["ingest_time"]:  # paced at the camera's rate, stamped
                time.sleep(0.01)                          # on sending as the bridge would
            r["ingest_time"] = int(time.time() * 1e6)
            p.produce("camlog.frames", key=r["stream_id"], value=encode("FrameChunk", r))
            p.poll(0)
        assert p.flush(30) == 0
        t1, t_b = recs[-1]["ingest_time"], recs_b[-1]["ingest_time"]

        def settled():
            row = device("online, segments")
            minutes = session.execute("SELECT count(*) FROM playback_minute WHERE stream_id=%s "
                                      "AND day=%s", (sid, minute0 // 86_400_000_000)).one()
            b = session.execute("SELECT online FROM device_state WHERE stream_id=%s",
                                (sid_b,)).one()
            return (row is not None and row.online is False and row.segments == 5
                    and minutes.count == 2 and b is not None and b.online is False)

        assert _wait(settled, 150), "live views never settled: " + \
            (tmp_path / "worker.log").read_text()[-2000:]
        yield ks, sid, t0, t1, session, sid_b, t_b
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        log.close()
        if not os.environ.get("CAMLOG_TEST_KEEP"):
            session.execute(f"DROP KEYSPACE IF EXISTS {ks}", timeout=120)
        session.cluster.shutdown()


def _hit_times(t0: int) -> list[int]:
    """The fixture's 40 viewer hits (µs): 2.5 s apart from three minutes before t0's minute."""
    minute0 = (t0 // 60_000_000 - 3) * 60_000_000
    return [minute0 + i * 2_500_000 for i in range(40)]


def _camlog(services, *argv: str, keyspace: str | None = None) -> int:
    return main(["--kafka", services.kafka, "--state-dir", str(services.state_dir),
                 *(["--keyspace", keyspace] if keyspace else []), *argv])


def test_rebuild_equals_live_for_streams_the_live_sweep_marked_offline(services, live, capsys):
    ks, sid, t0, _, session, sid_b, t_b = live
    b = session.execute("SELECT online, connected_since, updated_time FROM device_state "
                        "WHERE stream_id=%s", (sid_b,)).one()
    # live went offline in B's silence and came back: a new connected_since, then offline again
    assert b.connected_since >= t0 + PAUSE_US and b.updated_time == t_b + int(IDLE_S) * 1_000_000
    into = f"rebuilt_{uuid.uuid4().hex[:10]}"
    streams = ["--stream", sid, "--stream", sid_b]
    try:
        assert _camlog(services, "replay", "rebuild", "--into", into, *streams, "--from",
                       f"{t0 / 1e6 - 10:.3f}", "--to", f"{t_b / 1e6 + 2:.3f}", keyspace=ks) == 0
        capsys.readouterr()
        assert _camlog(services, "replay", "verify", "--against", into, *streams,
                       keyspace=ks) == 0, capsys.readouterr().out
        assert "no differences" in capsys.readouterr().out
    finally:
        if not os.environ.get("CAMLOG_TEST_KEEP"):
            session.execute(f"DROP KEYSPACE IF EXISTS {into}", timeout=120)


def test_rebuild_equals_live_then_verify_finds_the_one_corrupted_cell(services, live, capsys):
    ks, sid, t0, t1, session, *_ = live
    into = f"rebuilt_{uuid.uuid4().hex[:10]}"
    rng = ["--from", f"{t0 / 1e6 - 10:.3f}", "--to", f"{t1 / 1e6 + 2:.3f}"]
    try:
        assert _camlog(services, "replay", "rebuild", "--into", into, "--stream", sid, *rng,
                       keyspace=ks) == 0
        out = capsys.readouterr()
        assert "50 chunks" in out.out and "5 segments" in out.out
        assert "40 playback events" in out.out
        hours = [r for r in session.execute(f"SELECT stream_id, hour FROM {into}.playback_hour")
                 if r.stream_id == sid]  # the rebuilt keyspace holds only this stream
        want = {at // 3_600_000_000 * 3_600_000_000 for at in _hit_times(t0)}
        assert {r.hour for r in hours} == want, "playback stats rebuilt too (compared by verify)"
        assert "rebuild:" in out.err  # progress line

        assert _camlog(services, "replay", "rebuild", "--into", into, "--stream", sid, *rng,
                       keyspace=ks) == 2  # never into old rows: it would resume from them
        assert "already exists" in capsys.readouterr().err

        assert _camlog(services, "replay", "verify", "--against", into, "--stream", sid,
                       keyspace=ks) == 0, capsys.readouterr().out
        assert "no differences" in capsys.readouterr().out

        session.execute("UPDATE device_state SET fps = 99.0 WHERE stream_id = %s", (sid,))
        assert _camlog(services, "replay", "verify", "--against", into, "--stream", sid,
                       keyspace=ks) == 1
        lines = capsys.readouterr().out.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"device_state ('{sid}',): fps: live 99.0")
    finally:
        if not os.environ.get("CAMLOG_TEST_KEEP"):
            session.execute(f"DROP KEYSPACE IF EXISTS {into}", timeout=120)


def test_as_of_shows_the_stream_mid_way_and_after(services, live, capsys):
    _, sid, t0, t1, *_ = live
    mid = (t0 + t1) // 2
    assert _camlog(services, "replay", "as-of", f"{mid / 1e6:.6f}", "--stream", sid) == 0
    out = capsys.readouterr().out
    doc = json.loads(out[:out.index("#EXTM3U")])
    assert doc["device_state"]["online"] is True
    assert 1 <= len(json.loads(doc["live_manifest"]["window_entries"])) <= 3
    assert "#EXT-X-ENDLIST" not in out
    assert _camlog(services, "replay", "as-of", f"{t1 / 1e6 + 60:.6f}", "--stream", sid) == 0
    out = capsys.readouterr().out
    doc = json.loads(out[:out.index("#EXTM3U")])
    assert doc["device_state"]["online"] is False and doc["device_state"]["segments"] == 5
    entries = json.loads(doc["live_manifest"]["window_entries"])
    assert [e["sequence"] for e in entries] == [0, 1, 2, 3, 4]
    assert out.count("#EXTINF") == 5


@pytest.mark.parametrize("argv,message", [
    (["replay", "verify", "--against", "no_such_keyspace"],
     "keyspace no_such_keyspace does not exist"),
    (["replay", "rebuild", "--into", "camlog"], "is the live keyspace"),
    (["replay", "rebuild", "--into", "bad-name"], "must be a keyspace name"),
    (["replay", "rebuild", "--into", "x_y", "--from", "2026-01-02", "--to", "2026-01-01"],
     "empty time range"),
    (["replay", "as-of", "noon", "--stream", "s"], "bad time 'noon'"),
])
def test_bad_input_is_a_clear_error(services, capsys, argv, message):
    assert _camlog(services, *argv) == 2
    assert message in capsys.readouterr().err
