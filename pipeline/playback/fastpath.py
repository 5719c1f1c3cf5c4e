"""A fast path in front of aiohttp: a hot GET answered again from the bytes of its last answer.

Viewers ask for the same few objects over and over (a live playlist every second, each segment
once per viewer), and aiohttp spends ~150 µs of Python per request on request and response
objects, middlewares and the router. Once aiohttp has answered ``GET <path>?token=<T>`` with
200 for a route that opts in (segments, parts, init segments, the whole-segment live playlist),
the answer's status line, headers and body are kept as bytes (``Answers``) under that exact
request target, for as long as the answer stays right (immutable media: until evicted; the live
playlist: as long as its in-process view). The next request for the same target gets those
bytes with a fresh ``Date`` before aiohttp parses it, provided:

- it is one plain ``GET`` head (``parse``): no header that changes the answer or the connection
  (Authorization, Range, If-*, Connection, a body, an upgrade, the edge's template header);
- this process still holds a verification of the token for that stream (``Grants``: expiry and
  key rotation are honoured as on the slow path);
- aiohttp is idle on the connection (no request being handled, nothing buffered, nothing
  unsent), so answers never overtake each other.

Everything else goes to aiohttp unchanged. A hit is accounted like any request (the latency
histogram, the viewers gauge, a PlaybackEvent) by the ``account`` callback; it gets no span,
which would cost more than the answer.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any

from aiohttp import web
from aiohttp.http import SERVER_SOFTWARE
from aiohttp.web_protocol import RequestHandler

__all__ = ["Answer", "Answers", "FastProtocol", "FastSite", "head_of", "parse", "supported",
           "target_token"]

_TOKEN = re.compile(rb"[A-Za-z0-9._~-]{1,4096}")
_IN_PATH = re.compile(rb"/v1/t/([^/]{1,4096})/streams/")
#: Request headers after which the kept answer may not be the right one (lower case).
_AFFECTS = (b"\nauthorization:", b"\nrange:", b"\nif-", b"\nconnection:", b"\ncontent-length:",
            b"\ntransfer-encoding:", b"\nexpect:", b"\nupgrade:", b"\nx-camlog-")
_MAX_HEAD = 8192


def parse(data: bytes) -> tuple[bytes, str] | None:
    """``(target, token)`` when ``data`` is exactly one plain ``GET <path>?token=<T>`` or ``GET
    /v1/t/<T>/streams/...`` HTTP/1.1 request head (no other query parameter, no header that
    changes the answer); else None."""
    if len(data) > _MAX_HEAD or not data.startswith(b"GET /") or not data.endswith(b"\r\n\r\n"):
        return None
    if data.find(b"\r\n\r\n") != len(data) - 4:  # pipelined or a body: aiohttp's
        return None
    eol = data.find(b"\r\n")
    line = data[4:eol]
    if not line.endswith(b" HTTP/1.1"):
        return None
    target = line[:-9]
    token = target_token(target)
    if token is None:
        return None
    headers = data[eol:].lower()
    if any(h in headers for h in _AFFECTS):
        return None
    return target, token


def target_token(target: bytes) -> str | None:
    """The token of a request target whose answer the fast path may keep and repeat:
    ``<path>?token=<T>`` (no other query parameter) or ``/v1/t/<T>/streams/...`` (no query);
    no escapes. None for any other target."""
    path, sep, query = target.partition(b"?")
    if b" " in path or b"%" in path:
        return None
    if sep:
        token = query[6:] if query.startswith(b"token=") else b""
    else:
        m = _IN_PATH.match(path)
        token = m[1] if m else b""
    return token.decode("ascii") if _TOKEN.fullmatch(token) else None


@dataclass(slots=True)
class Answer:
    """One kept answer: everything but its Date, and what a hit must check and account."""

    stream_id: str
    viewer: str  # the pseudonymous viewer id of the token (never the token)
    kind: str  # PlaybackEvent kind
    route: str  # the route's canonical path (the latency histogram's attribute)
    head: bytes  # status line and headers, each ending CRLF, without Date and the blank line
    body: bytes
    expires: float  # monotonic seconds

    @property
    def size(self) -> int:
        return len(self.head) + len(self.body) + 200


def head_of(status: int, reason: str, headers: Any, body_len: int) -> bytes:
    """The status line and headers aiohttp would write for a response, without Date."""
    lines = [f"HTTP/1.1 {status} {reason}\r\n"]
    lines += [f"{k}: {v}\r\n" for k, v in headers.items()
              if k.lower() not in ("content-length", "date", "server")]
    lines.append(f"Content-Length: {body_len}\r\nServer: {SERVER_SOFTWARE}\r\n")
    return "".join(lines).encode("latin-1")


class Answers:
    """Kept answers by request target, LRU, bounded in bytes; ``hit`` is the per-request path.

    ``allowed(token, stream_id)`` says whether the token is still good for the stream;
    ``account(answer, latency_ms)`` records the hit like any served request.
    """

    def __init__(self, max_bytes: int, allowed: Callable[[str, str], bool],
                 account: Callable[[Answer, float], None],
                 now: Callable[[], float] = time.monotonic) -> None:
        self.max_bytes = max_bytes
        self._allowed, self._account, self._now = allowed, account, now
        self._by_target: OrderedDict[bytes, Answer] = OrderedDict()
        self.bytes = 0
        self.hits = self.misses = 0
        self._date_s, self._date = -1, b""

    def __len__(self) -> int:
        return len(self._by_target)

    def keep(self, target: bytes, answer: Answer, ttl: float) -> None:
        """Keep ``answer`` for ``target`` for ``ttl`` seconds (or until evicted)."""
        self.drop(target)
        if ttl <= 0 or answer.size > self.max_bytes // 4:
            return
        answer.expires = self._now() + ttl
        self._by_target[target] = answer
        self.bytes += answer.size
        while self.bytes > self.max_bytes:
            _, old = self._by_target.popitem(last=False)
            self.bytes -= old.size

    def drop(self, target: bytes) -> None:
        """Forget the answer kept for ``target``, if any."""
        old = self._by_target.pop(target, None)
        if old is not None:
            self.bytes -= old.size

    def hit(self, target: bytes, token: str) -> tuple[bytes, bytes] | None:
        """``(head, body)`` of the kept answer for ``target``, Date included; None: a miss."""
        t0 = time.perf_counter()
        answer = self._by_target.get(target)
        if answer is None:
            self.misses += 1
            return None
        if answer.expires <= self._now() or not self._allowed(token, answer.stream_id):
            self.drop(target)  # aiohttp answers (and re-verifies) this one
            self.misses += 1
            return None
        self._by_target.move_to_end(target)
        self.hits += 1
        head = answer.head + self._date_line()
        self._account(answer, (time.perf_counter() - t0) * 1000)
        return head, answer.body

    def _date_line(self) -> bytes:
        now = int(time.time())
        if now != self._date_s:
            self._date_s = now
            self._date = f"Date: {formatdate(now, usegmt=True)}\r\n\r\n".encode("ascii")
        return self._date


#: The RequestHandler internals the idle check reads (as of aiohttp 3.14); without them the
#: fast path stays off and aiohttp answers everything.
_INTERNALS = ("_loop", "_request_in_progress", "_messages", "_payload_parser", "_upgraded",
              "_force_close", "_close", "_next_keepalive_close_time", "_keepalive_timeout")


def supported() -> bool:
    """Whether this aiohttp has the handler state the idle check needs."""
    slots = set()
    for cls in RequestHandler.__mro__:
        slots |= set(getattr(cls, "__slots__", ()))
    return all(name in slots for name in _INTERNALS)


class FastProtocol(asyncio.Protocol):
    """One connection: hits answered here, everything else passed to aiohttp's handler.

    Order: a hit is written only when aiohttp has no request of this connection queued or in
    hand and has begun answering the last one it was given (``_awaiting`` clears on its first
    write, ``_request_in_progress`` covers the rest of it). A client that pipelines gets
    aiohttp alone.
    """

    __slots__ = ("_answers", "_awaiting", "_fast", "_inner", "_transport")

    def __init__(self, inner: RequestHandler, answers: Answers) -> None:
        self._inner, self._answers = inner, answers
        self._transport: Any = None
        self._awaiting = False  # a request was given to aiohttp and it has written nothing since
        self._fast = True  # off for good once the client pipelines or sends a body

    def connection_made(self, transport: Any) -> None:
        self._transport = transport
        self._inner.connection_made(_Watched(transport, self))

    def data_received(self, data: bytes) -> None:
        if self._fast and self._idle():
            req = parse(data)
            if req is not None:
                out = self._answers.hit(*req)
                if out is not None:
                    inner = self._inner
                    inner._next_keepalive_close_time = (
                        inner._loop.time() + inner._keepalive_timeout)
                    self._transport.writelines(out)  # one send for head and body
                    return
        if self._fast and (data.count(b"\r\n\r\n") != 1 or not data.endswith(b"\r\n\r\n")):
            self._fast = False
        self._awaiting = True
        self._inner.data_received(data)

    def _idle(self) -> bool:
        h = self._inner
        return (not self._awaiting and not h._request_in_progress and not h._messages
                and h._payload_parser is None and not h._upgraded
                and not h._force_close and not h._close
                and self._transport.get_write_buffer_size() == 0)

    def wrote(self) -> None:
        """aiohttp wrote to the connection (its answer to the last request has begun)."""
        self._awaiting = False

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


class _Watched:
    """The transport as aiohttp's handler sees it: writes tell ``FastProtocol``."""

    __slots__ = ("_owner", "_transport")

    def __init__(self, transport: Any, owner: FastProtocol) -> None:
        self._transport, self._owner = transport, owner

    def write(self, data: Any) -> None:
        self._owner.wrote()
        self._transport.write(data)

    def writelines(self, lines: Any) -> None:
        self._owner.wrote()
        self._transport.writelines(lines)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class FastSite(web.TCPSite):
    """A TCP site whose connections go through ``FastProtocol`` to the runner's aiohttp server."""

    def __init__(self, runner: web.AppRunner, host: str, port: int, answers: Answers,
                 reuse_port: bool = False) -> None:
        super().__init__(runner, host, port, reuse_port=reuse_port)
        self._answers = answers

    async def start(self) -> None:
        await web.BaseSite.start(self)  # registers the site with its runner
        server = self._runner.server
        assert server is not None
        answers = self._answers
        self._server = await asyncio.get_running_loop().create_server(
            lambda: FastProtocol(server(), answers), self._host, self._port,
            backlog=self._backlog, reuse_address=self._reuse_address,
            reuse_port=self._reuse_port)
