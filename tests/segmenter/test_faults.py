"""The ack book under store and publish failures at random points (real Cassandra, faults
injected in front of it): an acked offset is always behind stored and announced work.

The store is the real ``SegmentStore``; a proxy in front of it raises ``StoreUnavailable`` before
or after chosen calls reach Cassandra (a write that landed but whose answer was lost), or a
non-transient error. Invariants: acks leave as a gapless prefix of each partition's offsets;
every acked chunk is in a segment that Cassandra returns and whose SealedSegment was published;
transient faults only delay (everything is acked in the end); an unrecoverable error calls
``fatal`` once and nothing is acked after it.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka.errors import KafkaTimeoutError
from faust.types import TP
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.agents.segmenter import Delivery, Segmenter
from pipeline.events import decode_any, encode
from pipeline.store.cluster import StoreUnavailable
from pipeline.store.segments import SegmentStore
from tests.segmenter.media import chunks
from tests.segmenter.media import encode as encode_media

pytestmark = [pytest.mark.services, pytest.mark.slow]

FAULTS = st.sampled_from(["ok", "ok", "ok", "before", "after", "before2"])


class Faulty:
    """The real store, with a fault planned for each call of a write or read method."""

    def __init__(self, store: SegmentStore, plan: list[str], fatal_at: int | None) -> None:
        self.store, self.plan, self.fatal_at, self.calls = store, plan, fatal_at, 0

    def __getattr__(self, name: str):  # start, close, …: the real thing
        return getattr(self.store, name)

    async def _call(self, name: str, *args, **kwargs):
        n, self.calls = self.calls, self.calls + 1
        if n == self.fatal_at:
            raise RuntimeError("injected: a bug, not an outage")
        fault = self.plan[n % len(self.plan)] if self.plan else "ok"
        if fault.startswith("before"):
            self.plan[n % len(self.plan)] = "before" if fault == "before2" else "ok"
            raise StoreUnavailable("injected before the call")
        result = await getattr(self.store, name)(*args, **kwargs)
        if fault == "after":
            self.plan[n % len(self.plan)] = "ok"
            raise StoreUnavailable("injected after the call landed")
        return result

    async def put_part(self, *args):
        return await self._call("put_part", *args)

    async def seal_segment(self, row, **kwargs):
        return await self._call("seal_segment", row, **kwargs)

    async def resume_point(self, sid, region):
        return await self._call("resume_point", sid, region)

    async def segment_at(self, sid, start_time, segment_id):
        return await self._call("segment_at", sid, start_time, segment_id)

    async def put_init(self, row):
        return await self._call("put_init", row)

    async def latest_segment(self, sid, now_us):
        return await self._call("latest_segment", sid, now_us)


@settings(max_examples=8, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(plan=st.lists(FAULTS, min_size=1, max_size=12),
       publish_faults=st.lists(st.booleans(), min_size=1, max_size=8),
       fatal_at=st.one_of(st.none(), st.integers(0, 8)),
       batch=st.integers(1, 9))
async def test_acks_never_pass_unstored_work(services, plan, publish_faults, fatal_at, batch):
    clock = [2000.0]
    published: list[dict] = []
    acked: list[tuple[int, int]] = []
    fatal: list[str] = []
    pub_calls = [0]

    async def publish(topic, key, value, headers):
        n, pub_calls[0] = pub_calls[0], pub_calls[0] + 1
        if publish_faults[n % len(publish_faults)] and n < 2 * len(publish_faults):
            raise KafkaTimeoutError("injected")
        if topic == "camlog.segments":
            ev, record = decode_any(value)
            if ev.name == "SealedSegment":
                published.append(record)

    real = SegmentStore(services)
    seg = Segmenter(services, Faulty(real, list(plan), fatal_at), publish,
                    ack=lambda e: acked.append(e), now=lambda: clock[0],
                    fatal=lambda exc, where: fatal.append(where))
    await seg.start()
    frames, cfg = encode_media("H264", n=75, gop=15)  # 5 s: two cuts, a tail for the idle seal
    streams = [f"f-{uuid.uuid4().hex[:10]}" for _ in range(2)]
    t0 = int(clock[0] * 1e6)
    deliveries, offsets = [], {0: 0, 1: 0}
    per = [chunks(s, frames, cfg, per_chunk=5, t0_us=t0) for s in streams]
    for i in range(len(per[0])):  # the two streams interleave, one partition each
        for p, recs in enumerate(per):
            off = offsets[p]
            offsets[p] += 1
            deliveries.append(Delivery(TP("camlog.frames", p), off, streams[p].encode(),
                                       encode("FrameChunk", recs[i]), None, (p, off)))
    try:
        for i in range(0, len(deliveries), batch):
            try:
                await seg.handle_batch(deliveries[i:i + batch])
            except RuntimeError:
                assert fatal, "raised without calling fatal"
                break  # the worker would be gone by now
        clock[0] += services.idle_timeout_s + 1
        if not fatal:
            await seg.tick()
        while seg.inflight:
            await asyncio.wait(set(seg.inflight))
    finally:
        await seg.close()

    # acks per partition are a gapless prefix, in order
    for p in (0, 1):
        mine = [off for q, off in acked if q == p]
        assert mine == list(range(len(mine))), (p, mine)
    # every acked chunk is in a stored segment that was announced
    stored = {s: await _stored_seqs(real, s, t0) for s in streams}
    announced = {(e["stream_id"], e["segment_id"]) for e in published}
    for p, off in acked:
        sid, seq = streams[p], per[p][off]["seq"]
        holder = [x for x in stored[sid] if x.first_chunk_seq <= seq <= x.last_chunk_seq]
        assert holder, (sid, seq, "acked but not stored")
        assert (sid, holder[0].segment_id) in announced, (sid, seq, "acked but not announced")
    if fatal_at is not None and fatal:
        assert len(fatal) == 1
    else:
        assert not fatal
        assert len(acked) == len(deliveries)  # transient faults only delayed the work


async def _stored_seqs(store: SegmentStore, sid: str, t0_us: int):
    await store.start()
    try:
        return await store.segments_between(sid, t0_us - 60_000_000, t0_us + 600_000_000)
    finally:
        await store.close()
