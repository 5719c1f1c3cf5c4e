"""The whole system end to end: cameras and an ffmpeg push in, playable HLS out, nothing lost.

Real Kafka, Cassandra, bridge, worker and playback (child processes, as in production); three
simulated cameras for ~30 s plus one real ffmpeg MPEG-TS push. Prints glass-to-playable latency.
"""

from __future__ import annotations

import re
import statistics
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest

from pipeline.auth.keys import viewer_keys
from pipeline.auth.tokens import issue
from pipeline.auth.viewer import issue as issue_viewer
from pipeline.runner import SystemRunner, start_group_at_end
from tests.clients import browser, ffmpeg_plays, ffprobe_frames, require
from tests.system import end_offsets, free_port, get, log_frames, view, wait_stored

pytestmark = [pytest.mark.services, pytest.mark.slow]

CAMERA_SECONDS = 30
IDLE_S = 5.0


class LivePoller(threading.Thread):
    """Polls a live playlist every 100 ms; remembers when each segment URI first appeared."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.url, self.first_seen, self.stop = url, {}, threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            status, body = get(self.url, 5)
            now = time.time()
            if status == 200:
                for uri in re.findall(r"^[^#\s].*$", body.decode(), re.MULTILINE):
                    seg = uri.split("?")[0].rsplit("/", 1)[-1].removesuffix(".m4s")
                    self.first_seen.setdefault(seg, now)
            self.stop.wait(0.1)


def _spans(log: Path) -> set[tuple[str, str]]:
    """(span name, trace id) pairs the console exporter wrote to a child's log."""
    text = log.read_text(errors="replace")
    return set(re.findall(r'"name": "([^"]+)",\s*"context": \{\s*"trace_id": "0x([0-9a-f]+)"',
                          text))


@pytest.fixture(scope="module")
def system(services, tmp_path_factory):
    prefix = f"e2e{uuid.uuid4().hex[:6]}"
    settings = services.replace(bridge_addr=f"127.0.0.1:{free_port()}",
                                playback_addr=f"127.0.0.1:{free_port()}", idle_timeout_s=IDLE_S)
    logs = tmp_path_factory.mktemp("e2e-logs")
    runner = SystemRunner(settings, logs, telemetry="console")
    group = f"camlog-worker-{prefix}"
    try:
        assert start_group_at_end(settings, group)
        runner.start_services(worker_args=("--app-id", group, "--stream-prefix", prefix),
                              group=group)
        yield settings, runner, prefix
    finally:
        runner.stop()


def test_whole_system(system, tmp_path):
    settings, runner, prefix = system
    require("ffmpeg")
    since = end_offsets(settings, "camlog.frames")
    t0_us = int(time.time() * 1e6)
    cams = [f"{prefix}-cam-{i}" for i in (1, 2, 3)]
    push = f"{prefix}-push"
    now = time.time()
    vtok = issue_viewer(viewer_keys(settings), [f"{prefix}*"], 3600, now)
    dtok = issue(settings.keys, None, "device", [push], 3600, now)
    base = f"http://{settings.playback_addr}/v1/streams"

    # source for the ffmpeg push: 10 s of H.264 made on the fly
    src = tmp_path / "src.mp4"
    subprocess.run([require("ffmpeg"), "-v", "error", "-f", "lavfi", "-i",
                    "testsrc2=size=320x240:rate=15", "-t", "10", "-c:v", "libx264", "-g", "15",
                    "-bf", "0", "-pix_fmt", "yuv420p", str(src)], check=True, timeout=120)
    cam = runner.spawn("camera", "camera", "--count", "3", "--stream", f"{prefix}-cam",
                       "--fps", "15", "--size", "320x180", "--gop", "1",
                       "--duration", str(CAMERA_SECONDS), "--bridge", f"http://{settings.bridge_addr}")
    poller = LivePoller(f"{base}/{cams[0]}/live.m3u8?token={vtok}")
    poller.start()
    pusher = subprocess.run(
        [require("ffmpeg"), "-v", "error", "-re", "-i", str(src), "-c", "copy", "-f", "mpegts",
         "-headers", f"Authorization: Bearer {dtok}\r\n",
         f"http://{settings.bridge_addr}/v1/streams/{push}/ingest"],
        capture_output=True, text=True, timeout=120)
    assert pusher.returncode == 0, pusher.stderr

    # while the cameras run: live playlists play in ffmpeg and in Chromium, devices are online
    time.sleep(8)
    played = ffmpeg_plays(f"{base}/{cams[1]}/live.m3u8?token={vtok}", seconds=4)
    assert played.returncode == 0 and "error" not in played.stderr.lower(), played.stderr
    online = view(settings, "get_device_state", cams[0])
    assert online and online["online"], online
    pw, chrome = browser()
    try:
        page = chrome.new_page()
        page.goto(f"http://{settings.playback_addr}/watch/{cams[2]}?token={vtok}")
        page.wait_for_function("() => document.getElementById('video').currentTime > 1",
                               timeout=45_000)
        q = page.evaluate("() => { const v = document.getElementById('video');"
                          " return {t: v.currentTime,"
                          " f: v.getVideoPlaybackQuality().totalVideoFrames,"
                          " err: v.error && v.error.code}; }")
        assert q["f"] > 0 and q["err"] is None, q
    finally:
        chrome.close()
        pw.stop()

    # exactly K manifest and M segment requests on the push stream, for the stats check
    for _ in range(5):
        assert get(f"{base}/{push}/live.m3u8?token={vtok}")[0] == 200
    cam.proc.wait(CAMERA_SECONDS + 60)
    assert cam.proc.returncode == 0, cam.tail()
    t1_us = int(time.time() * 1e6)

    # every acknowledged frame is in exactly one stored segment
    acked = {s: sum(v.values()) for s, v in log_frames(settings, since, prefix).items()}
    assert set(acked) == set(cams) | {push}, acked
    src_frames = len(ffprobe_frames(src))
    assert acked[push] == src_frames
    counts, segments = wait_stored(settings, acked, t0_us - 60_000_000, t1_us + 60_000_000,
                                   tmp_path)
    assert counts == acked
    for s, (segs, path, _inits) in segments.items():
        frames = ffprobe_frames(path)
        assert len(frames) == acked[s], (s, len(frames), acked[s])
        assert len({x.segment_id for x in segs}) == len(segs)
        first = segs[0].sequence
        assert [x.sequence for x in segs] == list(range(first, first + len(segs)))

    # segment requests on the push stream (after it has segments)
    push_segs = segments[push][0]
    for s in push_segs[:3]:
        assert get(f"{base}/{push}/segments/{s.segment_id}.m4s?token={vtok}")[0] == 200

    # the VOD playlist of the whole run covers every segment
    for s, (segs, _, _) in segments.items():
        status, body = get(f"{base}/{s}/vod.m3u8?start={t0_us / 1e6 - 60:.3f}"
                            f"&end={t1_us / 1e6 + 60:.3f}&token={vtok}")
        assert status == 200, body
        uris = [u.split("?")[0].rsplit("/", 1)[-1].removesuffix(".m4s")
                for u in re.findall(r"^[^#\s].*\.m4s.*$", body.decode(), re.MULTILINE)]
        assert uris == [x.segment_id for x in segs], s
    assert ffmpeg_plays(f"{base}/{cams[0]}/vod.m3u8?start={t0_us / 1e6 - 60:.3f}"
                        f"&end={t1_us / 1e6 + 60:.3f}&token={vtok}", seconds=5).returncode == 0

    # the cameras stopped: each device goes offline after the idle timeout
    deadline = time.monotonic() + IDLE_S + 30
    while time.monotonic() < deadline:
        states = {s: view(settings, "get_device_state", s) for s in cams}
        if all(st and not st["online"] for st in states.values()):
            break
        time.sleep(1)
    assert all(st and not st["online"] for st in states.values()), states

    # playback stats count exactly the requests this test made on the push stream:
    # 5 live playlists + 1 VOD playlist, 3 segments
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        rows = view(settings, "get_stats", push, t0_us - 120_000_000, t1_us + 120_000_000)
        got = (sum(r["manifest_requests"] for r in rows), sum(r["segment_requests"] for r in rows))
        if got == (6, 3):
            break
        time.sleep(2)
    assert got == (6, 3), rows

    # one trace follows a chunk: bridge request -> segment seal -> live-manifest update
    bridge_log = next(c.log for c in runner.children if c.name == "bridge")
    worker_log = next(c.log for c in runner.children if c.name == "worker")
    chunk_traces = {t for name, t in _spans(bridge_log) if name == "ingest.chunk"}
    worker = _spans(worker_log)
    sealed = {t for name, t in worker if name == "segmenter.seal"} & chunk_traces
    viewed = {t for name, t in worker if name == "views.segments"} & sealed
    assert sealed and viewed, (len(chunk_traces), len(sealed), len(viewed))

    # glass-to-playable: ingest of a segment's first frame -> first seen in the live playlist
    poller.stop.set()
    segs0 = {x.segment_id: x for x in segments[cams[0]][0]}
    lat = sorted(poller.first_seen[i] - segs0[i].ingest_start / 1e6
                 for i in poller.first_seen if i in segs0)
    assert lat, "no segment was seen in the live playlist"
    p50, p99 = statistics.median(lat), lat[min(len(lat) - 1, int(0.99 * len(lat)))]
    print(f"\nglass-to-playable over {len(lat)} segments: p50 {p50:.2f}s p99 {p99:.2f}s "
          f"(target duration {settings.segment_target_s}s)")
