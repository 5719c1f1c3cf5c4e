"""The workers driven without Faust: events in, in order, on a settable clock; the ticks due on
that clock; the segmenter's outputs routed to the view worker.

Live, Faust drives the workers through their typed interface (``ticks.Cutting``,
``ticks.Viewing``): the segmenter agent hands camlog.frames deliveries to ``handle_batch``, the
view agents hand each topic's records to the handler ``views.AGENTS`` names, and a timer calls
``tick()`` every ``TICK_S`` of wall clock. ``EventTimeDriver`` drives the same interface from
the log (``replay rebuild``), at full speed, on a clock that follows the events' ingest time
(``SettableClock``): chunks go to ``handle_batch``, the segmenter's ``tick`` fires at the
instants a ``TickScheduler`` yields in event time, and what the segmenter publishes (sealed
segments, dead letters) goes straight to the views, routed by the view agents' own table
(``ROUTES``), instead of back to Kafka.

Order, and why:

- The log has no global order (partitions are read one after another), but each stream's
  events are in order, and that is what the views fold. So session changes and dead letters
  (read up front: small topics) are applied per stream, in event time, just before the first
  chunk of that stream after them; the chunks read before them go first.
- The views run behind the segmenter, in one task (``ViewQueue``), so view writes overlap
  segment writes. Each update carries the event-time clock of the moment it was queued: the
  views see the time the live timers would have, not how far the segmenter has run ahead.
- Chunks reach the device-state view in batches, as live; a batch is applied before a tick
  (live, a chunk is applied within ~50 ms), before its stream's side events and before its
  stream's offline transition.
- Offline is not in the log, but it is a function of it: the live sweep marks a stream offline
  at ``last_seen + idle timeout`` in event time, and its event clock moves on with the wall
  clock between events. So the driver applies that transition (``Viewing.expire_at``) before
  each of a stream's chunks or session changes that comes an idle timeout or more after the
  previous one, and once at the end as of the wall clock when the log was read: the offline a
  live worker has applied by now. This is per stream, so it does not depend on the order
  partitions are read in; a stream silent for less than an idle timeout stays online, as live.
- The view worker's own timer is not ticked: its sweep judges every cached stream by one event
  clock (the newest event seen anywhere), which in partition-by-partition order runs ahead of
  the streams not read yet. ``expire_at`` per stream replaces it, and one ``flush_stats`` once
  every playback window has closed replaces its stats flush.
- At the end the segmenter is ticked once an idle timeout later (idle streams seal as they did
  live) and its seals in flight are waited for before the last view updates.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from types import MappingProxyType
from typing import Any, NamedTuple

from pipeline.agents.intake import record_of
from pipeline.agents.segmenter import Delivery, Publish
from pipeline.agents.ticks import TICK_S, Cutting, TickScheduler, Viewing
from pipeline.agents.views import AGENTS, ViewAgent
from pipeline.events import DecodeError
from pipeline.events.codec import decode_any
from pipeline.kafka import topics

__all__ = ["ROUTES", "Counts", "EventTimeDriver", "SettableClock", "SideEvent", "ViewQueue"]

#: Where a topic's records go in the view worker: the view agents' own table, so an event
#: reaches the same handler live and in a replay.
ROUTES: Mapping[str, ViewAgent] = MappingProxyType({a.topic: a for a in AGENTS})

#: Frames per device-state batch.
CHUNK_BATCH = 500


class SettableClock:
    """A clock that follows event time: ``now()`` is the latest time it was moved to (s)."""

    def __init__(self, start: float = 0.0):
        self.t = start

    def advance(self, t: float) -> None:
        """Move forward to ``t`` seconds (never backwards)."""
        self.t = max(self.t, t)

    def advance_us(self, us: int) -> None:
        """Move forward to ``us`` µs (never backwards)."""
        self.advance(us / 1_000_000)

    def __call__(self) -> float:
        return self.t


class ViewQueue:
    """View updates applied in order by one task, each as of the event time it was queued at
    (the view worker's clock is moved there first)."""

    def __init__(self, clock: SettableClock, depth: int = 4096):
        self._clock = clock
        self._q: asyncio.Queue[tuple[float, Callable[[], Awaitable[Any]]] | None] = (
            asyncio.Queue(depth))
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._pump())

    async def _pump(self) -> None:
        while (item := await self._q.get()) is not None:
            t, update = item
            self._clock.advance(t)
            await update()

    async def put(self, t: float, update: Callable[[], Awaitable[Any]]) -> None:
        """Queue ``update()`` as of event time ``t`` (s)."""
        if self._task is not None and self._task.done():
            self._task.result()  # re-raise what stopped the views
        await self._q.put((t, update))

    async def drain(self) -> None:
        """Apply everything queued, then stop."""
        await self._q.put(None)
        if self._task is not None:
            await self._task

    async def cancel(self) -> None:
        """Stop without applying the rest (after a failure elsewhere)."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


class SideEvent(NamedTuple):
    """A session change or dead letter, at its event time."""

    time_us: int
    topic: str
    record: dict[str, Any]


@dataclass
class Counts:
    """What a driver fed the workers and what they produced."""

    chunks: int = 0
    sessions: int = 0
    dead_letters: int = 0
    segments: int = 0
    playback_events: int = 0


async def _route(views: Viewing, topic: str, records: list[dict[str, Any]]) -> None:
    """``records`` of ``topic`` to their view handler, as that topic's view agent would."""
    spec = ROUTES[topic]
    if spec.batched:
        await spec.handle(views, records)
    else:
        for r in records:  # in order: a session's changes apply one after another
            await spec.handle(views, r)


class EventTimeDriver:
    """Feeds a segmenter and a view worker from the log, in event time (see the module doc).

    ``segmenter(publish, now)`` and ``views(now)`` build the workers on the driver's clocks;
    feed ``side`` events first, then ``frame`` by frame, then ``finish``, ``playback``,
    ``drain``; ``close`` always.
    """

    def __init__(self, idle_timeout_s: float,
                 segmenter: Callable[[Publish, SettableClock], Cutting],
                 views: Callable[[SettableClock], Viewing],
                 chunk_batch: int = CHUNK_BATCH) -> None:
        self.idle_s, self.idle_us = idle_timeout_s, int(idle_timeout_s * 1_000_000)
        self.clock, self.view_clock = SettableClock(), SettableClock()
        self.segmenter = segmenter(self._published, self.clock)
        self.views = views(self.view_clock)
        self.queue = ViewQueue(self.view_clock)
        self.counts = Counts()
        self.chunk_batch = chunk_batch
        # the segmenter's timer in event time (a long silence needs only the ticks until every
        # idle timeout has passed)
        self.ticks = TickScheduler(TICK_S, catch_up=int(idle_timeout_s / TICK_S) + 2)
        self._pending: dict[str, deque[SideEvent]] = {}
        self._heard: dict[str, int] = {}  # per stream: its last chunk or session change (µs)
        self._batch: list[dict[str, Any]] = []

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        """Connect both workers and start applying view updates."""
        await self.views.ready()
        await self.segmenter.start()
        self.queue.start()

    async def close(self) -> None:
        """Close both workers (after ``drain``, or after a failure)."""
        try:
            await self.segmenter.close()
            await self.views.close()
        finally:
            await self.queue.cancel()

    # -- events in ---------------------------------------------------------------------------
    def side(self, events: Iterable[SideEvent]) -> None:
        """Session changes and dead letters of the range, applied per stream in event time."""
        by_stream: dict[str, list[SideEvent]] = defaultdict(list)
        for e in events:
            if e.topic == topics.DLQ and str(e.record.get("stage", "")).startswith("segmenter"):
                continue  # the segmenter derives these again
            by_stream[e.record.get("stream_id") or ""].append(e)
        for sid, items in by_stream.items():
            items.sort(key=lambda e: e.time_us)
            self._pending.setdefault(sid, deque()).extend(items)

    async def frame(self, delivery: Delivery) -> None:
        """One camlog.frames event, at its ingest time."""
        chunk = decode_any(delivery.value)[1]
        sid, t_us = chunk["stream_id"], chunk["ingest_time"]
        items = self._pending.get(sid)
        if items and items[0].time_us <= t_us:
            await self._flush()  # chunks before the session change go first
            await self._side_until(sid, t_us)
        last = self._heard.get(sid)
        if last is not None and t_us - last >= self.idle_us:
            await self._flush()  # the stream's earlier chunks, then its offline
        await self._idle_before(sid, t_us)
        for tick_t in self.ticks.due(t_us / 1e6):
            self.clock.advance(tick_t)
            await self._flush()  # as live: chunks are applied within ~50 ms
            await self.segmenter.tick()
        self.clock.advance_us(t_us)
        await self.segmenter.handle_batch([delivery])
        self._batch.append(chunk)
        if len(self._batch) >= self.chunk_batch:
            await self._flush()
        self.counts.chunks += 1

    async def finish(self, wall_now_us: int) -> None:
        """The end of the range: the rest of the side events, the idle timeouts as they fired
        live, the seals in flight, then offline as the live sweep has judged it at
        ``wall_now_us`` (its event clock follows the wall clock once events stop): streams
        silent for an idle timeout, not the ones still live."""
        await self._flush()
        for sid in list(self._pending):
            await self._side_until(sid, None)
        self.clock.advance(self.clock() + self.idle_s + 2.0)
        await self.segmenter.tick()
        if self.segmenter.inflight:
            await asyncio.gather(*list(self.segmenter.inflight))
        await self._view(partial(self.views.expire_at, wall_now_us))

    async def playback(self, hits: Iterable[tuple[dict[str, Any], int]]) -> None:
        """Playback hits (record, partition) into a fresh stats book, then every window closed
        and written, as the live timer would once they all closed.

        Windows are recomputed from all their hits, so a range that cuts a minute or an hour
        yields partial windows at its edges: rebuild whole hours to compare stats.
        """
        from pipeline.views.stats import StatsBook

        views = self.views
        views.book = StatsBook({}, views.grace_us)
        last = n = 0
        for record, partition in hits:
            views.add_hit(record["event_id"], record, partition)
            last = max(last, int(record["time"]))
            n += 1
        if n:
            await self.queue.put(last / 1e6 + 7200 + views.grace_us / 1e6, views.flush_stats)
        self.counts.playback_events += n

    async def drain(self) -> None:
        """Apply every view update queued."""
        await self.queue.drain()

    # -- outputs routed to the views ---------------------------------------------------------
    async def _published(self, topic: str, key: bytes, value: bytes, headers: list) -> None:
        """The segmenter's ``publish``: to the views instead of Kafka."""
        try:
            record = record_of(topic, value)  # None: a SealedPart (live playlists follow it)
        except DecodeError:
            return  # a record the live view agent would not apply either
        if record is None:
            return
        if topic == topics.SEGMENTS:
            self.counts.segments += 1
        await self._view(partial(_route, self.views, topic, [record]))

    async def _view(self, update: Callable[[], Awaitable[Any]]) -> None:
        await self.queue.put(self.clock(), update)

    async def _flush(self) -> None:
        if self._batch:
            batch, self._batch = self._batch, []
            await self._view(partial(_route, self.views, topics.FRAMES, batch))

    async def _idle_before(self, sid: str, t_us: int) -> None:
        """Queue the offline the live sweep applied in the silence before this event (if any)."""
        last = self._heard.get(sid)
        self._heard[sid] = max(last or t_us, t_us)
        if last is not None and t_us - last >= self.idle_us:
            await self._view(partial(self.views.expire_at, t_us, [sid]))

    async def _side_until(self, sid: str, until_us: int | None) -> None:
        items = self._pending.get(sid)
        while items and (until_us is None or items[0].time_us <= until_us):
            e = items.popleft()
            self.clock.advance_us(e.time_us)
            if e.topic == topics.SESSIONS:
                await self._idle_before(sid, e.time_us)
                self.counts.sessions += 1
            else:
                self.counts.dead_letters += 1
            await self._view(partial(_route, self.views, e.topic, [e.record]))
