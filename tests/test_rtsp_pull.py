"""RTSP pull end to end against a real GStreamer RTSP server, Kafka, the worker and playback.

Frames counted by ffprobe in the stored segments match what the server sent (within a GOP at
the edges); a camera server killed for 10 s is reconnected to and the VOD plays across the
discontinuity; a SIGKILLed puller's camera is pulled by the other member of its group; the
camera's password appears in no log line.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from pipeline.auth.keys import viewer_keys
from pipeline.auth.viewer import issue as issue_viewer
from pipeline.cli import main
from pipeline.events import TOPICS, decode
from pipeline.ingest.cameras_cli import add_camera, list_cameras
from pipeline.ingest.pullrules import with_credentials
from pipeline.runner import SystemRunner, start_group_at_end
from tests.clients import ffprobe_frames, require
from tests.rtsp_server import RtspServer, require_gst
from tests.system import FIGURES, end_offsets, free_port, get, wait_stored

pytestmark = [pytest.mark.services, pytest.mark.slow]

IDLE_S = 3.0
GOP = 15
USER, PASSWORD = "viewer", "Zq7-hunter2-pw"
SESSION_TIMEOUT_S = 6.0
PULL_ENV = {"CAMLOG_PULL_READ_TIMEOUT_S": "3",
            "CAMLOG_PULLER_SESSION_TIMEOUT_S": str(SESSION_TIMEOUT_S)}


@pytest.fixture(scope="module")
def system(services, tmp_path_factory):
    require_gst()
    require("ffprobe")
    prefix = f"rtsp{uuid.uuid4().hex[:6]}"
    settings = services.replace(bridge_addr=f"127.0.0.1:{free_port()}",
                                playback_addr=f"127.0.0.1:{free_port()}", idle_timeout_s=IDLE_S)
    logs = tmp_path_factory.mktemp("rtsp-logs")
    runner = SystemRunner(settings, logs, telemetry="none", extra_env=PULL_ENV)
    group = f"camlog-worker-{prefix}"
    try:
        assert start_group_at_end(settings, group)
        runner.start_services(worker_args=("--app-id", group, "--stream-prefix", prefix),
                              group=group)
        yield settings, runner, prefix, logs
    finally:
        runner.stop()
        text = "\n".join(p.read_text(errors="replace") for p in Path(logs).glob("*.log"))
        assert PASSWORD not in text, "a camera password reached a log line"


def _records(settings: Any, topic: str, since: dict[int, int], key: str) -> list[dict]:
    """Decoded records of ``key`` on ``topic`` from ``since`` to the current end, in order."""
    from confluent_kafka import Consumer, TopicPartition

    end = end_offsets(settings, topic)
    c = Consumer({"bootstrap.servers": settings.kafka, "group.id": f"t-{uuid.uuid4().hex}",
                  "enable.auto.commit": False})
    c.assign([TopicPartition(topic, p, o) for p, o in since.items() if end[p] > o])
    todo, out, deadline = {p for p, o in since.items() if end[p] > o}, [], time.monotonic() + 60
    try:
        while todo and time.monotonic() < deadline:
            msg = c.poll(0.5)
            if msg is None or msg.error():
                continue
            if msg.offset() >= end[msg.partition()] - 1:
                todo.discard(msg.partition())
            if msg.key() == key.encode():
                out.append(decode(TOPICS[topic].name, msg.value()))
    finally:
        c.close()
    assert not todo
    return out


def _frames(settings: Any, since: dict[int, int], stream: str) -> list[dict]:
    return _records(settings, "camlog.frames", since, stream)


def _until(cond, timeout: float, what: str, step: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(step)
    raise AssertionError(f"not within {timeout:.0f}s: {what}")


def _runs(chunks: list[dict]) -> list[str]:
    """Session ids in seq order, one entry per run; a session pulled twice appears twice."""
    runs: list[str] = []
    for c in sorted(chunks, key=lambda c: c["seq"]):
        if not runs or runs[-1] != c["session_id"]:
            runs.append(c["session_id"])
    return runs


@pytest.mark.parametrize("codec", ["h264", "h265"])
def test_pulled_frames_match_what_the_camera_sent(system, tmp_path, codec):
    settings, runner, prefix, _ = system
    sid = f"{prefix}-count-{codec}"
    server = RtspServer(free_port(), "--frames", "150", "--gop", str(GOP), "--audio",
                        "--codec", codec, "--user", USER, "--password", PASSWORD).start()
    frames0 = end_offsets(settings, "camlog.frames")
    sessions0 = end_offsets(settings, "camlog.sessions")
    t0 = int(time.time() * 1e6)
    pull = runner.spawn(f"pull-{sid}", "pull", "--url",
                        with_credentials(server.url, USER, PASSWORD), "--stream", sid)
    try:
        sent = server.wait_done(60)
        chunks = _until(lambda: (c := _frames(settings, frames0, sid)) and sum(
            len(x["frames"]) for x in c) >= sent - GOP and c, 30, "pulled frames on the log")
        time.sleep(2)  # the puller saw the end of the stream: nothing more may arrive
        chunks = _frames(settings, frames0, sid)
    finally:
        pull.stop()
    logged = sum(len(c["frames"]) for c in chunks)
    assert sent - GOP <= logged <= sent, (sent, logged)
    assert {c["source"] for c in chunks} == {"PULL"}
    assert {c["codec"] for c in chunks} == {codec.upper()}
    assert chunks[0]["frames"][0]["keyframe"] and chunks[0]["codec_config"]
    assert all(len(c["frames"]) <= 8 for c in chunks)  # part-sized: 0.5 s at 15 fps
    assert len(_runs(chunks)) == 1
    sessions = _records(settings, "camlog.sessions", sessions0, sid)
    kinds = [s["kind"] for s in sessions]
    assert kinds[0] == "CONNECTED" and "DISCONNECTED" in kinds, kinds
    assert all(s["source"] == "PULL" for s in sessions)
    bye = next(s for s in sessions if s["kind"] == "DISCONNECTED")
    assert int(bye["attributes"]["audio_packets"]) > 0  # the Opus track was counted and skipped
    counts, got = wait_stored(settings, {sid: logged}, t0 - 60_000_000,
                              int(time.time() * 1e6) + 60_000_000, tmp_path)
    assert counts == {sid: logged}
    assert len(ffprobe_frames(got[sid][1])) == logged
    FIGURES.append(f"rtsp pull {codec}: server sent {sent} frames, {logged} pulled, stored, "
                   "decoded")


def test_refused_credentials_are_retried_and_never_logged(system):
    _, runner, prefix, _ = system
    server = RtspServer(free_port(), "--user", USER, "--password", PASSWORD).start()
    wrong = "Wr0ng-pa55word"
    pull = runner.spawn(f"pull-{prefix}-401", "pull", "--url",
                        with_credentials(server.url, USER, wrong), "--stream", f"{prefix}-401")
    try:
        lines = _until(lambda: [ln for ln in pull.log.read_text(errors="replace").splitlines()
                                if "reconnecting in" in ln][2:] and
                       pull.log.read_text(errors="replace").splitlines(), 60,
                       "three refused attempts")
    finally:
        pull.stop()
        server.stop()
    retries = [ln for ln in lines if "reconnecting in" in ln]
    assert all("401" in ln or "Unauthorized" in ln or "authoriz" in ln.lower() for ln in retries), \
        retries
    assert not any(wrong in ln or PASSWORD in ln for ln in lines)


def test_camera_restart_reconnects_and_vod_plays_across(system, tmp_path):
    settings, runner, prefix, _ = system
    sid = f"{prefix}-restart"
    port = free_port()
    server = RtspServer(port, "--gop", str(GOP)).start()
    since = end_offsets(settings, "camlog.frames")
    t0 = int(time.time() * 1e6)
    pull = runner.spawn(f"pull-{sid}", "pull", "--url", server.url, "--stream", sid,
                        "--transport", "udp")
    try:
        _until(lambda: sum(len(c["frames"]) for c in _frames(settings, since, sid)) >= 45, 60,
               "frames before the restart")
        server.kill()
        time.sleep(10)  # the camera is away for 10 s
        before = {c["session_id"] for c in _frames(settings, since, sid)}
        server.start()
        restarted = time.monotonic()
        _until(lambda: any(c["session_id"] not in before for c in _frames(settings, since, sid)),
               settings.pull_backoff_cap_s + 15, "a new session after the restart")
        reconnect_s = time.monotonic() - restarted
        _until(lambda: sum(len(c["frames"]) for c in _frames(settings, since, sid)
                           if c["session_id"] not in before) >= 45, 30, "frames after the restart")
    finally:
        pull.stop()
        server.stop()
    assert reconnect_s <= settings.pull_backoff_cap_s
    FIGURES.append(f"rtsp pull: camera back after 10 s -> frames again {reconnect_s:.1f} s later")
    chunks = _frames(settings, since, sid)
    assert len(_runs(chunks)) == 2
    logged = sum(len(c["frames"]) for c in chunks)
    t1 = int(time.time() * 1e6)
    # each session's frames before its first keyframe cannot be decoded (none: both open on one)
    counts, got = wait_stored(settings, {sid: logged}, t0 - 60_000_000, t1 + 60_000_000, tmp_path)
    segs = got[sid][0]
    assert counts[sid] == logged
    assert any(s.discontinuity for s in segs[1:])
    vtok = issue_viewer(viewer_keys(settings), [f"{prefix}*"], 3600, time.time())
    url = (f"http://{settings.playback_addr}/v1/streams/{sid}/vod.m3u8?start={t0 / 1e6 - 60:.3f}"
           f"&end={t1 / 1e6 + 60:.3f}&token={vtok}")
    status, body = get(url)
    assert status == 200 and b"#EXT-X-DISCONTINUITY" in body, body[:500]
    played = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", url, "-f", "null", "-"],
                            capture_output=True, text=True, timeout=120)
    assert played.returncode == 0 and played.stderr.strip() == "", played.stderr
    probe = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
                            "-show_entries", "stream=nb_read_frames", "-of", "json", url],
                           capture_output=True, text=True, timeout=120, check=True)
    # decoded through both sides of the gap
    assert int(json.loads(probe.stdout)["streams"][0]["nb_read_frames"]) == logged


def _owner(settings: Any, group: str, partition: int) -> str | None:
    """client.id of the group member that owns ``partition`` of camlog.cameras."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": settings.kafka})
    desc = admin.describe_consumer_groups([group])[group].result(timeout=10)
    if not str(desc.state).upper().endswith("STABLE"):
        return None
    for m in desc.members:
        if any(tp.partition == partition for tp in m.assignment.topic_partitions):
            return m.client_id
    return None


def test_killed_puller_hands_its_camera_to_the_other(system, capsys):
    settings, runner, prefix, _ = system
    cam = f"{prefix}-group"
    group = f"pullers-{prefix}"
    server = RtspServer(free_port(), "--gop", str(GOP), "--user", USER,
                        "--password", PASSWORD).start()
    since = end_offsets(settings, "camlog.frames")
    ack = add_camera(settings, cam, with_credentials(server.url, USER, PASSWORD))
    assert list_cameras(settings)[cam]["transport"] == "TCP"
    assert main(["cameras", "list"]) == 0
    assert PASSWORD not in capsys.readouterr().out
    pullers = {n: runner.spawn(f"puller-{n}", "puller", "--group", group, "--name", n)
               for n in ("a", "b")}
    try:
        owner = _until(lambda: _owner(settings, group, ack.partition), 60,
                       "both pullers in a stable group")
        _until(lambda: sum(len(c["frames"]) for c in _frames(settings, since, cam)) >= 30, 60,
               "the camera pulled")
        name = owner.removeprefix("camlog-puller-")
        before = {c["session_id"] for c in _frames(settings, since, cam)}
        pullers[name].stop(sig=signal.SIGKILL)
        killed = time.monotonic()
        _until(lambda: any(c["session_id"] not in before for c in _frames(settings, since, cam)),
               SESSION_TIMEOUT_S + 30, "the camera pulled by the surviving puller")
        moved_s = time.monotonic() - killed
        other = next(n for n in pullers if n != name)
        assert _until(lambda: _owner(settings, group, ack.partition), 30, "owner") == \
            f"camlog-puller-{other}"
        # before the remove: the survivor may stop the camera before the remove returns
        sessions0 = end_offsets(settings, "camlog.sessions")
        assert main(["cameras", "remove", cam]) == 0
        assert cam not in list_cameras(settings)
        _until(lambda: any(s["kind"] == "DISCONNECTED" for s in _records(
            settings, "camlog.sessions", sessions0, cam)), 30, "removed camera stopped")
    finally:
        for p in pullers.values():
            p.stop()
        server.stop()
    # the killed puller's session, then the survivor's: never two sessions interleaved
    runs = _runs(_frames(settings, since, cam))
    assert len(runs) == len(set(runs)) and len(runs) >= 2
    assert moved_s <= SESSION_TIMEOUT_S + settings.pull_read_timeout_s + 5
    FIGURES.append(f"rtsp puller SIGKILLed: camera pulled again by the other {moved_s:.1f} s later "
                   f"(session timeout {SESSION_TIMEOUT_S:.0f} s)")
    assert re.fullmatch(r"camlog-puller-[ab]", owner)
