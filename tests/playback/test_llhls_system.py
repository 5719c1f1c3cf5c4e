"""LL-HLS from durable storage, on the real system: bridge, worker, two playback instances.

Simulated cameras push part-sized chunks; the worker stores CMAF parts in Cassandra and
announces them; each playback instance follows camlog.segments. Asserted: blocking reload holds
and answers with the part, the rules' 400s, parts that concatenate to their segment's bytes and
decode, ffmpeg reading the LL playlist, byte-identical playlists from both instances and after a
restart, and hls.js in lowLatencyMode playing with every playlist and part request alternated
between the instances, through a worker SIGKILL mid-segment.
"""

from __future__ import annotations

import re
import signal
import time
import uuid

import pytest

from pipeline.auth.keys import viewer_keys
from pipeline.auth.viewer import issue as issue_viewer
from pipeline.runner import SystemRunner, http_ok, start_group_at_end, worker_ready
from tests.clients import browser, ffmpeg_plays, ffprobe_frames, require
from tests.system import FIGURES, free_port, get
from tests.test_llhls import attrs, parse

pytestmark = [pytest.mark.services, pytest.mark.slow]

IDLE_S = 5.0
CAMERA_S = 110


@pytest.fixture(scope="module")
def ll(services, tmp_path_factory):
    prefix = f"ll{uuid.uuid4().hex[:6]}"
    settings = services.replace(bridge_addr=f"127.0.0.1:{free_port()}",
                                playback_addr=f"127.0.0.1:{free_port()}", idle_timeout_s=IDLE_S)
    second = f"127.0.0.1:{free_port()}"
    runner = SystemRunner(settings, tmp_path_factory.mktemp("ll-logs"), telemetry="none")
    group = f"camlog-worker-{prefix}"
    worker_args = ("--app-id", group, "--stream-prefix", prefix)
    try:
        assert start_group_at_end(settings, group)
        runner.start_services(worker_args=worker_args, group=group)
        b = runner.spawn("playback-b", "playback", "--addr", second)
        runner.wait("playback-b", lambda: http_ok(f"http://{second}/readyz"), child=b)
        cams = runner.spawn("camera", "camera", "--count", "2", "--stream", f"{prefix}-cam",
                            "--fps", "15", "--size", "320x180", "--gop", "2",
                            "--duration", str(CAMERA_S),
                            "--bridge", f"http://{settings.bridge_addr}")
        tok = issue_viewer(viewer_keys(settings), [f"{prefix}*"], 3600, time.time())
        yield {"settings": settings, "runner": runner, "prefix": prefix,
               "a": settings.playback_addr, "b": second, "token": tok, "cams": cams,
               "worker_args": worker_args, "group": group}
    finally:
        runner.stop()


def _url(addr: str, sid: str, tok: str, query: str = "") -> str:
    return f"http://{addr}/v1/streams/{sid}/live.m3u8?token={tok}" + (f"&{query}" if query else "")


def _ll_playlist(addr: str, sid: str, tok: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, body = get(_url(addr, sid, tok), 5)
        if status == 200 and b"#EXT-X-PART-INF" in body and b"#EXT-X-PART:" in body:
            return body.decode()
        time.sleep(0.3)
    raise AssertionError(f"no LL-HLS playlist from {addr} for {sid}")


def _hint(text: str) -> tuple[int, int]:
    m = re.search(r'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="parts/(\d+)\.(\d+)\.m4s', text)
    assert m, text
    return int(m.group(1)), int(m.group(2))


def test_blocking_reload_parts_and_rules(ll, tmp_path):
    a, b, tok, sid = ll["a"], ll["b"], ll["token"], f"{ll['prefix']}-cam-1"
    text = _ll_playlist(a, sid, tok)
    pl = parse(text)
    sc = attrs(pl["head"]["EXT-X-SERVER-CONTROL"])
    assert sc["CAN-BLOCK-RELOAD"] == "YES" and int(pl["head"]["EXT-X-VERSION"]) >= 9
    # a blocking request for the hinted part is held until the part exists, then lists it
    msn, idx = _hint(text)
    t0 = time.monotonic()
    status, body = get(_url(b, sid, tok, f"_HLS_msn={msn}&_HLS_part={idx}"), 30)
    held = time.monotonic() - t0
    assert status == 200, body[:300]
    got = body.decode()
    assert f"parts/{msn}.{idx}.m4s" in got
    FIGURES.append(f"LL-HLS: blocking request for the hinted part answered after {held:.2f} s")
    # the preload-hinted part URL is served once it exists, from either instance alike
    nxt = _hint(got)
    s1, part_a = get(f"http://{a}/v1/streams/{sid}/parts/{nxt[0]}.{nxt[1]}.m4s?token={tok}", 30)
    s2, part_b = get(f"http://{b}/v1/streams/{sid}/parts/{nxt[0]}.{nxt[1]}.m4s?token={tok}", 30)
    assert s1 == s2 == 200 and part_a == part_b and part_a[4:8] == b"moof"
    # the rules: _HLS_part alone, msn far ahead
    status, body = get(_url(a, sid, tok, "_HLS_part=1"), 5)
    assert status == 400 and b"bad_delivery_directive" in body
    status, body = get(_url(a, sid, tok, f"_HLS_msn={msn + 50}"), 5)
    assert status == 400
    status, _ = get(f"http://{a}/v1/streams/{sid}/parts/{msn + 50}.0.m4s?token={tok}", 5)
    assert status == 404
    # a complete segment with its parts listed: the parts concatenate to the segment's bytes,
    # and init + parts decode to its frames
    deadline = time.monotonic() + 30
    while not (pl := parse(_ll_playlist(a, sid, tok)))["segments"]:
        assert time.monotonic() < deadline, "no complete segment"
        time.sleep(0.5)
    seg = next(s for s in reversed(pl["segments"]) if s["parts"])
    blobs = []
    for _, uri, _ in seg["parts"]:
        status, data = get(f"http://{a}/v1/streams/{sid}/{uri}", 10)
        assert status == 200
        blobs.append(data)
    status, whole = get(f"http://{a}/v1/streams/{sid}/{seg['uri']}", 10)
    assert status == 200 and whole == b"".join(blobs)
    status, init = get(f"http://{a}/v1/streams/{sid}/{seg['map']}", 10)
    assert status == 200
    path = tmp_path / "parts.mp4"
    path.write_bytes(init + b"".join(blobs))
    frames = ffprobe_frames(path)
    assert abs(len(frames) - round(seg["dur"] * 15)) <= 1, (len(frames), seg["dur"])
    # ffmpeg, an independent client, reads the live LL playlist
    played = ffmpeg_plays(_url(a, sid, tok), seconds=3)
    assert played.returncode == 0 and "error" not in played.stderr.lower(), played.stderr


def test_hlsjs_plays_across_instances_and_a_worker_kill(ll):
    a, b, tok, sid = ll["a"], ll["b"], ll["token"], f"{ll['prefix']}-cam-2"
    _ll_playlist(a, sid, tok)
    require("/usr/bin/chromium")
    pw, chrome = browser()
    seen: list[str] = []
    turn = [0]
    try:
        page = chrome.new_page()

        def alternate(route):
            url = route.request.url
            if "live.m3u8" in url or "/parts/" in url:
                seen.append(url)
                turn[0] += 1
                if turn[0] % 2:
                    return route.continue_(url=url.replace(a, b, 1))
            return route.continue_()

        page.route("**/v1/streams/**", alternate)
        page.goto(f"http://{a}/watch/{sid}?token={tok}")
        page.wait_for_function("() => document.getElementById('video').currentTime > 2",
                               timeout=60_000)
        # SIGKILL the worker mid-segment, start another: players see no error, video goes on
        runner = ll["runner"]
        worker = next(c for c in runner.children if c.name == "worker")
        worker.stop(timeout=5, sig=signal.SIGKILL)
        runner.children.remove(worker)
        before = page.evaluate("() => document.getElementById('video').currentTime")
        w2 = runner.spawn("worker-2", "worker", *ll["worker_args"])
        runner.wait("worker-2", lambda: worker_ready(ll["settings"], ll["group"]),
                    timeout=120, child=w2)
        page.wait_for_function(
            f"() => document.getElementById('video').currentTime > {before + 6}",
            timeout=90_000)
        state = page.evaluate("() => ({s: window.camlogPlayer.state,"
                              " lat: window.camlogPlayer.latencyS,"
                              " err: document.getElementById('video').error})")
        assert state["s"] != "fatal" and state["err"] is None, state
        latency = state["lat"]
    finally:
        chrome.close()
        pw.stop()
    blocking = [u for u in seen if "_HLS_msn=" in u and "_HLS_part=" in u]
    assert blocking, seen[:10]
    assert sum(1 for u in seen if "/parts/" in u) > 4  # every other one was served by b
    FIGURES.append(f"LL-HLS: hls.js latency {latency:.2f} s (PART-HOLD-BACK 1.5 s) "
                   f"with requests alternated over two instances and a worker SIGKILL")


def test_instances_and_restarts_render_identical_playlists(ll):
    a, b, tok = ll["a"], ll["b"], ll["token"]
    sid = f"{ll['prefix']}-cam-1"
    runner = ll["runner"]
    pb = next(c for c in runner.children if c.name == "playback-b")
    pb.stop(sig=signal.SIGKILL)  # a restarted instance rewinds the log and renders the same
    runner.children.remove(pb)
    b2 = runner.spawn("playback-b2", "playback", "--addr", b)
    runner.wait("playback-b2", lambda: http_ok(f"http://{b}/readyz"), child=b2)
    _ll_playlist(b, sid, tok)
    ll["cams"].proc.wait(CAMERA_S + 60)
    time.sleep(IDLE_S + 2)  # the idle seal completes the last segment; tails stay fresh a while
    first = _ll_playlist(a, sid, tok, timeout=5)
    assert _ll_playlist(b, sid, tok, timeout=5) == first
    assert "#EXT-X-PART:" in first
