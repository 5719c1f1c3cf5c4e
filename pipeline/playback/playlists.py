"""Playlist routes: live and time-range HLS, rendered once per stream and signed per viewer.

The live playlist is LL-HLS (``llhls``) while this instance's follower has the stream's tail
(``follow.Follower.fresh``): parts, a preload hint and blocking reload, all from the log, so
every instance answers the same bytes. Otherwise (a stream gone quiet, the follower catching
up after a start, a broker outage) it is the whole-segment playlist from Cassandra's
``live_manifest``, and delivery directives are ignored, as a server without them would.

A rendered playlist is cached as a template whose segment and init URLs end in a placeholder;
each response substitutes the viewer's own token, so the cache is shared by every viewer while
standard players (which do not send headers) still carry the token on every segment request.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from aiohttp import web

from pipeline.playback import llhls
from pipeline.playback.context import CONTEXT, KEEP, SERVED, TOKEN, Context, token_in_path
from pipeline.playback.errors import Problem
from pipeline.playback.hls import render_live, render_vod
from pipeline.playback.params import parse_range
from pipeline.store.cluster import StoreUnavailable
from pipeline.views.timeindex import with_gaps

__all__ = ["LiveView", "load_manifest", "routes"]

_MARK = "__CAMLOG_TOKEN__"
#: Sent by the edge (ops/edge): answer with the placeholder in place of the token, so one cached
#: playlist serves every viewer; the edge writes each viewer's own token into it.
TEMPLATE_HEADER = "X-Camlog-Token-Template"
_M3U8 = "application/vnd.apple.mpegurl"
_IN_QUERY = f"?token={_MARK}"


@dataclass(frozen=True)
class LiveView:
    """A stream's manifest row with its entries parsed and its playlist rendered as a template."""

    row: dict[str, Any]
    template: str
    target: int
    entries: list[dict[str, Any]] = field(default_factory=list)
    loaded: float = 0.0  # when it was read from Cassandra (the context's clock)
    stale: bool = False  # served from the last known state while Cassandra is unreachable

    def keyframes(self) -> list[dict[str, Any]]:
        """The window's segments that start with a keyframe, oldest first."""
        return [e for e in self.entries if e.get("independent", True)]


def _seg_url(seg: Any) -> str:
    return f"segments/{seg['segment_id']}.m4s?token={_MARK}"


def _part_url(msn: int, index: int) -> str:
    return f"parts/{msn}.{index}.m4s?token={_MARK}"


_LL_URLS = llhls.Urls(segment=lambda s: _seg_url({"segment_id": s.segment_id}),
                      part=_part_url, init=lambda i: _init_url(i))


def _init_url(init_id: str) -> str:
    return f"init/{init_id}.mp4?token={_MARK}"


def _size(v: LiveView | None) -> int:
    return 0 if v is None else 3 * len(v.template) + 512


async def load_manifest(ctx: Context, sid: str) -> LiveView | None:
    """The live view through the cache, kept about half a target duration; while Cassandra is
    unreachable, the last one read (``stale``), if this instance has one."""
    hit = ctx.cache.cached(("live", sid))
    if hit is not None:  # the common case: no task, no timer, no closure per request
        return hit

    async def load() -> LiveView | None:
        import json

        row = await ctx.source.live_manifest(sid)
        if row is None:
            return None
        text = render_live(row, _seg_url, _init_url)
        raw = row.get("window_entries") or row.get("entries") or "[]"
        entries = sorted(json.loads(raw), key=lambda e: e["sequence"])
        target = int(row.get("target_duration") or 0) or max(1, round(ctx.segment_target_s))
        view = LiveView(row, text, target, entries, loaded=ctx.now())
        ctx.last_live.put(("live", sid), view, _size(view))
        return view

    def ttl(v: LiveView | None) -> float:
        # In-process freshness is what adds to glass-to-playable latency: keep it short (one
        # coalesced Cassandra read per stream per 250 ms); CDNs still get max-age = target / 2.
        return 1.0 if v is None else LIVE_REFRESH_S

    fresh = ctx.cache.get_or_load(("live", sid), load, size=_size, ttl=ttl)
    last = ctx.last_live.get(("live", sid))
    try:
        if last is None:
            return await fresh
        # Do not make a viewer wait on a slow store when a recent view exists (the load goes on
        # in the background, shared by every waiter).
        return await asyncio.wait_for(asyncio.shield(fresh), STALE_AFTER_S)
    except (StoreUnavailable, TimeoutError):
        if last is None:
            raise
        return dataclasses.replace(last, stale=True)


LIVE_REFRESH_S = 0.25
#: How long a live request waits for a refresh before it is answered from the last known view.
STALE_AFTER_S = 1.0


def _respond(request: web.Request, template: str, cache_control: str) -> web.Response:
    if token_in_path(request):  # relative URLs inherit the token's path: none in the text
        body = template.replace(_IN_QUERY, "").encode()
    elif request.headers.get(TEMPLATE_HEADER) == "1":
        body = template.encode()
    else:
        body = template.replace(_MARK, quote(request.get(TOKEN, ""), safe="")).encode()
    etag = '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'
    headers = {"ETag": etag, "Cache-Control": cache_control}
    inm = request.headers.get("If-None-Match")
    if inm and etag in (t.strip() for t in inm.split(",")):
        return web.Response(status=304, headers=headers)
    return web.Response(body=body, content_type=_M3U8, headers=headers)


async def _live_ll(request: web.Request, ctx: Context, sid: str) -> web.Response | None:
    """The LL-HLS answer, holding a blocking request until its part exists; None: not live."""
    req = llhls.parse_request(request.query)
    if isinstance(req, llhls.Problem):
        raise Problem(400, "bad_delivery_directive", req.detail)
    arrived = ctx.now()
    while True:
        window = ctx.follower.window(sid)
        if window is None or not ctx.follower.fresh(sid):
            return None
        out = llhls.decide(window, req, ctx.ll, _LL_URLS, arrived=arrived, now=ctx.now())
        if isinstance(out, llhls.Hold):
            await ctx.follower.wait(sid, out.deadline - ctx.now())
            continue
        if isinstance(out, llhls.Problem):
            code = "bad_delivery_directive" if out.status == 400 else "part_not_available"
            extra = {"retry_after": out.retry_after} if out.retry_after else {}
            raise Problem(out.status, code, out.detail, **extra)
        break
    request[SERVED] = "MANIFEST"
    stalled = ctx.follower.age(sid)
    if stalled > 3 * ctx.ll.part_target_us / 1_000_000:
        # no new part for three part targets: the pipeline is held up (e.g. Cassandra is
        # down); say how old this state is, and let caches keep it only briefly
        return _stale(request, out.text, stalled)
    # A blocking answer holds the part asked for whenever it is served: caches may keep it
    # (keyed by the full query) for a target duration; a plain reload only for one part target.
    age = ctx.ll.target_duration if out.blocking else max(1, ctx.ll.part_target_us // 1_000_000)
    return _respond(request, out.text, f"public, max-age={age}")


def _stale(request: web.Request, template: str, age_s: float) -> web.Response:
    resp = _respond(request, template, "public, max-age=1, stale-if-error=30")
    resp.headers["Age"] = str(int(age_s))
    return resp


def _last_ll(request: web.Request, ctx: Context, sid: str) -> web.Response | None:
    """Cassandra is unreachable: the last LL window this instance has, marked stale."""
    window = ctx.follower.window(sid) if ctx.follower is not None else None
    if window is None:
        return None
    text, _ = llhls.render(window, ctx.ll, _LL_URLS)
    request[SERVED] = "MANIFEST"
    return _stale(request, text, ctx.follower.age(sid))


async def live(request: web.Request) -> web.Response:
    """GET /v1/streams/{stream_id}/live.m3u8[?_HLS_msn=M[&_HLS_part=N]][&_HLS_skip=YES]"""
    ctx = request.app[CONTEXT]
    sid = request.match_info["stream_id"]
    if ctx.follower is not None:
        resp = await _live_ll(request, ctx, sid)
        if resp is not None:
            return resp
    try:
        view = await load_manifest(ctx, sid)
    except StoreUnavailable:
        resp = _last_ll(request, ctx, sid)
        if resp is None:
            raise
        return resp
    if view is None:
        raise Problem(404, "unknown_stream", "no live manifest for this stream")
    age = 60 if view.row.get("ended") else max(1, view.target // 2)
    if view.stale:  # last known state: say how old, and let caches keep it only briefly
        resp = _stale(request, view.template, max(0.0, ctx.now() - view.loaded))
    else:
        resp = _respond(request, view.template, f"public, max-age={age}")
        # the fast path may repeat it for one refresh period (at most that much staler)
        request[KEEP] = LIVE_REFRESH_S
    request[SERVED] = "MANIFEST"
    return resp


async def vod(request: web.Request) -> web.Response:
    """GET /v1/streams/{stream_id}/vod.m3u8?start=&end=[&gaps=discontinuity|gap]"""
    ctx = request.app[CONTEXT]
    sid = request.match_info["stream_id"]
    now_us = int(ctx.now() * 1_000_000)
    start_us, end_us = parse_range(request.query.get("start"), request.query.get("end"),
                                   ctx.max_range_s * 1_000_000, now_us)
    gap_mode = request.query.get("gaps", "discontinuity")
    if gap_mode not in ("discontinuity", "gap"):
        raise Problem(400, "bad_gaps", "gaps must be 'discontinuity' or 'gap'")
    # A range that reaches the live edge is an EVENT playlist the player keeps polling.
    ended = end_us < now_us - int(ctx.segment_target_s * 6_000_000)
    live_age = max(0.5, ctx.segment_target_s / 2)

    async def load() -> str | None:
        rows = await ctx.source.segments(sid, start_us, end_us)
        items = with_gaps(rows, start_us, end_us, trailing=ended)
        if not any(isinstance(i, dict) for i in items):
            return None
        return render_vod(items, _seg_url, _init_url, ended=ended, gap_mode=gap_mode)

    template = await ctx.cache.get_or_load(
        ("vod", sid, start_us, end_us, gap_mode), load,
        size=lambda t: 0 if t is None else 3 * len(t) + 256,
        ttl=lambda t: 1.0 if t is None else (300.0 if ended else live_age))
    if template is None:
        if ended and await ctx.source.live_manifest(sid) is None:
            raise Problem(404, "unknown_stream", "no such stream")
        raise Problem(404, "no_recording", "nothing was recorded in that range")
    cache = "public, max-age=300" if ended else f"public, max-age={max(1, int(live_age))}"
    resp = _respond(request, template, cache)
    request[SERVED] = "MANIFEST"
    return resp


def routes(_ctx: Context) -> list[web.RouteDef]:
    """The playlist routes."""
    return [web.get("/v1/streams/{stream_id}/live.m3u8", live),
            web.get("/v1/streams/{stream_id}/vod.m3u8", vod)]
