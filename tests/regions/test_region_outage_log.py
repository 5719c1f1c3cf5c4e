"""Region outage at the log level: dc1's Kafka and bridge SIGKILLed under a streaming device.

The device fails over to dc2 and keeps being acked; once dc1's Kafka is back, MirrorMaker 2
brings every chunk dc1 had acknowledged to dc2 (and dc2's to dc1), so both regions' logs hold
every acknowledged chunk: RPO 0 for acked frames once the region is back. Figures measured
here (failover time, acked-but-not-mirrored at the outage, time to converge) are printed in
the run's summary. The segment/view half of the drill is not covered here.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time

import aiohttp
import pytest

from pipeline.auth.tokens import issue
from pipeline.device.client import ChunkUploader
from pipeline.device.pattern import encode_loop
from pipeline.devstack.drill import until
from pipeline.devstack.mirror import mirrored_topic
from pipeline.devstack.regions import load_regions, regions_up
from pipeline.devstack.stack import Stack
from pipeline.events import decode
from pipeline.ingest.framing import Frame
from tests.bridge_helpers import BridgeProc, marks, read_since
from tests.chaos.conftest import report

pytestmark = [pytest.mark.services, pytest.mark.regions, pytest.mark.slow]
FRAMES = "camlog.frames"


def _seqs(bootstrap: str, since: dict[str, dict[int, int]], sid: str) -> set[int]:
    """Seqs of ``sid`` in a region's own and mirrored frames topics since the marks."""
    return {decode("FrameChunk", m.value())["seq"]
            for topic, start in since.items() for m in read_since(bootstrap, topic, start, sid)}


async def test_acked_chunks_survive_a_region_outage_in_both_logs(two_regions):
    dc1, dc2 = two_regions["dc1"], two_regions["dc2"]
    topics = {"dc1": (FRAMES, mirrored_topic("dc2", FRAMES)),
              "dc2": (FRAMES, mirrored_topic("dc1", FRAMES))}
    since = {r: {t: marks(two_regions[r].kafka, t) for t in topics[r]} for r in topics}
    loop = encode_loop(5, fps=15, width=320, height=240, bitrate=200_000, gop_s=2, gops=1)
    home = BridgeProc(kafka=dc1.kafka, idle_s=10.0).start()
    away = BridgeProc(kafka=dc2.kafka, idle_s=10.0).start()
    sid = f"outage-{int(time.time() * 1000)}"
    tok = issue(dc1.keys, None, "device", [sid], 600, time.time())
    # (time, seq, bridge) of every ack: the open GOP re-sent on a move is acked once per bridge
    acks: list[tuple[float, int, str]] = []

    def seen() -> set[int]:
        return {q for _, q, _ in acks}

    kafka1 = next(r for r in load_regions(Stack(two_regions.state_dir)) if r.name == "dc1").kafka
    try:
        async with aiohttp.ClientSession() as s:
            up = ChunkUploader(s, [home.url, away.url], sid, tok, chunk_frames=3,
                               backoff_max_s=0.2, failover_s=1.0,
                               on_ack=lambda q, _a: acks.append(
                                   (time.monotonic(), q, up.bridges.current)))
            task = asyncio.create_task(up.run())

            async def camera() -> None:  # 15 fps, three frames a chunk
                n = 0
                while True:
                    f = loop.frames[n % len(loop.frames)]
                    up.add_frame(Frame(n * 6000, n * 6000, f.keyframe, f.data),
                                 producer_time_us=int(time.time() * 1e6))
                    n += 1
                    await asyncio.sleep(1 / 15)

            cam = asyncio.create_task(camera())
            await until(lambda: len(seen()) >= 30, "dc1 acked 30 chunks")
            os.kill(kafka1.pidfile.process().pid, signal.SIGKILL)  # the region goes: its log
            home.kill()  # ... and its bridge
            at_dc1 = {q for _, q, url in acks if url == home.url}
            mirrored = _seqs(dc2.kafka, {topics["dc2"][1]: since["dc2"][topics["dc2"][1]]}, sid)
            n1 = len(seen())
            await until(lambda: len(seen()) >= n1 + 30, "dc2 acked 30 more chunks")
            last1 = max(t for t, _, url in acks if url == home.url)
            first2 = min(t for t, _, url in acks if url == away.url)  # usually a re-sent one
            t_back = time.monotonic()
            regions_up(Stack(two_regions.state_dir), ["dc1", "dc2"], None, say=lambda _m: None)
            home.start()
            await until(lambda: up.bridges.current == home.url, "the device went home")
            cam.cancel()
            await up.close(timeout=60)
            task.cancel()
    finally:
        home.stop()
        away.stop()
    acked = seen()
    assert up.stats.rejected == 0 and up.stats.dropped_frames == 0
    assert acked == set(range(min(acked), max(acked) + 1))  # no seq lost on the way
    took = await until(lambda: acked <= _seqs(dc2.kafka, since["dc2"], sid)
                        and acked <= _seqs(dc1.kafka, since["dc1"], sid),
                        "every acked chunk in both regions' logs", limit=240)
    report("region-outage (log)", failover_s=f"{first2 - last1:.2f}",
           acked_in_dc1_not_in_dc2_at_outage=len(at_dc1 - mirrored),
           acked_total=len(acked), converged_s_after_restart=f"{time.monotonic() - t_back:.1f}",
           checked_after_s=f"{took:.1f}")
