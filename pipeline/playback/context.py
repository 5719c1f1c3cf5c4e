"""What every playback handler shares: the request ``Context``, the app/request keys and the
viewer-token check. A leaf module: it imports no handler and nothing imports back into it from
``app`` (the handlers register themselves; ``app`` only composes them)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from pipeline.auth.tokens import TokenError
from pipeline.auth.viewer import verify
from pipeline.playback.cache import ByteCache
from pipeline.playback.errors import Problem
from pipeline.playback.events import EventSink
from pipeline.playback.grants import Grants
from pipeline.playback.source import Source

if TYPE_CHECKING:
    from pipeline.auth.keys import ViewerKeys
    from pipeline.playback.bridgestatus import BridgeStatus
    from pipeline.playback.fastpath import Answers
    from pipeline.playback.follow import Follower
    from pipeline.playback.llhls import LLConfig

__all__ = [
    "CONTEXT",
    "KEEP",
    "SERVED",
    "TOKEN",
    "VIEWER",
    "Context",
    "authorize",
    "in_path",
    "token_in_path",
    "token_of",
    "viewer_id",
]

CONTEXT: web.AppKey[Context] = web.AppKey("context")
TOKEN: web.RequestKey[str] = web.RequestKey("token", str)
VIEWER: web.RequestKey[str] = web.RequestKey("viewer", str)
#: Set by a handler once it served a request: the PlaybackEvent kind the middleware records.
SERVED: web.RequestKey[str] = web.RequestKey("served", str)
#: Set by a handler whose 200 answer the fast path may repeat to this very target: for how long.
KEEP: web.RequestKey[float] = web.RequestKey("keep", float)


@dataclass
class Context:
    """What every handler needs: settings values, the source, caches, the event sink, a clock."""

    keys: ViewerKeys
    source: Source
    events: EventSink | None = None
    now: Callable[[], float] = time.time
    region: str = ""
    segment_target_s: float = 2.0
    idle_timeout_s: float = 10.0
    max_range_s: int = 6 * 3600
    max_clip_s: int = 600
    cache: ByteCache = field(default_factory=lambda: ByteCache(256 << 20))
    #: The newest live view of each stream, kept without expiry: served (marked stale) while
    #: Cassandra is unreachable.
    last_live: ByteCache = field(default_factory=lambda: ByteCache(32 << 20))
    grants: Grants | None = None
    #: The bridge's view of streams (offline vs behind), or None.
    bridge: BridgeStatus | None = None
    #: Live tails from camlog.segments for LL-HLS, or None (whole segments from Cassandra
    #: only); ``ll`` is the configuration every LL playlist uses.
    follower: Follower | None = None
    ll: LLConfig | None = None
    #: Answers the fast path repeats (``fastpath``), or None when aiohttp answers everything.
    answers: Answers | None = None
    ready: bool = False

    def __post_init__(self) -> None:
        if self.grants is None:
            self.grants = Grants(now=self.now)

    def record(self, stream_id: str, kind: str, **fields: Any) -> None:
        """Queue a playback event; a missing sink or a full queue never fails the request."""
        if self.events is not None:
            self.events.record(stream_id, kind, **fields)


def viewer_id(request: web.Request) -> str:
    """Pseudonymous viewer id for events: a hash of the token, never the token itself."""
    return request.get(VIEWER, "")


def token_of(request: web.Request) -> str | None:
    """The viewer token: ``Authorization: Bearer`` first, else the path's ``/v1/t/<token>/``,
    else ``?token=`` (plain players)."""
    auth = request.headers.get("Authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return request.match_info.get("token") or request.query.get("token")


#: ``/v1/t/<token>/streams/…``: relative URLs in a playlist carry the token with no query, so
#: every viewer's playlist is the same bytes (an edge or CDN caches one copy, rewrites nothing).
_STREAM_ROUTES, _TOKEN_PREFIX = "/v1/streams/{stream_id}", "/v1/t/{token}"


def in_path(route: str) -> str | None:
    """A stream route again with the token in the path (``/v1/streams/{stream_id}…`` →
    ``/v1/t/{token}/streams/{stream_id}…``); None for any other route."""
    if route.startswith(_STREAM_ROUTES):
        return _TOKEN_PREFIX + route.removeprefix("/v1")
    return None


def token_in_path(request: web.Request) -> bool:
    """Whether the request named its token in the path (its playlists then carry none)."""
    return "token" in request.match_info


def authorize(request: web.Request, stream_id: str) -> None:
    """Check the viewer JWT for ``stream_id`` locally (ES256, no network); raise a Problem."""
    ctx = request.app[CONTEXT]
    token = token_of(request)
    if not (token and ctx.grants.allowed(token, stream_id)):  # type: ignore[union-attr]
        try:
            claims = verify(ctx.keys, token, stream_id, ctx.now())
        except TokenError as exc:
            raise Problem(exc.status, exc.problem, exc.detail) from None
        ctx.grants.remember(token, stream_id, claims.exp)  # type: ignore[union-attr, arg-type]
    request[TOKEN] = token or ""
    request[VIEWER] = hashlib.blake2b((token or "").encode(), digest_size=8).hexdigest()
