"""The playback service as a real process, on real Cassandra and Kafka, with real clients:
ffmpeg reads live and VOD HLS, ffprobe counts clip frames, headless Chromium plays the page."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from pipeline.auth.keys import viewer_keys
from pipeline.auth.viewer import issue as issue_viewer
from pipeline.config import load_settings
from tests.playback.feed import Feed, record

pytestmark = [pytest.mark.services, pytest.mark.slow]

SECRET = "kt=playback-real-clients-secret-0123456789"
CHROMIUM = "/usr/bin/chromium"
VOD_GAP_S = 5


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def keyed(services):
    """Settings sharing one key ring with the server process."""
    return load_settings(env={**os.environ, "CAMLOG_SECRET": SECRET})


def token(keyed, *scopes: str, ttl: float = 3600, now: float | None = None) -> str:
    return issue_viewer(viewer_keys(keyed), scopes, ttl, time.time() if now is None else now)


class Feeder(threading.Thread):
    """Writes the test streams into Cassandra from its own event loop (tests block on clients)."""

    def __init__(self, settings, live_id: str, vod_id: str):
        super().__init__(daemon=True)
        self.settings, self.live_id, self.vod_id = settings, live_id, vod_id
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.vod_start_us = 0
        self.vod_frames = 0
        self._stop_flag = threading.Event()

    def run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # surfaced by the fixture
            self.error = exc
            self.ready.set()

    async def _main(self) -> None:
        from pipeline.store.cluster import connect
        from pipeline.store.segments import SegmentStore
        from pipeline.store.views import ViewStore

        session = await asyncio.to_thread(connect, self.settings, self.settings.keyspace)
        seg, views = SegmentStore(self.settings, session), ViewStore(self.settings, session)
        await seg.start()
        await views.start()
        rec = await asyncio.to_thread(record, 20)
        # A finished recording an hour ago, with a hole of VOD_GAP_S seconds after segment 4.
        vod = Feed(self.vod_id, rec, seg, views)
        await vod.put_init()
        t = (int(time.time()) - 3600) * 1_000_000
        self.vod_start_us = t
        for i in range(10):
            if i == 5:
                t += VOD_GAP_S * 1_000_000
            await vod.publish(i, t, discontinuity=i == 5)
            self.vod_frames += rec.segments[i][1]
            t += 1_000_000
        await vod.end(t)
        # A live stream: six segments of history, then one per second in real time.
        live = Feed(self.live_id, rec, seg, views)
        await live.put_init()
        now = int(time.time()) * 1_000_000
        for i in range(6):
            await live.publish(i, now - (6 - i) * 1_000_000)
        self.ready.set()
        stop = asyncio.Event()
        waiter = asyncio.create_task(asyncio.to_thread(self._stop_flag.wait))
        waiter.add_done_callback(lambda _: stop.set())
        await live.run_live(6, now, stop)
        session.cluster.shutdown()

    def stop(self) -> None:
        self._stop_flag.set()
        self.join(10)


@pytest.fixture(scope="module")
def streams(keyed):
    f = Feeder(keyed, f"live-{uuid.uuid4().hex[:8]}", f"vod-{uuid.uuid4().hex[:8]}")
    f.start()
    assert f.ready.wait(120), "feeder did not start"
    if f.error:
        raise f.error
    yield f
    f.stop()


@pytest.fixture(scope="module")
def server(keyed, tmp_path_factory):
    """``camlog playback`` as a separate process; its log file is checked for leaked tokens."""
    port = _free_port()
    log = tmp_path_factory.mktemp("playback") / "server.log"
    env = {**os.environ, "CAMLOG_SECRET": SECRET, "CAMLOG_TELEMETRY": "none",
           "CAMLOG_LOG_LEVEL": "INFO"}
    with open(log, "wb") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "pipeline", "playback", "--addr",
                                 f"127.0.0.1:{port}"], env=env, stdout=fh, stderr=fh)
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            with urllib.request.urlopen(base + "/readyz", timeout=1) as r:
                if r.status == 200:
                    break
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.1)
    else:
        proc.terminate()
        pytest.fail("playback service did not become ready:\n" + log.read_text()[-3000:])
    yield base, log
    proc.terminate()
    proc.wait(10)


def run(cmd: list[str], timeout: float = 90) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def test_ffmpeg_reads_live_hls_with_token(server, streams, keyed):
    base, _ = server
    url = f"{base}/v1/streams/{streams.live_id}/live.m3u8?token={token(keyed, streams.live_id)}"
    p = run(["ffmpeg", "-nostdin", "-v", "error", "-i", url, "-t", "10", "-f", "null", "-"])
    assert p.returncode == 0, p.stderr
    assert p.stderr.strip() == "", p.stderr  # no decode errors, no HTTP errors


def test_ffmpeg_reads_vod_range_across_a_gap(server, streams, keyed):
    base, _ = server
    s = streams.vod_start_us / 1e6
    url = (f"{base}/v1/streams/{streams.vod_id}/vod.m3u8?start={s - 1:.3f}&end={s + 20:.3f}"
           f"&token={token(keyed, streams.vod_id)}")
    p = run(["ffmpeg", "-nostdin", "-v", "error", "-i", url, "-f", "null", "-"])
    assert p.returncode == 0 and p.stderr.strip() == "", p.stderr
    p = run(["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
             "-show_entries", "stream=nb_read_frames", "-of", "json", url])
    assert p.returncode == 0, p.stderr
    assert int(json.loads(p.stdout)["streams"][0]["nb_read_frames"]) == streams.vod_frames


def test_clip_frames_counted_by_ffprobe(server, streams, keyed, tmp_path):
    base, _ = server
    s = streams.vod_start_us / 1e6
    url = (f"{base}/v1/streams/{streams.vod_id}/clip.mp4?start={s + 1:.3f}&end={s + 4:.3f}"
           f"&token={token(keyed, streams.vod_id)}")
    path = tmp_path / "clip.mp4"
    with urllib.request.urlopen(url, timeout=30) as r:
        assert r.headers["Content-Type"] == "video/mp4"
        path.write_bytes(r.read())
    p = run(["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
             "-show_entries", "stream=nb_read_frames,codec_name", "-of", "json", str(path)])
    info = json.loads(p.stdout)["streams"][0]
    assert info["codec_name"] == "h264" and int(info["nb_read_frames"]) == 3 * 15


def test_token_failures_and_no_token_in_logs(server, streams, keyed):
    base, log = server
    live = f"{base}/v1/streams/{streams.live_id}/live.m3u8"
    cases = {
        "expired": (token(keyed, streams.live_id, ttl=5, now=time.time() - 10), 401),
        "tampered": (token(keyed, streams.live_id)[:-3] + "AAA", 401),
        "wrong stream": (token(keyed, "someone-else"), 403),
    }
    for name, (tok, status) in cases.items():
        req = urllib.request.Request(live, headers={"Authorization": f"Bearer {tok}"})
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(req, timeout=10)
        assert e.value.code == status, name
        assert json.loads(e.value.read())["status"] == status
    good = token(keyed, streams.live_id)
    with urllib.request.urlopen(f"{live}?token={good}", timeout=10) as r:
        assert r.status == 200
    time.sleep(0.5)
    text = log.read_text()
    assert "live.m3u8" in text  # the access log is on ...
    for tok in [good] + [t for t, _ in cases.values()]:
        assert tok not in text and tok.split(".")[-1] not in text  # ... and never shows a token


def _browser():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium is not installed (apt-get install -y chromium)")
    pw = sync_playwright().start()
    browser = pw.chromium.launch(executable_path=CHROMIUM, args=[
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--autoplay-policy=no-user-gesture-required"])
    return pw, browser


def test_chromium_plays_live_and_dashboard_lists_stream(server, streams, keyed):
    base, _ = server
    tok = token(keyed, "live-*", "vod-*")
    if not (Path(__file__).parents[2] / "pipeline/playback/static/vendor/hls.min.js").exists():
        pytest.skip("hls.js not installed (make installs it from the npm registry)")
    pw, browser = _browser()
    try:
        page = browser.new_page()
        console: list[str] = []
        page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
        page.goto(f"{base}/watch/{streams.live_id}?token={tok}")
        page.wait_for_function("() => document.getElementById('video').currentTime > 0.5",
                               timeout=30_000)
        probe = """() => { const v = document.getElementById('video');
            const q = v.getVideoPlaybackQuality();
            return {t: v.currentTime, frames: q.totalVideoFrames, err: v.error && v.error.code,
                    errors: window.camlogPlayer.errors, latency: window.camlogPlayer.latencyS}; }"""
        first = page.evaluate(probe)
        page.wait_for_function(
            f"() => document.getElementById('video').currentTime > {first['t'] + 2}",
            timeout=30_000)
        second = page.evaluate(probe)
        assert second["t"] > first["t"] and second["frames"] > first["frames"], (first, second)
        assert second["err"] is None and second["errors"] == [], (second, console)
        assert second["latency"] is not None and 0 < second["latency"] < 15, second

        dash = browser.new_page()
        dash.goto(f"{base}/?token={tok}")
        dash.wait_for_selector(f"[data-stream='{streams.live_id}']", timeout=20_000)
        card = dash.inner_text(f"[data-stream='{streams.live_id}']")
        assert "online" in card and "320×240" in card and "15.0 fps" in card, card
        assert dash.query_selector(f"[data-stream='{streams.vod_id}']") is not None
    finally:
        browser.close()
        pw.stop()


def test_playback_events_reach_kafka(server, streams, keyed):
    """Served requests and beacons come back from camlog.playback."""
    from confluent_kafka import Consumer, TopicPartition

    from pipeline.events.codec import decode

    base, _ = server
    tok = token(keyed, streams.vod_id)
    req = urllib.request.Request(
        f"{base}/v1/beacons", data=json.dumps({"stream_id": streams.vod_id, "startup_ms": 123.0,
                                               "rebuffers": 1}).encode(),
        headers={"Authorization": f"Bearer {tok}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 202
    c = Consumer({"bootstrap.servers": keyed.kafka, "group.id": f"t-{uuid.uuid4().hex}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    md = c.list_topics("camlog.playback", timeout=10).topics["camlog.playback"]
    c.assign([TopicPartition("camlog.playback", p, -2) for p in md.partitions])
    kinds: set[str] = set()
    deadline = time.time() + 30
    while time.time() < deadline and not {"BEACON", "CLIP", "MANIFEST"} <= kinds:
        msg = c.poll(1.0)
        if msg is None or msg.error():
            continue
        if msg.key() == streams.vod_id.encode():
            ev = decode("PlaybackEvent", msg.value())
            kinds.add(ev["kind"])
            if ev["kind"] == "BEACON":
                assert ev["startup_ms"] == 123.0 and ev["rebuffers"] == 1
    c.close()
    assert {"BEACON", "CLIP", "MANIFEST"} <= kinds, kinds
