"""The viewer pages in headless Chromium against the real system (bridge, worker, playback and
simulated cameras as child processes): the player waits and recovers by itself, the dashboard
tells offline from processing behind, a refused token is a clear message and no retry loop.

Each test asserts on the page's DOM state and on the video element (currentTime advancing,
decoded frames) and saves screenshots in its tmp_path.
"""

from __future__ import annotations

import json
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline.auth.keys import ephemeral_keys, viewer_keys
from pipeline.auth.viewer import issue as issue_viewer
from pipeline.runner import Child, worker_ready
from tests.chaos.conftest import ChaosSystem, system_on
from tests.clients import browser

pytestmark = [pytest.mark.services, pytest.mark.slow]

PROBE = """() => { const v = document.getElementById('video'),
                         b = document.getElementById('banner');
  const q = v.getVideoPlaybackQuality(), p = window.camlogPlayer;
  return {state: b.dataset.state, text: b.textContent, t: v.currentTime, frames: q.totalVideoFrames,
          errors: p.errors, probes: p.probes, playingAt: p.playingAt, restarts: p.restarts,
          waits: p.waits, marker: window.__marker || null,
          error: document.getElementById('error').hidden ? ''
                 : document.getElementById('error').textContent}; }"""


@pytest.fixture(scope="module")
def system(services, tmp_path_factory) -> Iterator[ChaosSystem]:
    """One system for the module (each test has its own stream)."""
    with system_on(services, tmp_path_factory.mktemp("pages")) as s:
        yield s


@pytest.fixture(scope="module")
def chrome() -> Iterator[Any]:
    if not (Path(__file__).parents[2] / "pipeline/playback/static/vendor/hls.min.js").exists():
        pytest.skip("hls.js not installed (make installs it from the npm registry)")
    pw, b = browser()
    try:
        yield b
    finally:
        b.close()
        pw.stop()


def _token(system: ChaosSystem, *scopes: str) -> str:
    return issue_viewer(viewer_keys(system.settings), scopes, 3600, time.time())


def _open(chrome, system: ChaosSystem, stream: str, token: str, console: list[str]):
    page = chrome.new_page(viewport={"width": 390, "height": 844})  # a phone
    page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
    page.goto(f"http://{system.settings.playback_addr}/watch/{stream}?token={token}")
    page.evaluate("() => { window.__marker = 'same page'; }")  # gone if the page reloads
    return page


def _until(page, condition: str, timeout_s: float, console: list[str]) -> dict:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(f"() => {{ const s = ({PROBE})(); return {condition}; }}",
                               timeout=timeout_s * 1000, polling=200)
    except PlaywrightTimeout:
        pytest.fail(f"not {condition!r} after {timeout_s} s: {page.evaluate(PROBE)}\n"
                    + "\n".join(console[-20:]))
    return page.evaluate(PROBE)


def _plays(page, console: list[str], seconds: float = 2.0, timeout_s: float = 30) -> dict:
    """The video advances by ``seconds`` with more decoded frames, and the page says playing."""
    first = _until(page, "s.state === 'playing' && s.t > 0", timeout_s, console)
    second = _until(page, f"s.t > {first['t'] + seconds} && s.frames > {first['frames']}",
                    timeout_s, console)
    assert second["errors"] == [] and second["marker"] == "same page", second
    return second


def _first_segment_at(system: ChaosSystem, stream: str, token: str, timeout_s: float) -> float:
    """Wall time when the live playlist first lists a segment (polled every 100 ms)."""
    url = f"http://{system.settings.playback_addr}/v1/streams/{stream}/live.m3u8?token={token}"
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if b"#EXTINF" in r.read():
                    return time.time()
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    pytest.fail(f"no segment for {stream} after {timeout_s} s")


def _stream_json(system: ChaosSystem, stream: str, token: str) -> dict:
    req = urllib.request.Request(f"http://{system.settings.playback_addr}/v1/streams/{stream}",
                                 headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.loads(r.read())


def test_opened_before_the_camera_waits_then_plays(system, chrome, tmp_path):
    stream = f"{system.prefix}-early"
    token = _token(system, stream)
    console: list[str] = []
    page = _open(chrome, system, stream, token, console)
    waiting = _until(page, "s.state === 'waiting' && s.probes >= 3", 20, console)
    assert f"waiting for video from {stream}" in waiting["text"], waiting
    page.screenshot(path=str(tmp_path / "1-waiting.png"))
    system.start_cameras(1, 60, "early")
    seg_at = _first_segment_at(system, stream, token, 60)
    played = _plays(page, console)
    page.screenshot(path=str(tmp_path / "2-playing.png"))
    first_frame = _stream_json(system, stream, token)["connected_since"]
    startup_s = played["playingAt"] / 1000 - seg_at
    target = system.settings.segment_target_s
    print(f"first frame {first_frame}; playing {startup_s:.2f} s after the first segment was "
          f"listed; {played['probes']} probes")
    assert startup_s <= target + 1.5, (startup_s, played)  # within one segment of it
    # the controls, by keyboard: the recording of the last 5 minutes, its clip, back to live
    page.focus("#gorange")
    page.keyboard.press("Enter")
    _until(page, "document.getElementById('mode').textContent === 'recording'", 5, console)
    _plays(page, console, seconds=1)
    assert "/clip.mp4?start=" in (page.get_attribute("#clip", "href") or "")
    page.focus("body")
    page.keyboard.press("l")
    _until(page, "document.getElementById('mode').textContent === 'live'", 5, console)
    _plays(page, console, seconds=1)
    assert page.evaluate("() => window.camlogPlayer.latencyS") is not None
    page.close()


def test_camera_stops_shows_offline_and_resumes_without_reload(system, chrome, tmp_path):
    stream = f"{system.prefix}-gone"
    token = _token(system, stream)
    cam = system.start_cameras(1, 120, "gone")
    _first_segment_at(system, stream, token, 60)
    console: list[str] = []
    page = _open(chrome, system, stream, token, console)
    _plays(page, console)
    cam.stop()
    offline = _until(page, "s.state === 'offline'", 30, console)
    assert f"{stream} is offline since" in offline["text"], offline
    page.screenshot(path=str(tmp_path / "1-offline.png"))
    time.sleep(2)
    assert page.evaluate(PROBE)["state"] == "offline"
    system.start_cameras(1, 120, "gone")  # a new session: a discontinuity in the playlist
    back = _plays(page, console, timeout_s=45)
    page.screenshot(path=str(tmp_path / "2-back.png"))
    # the same page plays again (a re-created player starts a new media timeline)
    assert back["state"] == "playing" and back["marker"] == "same page", (offline, back)
    print(f"resumed with {back['restarts']} player restart(s), waits: {back['waits'][-3:]}")
    page.close()


def test_worker_stopped_shows_processing_behind_then_live_again(system, chrome, tmp_path):
    stream = f"{system.prefix}-lag"
    token = _token(system, f"{system.prefix}-*")
    system.start_cameras(1, 150, "lag")
    _first_segment_at(system, stream, token, 60)
    console: list[str] = []
    page = _open(chrome, system, stream, token, console)
    _plays(page, console)
    dash = chrome.new_page(viewport={"width": 1024, "height": 768})
    dash.goto(f"http://{system.settings.playback_addr}/?token={token}")
    card = f"[data-stream='{stream}']"
    dash.wait_for_selector(f"{card}[data-state='live']", timeout=20_000)
    old = system.child("worker")
    old.stop(timeout=0.1, sig=signal.SIGKILL)
    try:
        behind = _until(page, "s.state === 'behind'", 40, console)
        assert "processing" in behind["text"] and "behind" in behind["text"], behind
        dash.wait_for_selector(f"{card}[data-state='behind']", timeout=20_000)
        text = dash.inner_text(card)
        assert "processing" in text and "s behind" in text, text
        page.screenshot(path=str(tmp_path / "1-player-behind.png"))
        dash.screenshot(path=str(tmp_path / "2-dashboard-behind.png"))
        assert _stream_json(system, stream, token)["online"] is True  # the camera still sends
    finally:
        new = Child(old.name, old.argv, old.env, old.log)
        new.start()
        system.runner.children.append(new)
    system.runner.wait("worker", lambda: worker_ready(system.settings, system.group),
                       timeout=120, child=new)
    again = _plays(page, console, seconds=3, timeout_s=90)
    dash.wait_for_selector(f"{card}[data-state='live']", timeout=30_000)
    page.screenshot(path=str(tmp_path / "3-player-live.png"))
    dash.screenshot(path=str(tmp_path / "4-dashboard-live.png"))
    assert again["state"] == "playing", again
    page.close()
    dash.close()


def test_refused_token_is_a_clear_message_and_no_retry_loop(system, chrome, tmp_path):
    stream = f"{system.prefix}-tok"
    cases = {"bad": ("clv1.not-a-token.x", "token was refused"),
             "other stream": (_token(system, "someone-else"), f"does not cover {stream}")}
    for name, (token, words) in cases.items():
        console: list[str] = []
        page = _open(chrome, system, stream, token, console)
        requests: list[str] = []
        page.on("request", lambda r, out=requests: out.append(r.url))
        state = _until(page, "s.state === 'fatal'", 15, console)
        assert words in state["error"] and "Ask" in state["error"], (name, state)
        page.screenshot(path=str(tmp_path / f"fatal-{name.replace(' ', '-')}.png"))
        n = len([u for u in requests if "/v1/streams/" in u])
        time.sleep(5)
        later = [u for u in requests if "/v1/streams/" in u]
        assert len(later) == n, (name, later[n:])  # nothing retried after the fatal error
        final = page.evaluate(PROBE)
        assert final["t"] == 0 and final["frames"] == 0 and len(final["errors"]) == 1, final
        page.close()


def test_dashboard_with_500_streams_pages_and_bounds_requests(chrome, tmp_path):
    """500 streams (in memory): one page of cards, a handful of requests, filters and paging."""
    import asyncio
    import threading

    from aiohttp import web

    from pipeline.playback.app import build_app
    from pipeline.playback.context import Context
    from tests.playback.memsource import MemorySource
    from tests.system import free_port

    keys = ephemeral_keys()
    now_us = int(time.time() * 1e6)
    src = MemorySource()
    for i in range(500):
        sid = f"cam-{i:03d}"
        src.states[sid] = {"stream_id": sid, "online": i % 5 != 0, "segments": 3,
                           "last_seen": now_us - (3600_000_000 if i % 5 == 0 else 0),
                           "width": 320, "height": 180, "fps": 15.0, "bitrate": 400_000}
    port, started, loop = free_port(), threading.Event(), asyncio.new_event_loop()

    async def serve() -> None:
        runner = web.AppRunner(build_app(Context(keys=keys, source=src, idle_timeout_s=600)))
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        started.set()

    thread = threading.Thread(target=lambda: (loop.run_until_complete(serve()),
                                              loop.run_forever()), daemon=True)
    thread.start()
    assert started.wait(10)
    token = issue_viewer(keys, ["cam-*"], 3600, time.time())
    page = chrome.new_page(viewport={"width": 390, "height": 844})
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    try:
        page.goto(f"http://127.0.0.1:{port}/?token={token}")
        page.wait_for_selector("[data-stream='cam-000']", timeout=10_000)
        time.sleep(11)  # two refreshes
        assert page.locator("[data-stream]").count() == 24
        assert "500 streams · 400 online" in page.inner_text("#summary")
        lists = [u for u in requests if "/v1/streams?" in u]
        thumbs = [u for u in requests if "thumbnail.jpg" in u]
        assert 2 <= len(lists) <= 4 and len(thumbs) <= 24, (len(lists), len(thumbs))
        assert page.locator("[data-stream='cam-001'] .ph").is_visible()  # no picture: placeholder
        assert page.get_attribute("[data-stream='cam-001'] img", "alt") == \
            "latest picture from cam-001"
        page.focus("#next")
        page.keyboard.press("Enter")
        page.wait_for_selector("[data-stream='cam-024']", timeout=5_000)
        page.fill("#filter", "cam-49")
        page.select_option("#state", "offline")
        page.wait_for_function("() => document.querySelectorAll('[data-stream]').length === 2")
        assert "offline" in page.inner_text("[data-stream='cam-490']")
        page.screenshot(path=str(tmp_path / "dashboard-500.png"), full_page=True)
    finally:
        page.close()
        loop.call_soon_threadsafe(loop.stop)
