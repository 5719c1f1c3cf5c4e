"""Every series the SLO rules and the dashboard use is exported by the real bridge, worker and
playback (prometheus telemetry), once a camera, a refused request, a bad event and a viewer
have passed through them."""

from __future__ import annotations

import time
import uuid

import pytest

from pipeline.auth.keys import viewer_keys
from pipeline.auth.viewer import issue as issue_viewer
from pipeline.runner import SystemRunner, start_group_at_end
from tests.ops.promql import SYNTHETIC, declared_metrics, metric_names, recorded, rule_exprs
from tests.system import free_port, get

pytestmark = [pytest.mark.services, pytest.mark.slow]

PROCESSES = ("bridge", "worker", "views", "playback")  # views: the worker's view process


def _scrape(ports: dict[str, int]) -> dict[str, set[str]]:
    from tests.ops.promql import scraped_names

    out = {}
    for name in PROCESSES:
        status, body = get(f"http://127.0.0.1:{ports[name]}/metrics", 5)
        out[name] = scraped_names(body.decode()) if status == 200 else set()
    return out


def test_every_rule_metric_is_scraped(services, produce, tmp_path) -> None:
    prefix = f"slo{uuid.uuid4().hex[:6]}"
    ports = {name: free_port() for name in PROCESSES}
    settings = services.replace(bridge_addr=f"127.0.0.1:{free_port()}",
                                playback_addr=f"127.0.0.1:{free_port()}", idle_timeout_s=5.0)
    group = f"camlog-worker-{prefix}"
    needed = (set().union(*map(metric_names, rule_exprs())) - recorded() - SYNTHETIC
              ) | declared_metrics()
    with SystemRunner(settings, tmp_path / "logs", telemetry="prometheus",
                      metrics_ports=ports) as runner:
        assert start_group_at_end(settings, group)
        runner.start_services(worker_args=("--app-id", group, "--stream-prefix", prefix),
                              group=group)
        cam = runner.spawn("camera", "camera", "--count", "1", "--stream", f"{prefix}-cam",
                           "--fps", "15", "--size", "320x180", "--gop", "1", "--duration", "8",
                           "--bridge", f"http://{settings.bridge_addr}")
        # refused (no token): camlog_ingest_rejects_total
        status, _ = get_post(f"http://{settings.bridge_addr}/v1/streams/{prefix}-x/chunks")
        assert status == 401
        # unreadable events: the segmenter and the sessions view dead-letter them
        produce("camlog.frames", b"\x00not avro", key=f"{prefix}-bad")
        produce("camlog.sessions", b"\x00not avro", key=f"{prefix}-bad")
        cam.proc.wait(60)
        assert cam.proc.returncode == 0, cam.tail()
        tok = issue_viewer(viewer_keys(settings), [f"{prefix}*"], 600, time.time())
        base = f"http://{settings.playback_addr}/v1/streams/{prefix}-cam"
        deadline = time.monotonic() + 90
        while True:
            assert get(f"{base}/live.m3u8?token={tok}")[0] in (200, 404)
            scraped = _scrape(ports)
            missing = needed - set().union(*scraped.values())
            if not missing or time.monotonic() > deadline:
                break
            time.sleep(2)
    assert not missing, (sorted(missing), {k: len(v) for k, v in scraped.items()})
    for name in PROCESSES:
        assert "process_cpu_seconds_total" in scraped[name], name


def get_post(url: str) -> tuple[int, bytes]:
    """(status, body) of an empty POST."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=b"", method="POST"),
                                    timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
