"""The SDK re-sends the open GOP on every bridge move, to real in-process HTTP bridges.

Each bridge is a small aiohttp app on a loopback port that parses the real chunk framing,
records every seq posted to it (with the body bytes) and answers with the bridge's seq rules
(200 with the remembered ack for a seq it has, 409 for one behind, 422 for a stream it never saw
that does not open with a keyframe or the resume header). Stopping its runner closes the port,
so the device sees refused connections exactly as with a killed bridge. No Kafka here: what is
under test is what the device sends where.
"""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st

from pipeline.device.client import ChunkUploader
from pipeline.device.opengop import OpenGop
from pipeline.ingest.framing import RESUME_HEADER, Chunk, Frame, encode_chunk, parse_chunk

GOP = 10  # frames; one frame per chunk below, so chunk k is a keyframe chunk iff k % 10 == 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Bridge:
    """One bridge: a real HTTP server with the bridge's seq rules and a record of posts."""

    def __init__(self, name: str):
        self.name, self.port = name, _free_port()
        self.posts: list[int] = []
        self.bodies: dict[int, bytes] = {}
        self.acks: dict[int, dict[str, Any]] = {}
        self.last_seq: int | None = None
        self.fail_seqs: set[int] = set()  # answered 503 (this region's Kafka is gone) forever
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _app(self) -> web.Application:
        async def chunks(request: web.Request) -> web.Response:
            body = await request.read()
            chunk = parse_chunk(body)
            self.posts.append(chunk.seq)
            self.bodies.setdefault(chunk.seq, body)
            if chunk.seq in self.fail_seqs:
                return web.json_response({"problem": "kafka_unavailable"}, status=503)
            if chunk.seq in self.acks:
                return web.json_response(self.acks[chunk.seq])
            if self.last_seq is not None and chunk.seq <= self.last_seq:
                return web.json_response({"problem": "seq_regression",
                                          "last_seq": self.last_seq}, status=409)
            if (self.last_seq is None and not chunk.frames[0].keyframe
                    and request.headers.get(RESUME_HEADER) != "1"):
                return web.json_response({"problem": "needs_keyframe"}, status=422)
            self.last_seq = chunk.seq
            self.acks[chunk.seq] = {"seq": chunk.seq, "bridge": self.name}
            return web.json_response(self.acks[chunk.seq])

        async def readyz(_request: web.Request) -> web.Response:
            return web.json_response({"ready": True})

        app = web.Application()
        app.router.add_post("/v1/streams/{sid}/chunks", chunks)
        app.router.add_get("/readyz", readyz)
        return app

    async def start(self) -> Bridge:
        self._runner = web.AppRunner(self._app(), shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


class Device:
    """An uploader over the given bridges, one frame per chunk, acks recorded per bridge."""

    def __init__(self, session: aiohttp.ClientSession, bridges: list[Bridge]):
        self.acks: list[tuple[int, str]] = []  # (seq, bridge name) in ack order
        names = {b.url: b.name for b in bridges}
        self.up = ChunkUploader(
            session, [b.url for b in bridges], "cam", "token", chunk_frames=1,
            backoff_s=0.01, backoff_max_s=0.05, failover_s=0.3,
            on_ack=lambda seq, _ack: self.acks.append((seq, names[self.up.bridges.current])))
        self.n = 0
        self.task = asyncio.create_task(self.up.run())

    def feed(self, frames: int) -> None:
        for _ in range(frames):
            data = b"\0\0\0\1" + (b"\x65" if self.n % GOP == 0 else b"\x41") + bytes([self.n % 256])
            self.up.add_frame(Frame(self.n * 3000, self.n * 3000, self.n % GOP == 0, data))
            self.n += 1

    def acked_by(self, name: str) -> list[int]:
        return [seq for seq, b in self.acks if b == name]

    async def until(self, check, what: str, limit: float = 20.0) -> None:
        deadline = time.monotonic() + limit
        while not check():
            if time.monotonic() > deadline:
                raise AssertionError(f"never happened: {what} ({self.up.stats}, {self.acks})")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def test_a_move_resends_the_open_gop_from_its_keyframe_and_so_does_going_home():
    a, b = await Bridge("A").start(), await Bridge("B").start()
    try:
        async with aiohttp.ClientSession() as s:
            dev = Device(s, [a, b])
            dev.feed(14)  # chunks 0..13: a GOP and 4 chunks into the next (keyframe chunk 10)
            await dev.until(lambda: len(dev.acks) == 14, "A acked 14 chunks")
            await a.stop()  # home goes: refused connections
            dev.feed(10)  # chunks 14..23, keyframe chunk 20
            await dev.until(lambda: dev.up.stats.acked == 24, "B acked the rest")
            assert b.posts == list(range(10, 24))  # the open GOP first, from its keyframe
            assert dev.acked_by("B") == list(range(10, 24))
            assert all(b.bodies[q] == a.bodies[q] for q in range(10, 14))  # the same bytes
            assert (dev.up.stats.resent, dev.up.stats.resent_frames) == (4, 4)

            await a.start()  # home is back: the probe of /readyz takes the device home
            await dev.until(lambda: dev.up.bridges.current == a.url, "the device went home")
            dev.feed(4)  # chunks 24..27, mid-GOP: the open GOP (20..23) goes home first
            await dev.until(lambda: dev.up.stats.acked == 28, "A acked the rest")
            await dev.stop()
    finally:
        await a.stop()
        await b.stop()
    assert a.posts[14:] == list(range(20, 28))
    assert dev.acked_by("A") == [*range(14), *range(20, 28)]
    st_ = dev.up.stats
    assert (st_.acked, st_.acked_frames, st_.resent, st_.resent_frames) == (28, 28, 8, 8)
    assert st_.rejected == 0 and st_.dropped_chunks == 0
    assert sorted({q for q, _ in dev.acks}) == list(range(28))  # on_ack fired for every seq
    assert [u for _, u in dev.up.bridges.switches] == [b.url, a.url]


async def test_nothing_is_resent_when_the_next_chunk_opens_a_gop():
    a, b = await Bridge("A").start(), await Bridge("B").start()
    try:
        async with aiohttp.ClientSession() as s:
            dev = Device(s, [a, b])
            dev.feed(10)  # chunks 0..9: one whole GOP
            await dev.until(lambda: len(dev.acks) == 10, "A acked 10 chunks")
            await a.stop()
            dev.feed(3)  # chunk 10 is a keyframe chunk
            await dev.until(lambda: dev.up.stats.acked == 13, "B acked the rest")
            await dev.stop()
    finally:
        await b.stop()
    assert b.posts == [10, 11, 12] and dev.up.stats.resent == 0


async def test_a_resend_the_bridge_already_has_is_done_not_rejected():
    a, b = await Bridge("A").start(), await Bridge("B").start()
    b.last_seq = 11  # B has 10 and 11 already (mirrored in, say), without their acks
    try:
        async with aiohttp.ClientSession() as s:
            dev = Device(s, [a, b])
            dev.feed(14)
            await dev.until(lambda: len(dev.acks) == 14, "A acked 14 chunks")
            await a.stop()
            dev.feed(2)  # chunks 14, 15
            await dev.until(lambda: dev.up.stats.acked == 16, "B acked the rest")
            await dev.stop()
    finally:
        await b.stop()
    assert b.posts == list(range(10, 16))
    assert dev.up.stats.statuses == {409: 2} and dev.up.stats.rejected == 0
    assert dev.up.stats.resent == 4  # 10, 11 (409: B has them) and 12, 13 (200)
    assert dev.acked_by("B") == [12, 13, 14, 15]  # no ack for what B answered 409


async def test_a_move_during_the_resend_starts_it_over_at_the_next_bridge():
    """B fails (503) on the second re-sent chunk for good: the device moves on to C, which gets
    the whole open GOP from the keyframe chunk, then the chunk that was in flight."""
    a, b, c = [await Bridge(n).start() for n in "ABC"]
    b.fail_seqs = {11}
    try:
        async with aiohttp.ClientSession() as s:
            dev = Device(s, [a, b, c])
            dev.feed(13)  # keyframe chunk 10, then 11, 12
            await dev.until(lambda: len(dev.acks) == 13, "A acked 13 chunks")
            await a.stop()
            dev.feed(1)  # chunk 13
            await dev.until(lambda: dev.up.stats.acked == 14, "C acked chunk 13")
            await dev.stop()
    finally:
        for br in (a, b, c):
            await br.stop()
    assert set(b.posts) == {10, 11} and b.posts[0] == 10  # 11 retried until B was given up on
    assert c.posts == [10, 11, 12, 13]
    assert dev.acked_by("C") == [10, 11, 12, 13] and dev.up.stats.resent == 4  # 10 at B + 3 at C


# -- the pure open-GOP rule --------------------------------------------------------------------

def _chunk(seq: int, key: bool) -> Chunk:
    return Chunk(seq, "H264", 90000, 0, (Frame(seq, seq, key, b"\0\0\1\x65"),))


@given(st.lists(st.tuples(st.booleans(), st.booleans()), max_size=80), st.integers(1, 12),
       st.booleans())
def test_the_open_gop_is_the_stored_chunks_since_the_last_stored_keyframe_chunk(
        events, limit, next_key):
    """Against a direct model: the stored chunks after the last keyframe chunk, when that one
    was stored and the run is not longer than the limit; nothing before a keyframe chunk."""
    gop = OpenGop(limit)
    chunks = [_chunk(seq, key) for seq, (key, _) in enumerate(events)]
    for c, (_, stored) in zip(chunks, events, strict=True):
        gop.settled(c, stored)
    nxt = _chunk(len(events), next_key)
    keys = [i for i, (key, _) in enumerate(events) if key]
    want: list[Chunk] = []
    if keys and events[keys[-1]][1] and not next_key:
        run = [c for c, (_, stored) in zip(chunks[keys[-1]:], events[keys[-1]:], strict=True)
               if stored]
        # past the limit the GOP is forgotten for good (until the next keyframe chunk)
        prefix_ok = all(len([e for e in events[keys[-1]:i + 1] if e[1]]) <= limit
                        for i in range(keys[-1], len(events)))
        want = run if prefix_ok else []
    got = gop.resend_for(nxt)
    assert got == want
    assert not got or (got[0].frames[0].keyframe and len(got) <= limit)
    assert [c.seq for c in got] == sorted(c.seq for c in got)


def test_an_open_gop_needs_room():
    with pytest.raises(ValueError):
        OpenGop(0)
    assert encode_chunk(_chunk(1, True)) == encode_chunk(_chunk(1, True))  # same bytes on resend
