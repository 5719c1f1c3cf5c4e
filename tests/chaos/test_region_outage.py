"""Region-outage drill: every process of dc1 SIGKILLed under a camera homed there and a viewer in
dc2 (`camlog drill region-outage` runs the same code against a demo).

Bridge, worker and playback run per region (their own Kafka, their own Cassandra DC), as
`camlog demo --regions dc1,dc2` runs them. Must hold: the camera fails over to dc2 and keeps
being acked; dc2's playback keeps serving the live stream and the VOD of the time before the
outage; once dc1 is back every frame acknowledged by either region is in exactly one stored
segment in both DCs, the DCs' rows are equal, and the stream plays from either region as one
recording. The figures go to the run's summary.
"""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path

import pytest

from pipeline.auth.keys import ensure_dev_key, viewer_keys
from pipeline.auth.viewer import issue as viewer_token
from pipeline.config import ensure_dev_secret
from pipeline.devstack.drill import region_outage
from pipeline.devstack.regiondemo import region_settings
from pipeline.runner import METRICS_PORTS, SystemRunner, start_group_at_end
from pipeline.store.segments import SegmentStore
from tests.chaos.conftest import report
from tests.clients import ffprobe_frames

pytestmark = [pytest.mark.services, pytest.mark.regions, pytest.mark.chaos, pytest.mark.slow]
GROUP = "camlog-drill"


def _served_unlike_stored(rs, sid: str, stored: dict[str, bytes], token: str) -> list[str]:
    """Segment ids whose bytes the region's playback serves unlike what its DC stores."""
    out = []
    for seg, data in stored.items():
        url = f"http://{rs.playback_addr}/v1/streams/{sid}/segments/{seg}.m4s?token={token}"
        with urllib.request.urlopen(url, timeout=30) as resp:
            served = resp.read()
        if served != data:
            out.append(f"{seg}: served {len(served)} B, stored {len(data)} B")
    return out


async def test_region_outage_drill(two_regions, settings, tmp_path: Path):
    names = ["dc1", "dc2"]
    # the regions' state folder is a fresh one, with dev keys of its own (made by dev up)
    base = ensure_dev_secret(settings.replace(state_dir=two_regions.state_dir, keys={}))
    ensure_dev_key(base)
    per = region_settings(base, names)
    runners = {}
    try:
        for i, (name, rs) in enumerate(per.items()):
            ports = {k: v + 10 * i for k, v in METRICS_PORTS.items()}
            runners[name] = SystemRunner(rs, tmp_path / name, metrics_ports=ports)
            start_group_at_end(rs, GROUP)
            runners[name].start_services(worker_args=("--app-id", GROUP), group=GROUP)

        async def restore() -> None:
            runners["dc1"].stop()
            runners["dc1"].start_services(worker_args=("--app-id", GROUP), group=GROUP)

        res = await region_outage(per, "dc1", two_regions.state_dir, outage_s=20.0,
                                  restore_services=restore, say=print)
        report("region-outage drill", **res.figures)
        assert res.ok, res.problems
        f = res.figures
        assert f["acked_frames"] > 0 and f["failover_s"] < 10
        assert f["viewer_longest_gap_s"] < 20
        # One recording from either region: each DC's segments decode to exactly their frames,
        # together every acknowledged frame, and each region's VOD playlist lists all of them.
        token = viewer_token(viewer_keys(per["dc2"]), [res.stream_id], 600, time.time())
        end = time.time() - 13  # past the last frame by more than 6 target durations: ended
        for rs in per.values():
            store = SegmentStore(rs)
            await store.start()
            try:
                rows = await store.segments_between(res.stream_id, int((end - 600) * 1e6),
                                                    int(end * 1e6))
                init = {r.init_id: await store.init_segment(res.stream_id, r.init_id)
                        for r in rows}
                decoded, stored = 0, {}
                for r in rows:
                    path = tmp_path / f"{rs.region}-{r.segment_id}.mp4"
                    stored[r.segment_id] = await store.segment_bytes(res.stream_id, r.segment_id)
                    path.write_bytes(init[r.init_id].data + stored[r.segment_id])
                    n = len(ffprobe_frames(path))
                    assert n == r.frame_count, (rs.region, r.segment_id)
                    decoded += n
            finally:
                await store.close()
            assert decoded == f["acked_frames"], rs.region
            vod = (f"http://{rs.playback_addr}/v1/streams/{res.stream_id}/vod.m3u8"
                   f"?start={end - 600:.0f}&end={end:.0f}")
            req = urllib.request.Request(vod, headers={"Authorization": f"Bearer {token}"})
            with urllib.request.urlopen(req, timeout=30) as resp:
                body = resp.read().decode()
            assert body.count("#EXTINF") == len(rows) and "#EXT-X-ENDLIST" in body, rs.region
            # and an independent client plays it as one recording, move included
            timeline = [(r.segment_id, r.start_time, r.decode_time / r.timescale,
                         r.duration_us / 1e6, r.discontinuity, r.frame_count, r.ingest_end)
                        for r in rows]
            assert len(ffprobe_frames(f"{vod}&token={token}")) == f["acked_frames"], (
                rs.region, timeline, _served_unlike_stored(rs, res.stream_id, stored, token))
    finally:
        for runner in runners.values():
            runner.stop()
