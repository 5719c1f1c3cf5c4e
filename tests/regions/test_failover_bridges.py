"""A device with two bridges (home first): SIGKILL home mid-GOP, the stream moves to the other
bridge, which never saw it, with no 422/409 and no lost ack; home restarts and the device returns.
On each move the device re-sends the open GOP (acked chunks since the last keyframe chunk) first,
so each bridge gets that GOP from its keyframe; ``on_ack`` fires once per bridge for those seqs.

Both bridges write to the shared dev Kafka here (the seq/session rules are the bridges' own); the
two-cluster version with MirrorMaker 2 is the region-outage drill.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from pipeline.auth.tokens import issue
from pipeline.device.client import ChunkUploader
from pipeline.device.pattern import encode_loop
from pipeline.events import decode
from pipeline.ingest.framing import Frame
from tests.bridge_helpers import BridgeProc, marks, read_since

pytestmark = [pytest.mark.services]
FRAMES = "camlog.frames"


async def _until(check, what: str, up: ChunkUploader, limit: float = 60.0) -> None:
    deadline = time.monotonic() + limit
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what} ({up.stats}, {up.bridges})")
        await asyncio.sleep(0.05)


async def test_device_fails_over_mid_gop_and_returns_home(services):
    loop = encode_loop(3, fps=15, width=320, height=240, bitrate=200_000, gop_s=2, gops=1)
    home = BridgeProc(kafka=services.kafka, idle_s=10.0).start()
    away = BridgeProc(kafka=services.kafka, idle_s=10.0).start()
    sid = f"fo-{int(time.time() * 1000)}"
    tok = issue(services.keys, None, "device", [sid], 600, time.time())
    since = marks(services.kafka, FRAMES)
    acks: list[tuple[int, str]] = []  # (seq, bridge) in ack order; a re-sent seq appears twice
    n = 0

    def feed(up: ChunkUploader, frames: int) -> None:
        nonlocal n
        for _ in range(frames):
            f = loop.frames[n % len(loop.frames)]
            up.add_frame(Frame(n * 6000, n * 6000, f.keyframe, f.data),
                         producer_time_us=int(time.time() * 1e6))
            n += 1

    try:
        async with aiohttp.ClientSession() as s:
            up = ChunkUploader(s, [home.url, away.url], sid, tok, chunk_frames=3,
                               backoff_max_s=0.2, failover_s=1.0,
                               on_ack=lambda seq, _a: acks.append((seq, up.bridges.current)))
            task = asyncio.create_task(up.run())
            feed(up, 3 * 14)  # 14 chunks: one GOP (10 chunks) and 4 into the next
            await _until(lambda: up.stats.acked == 14, "home acked the first 14 chunks", up)
            home.kill()
            feed(up, 3 * 10)
            await _until(lambda: up.stats.acked == 24, "the other bridge acked 10 more", up)
            home.start()
            await _until(lambda: up.bridges.current == home.url, "the device went home", up)
            feed(up, 3 * 10)
            await up.close(timeout=60)
            task.cancel()
    finally:
        home.stop()
        away.stop()
    assert up.stats.rejected == 0 and up.stats.dropped_frames == 0
    assert up.stats.acked == 34  # every chunk acked once as new ...
    assert up.stats.resent == 8  # ... and the open GOP re-sent on each move: 10..13, 20..23
    # The GOP is 10 chunks (keyframe chunks 0, 10, 20, 30). Away got GOP 10 from its keyframe,
    # then 14.. (mid-GOP: no 422); home got GOP 20 from its keyframe when the device came back.
    assert [q for q, u in acks if u == away.url] == list(range(10, 24))
    assert [q for q, u in acks if u == home.url] == [*range(14), *range(20, 34)]
    assert [u for _, u in up.bridges.switches] == [away.url, home.url]
    recs = [decode("FrameChunk", m.value()) for m in read_since(services.kafka, FRAMES, since, sid)]
    assert {r["seq"] for r in recs} == set(range(34))  # every acked chunk is on the log
    # Away wrote its re-sent GOP again (it never saw the stream). Home, restarted, recovered the
    # stream's state from this same log, away's chunks included, so it answered 20..23 with the
    # acks it remembered instead of writing them twice (two clusters: MirrorMaker's job).
    seqs = [r["seq"] for r in recs]
    assert all(seqs.count(q) >= 2 for q in range(10, 14))
    first_14 = min((r for r in recs if r["seq"] == 14), key=lambda r: r["ingest_time"])
    assert not first_14["frames"][0]["keyframe"]
    assert next(r for r in recs if r["seq"] == 10)["frames"][0]["keyframe"]
