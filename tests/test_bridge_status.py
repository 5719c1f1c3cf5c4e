"""The bridge's stream status route and the playback service's client of it (in memory)."""

from __future__ import annotations

from types import SimpleNamespace

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from pipeline.auth.keys import ephemeral_keys
from pipeline.auth.tokens import issue
from pipeline.auth.viewer import issue as issue_viewer
from pipeline.ingest import status
from pipeline.ingest.app import _problems  # the bridge's one error mapper
from pipeline.ingest.streams import StreamTable
from pipeline.playback.bridgestatus import BridgeStatus
from pipeline.playback.liveness import BridgeView

KEYS = {"k1": b"0123456789abcdef-bridge-status"}
VKEYS = ephemeral_keys("k1")
NOW = 1_764_072_000.0
CFG = b"\x00\x00\x00\x01\x67\x42"


def _table() -> StreamTable:
    t = StreamTable(idle_timeout_s=10)
    t.admit("cam-1", 0, "H264", keyframe_first=True, config=CFG, width=320, height=180,
            now=NOW - 2)
    return t


async def _client(table: StreamTable) -> TestClient:
    app = web.Application(middlewares=[_problems])
    status.add_routes(app, SimpleNamespace(table=table), lambda: VKEYS, lambda: NOW)  # type: ignore[arg-type]
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


def test_status_of_leaves_unknown_ids_out():
    body = status.status_of(_table(), ["cam-1", "cam-2"], NOW)
    assert body == {"now_us": int(NOW * 1e6), "streams": {"cam-1": {
        "connected": True, "last_seen_us": int((NOW - 2) * 1e6), "last_seq": 0, "inflight": 1}}}


async def test_route_needs_a_viewer_token_covering_every_id():
    client = await _client(_table())
    try:
        viewer = issue_viewer(VKEYS, ["cam-*"], 60, NOW)
        device = issue(KEYS, None, "device", ["cam-1"], 60, NOW)
        ok = await client.post("/v1/status", json={"stream_ids": ["cam-1"]},
                               headers={"Authorization": f"Bearer {viewer}"})
        assert ok.status == 200 and "cam-1" in (await ok.json())["streams"]
        wrong = await client.post("/v1/status", json={"stream_ids": ["cam-1"]},
                                  headers={"Authorization": f"Bearer {device}"})
        assert wrong.status == 401
        other = await client.post("/v1/status", json={"stream_ids": ["site-1"]},
                                  headers={"Authorization": f"Bearer {viewer}"})
        assert other.status == 403
        bad = await client.post("/v1/status", json={"ids": 1},
                                headers={"Authorization": f"Bearer {viewer}"})
        assert bad.status == 400
    finally:
        await client.close()


async def test_client_caches_and_backs_off():
    table = _table()
    client = await _client(table)
    clock = [NOW]
    bs = BridgeStatus(f"127.0.0.1:{client.port}", VKEYS, now=lambda: clock[0])
    try:
        got = await bs.lookup(["cam-1", "cam-2"])
        assert got == {"cam-1": BridgeView(True, int((NOW - 2) * 1e6), 2_000_000), "cam-2": None}
        await client.close()  # the bridge goes away: cached answers first, then None
        assert (await bs.lookup(["cam-1"]))["cam-1"] is not None  # type: ignore[index]
        clock[0] += 2
        assert await bs.lookup(["cam-1"]) is None
        assert await bs.lookup(["cam-1"]) is None  # backing off: no new request
    finally:
        await bs.close()
        await client.close()


class _FakeBridge:
    def __init__(self, views):
        self.views, self.calls = views, 0

    async def lookup(self, ids):
        self.calls += 1
        return None if self.views is None else {i: self.views.get(i) for i in ids}

    async def close(self): ...


async def test_playback_lists_behind_offline_and_waiting_with_one_bridge_call():
    from pipeline.playback.app import build_app as build_playback
    from pipeline.playback.context import Context
    from tests.playback.memsource import MemorySource

    src = MemorySource()
    t = int(NOW * 1e6)
    src.states = {  # the worker last processed cam-a 30 s ago, cam-b 40 s ago
        "cam-a": {"stream_id": "cam-a", "online": True, "last_seen": t - 30_000_000,
                  "segments": 3},
        "cam-b": {"stream_id": "cam-b", "online": False, "last_seen": t - 40_000_000,
                  "segments": 3},
    }
    fake = _FakeBridge({"cam-a": BridgeView(True, t - 100_000, 100_000),
                        "cam-b": BridgeView(False, t - 40_000_000, 40_000_000),
                        "cam-c": BridgeView(True, t - 100_000, 100_000)})
    client = TestClient(TestServer(build_playback(
        Context(keys=VKEYS, source=src, now=lambda: NOW, bridge=fake))))
    await client.start_server()
    try:
        auth = {"Authorization": "Bearer " + issue_viewer(VKEYS, ["cam-*"], 60, NOW)}
        body = await (await client.get("/v1/streams", headers=auth)).json()
        got = {s["stream_id"]: (s["state"], s["online"], s["behind_s"]) for s in body["streams"]}
        assert got == {"cam-a": ("behind", True, 29.9), "cam-b": ("offline", False, 0.0)}
        assert fake.calls == 1
        one = await (await client.get("/v1/streams/cam-c", headers=auth)).json()
        assert (one["state"], one["online"]) == ("waiting", True)  # heard, not reduced yet
        assert (await client.get("/v1/streams/cam-d", headers=auth)).status == 404
        fake.views = None  # the bridge does not answer: device state alone
        body = await (await client.get("/v1/streams", headers=auth)).json()
        assert [s["state"] for s in body["streams"]] == ["offline", "offline"]
    finally:
        await client.close()
