"""Each playback instance follows ``camlog.segments`` to know of new parts as they are stored.

Why a consumer and not Cassandra: a blocking playlist request waits for a part that does not
exist yet. Polling Cassandra per waiting request would cost one query per viewer per part; here
each instance reads the topic once (an assigned consumer, no group: every instance reads every
partition, none commits) and wakes all the requests waiting on a stream when its tail changes.
At 500 cameras that is ~1,250 events/s to decode per instance (fastavro, ~10 µs each: ~1 % of a
core); a fleet far larger would shard playback by stream, each shard assigned its partitions.

On start the consumer rewinds by ``rewind_s`` (``offsets_for_times``), long enough to see a
whole LL window, and reports ``caught_up`` once it has read up to where the log ended at start;
until then, and for a stream that has been quiet too long, playback serves the Cassandra live
playlist instead (``fresh``). A broker outage only makes tails stale: the consumer reconnects
by itself, and a failure of this loop is logged and the loop started again after a pause.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from pipeline.events import DecodeError, decode_any
from pipeline.kafka import topics
from pipeline.kafka.clients import admin_client, aio_consumer
from pipeline.playback.llhls import LiveWindow
from pipeline.playback.lltail import Tail

__all__ = ["Follower"]

_log = logging.getLogger("camlog.playback.follow")
_KINDS = frozenset({"SealedPart", "SealedSegment"})


class Follower:
    """The live tails of every stream on ``camlog.segments``, and the requests waiting on them."""

    def __init__(self, bootstrap: str, *, window_segments: int, rewind_s: float,
                 fresh_s: float, max_streams: int = 100_000, topic: str = topics.SEGMENTS,
                 now: Callable[[], float] = time.time) -> None:
        self.bootstrap, self.topic, self.now = bootstrap, topic, now
        self.window_segments, self.rewind_s, self.fresh_s = window_segments, rewind_s, fresh_s
        self.max_streams = max_streams
        self.tails: dict[str, Tail] = {}
        self.caught_up = False
        self.events = self.errors = 0
        self._changed: dict[str, asyncio.Event] = {}
        self.changed_at: dict[str, float] = {}  # when each tail last changed (this clock)
        self._task: asyncio.Task | None = None
        self._windows: dict[str, tuple[int, LiveWindow | None]] = {}

    # -- reading ---------------------------------------------------------------------------
    def window(self, sid: str) -> LiveWindow | None:
        """The stream's LL window now, or None (unknown here, or nothing to show yet)."""
        tail = self.tails.get(sid)
        if tail is None:
            return None
        memo = self._windows.get(sid)
        if memo is None or memo[0] != tail.version:
            memo = self._windows[sid] = (tail.version, tail.window(self.window_segments))
        return memo[1]

    def fresh(self, sid: str) -> bool:
        """Whether LL-HLS can be served for the stream: caught up and heard from recently."""
        tail = self.tails.get(sid)
        return (self.caught_up and tail is not None
                and tail.seen_us >= (self.now() - self.fresh_s) * 1_000_000)

    def age(self, sid: str) -> float:
        """Seconds since the stream's tail last changed (0 when unknown)."""
        at = self.changed_at.get(sid)
        return 0.0 if at is None else max(0.0, self.now() - at)

    async def wait(self, sid: str, timeout: float) -> None:
        """Return when the stream's tail changes, or after ``timeout`` seconds."""
        if timeout <= 0:
            return
        event = self._changed.get(sid)
        if event is None:
            event = self._changed[sid] = asyncio.Event()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout)

    def fold(self, value: bytes | None) -> None:
        """Apply one ``camlog.segments`` message (anything else on it is counted and skipped)."""
        try:
            ev, record = decode_any(value)
        except DecodeError:
            self.errors += 1  # the views agent dead-letters it; playback only skips it
            return
        if ev.name not in _KINDS:
            return
        sid = record["stream_id"]
        tail = self.tails.get(sid)
        if tail is None:
            if len(self.tails) >= self.max_streams:
                self._evict()
                if len(self.tails) >= self.max_streams:
                    return
            tail = self.tails[sid] = Tail(keep=self.window_segments + 2)
        self.events += 1
        if tail.fold(ev.name, record):
            self.changed_at[sid] = self.now()
            event = self._changed.pop(sid, None)
            if event is not None:
                event.set()  # wakes every request waiting on this stream

    def _evict(self) -> None:
        cutoff = (self.now() - self.rewind_s) * 1_000_000
        for sid in [s for s, t in self.tails.items() if t.seen_us < cutoff]:
            del self.tails[sid]
            self._windows.pop(sid, None)
            self.changed_at.pop(sid, None)

    # -- the consumer ----------------------------------------------------------------------
    def start(self) -> None:
        """Start following in the background (idempotent)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="playback.follow")

    async def close(self) -> None:
        """Stop following."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self._follow()
            except asyncio.CancelledError:
                raise
            except Exception:  # logged; tails go stale, playback falls back
                _log.exception("following %s failed; starting again in 2 s", self.topic)
                self.caught_up = False
                await asyncio.sleep(2.0)

    async def _follow(self) -> None:
        from aiokafka import TopicPartition

        consumer = aio_consumer(self.bootstrap, group_id=None,
                                enable_auto_commit=False, auto_offset_reset="latest",
                                fetch_max_wait_ms=100, max_partition_fetch_bytes=4 << 20,
                                client_id="camlog-playback-follow")
        await consumer.start()
        try:
            parts = await asyncio.to_thread(self._partitions)
            if not parts:
                raise RuntimeError(f"topic {self.topic} has no partitions (is it created?)")
            tps = [TopicPartition(self.topic, p) for p in sorted(parts)]
            consumer.assign(tps)
            since = int((self.now() - self.rewind_s) * 1000)
            found = await consumer.offsets_for_times({tp: since for tp in tps})
            ends = await consumer.end_offsets(tps)
            behind = {}
            for tp in tps:
                at = found.get(tp)
                start = at.offset if at is not None else ends[tp]
                consumer.seek(tp, start)
                if start < ends[tp]:
                    behind[tp] = ends[tp]
            self.caught_up = not behind
            while True:
                batches = await consumer.getmany(timeout_ms=500, max_records=5000)
                for tp, msgs in batches.items():
                    for m in msgs:
                        self.fold(m.value)
                    if msgs and tp in behind and msgs[-1].offset + 1 >= behind[tp]:
                        del behind[tp]
                if not self.caught_up and not behind:
                    self.caught_up = True
                    _log.info("following %s: caught up (%d streams)", self.topic,
                              len(self.tails))
                if len(self.tails) > self.max_streams // 2:
                    self._evict()
        finally:
            await consumer.stop()

    def _partitions(self) -> list[int]:
        meta = admin_client(self.bootstrap).list_topics(self.topic, 10)
        topic = meta.topics.get(self.topic)
        return [] if topic is None or topic.error is not None else list(topic.partitions)

    def status(self) -> dict[str, Any]:
        """For /readyz and tests."""
        return {"caught_up": self.caught_up, "streams": len(self.tails), "events": self.events,
                "undecodable": self.errors}
