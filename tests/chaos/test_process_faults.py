"""camlog's own processes fail: the worker killed again and again (e), playback restarted
under a playing hls.js (f)."""

from __future__ import annotations

import signal
import time

import pytest

from pipeline.auth.keys import viewer_keys
from pipeline.auth.viewer import issue as issue_viewer
from pipeline.runner import worker_ready
from tests.chaos.conftest import assert_exactly_once, report
from tests.clients import browser

pytestmark = [pytest.mark.services, pytest.mark.slow, pytest.mark.chaos]


def test_worker_killed_every_10_s_for_2_minutes(chaos_system):
    system = chaos_system
    cam = system.start_cameras(8, 125)
    kills = 0
    t0 = time.monotonic()
    while time.monotonic() - t0 < 120:
        time.sleep(10)
        system.restart("worker", signal.SIGKILL)
        kills += 1
    result = system.camera_result(cam, timeout=120)
    cams_done = time.monotonic()
    system.runner.wait("worker", lambda: worker_ready(system.settings, system.group),
                       timeout=120, child=system.child("worker"))
    outcome = system.outcome(timeout=240)
    report("worker-sigkill-every-10s", kills=kills, acked_frames=result["acked_frames"],
           stored_frames=sum(o.stored_frames for o in outcome.values()),
           logged_frames=sum(o.logged_frames for o in outcome.values()),
           caught_up_s=f"{time.monotonic() - cams_done:.1f}")
    assert_exactly_once(outcome, {f"{system.prefix}-cam-{i}" for i in range(1, 9)})
    assert result["acked_frames"] <= sum(o.logged_frames for o in outcome.values())


def test_playback_restarted_while_hlsjs_plays(chaos_system):
    system = chaos_system
    s = system.settings
    system.start_cameras(1, 90)
    stream = f"{system.prefix}-cam"
    token = issue_viewer(viewer_keys(s), [stream], 3600, time.time())
    pw, chrome = browser()
    try:
        page = chrome.new_page()
        page.goto(f"http://{s.playback_addr}/watch/{stream}?token={token}")
        page.wait_for_function("() => document.getElementById('video').currentTime > 2",
                               timeout=60_000)
        before = page.evaluate("() => document.getElementById('video').currentTime")
        t_restart = time.monotonic()
        system.restart("playback", signal.SIGTERM)
        system.runner.wait("playback", lambda: _ready(s.playback_addr), timeout=60,
                           child=system.child("playback"))
        down_s = time.monotonic() - t_restart
        # playback goes on past what was buffered at the restart, with no player error
        page.wait_for_function(
            f"() => document.getElementById('video').currentTime > {before + 12}",
            timeout=60_000)
        state = page.evaluate(
            "() => { const v = document.getElementById('video');"
            " return {t: v.currentTime, err: v.error && v.error.code,"
            " errors: window.camlogPlayer.errors,"
            " frames: v.getVideoPlaybackQuality().totalVideoFrames}; }")
    finally:
        chrome.close()
        pw.stop()
    report("playback-restart-under-hlsjs", restart_s=f"{down_s:.1f}",
           played_s=f"{state['t'] - before:.1f}", frames=state["frames"],
           player_errors=len(state["errors"]))
    assert state["err"] is None and state["errors"] == [], state


def _ready(addr: str) -> bool:
    from pipeline.runner import http_ok

    return http_ok(f"http://{addr}/readyz")
