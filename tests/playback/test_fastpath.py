"""The playback fast path (``fastpath``): a kept 200 answer repeated byte for byte (but its Date)
to the same plain GET, only while aiohttp would give the same one, in order, and counted."""

from __future__ import annotations

import asyncio
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.playback.cache import ByteCache
from pipeline.playback.cli import start
from pipeline.playback.context import Context
from pipeline.playback.events import EventSink
from pipeline.playback.fastpath import Answer, Answers, parse
from tests.playback.memsource import MemorySource, add_stream
from tests.playback.test_service import NOW, T0, VKEYS, tok
from tests.system import free_port

SEG = "/v1/streams/cam-1/segments/cam-1-0002.m4s"


def same(resp: bytes) -> tuple:
    """An answer as HTTP means it: status line, headers in any order but Date, body."""
    head, _, body = resp.partition(b"\r\n\r\n")
    status, *lines = head.split(b"\r\n")
    return status, sorted(h for h in lines if not h.lower().startswith(b"date:")), body


class Box:
    """A playback service on a real socket, behind the fast path as ``camlog playback`` runs it."""

    def __init__(self, source: MemorySource) -> None:
        self.source, self.clock = source, [NOW]
        self.sink = EventSink("127.0.0.1:1")  # never started: events stay queued
        self.ctx = Context(keys=VKEYS, source=source, events=self.sink,
                           now=lambda: self.clock[0], max_range_s=3600, max_clip_s=60,
                           cache=ByteCache(64 << 20))
        self.sink.start = lambda: None  # type: ignore[method-assign]
        self.sink.close = lambda *a: None  # type: ignore[method-assign]
        self.port = free_port()
        self.keep_open = False

    async def request(self, *heads: bytes) -> list[bytes]:
        """Write ``heads`` in one go on a new connection; read one answer per head."""
        return await self.on(await asyncio.open_connection("127.0.0.1", self.port), *heads)

    async def on(self, conn, *heads: bytes) -> list[bytes]:
        reader, writer = conn
        writer.write(b"".join(heads))
        await writer.drain()
        try:
            out = [await read_answer(reader) for _ in heads]
        finally:
            if not self.keep_open:
                writer.close()
        return out

    def events(self) -> list[str]:
        return [kind for _, _, kind, _ in self.sink._queue]


async def read_answer(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    n = re.search(rb"\r\ncontent-length: (\d+)", head.lower())  # none on a 304
    return head + await reader.readexactly(int(n[1]) if n else 0)


def get(target: str, *headers: str) -> bytes:
    extra = "".join(f"{h}\r\n" for h in headers)
    return f"GET {target} HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n{extra}\r\n".encode()


@pytest.fixture
async def box():
    src = MemorySource()
    add_stream(src, "cam-1", T0)
    b = Box(src)
    runner = await start(b.ctx, "127.0.0.1", b.port)
    assert b.ctx.answers is not None, "fast path off with this aiohttp"
    yield b
    await runner.cleanup()


async def test_a_repeat_is_the_first_answer_but_its_date(box):
    url = f"{SEG}?token={tok('cam-1')}"
    conn = await asyncio.open_connection("127.0.0.1", box.port)
    box.keep_open = True
    first, again = [*await box.on(conn, get(url)), *await box.on(conn, get(url))]
    conn[1].close()
    box.keep_open = False
    (other,) = await box.request(get(url))  # a new connection: the same kept answer
    answers = box.ctx.answers
    assert (answers.hits, len(answers)) == (2, 1)
    assert first.startswith(b"HTTP/1.1 200 OK\r\n")
    assert same(again) == same(first) == same(other)
    assert first.endswith(box.source.blobs[("cam-1", "cam-1-0002")])
    assert box.source.reads["segment"] == 1
    assert box.events() == ["SEGMENT"] * 3  # a hit is a served request like any other


async def test_headers_that_change_the_answer_go_to_aiohttp(box):
    url = f"{SEG}?token={tok('cam-1')}"
    data = box.source.blobs[("cam-1", "cam-1-0002")]
    (first,) = await box.request(get(url))
    etag = re.search(rb"\r\netag: ([^\r]*)", first.lower())[1].decode()
    (ranged,) = await box.request(get(url, "Range: bytes=0-9"))
    (cond,) = await box.request(get(url, f"If-None-Match: {etag}"))
    (no_tok,) = await box.request(get(SEG, f"Authorization: Bearer {tok('cam-9')}"))
    assert ranged.startswith(b"HTTP/1.1 206") and ranged.endswith(data[:10])
    assert cond.startswith(b"HTTP/1.1 304")
    assert no_tok.startswith(b"HTTP/1.1 403")
    assert box.ctx.answers.hits == 0


async def test_a_token_past_its_expiry_is_refused_not_answered(box):
    url = f"{SEG}?token={tok('cam-1', ttl=30)}"
    (first,) = await box.request(get(url))
    box.clock[0] = NOW + 31  # the grant ends with the token
    (late,) = await box.request(get(url))
    assert first.startswith(b"HTTP/1.1 200") and late.startswith(b"HTTP/1.1 401")
    assert b"application/problem+json" in late and box.ctx.answers.hits == 0
    assert len(box.ctx.answers) == 0  # the expired answer is dropped


async def test_another_token_is_another_target(box):
    a, b = tok("cam-1"), tok("cam-*", ttl=600)
    await box.request(get(f"{SEG}?token={a}"))
    (other,) = await box.request(get(f"{SEG}?token={b}"))
    assert other.startswith(b"HTTP/1.1 200") and box.ctx.answers.hits == 0
    (scoped,) = await box.request(get(f"{SEG}?token={tok('cam-9')}"))
    assert scoped.startswith(b"HTTP/1.1 403")


async def test_pipelined_requests_are_answered_in_order_by_aiohttp(box):
    t = tok("cam-1")
    urls = [f"/v1/streams/cam-1/segments/cam-1-{i:04d}.m4s?token={t}" for i in (2, 0, 2, 1)]
    for u in urls[:2]:
        await box.request(get(u))  # kept
    hits = box.ctx.answers.hits
    out = await box.request(*(get(u) for u in urls))
    for resp, i in zip(out, (2, 0, 2, 1), strict=True):
        assert resp.endswith(box.source.blobs[("cam-1", f"cam-1-{i:04d}")])
    assert box.ctx.answers.hits == hits  # a pipelining client gets aiohttp alone


async def test_the_live_playlist_is_repeated_for_one_refresh_at_most(box):
    from pipeline.playback.playlists import LIVE_REFRESH_S

    url = f"/v1/streams/cam-1/live.m3u8?token={tok('cam-1')}"
    first, again = (await box.request(get(url)))[0], (await box.request(get(url)))[0]
    assert first.startswith(b"HTTP/1.1 200") and b"#EXTM3U" in first
    assert same(again) == same(first) and box.ctx.answers.hits == 1
    kept = box.ctx.answers._by_target[url.encode()]
    assert kept.expires - asyncio.get_running_loop().time() <= LIVE_REFRESH_S + 0.05


# -- the pure parts ---------------------------------------------------------------------------
_safe = st.text("abcdefghijklmnopqrstuvwxyz0123456789-._", min_size=1, max_size=20)
_token = st.text("ABCXYZabcxyz0189._~-", min_size=1, max_size=200)
_harmless = st.lists(st.tuples(st.sampled_from(["Host", "Accept", "User-Agent", "Origin",
                                                "Referer", "Accept-Language", "Cache-Control"]),
                               _safe), max_size=6)
_affecting = st.sampled_from(["Authorization: Bearer x", "Range: bytes=0-1", "If-None-Match: x",
                              "If-Modified-Since: x", "Connection: close", "Content-Length: 3",
                              "Transfer-Encoding: chunked", "Expect: 100-continue",
                              "Upgrade: websocket", "X-Camlog-Token-Template: 1",
                              "range: bytes=0-"])


def _head(path: str, token: str, headers: list[tuple[str, str]]) -> bytes:
    lines = "".join(f"{k}: {v}\r\n" for k, v in headers)
    return f"GET /{path}?token={token} HTTP/1.1\r\n{lines}\r\n".encode()


@given(st.lists(_safe, min_size=1, max_size=5).map("/".join), _token, _harmless)
def test_parse_takes_plain_gets(path, token, headers):
    assert parse(_head(path, token, headers)) == (f"/{path}?token={token}".encode(), token)


@given(_safe, _token, _harmless, _affecting, st.integers(0, 6))
def test_parse_leaves_the_rest_to_aiohttp(path, token, headers, bad, at):
    name, _, value = bad.partition(": ")
    assert parse(_head(path, token, [*headers[:at], (name, value), *headers[at:]])) is None
    plain = _head(path, token, headers)
    assert parse(plain + plain) is None  # pipelined
    assert parse(plain + b"abc") is None  # a body or the next request's start
    assert parse(plain.replace(b"HTTP/1.1", b"HTTP/1.0", 1)) is None
    assert parse(b"HEAD" + plain[3:]) is None and parse(b"POST" + plain[3:]) is None
    assert parse(plain.replace(b"?token=", b"?other=1&token=", 1)) is None
    assert parse(plain.replace(b"?token=", b"?", 1)) is None


@given(st.lists(st.tuples(st.integers(0, 9), st.integers(0, 3000)), max_size=60))
def test_answers_stay_within_their_byte_budget(ops):
    answers = Answers(8000, lambda t, s: True, lambda a, ms: None, now=lambda: 0.0)
    for target, size in ops:
        answers.keep(b"/%d" % target, Answer("s", "v", "SEGMENT", "r", b"H", b"x" * size, 0), 5)
        assert answers.bytes == sum(a.size for a in answers._by_target.values()) <= 8000
    for target, size in ops[-1:]:
        if size + 201 <= 2000:  # small enough to keep, and the newest: still there
            assert answers.hit(b"/%d" % target, "t") is not None


async def test_a_hit_never_overtakes_the_answer_aiohttp_owes(box):
    t = tok("cam-1")
    kept, slow = (f"/v1/streams/cam-1/segments/cam-1-{i:04d}.m4s?token={t}" for i in (2, 3))
    await box.request(get(kept))
    box.source.delay = 0.3  # the next store read is slow
    reader, writer = await asyncio.open_connection("127.0.0.1", box.port)
    try:
        writer.write(get(slow))
        await writer.drain()
        await asyncio.sleep(0.1)  # aiohttp holds the slow request; the kept one comes after it
        writer.write(get(kept))
        first, second = await read_answer(reader), await read_answer(reader)
    finally:
        writer.close()
    assert first.endswith(box.source.blobs[("cam-1", "cam-1-0003")])
    assert second.endswith(box.source.blobs[("cam-1", "cam-1-0002")])


# -- the token in the path ----------------------------------------------------------------------
async def test_token_in_the_path_playlists_name_no_token(box):
    a, b = tok("cam-1"), tok("cam-*", ttl=600)
    (pa,) = await box.request(get(f"/v1/t/{a}/streams/cam-1/live.m3u8"))
    (pb,) = await box.request(get(f"/v1/t/{b}/streams/cam-1/live.m3u8"))
    assert pa.startswith(b"HTTP/1.1 200") and same(pa)[2] == same(pb)[2]  # the same bytes
    body = same(pa)[2].decode()
    assert "token" not in body and a not in body and "segments/cam-1-0002.m4s\n" in body
    seg = f"/v1/t/{a}/streams/cam-1/segments/cam-1-0002.m4s"
    first, again = (await box.request(get(seg)))[0], (await box.request(get(seg)))[0]
    assert first.endswith(box.source.blobs[("cam-1", "cam-1-0002")])
    assert same(again) == same(first) and box.ctx.answers.hits >= 1
    (bad,) = await box.request(get(f"/v1/t/{tok('cam-9')}/streams/cam-1/live.m3u8"))
    (forged,) = await box.request(get(f"/v1/t/{a[:-4]}AAAA/streams/cam-1/live.m3u8"))
    assert bad.startswith(b"HTTP/1.1 403") and forged.startswith(b"HTTP/1.1 401")


@given(st.lists(_safe, min_size=1, max_size=4).map("/".join), _token, _harmless)
def test_parse_takes_the_token_from_the_path(rest, token, headers):
    lines = "".join(f"{k}: {v}\r\n" for k, v in headers)
    target = f"/v1/t/{token}/streams/{rest}"
    assert parse(f"GET {target} HTTP/1.1\r\n{lines}\r\n".encode()) == (target.encode(), token)
    assert parse(f"GET {target}?x=1 HTTP/1.1\r\n{lines}\r\n".encode()) is None
