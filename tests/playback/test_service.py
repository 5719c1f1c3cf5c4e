"""The playback HTTP service against an in-memory source: tokens, input checks, caching, media."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess

import pytest
from aiohttp.test_utils import TestClient, TestServer

from pipeline.auth.keys import ephemeral_keys
from pipeline.auth.tokens import issue
from pipeline.auth.viewer import issue as issue_viewer
from pipeline.playback.app import AccessLogger, build_app
from pipeline.playback.cache import ByteCache
from pipeline.playback.context import Context
from pipeline.playback.events import EventSink
from tests.playback.memsource import MemorySource, add_stream

KEYS = {"k1": b"0123456789abcdef-playback-test"}
VKEYS = ephemeral_keys("k1")
T0 = 1_764_072_000_000_000
NOW = T0 / 1e6 + 60  # the clock the service and the tokens share


def tok(*scopes: str, ttl: float = 3600, now: float = NOW, kind: str = "viewer") -> str:
    if kind == "viewer":
        return issue_viewer(VKEYS, scopes or ("cam-*",), ttl, now)
    return issue(KEYS, None, kind, scopes or ("cam-*",), ttl, now)


@pytest.fixture
def source() -> MemorySource:
    src = MemorySource()
    add_stream(src, "cam-1", T0)
    add_stream(src, "cam-gap", T0, seconds=4, gap_after=1)
    return src


@pytest.fixture
async def client(source):
    sink = EventSink("127.0.0.1:1")  # never started: events stay queued for the assertions
    ctx = Context(keys=VKEYS, source=source, events=None, now=lambda: NOW, max_range_s=3600,
                  max_clip_s=60, cache=ByteCache(64 << 20))
    app = build_app(ctx)
    ctx.events = sink
    sink.start = lambda: None  # type: ignore[method-assign]
    sink.close = lambda *a: None  # type: ignore[method-assign]
    server = TestServer(app)
    await server.start_server(access_log_class=AccessLogger,
                              access_log=logging.getLogger("camlog.playback.access"))
    c = TestClient(server)
    await c.start_server()
    c.ctx, c.sink = ctx, sink
    yield c
    await c.close()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def problem(resp, status: int, title: str | None = None) -> dict:
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/problem+json"
    body = await resp.json()
    assert body["status"] == status
    if title:
        assert body["title"] == title, body
    return body


async def test_probes_need_no_token(client):
    assert (await client.get("/healthz")).status == 200
    r = await client.get("/readyz")
    assert r.status == 200 and (await r.json())["status"] == "ready"


@pytest.mark.parametrize("case,status,title", [
    ("missing", 401, "token_missing"), ("expired", 401, "token_expired"),
    ("tampered", 401, "token_bad_signature"), ("wrong_stream", 403, "token_scope"),
    ("device", 401, "token_wrong_kind"), ("garbage", 401, "token_invalid"),
])
async def test_token_refusals(client, source, case, status, title):
    good = tok("cam-1")
    t = {"missing": None, "expired": tok("cam-1", ttl=10, now=NOW - 11),
         "tampered": good[:-2] + ("AA" if good[-2:] != "AA" else "BB"),
         "wrong_stream": tok("other-*"), "device": tok("cam-1", kind="device"),
         "garbage": "not-a-token"}[case]
    before = dict(source.reads)
    for url in ("/v1/streams/cam-1/live.m3u8", "/v1/streams/cam-1/segments/cam-1-0000.m4s"):
        r = await client.get(url, headers=bearer(t) if t else {})
        await problem(r, status, title)
    assert dict(source.reads) == before  # refused before any read
    if status == 401:
        assert "Bearer" in r.headers["WWW-Authenticate"]


async def test_live_playlist_signs_segment_urls(client):
    t = tok("cam-1")
    r = await client.get(f"/v1/streams/cam-1/live.m3u8?token={t}")
    assert r.status == 200 and r.content_type == "application/vnd.apple.mpegurl"
    text = await r.text()
    assert "#EXT-X-VERSION:7" in text and "#EXT-X-MAP:URI=\"init/icam-1.mp4?token=" in text
    assert f"segments/cam-1-0004.m4s?token={t}" in text
    assert r.headers["Cache-Control"] == "public, max-age=1" and r.headers["ETag"]
    # Bearer works too, and the token still lands in the URLs so plain players work.
    r2 = await client.get("/v1/streams/cam-1/live.m3u8", headers=bearer(t))
    assert await r2.text() == text
    r3 = await client.get("/v1/streams/cam-1/live.m3u8",
                          headers={**bearer(t), "If-None-Match": r.headers["ETag"]})
    assert r3.status == 304


async def test_playlist_cached_once_for_all_viewers(client, source):
    reads = source.reads["manifest"]
    url = "/v1/streams/cam-1/live.m3u8"
    await asyncio.gather(*(client.get(url, headers=bearer(tok(f"cam-{i % 3}", "cam-1")))
                           for i in range(50)))
    assert source.reads["manifest"] == reads + 1


async def test_unknown_stream_404(client):
    r = await client.get("/v1/streams/cam-nope/live.m3u8", headers=bearer(tok()))
    await problem(r, 404, "unknown_stream")


@pytest.mark.parametrize("path", [
    "/v1/streams/cam-1/segments/..%2f..%2fetc.m4s", "/v1/streams/cam-1/segments/a%20b.m4s",
    "/v1/streams/cam-1/init/" + "x" * 300 + ".mp4", "/v1/streams/cam-1/segments/'%3BDROP.m4s",
])
async def test_hostile_ids_never_reach_the_source(client, source, path):
    before = dict(source.reads)
    r = await client.get(path, headers=bearer(tok()))
    assert r.status in (400, 404)
    assert dict(source.reads) == before


@pytest.mark.parametrize("query,title", [
    ("start=yesterday&end=1764072010", "bad_time"),
    ("start=1764072010&end=1764072000", "bad_range"),
    ("start=1764072000&end=1764079201", "range_too_long"),
    ("end=1764072000", "bad_range"),
])
async def test_bad_ranges_400_before_any_read(client, source, query, title):
    before = source.reads["index"]
    for kind in ("vod.m3u8", "clip.mp4"):
        r = await client.get(f"/v1/streams/cam-1/{kind}?{query}", headers=bearer(tok()))
        body = await problem(r, 400)
        assert body["title"] in (title, "range_too_long")
    assert source.reads["index"] == before


async def test_segment_headers_304_and_ranges(client, source):
    t = tok("cam-1")
    data = source.blobs[("cam-1", "cam-1-0002")]
    url = "/v1/streams/cam-1/segments/cam-1-0002.m4s"
    r = await client.get(url, headers=bearer(t))
    assert r.status == 200 and await r.read() == data
    assert r.headers["Content-Length"] == str(len(data))
    assert r.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    etag = r.headers["ETag"]
    assert etag.startswith('"') and not etag.startswith("W/")
    r = await client.get(url, headers={**bearer(t), "If-None-Match": etag})
    assert r.status == 304 and r.headers["ETag"] == etag
    r = await client.get(url, headers={**bearer(t), "Range": "bytes=100-199"})
    assert r.status == 206 and await r.read() == data[100:200]
    assert r.headers["Content-Range"] == f"bytes 100-199/{len(data)}"
    r = await client.get(url, headers={**bearer(t), "Range": "bytes=-10"})
    assert await r.read() == data[-10:]
    r = await client.get(url, headers={**bearer(t), "Range": f"bytes={len(data)}-"})
    await problem(r, 416)
    assert r.headers["Content-Range"] == f"bytes */{len(data)}"
    init = await client.get("/v1/streams/cam-1/init/icam-1.mp4", headers=bearer(t))
    assert init.status == 200 and await init.read() == source.inits[("cam-1", "icam-1")]


async def test_herd_of_200_for_a_new_segment_is_one_read(client, source):
    source.delay = 0.05
    t = tok("cam-1")
    url = "/v1/streams/cam-1/segments/cam-1-0003.m4s"
    before = source.reads["segment"]
    rs = await asyncio.gather(*(client.get(url, headers=bearer(t)) for _ in range(200)))
    assert {r.status for r in rs} == {200}
    assert source.reads["segment"] == before + 1


async def test_vod_is_gap_aware(client):
    t = tok("cam-gap")
    r = await client.get("/v1/streams/cam-gap/vod.m3u8?start=1764072000&end=1764072009",
                         headers=bearer(t))
    text = await r.text()
    assert r.status == 200, text
    assert "#EXT-X-PLAYLIST-TYPE:VOD" in text and text.rstrip().endswith("#EXT-X-ENDLIST")
    assert text.count("#EXTINF") == 4 and "#EXT-X-DISCONTINUITY\n" in text
    r = await client.get("/v1/streams/cam-gap/vod.m3u8?start=1764072000&end=1764072009&gaps=gap",
                         headers=bearer(t))
    assert "#EXT-X-GAP" in await r.text()


async def test_clip_with_ranges(client, tmp_path):
    t = tok("cam-1")
    url = "/v1/streams/cam-1/clip.mp4?start=2025-11-25T12:00:01Z&end=2025-11-25T12:00:03Z"
    r = await client.get(url, headers=bearer(t))
    whole = await r.read()
    assert r.status == 200 and r.headers["Content-Length"] == str(len(whole))
    assert r.headers["Accept-Ranges"] == "bytes"
    path = tmp_path / "c.mp4"
    path.write_bytes(whole)
    out = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
                          "-show_entries", "stream=nb_read_frames", "-of", "json", str(path)],
                         capture_output=True, text=True, check=True).stdout
    assert int(json.loads(out)["streams"][0]["nb_read_frames"]) == 60
    r = await client.get(url, headers={**bearer(t), "Range": "bytes=1000-4999"})
    assert r.status == 206 and await r.read() == whole[1000:5000]


async def test_thumbnail(client):
    t = tok("cam-1")
    r = await client.get("/v1/streams/cam-1/thumbnail.jpg", headers=bearer(t))
    body = await r.read()
    assert r.status == 200, body
    assert r.status == 200 and r.content_type == "image/jpeg" and body[:2] == b"\xff\xd8"
    r = await client.get("/v1/streams/cam-1/thumbnail.jpg?at=1764072002.5", headers=bearer(t))
    assert r.status == 200 and (await r.read())[:2] == b"\xff\xd8"


async def test_stream_listing_respects_scopes(client, source):
    source.states["cam-1"]["last_seen"] = int(NOW * 1e6) - 1_000_000
    r = await client.get("/v1/streams", headers=bearer(tok("cam-1")))
    body = await r.json()
    assert [s["stream_id"] for s in body["streams"]] == ["cam-1"]
    s = body["streams"][0]
    assert s["online"] and (s["width"], s["height"], s["fps"]) == (320, 240, 30.0)
    r = await client.get("/v1/streams", headers=bearer(tok("*")))
    assert {s["stream_id"] for s in (await r.json())["streams"]} == {"cam-1", "cam-gap"}
    await problem(await client.get("/v1/streams"), 401)
    await problem(await client.get("/v1/streams?cursor=zz", headers=bearer(tok())), 400)


async def test_events_and_beacons(client):
    t = tok("cam-1")
    await client.get("/v1/streams/cam-1/live.m3u8", headers=bearer(t))
    r = await client.post("/v1/beacons", json={"stream_id": "cam-1", "startup_ms": 420.5,
                                               "rebuffers": 2}, headers=bearer(t))
    assert r.status == 202
    kinds = [e["kind"] for e in client.sink.pending()]
    assert "MANIFEST" in kinds and "BEACON" in kinds
    beacon = next(e for e in client.sink.pending() if e["kind"] == "BEACON")
    assert beacon["startup_ms"] == 420.5 and beacon["rebuffers"] == 2 and beacon["viewer"]
    assert t not in json.dumps(list(client.sink.pending()))
    await problem(await client.post("/v1/beacons", json={"stream_id": "cam-2"},
                                    headers=bearer(t)), 403)
    await problem(await client.post("/v1/beacons", data=b"{", headers=bearer(t)), 400)


async def test_token_never_logged(client, caplog):
    caplog.set_level(logging.DEBUG)
    t = tok("cam-1")
    await client.get(f"/v1/streams/cam-1/live.m3u8?token={t}")
    await client.get("/v1/streams/cam-1/segments/nope.m4s", headers=bearer(t))
    await client.get(f"/v1/streams/cam-1/clip.mp4?start=x&token={t}")
    assert any("live.m3u8" in r.getMessage() for r in caplog.records)
    assert all(t not in r.getMessage() for r in caplog.records)
    assert t.split(".")[1] not in caplog.text


async def test_pages(client):
    r = await client.get("/")
    assert r.status == 200 and "dashboard.js" in await r.text()
    r = await client.get("/watch/cam-1")
    assert r.status == 200 and "hls.min.js" in await r.text()
    assert (await client.get("/watch/..%2fetc")).status in (400, 404)


async def test_cors_for_players_on_other_origins(client):
    r = await client.options("/v1/streams/cam-1/live.m3u8")
    assert r.status == 204 and "Authorization" in r.headers["Access-Control-Allow-Headers"]
    r = await client.get("/v1/streams/cam-1/live.m3u8", headers=bearer(tok("cam-1")))
    assert r.headers["Access-Control-Allow-Origin"] == "*"
    assert "ETag" in r.headers["Access-Control-Expose-Headers"]


async def test_clip_cut_short_when_a_segment_vanishes(client, source):
    import aiohttp

    t = tok("cam-1")
    url = "/v1/streams/cam-1/clip.mp4?start=1764072000&end=1764072004"
    assert (await client.get(url, headers=bearer(t))).status == 200  # plan now cached
    del source.blobs[("cam-1", "cam-1-0002")]
    client.ctx.cache.invalidate(("seg", "cam-1", "cam-1-0002"))
    r = await client.get(url, headers=bearer(t))
    assert r.status == 200  # headers were promised before the loss was found
    with pytest.raises(aiohttp.ClientPayloadError):
        await r.read()  # ... so the body is cut short, never silently corrupt


async def test_store_outage_degrades_never_errors(client, source):
    """Cassandra unreachable: the live playlist comes from the last known state (stale, with
    Age), cached segments are served, everything else is 503 + Retry-After with a problem body."""
    t = bearer(tok("cam-1"))
    live = await client.get("/v1/streams/cam-1/live.m3u8", headers=t)
    fresh = await live.text()
    seg = "/v1/streams/cam-1/segments/cam-1-0002.m4s"
    assert (await client.get(seg, headers=t)).status == 200  # now in the cache
    source.down = True
    client.ctx.cache.invalidate(("live", "cam-1"))  # as if its 250 ms had passed
    r = await client.get("/v1/streams/cam-1/live.m3u8", headers=t)
    assert r.status == 200 and await r.text() == fresh
    assert r.headers["Age"] == "0" and r.headers["Cache-Control"].startswith("public, max-age=1")
    assert (await client.get(seg, headers=t)).status == 200
    for path in ("/v1/streams/cam-1", "/v1/streams/cam-1/segments/cam-1-0003.m4s",
                 "/v1/streams/cam-gap/live.m3u8", "/v1/streams",
                 f"/v1/streams/cam-1/vod.m3u8?start={T0 / 1e6}&end={T0 / 1e6 + 4}"):
        r = await client.get(path, headers=bearer(tok("cam-*")))
        body = await problem(r, 503, "store_unavailable")
        assert r.headers["Retry-After"] == "2" and body["retry_after"] == 2, path
    source.down = False
    r = await client.get("/v1/streams/cam-gap/live.m3u8", headers=bearer(tok("cam-*")))
    assert r.status == 200 and "Age" not in r.headers


def test_event_ids_are_random_version_4_uuids():
    import uuid

    from pipeline.playback.events import _uuid4

    ids = [_uuid4() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    for u in ids:
        parsed = uuid.UUID(u)
        assert str(parsed) == u and parsed.version == 4 and parsed.variant == uuid.RFC_4122
