"""The service in-process on the real Cassandra: a herd of 200 for a new segment is one read;
a Kafka outage costs events (counted), never requests."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from aiohttp.test_utils import TestClient, TestServer

from pipeline.auth.keys import viewer_keys
from pipeline.auth.viewer import issue as issue_viewer
from pipeline.playback.app import build_app
from pipeline.playback.cache import ByteCache
from pipeline.playback.context import Context
from pipeline.playback.events import EventSink
from pipeline.playback.source import CassandraSource
from pipeline.store.segments import SegmentStore
from pipeline.store.views import ViewStore
from tests.playback.feed import Feed, record

pytestmark = pytest.mark.services


@pytest.fixture
async def live(services):
    """A stream with six segments just written, plus the app serving it from Cassandra."""
    sid = f"herd-{uuid.uuid4().hex[:8]}"
    source = CassandraSource(services)
    sink = EventSink("127.0.0.1:1", message_timeout_ms=1000, interval_s=0.05)  # no Kafka there
    ctx = Context(keys=viewer_keys(services), source=source, events=sink, cache=ByteCache(64 << 20))
    client = TestClient(TestServer(build_app(ctx)))
    await client.start_server()
    feed = Feed(sid, await asyncio.to_thread(record, 6),
                SegmentStore(services, source._session),
                ViewStore(services, source._session))
    await feed.segments_store.start()
    await feed.views_store.start()
    await feed.put_init()
    now = int(time.time()) * 1_000_000
    for i in range(6):
        await feed.publish(i, now - (6 - i) * 1_000_000)
    tok = issue_viewer(viewer_keys(services), [sid], 600, time.time())
    yield client, ctx, feed, {"Authorization": f"Bearer {tok}"}
    await client.close()


async def test_herd_of_200_for_a_new_segment_is_one_cassandra_read(live):
    client, ctx, feed, auth = live
    store = ctx.source.segments_store
    reads = 0
    real = store.segment_bytes

    async def counted(*a, **kw):
        nonlocal reads
        reads += 1
        return await real(*a, **kw)

    store.segment_bytes = counted
    seg = feed.rows[-1]
    url = f"/v1/streams/{seg.stream_id}/segments/{seg.segment_id}.m4s"
    rs = await asyncio.gather(*(client.get(url, headers=auth) for _ in range(200)))
    bodies = {await r.read() for r in rs}
    assert {r.status for r in rs} == {200} and len(bodies) == 1
    assert len(bodies.pop()) == seg.byte_size
    assert reads == 1
    etag = rs[0].headers["ETag"]
    r = await client.get(url, headers={**auth, "If-None-Match": etag})
    assert r.status == 304 and reads == 1


async def test_kafka_outage_never_fails_a_request(live):
    client, ctx, feed, auth = live
    sid = feed.stream_id
    for _ in range(20):
        r = await client.get(f"/v1/streams/{sid}/live.m3u8", headers=auth)
        assert r.status == 200
    r = await client.post("/v1/beacons", json={"stream_id": sid, "startup_ms": 5}, headers=auth)
    assert r.status == 202
    deadline = time.time() + 20
    while ctx.events.dropped < 21 and time.time() < deadline:
        await asyncio.sleep(0.2)
    assert ctx.events.dropped >= 21 and ctx.events.sent == 0
