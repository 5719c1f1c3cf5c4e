"""The event-time driver (``pipeline.agents.driver``): what reaches the workers, in which order,
at which clock time (pure: recording workers that satisfy the worker protocols).

The rebuild-equals-live tests (``test_replay_rebuild``) check the outcome against a live worker;
these pin the order the module doc promises: a stream's side events before its next chunk, the
chunks read before them first, the offline before a chunk after an idle silence, the segmenter
ticked on the event-time grid, its outputs routed to the views through the agents' table.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pipeline.agents.driver import ROUTES, EventTimeDriver, SideEvent
from pipeline.agents.segmenter import Delivery, Segmenter
from pipeline.agents.ticks import Cutting, Viewing
from pipeline.agents.views import AGENTS, ViewWorker
from pipeline.config import Settings
from pipeline.events import encode
from pipeline.kafka import topics

T = 1_700_000_000_000_000  # µs
IDLE_S = 5.0


def s(us: int) -> float:
    """Clock time (s) of ``us`` after T."""
    return (T + us) / 1e6


def _chunk(sid: str, seq: int, us: int) -> dict[str, Any]:
    return {"stream_id": sid, "seq": seq, "session_id": "s1", "source": "SDK", "codec": "H264",
            "codec_config": None, "width": 0, "height": 0, "timescale": 90000,
            "producer_time": T + us, "ingest_time": T + us,
            "frames": [{"pts": seq * 6000, "dts": seq * 6000, "keyframe": True, "data": b"x"}],
            "gap_before": 0}


def _dead(sid: str | None, stage: str, us: int) -> dict[str, Any]:
    return {"topic": topics.FRAMES, "partition": 0, "offset": 1, "key": None, "original": b"",
            "reason": "bad", "stage": stage, "stream_id": sid, "time": T + us}


def _segment(sid: str) -> dict[str, Any]:
    return {"stream_id": sid, "segment_id": f"{sid}-0", "sequence": 0, "start_time": 0,
            "end_time": 1_000_000, "producer_start": T, "producer_end": T, "ingest_start": T,
            "ingest_end": T, "duration_us": 1_000_000, "frame_count": 1, "byte_size": 1,
            "independent": True, "init_id": "i", "discontinuity": False, "codec": "avc1",
            "width": 0, "height": 0, "first_chunk_seq": 0, "last_chunk_seq": 0,
            "sealed_time": T, "parts": [], "discontinuity_sequence": 0}


class Cutter:
    """A segmenter that records its calls, announces a segment of "a" at its tick at T+101 s
    and dead-letters chunk 99 (once as the views would refuse it: no valid stream)."""

    def __init__(self, publish, now) -> None:
        self.publish, self.now, self.inflight, self.calls = publish, now, set(), []

    async def start(self) -> None:
        self.calls.append("start")

    async def close(self) -> None:
        self.calls.append("close")

    def fail(self, exc: BaseException, where: str) -> None:
        raise exc

    async def tick(self) -> None:
        self.calls.append(("tick", self.now()))
        if self.now() == s(101_000_000):
            await self.publish(topics.SEGMENTS, b"a", encode("SealedSegment", _segment("a")), [])

    async def handle_batch(self, batch, lag=None) -> None:
        self.calls.append(("batch", self.now(), [d.offset for d in batch]))
        if batch[0].offset == 99:
            for sid in ("bad id!", "b"):
                await self.publish(topics.DLQ, b"b", encode("DeadLetter", _dead(
                    sid, "segmenter", 0)), [])


class Views:
    """A view worker that records what it is asked, at its clock's time."""

    def __init__(self, now) -> None:
        self.now, self.calls, self.hits = now, [], []
        self.book, self.grace_us = None, 5_000_000

    async def ready(self) -> None:
        pass

    async def close(self) -> None:
        self.calls.append("close")

    async def tick(self) -> None:
        raise AssertionError("the views' timer is not ticked in event time (module doc)")

    def fail(self, exc: BaseException, where: str) -> None:
        raise exc

    async def guard(self, view: str, work) -> None:
        await work

    async def handle_chunks(self, chunks) -> None:
        self.calls.append(("chunks", self.now(), [(c["stream_id"], c["seq"]) for c in chunks]))

    async def handle_segments(self, segs) -> None:
        self.calls.append(("segments", self.now(), [g["segment_id"] for g in segs]))

    async def handle_session(self, change) -> None:
        self.calls.append(("session", self.now(), change["stream_id"], change["kind"]))

    async def handle_dlq(self, dead) -> None:
        self.calls.append(("dlq", self.now(), dead["stream_id"], dead["stage"]))

    async def expire_at(self, now_us, streams=None) -> None:
        self.calls.append(("offline", self.now(), now_us, streams))

    def add_hit(self, event_id, record, partition) -> bool:
        self.hits.append((event_id, partition))
        return True

    async def flush_stats(self) -> int:
        self.calls.append(("flush", self.now()))
        return 0


def _frame(sid: str, seq: int, us: int, partition: int, offset: int) -> Delivery:
    return Delivery((topics.FRAMES, partition), offset, sid.encode(),
                    encode("FrameChunk", _chunk(sid, seq, us)), [], None)


async def _drive() -> EventTimeDriver:
    driver = EventTimeDriver(IDLE_S, segmenter=Cutter, views=Views)
    session = {"stream_id": "a", "session_id": "s1", "kind": "CONNECTED", "time": T + 99_900_000,
               "reason": "", "codec": "H264", "width": 0, "height": 0, "source": "SDK",
               "attributes": {}}
    driver.side([SideEvent(T + 100_700_000, topics.DLQ, _dead("a", "views.sessions", 100_700_000)),
                 SideEvent(T + 99_900_000, topics.SESSIONS, session),
                 SideEvent(T + 100_100_000, topics.DLQ, _dead("a", "segmenter", 100_100_000))])
    await driver.start()
    try:
        # partition 0 (stream a, silent 6.8 s before its last chunk), then partition 1 (b)
        for seq, us in enumerate((100_000_000, 100_500_000, 101_200_000, 108_000_000)):
            await driver.frame(_frame("a", seq, us, 0, seq))
        await driver.frame(_frame("b", 0, 100_200_000, 1, 98))
        await driver.frame(_frame("b", 1, 100_800_000, 1, 99))
        await driver.finish(T + 200_000_000)
        await driver.playback([({"event_id": "h1", "time": T + 100_000_000}, 3)])
        await driver.drain()
    finally:
        await driver.close()
    return driver


def test_events_ticks_and_outputs_reach_the_workers_in_event_time_order():
    driver = asyncio.run(_drive())
    views, seg = driver.views, driver.segmenter
    assert views.calls == [
        ("session", s(99_900_000), "a", "CONNECTED"),  # before a's first chunk after it
        ("chunks", s(100_500_000), [("a", 0), ("a", 1)]),  # the chunks read before the DLQ
        ("dlq", s(100_700_000), "a", "views.sessions"),  # the segmenter's own DLQ is derived
        ("segments", s(101_000_000), ["a-0"]),  # announced at the tick
        ("chunks", s(101_200_000), [("a", 2)]),  # a's chunks before its offline
        ("offline", s(101_200_000), T + 108_000_000, ["a"]),  # the silence before chunk 3
        ("dlq", s(108_000_000), "b", "segmenter"),  # the refused one is dropped, as live
        ("chunks", s(108_000_000), [("a", 3), ("b", 0), ("b", 1)]),
        ("offline", s(108_000_000) + IDLE_S + 2.0, T + 200_000_000, None),  # as of the wall
        ("flush", s(100_000_000) + 7200 + 5.0),  # once every playback window closed
        "close"]
    assert views.hits == [("h1", 3)] and views.book is not None
    ticks = [c[1] for c in seg.calls if c[0] == "tick"]
    # the 1 s grid from the first chunk, on through a's silence, then once an idle timeout on
    assert ticks == [s(100_000_000) + k for k in range(1, 9)] + [s(108_000_000) + IDLE_S + 2.0]
    batches = [c[1:] for c in seg.calls if c[0] == "batch"]
    assert batches == [(s(100_000_000), [0]), (s(100_500_000), [1]), (s(101_200_000), [2]),
                       (s(108_000_000), [3]), (s(108_000_000), [98]), (s(108_000_000), [99])]
    assert seg.calls[0] == "start" and seg.calls[-1] == "close"
    c = driver.counts
    assert (c.chunks, c.sessions, c.dead_letters, c.segments, c.playback_events) == (6, 1, 1, 1, 1)


def test_the_live_workers_expose_the_interface_the_drivers_use():
    async def build() -> tuple[Segmenter, ViewWorker]:
        settings = Settings()
        return Segmenter(settings, None, None, ack=None), ViewWorker(settings)

    seg, views = asyncio.run(build())
    assert isinstance(seg, Cutting) and isinstance(views, Viewing)
    assert isinstance(Cutter(None, None), Cutting) and isinstance(Views(None), Viewing)
    # the replay routes by the view agents' table: every topic the segmenter publishes to, and
    # every side topic, reaches the handler its live agent calls
    assert dict(ROUTES) == {a.topic: a for a in AGENTS}
    assert {topics.SEGMENTS, topics.DLQ, topics.SESSIONS, topics.FRAMES} <= set(ROUTES)
