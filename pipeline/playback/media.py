"""Media routes: init segments, media segments and LL-HLS parts (immutable bytes), MP4 clips
and JPEG thumbnails."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from pipeline.playback import llhls
from pipeline.playback.boxes import BoxError
from pipeline.playback.clip import ClipBuilder, ClipPlan
from pipeline.playback.context import CONTEXT, KEEP, SERVED, Context
from pipeline.playback.errors import Problem
from pipeline.playback.params import check_id, parse_byte_range, parse_range, parse_time
from pipeline.playback.playlists import load_manifest
from pipeline.playback.thumbnail import ThumbnailError, render_jpeg
from pipeline.views.timeindex import covering

__all__ = ["Blob", "load_init", "load_segment", "routes", "send_bytes"]

IMMUTABLE = "public, max-age=31536000, immutable"
#: How long the fast path repeats an immutable answer (each hit still checks the token's grant).
KEEP_IMMUTABLE_S = 60.0
log = logging.getLogger("camlog.playback.media")
_NOT_FOUND_TTL = 1.0  # a missing key is remembered briefly so a herd of 404s costs one read


@dataclass(frozen=True)
class Blob:
    """Stored bytes with their strong ETag, computed once when loaded into the cache."""

    data: bytes
    etag: str

    def __len__(self) -> int:
        return len(self.data)


def _blob(data: bytes | None) -> Blob | None:
    if data is None:
        return None
    return Blob(data, '"' + hashlib.blake2b(data, digest_size=16).hexdigest() + '"')


def _size(v: Blob | None) -> int:
    return 0 if v is None else len(v.data) + 200


def _ttl(v: Blob | None) -> float | None:
    return _NOT_FOUND_TTL if v is None else None


async def load_segment(ctx: Context, stream_id: str, segment_id: str) -> Blob | None:
    """Segment bytes through the cache: one Cassandra read per key however many ask at once."""
    async def load() -> Blob | None:
        return _blob(await ctx.source.segment_bytes(stream_id, segment_id))
    return await ctx.cache.get_or_load(("seg", stream_id, segment_id), load, size=_size, ttl=_ttl)


async def load_init(ctx: Context, stream_id: str, init_id: str) -> Blob | None:
    """Init segment bytes through the cache."""
    async def load() -> Blob | None:
        return _blob(await ctx.source.init_bytes(stream_id, init_id))
    return await ctx.cache.get_or_load(("init", stream_id, init_id), load, size=_size, ttl=_ttl)


def _etag_matches(request: web.Request, etag: str) -> bool:
    inm = request.headers.get("If-None-Match")
    if not inm:
        return False
    return inm.strip() == "*" or etag in (t.strip().removeprefix("W/") for t in inm.split(","))


def send_bytes(request: web.Request, blob: Blob, content_type: str, cache: str) -> web.Response:
    """200, 206 or 304 for ``blob`` with ETag, Cache-Control and Range handled (RFC 9110)."""
    headers = {"ETag": blob.etag, "Cache-Control": cache, "Accept-Ranges": "bytes"}
    if _etag_matches(request, blob.etag):
        return web.Response(status=304, headers=headers)
    rng = None
    if_range = request.headers.get("If-Range")
    if if_range is None or if_range.strip() == blob.etag:
        rng = parse_byte_range(request.headers.get("Range"), len(blob.data))
    if rng is None:
        return web.Response(body=blob.data, content_type=content_type, headers=headers)
    first, last = rng
    headers["Content-Range"] = f"bytes {first}-{last}/{len(blob.data)}"
    return web.Response(status=206, body=memoryview(blob.data)[first:last + 1],
                        content_type=content_type, headers=headers)


async def segment(request: web.Request) -> web.Response:
    """GET /v1/streams/{stream_id}/segments/{segment_id}.m4s"""
    ctx = request.app[CONTEXT]
    sid = request.match_info["stream_id"]
    seg_id = check_id(request.match_info["segment_id"], "segment id")
    blob = await load_segment(ctx, sid, seg_id)
    if blob is None:
        raise Problem(404, "segment_not_found", "no such segment (expired or never stored)")
    resp = send_bytes(request, blob, "video/iso.segment", IMMUTABLE)
    request[SERVED], request[KEEP] = "SEGMENT", KEEP_IMMUTABLE_S
    return resp


async def part(request: web.Request) -> web.Response:
    """GET /v1/streams/{stream_id}/parts/{msn}.{index}.m4s — an LL-HLS part by (msn, index).

    A part named by a preload hint may not exist yet: the request is held until it does (or
    503 after three target durations). Parts are immutable: the same (msn, index) is the same
    bytes on every instance and after any restart.
    """
    ctx = request.app[CONTEXT]
    sid = request.match_info["stream_id"]
    msn, index = _bounded(request.match_info["msn"]), _bounded(request.match_info["index"])
    if ctx.follower is None:
        raise Problem(404, "part_not_found", "this instance serves no LL-HLS parts")
    deadline = ctx.now() + ctx.ll.hold_s
    while True:
        window = ctx.follower.window(sid)
        status = "unknown" if window is None else llhls.part_status(window, msn, index)
        if status == "ready":
            break
        newest = window.newest_part[0] if window is not None else -1
        if status != "pending" or msn > newest + 1:
            raise Problem(404, "part_not_found", "no such part in the live window")
        if ctx.now() >= deadline:
            raise Problem(503, "part_not_available", "the part did not appear in time",
                          retry_after=1)
        await ctx.follower.wait(sid, deadline - ctx.now())
    seg = window.segment(msn) or window.current
    assert seg is not None and seg.sequence == msn

    async def load() -> Blob | None:
        return _blob(await ctx.source.part_bytes(sid, seg.segment_id, index))
    blob = await ctx.cache.get_or_load(("part", sid, seg.segment_id, index), load, size=_size,
                                       ttl=_ttl)
    if blob is None:
        raise Problem(404, "part_not_found", "the part is not in storage (expired?)")
    resp = send_bytes(request, blob, "video/iso.segment", IMMUTABLE)
    request[SERVED], request[KEEP] = "SEGMENT", KEEP_IMMUTABLE_S
    return resp


def _bounded(raw: str) -> int:
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 12):
        raise Problem(400, "bad_part", "part numbers are decimal integers")
    return int(raw)


async def init(request: web.Request) -> web.Response:
    """GET /v1/streams/{stream_id}/init/{init_id}.mp4"""
    ctx = request.app[CONTEXT]
    sid = request.match_info["stream_id"]
    init_id = check_id(request.match_info["init_id"], "init id")
    blob = await load_init(ctx, sid, init_id)
    if blob is None:
        raise Problem(404, "init_not_found", "no such init segment")
    resp = send_bytes(request, blob, "video/mp4", IMMUTABLE)
    request[SERVED], request[KEEP] = "INIT", KEEP_IMMUTABLE_S
    return resp


async def _plan_clip(ctx: Context, sid: str, start_us: int, end_us: int) -> ClipPlan:
    rows = covering(await ctx.source.segments(sid, start_us, end_us), start_us, end_us)
    if not rows:
        raise Problem(404, "no_recording", "nothing was recorded in that range")
    init_id = rows[0]["init_id"]
    init_blob = await load_init(ctx, sid, init_id)
    if init_blob is None:
        raise Problem(404, "init_not_found", "the recording's init segment has expired")
    try:
        builder = ClipBuilder(init_blob.data, start_us, end_us)
        for row in rows:
            if row["init_id"] != init_id:
                break  # a configuration change: one clip holds one codec configuration
            blob = await load_segment(ctx, sid, row["segment_id"])
            if blob is None:
                continue  # expired or lost: the clip skips it rather than failing
            await asyncio.to_thread(builder.add, row["segment_id"], blob.data, row["start_time"])
        return builder.plan()
    except (BoxError, ValueError) as exc:
        raise Problem(404, "no_recording", f"no playable samples in that range ({exc})") from None


async def clip(request: web.Request) -> web.StreamResponse:
    """GET /v1/streams/{stream_id}/clip.mp4?start=&end= — progressive MP4 with Range support."""
    ctx = request.app[CONTEXT]
    sid = request.match_info["stream_id"]
    now_us = int(ctx.now() * 1_000_000)
    start_us, end_us = parse_range(request.query.get("start"), request.query.get("end"),
                                   ctx.max_clip_s * 1_000_000, now_us)
    plan: ClipPlan = await ctx.cache.get_or_load(
        ("clip", sid, start_us, end_us), lambda: _plan_clip(ctx, sid, start_us, end_us),
        size=lambda p: len(p.header) + 64 * len(p.runs), ttl=30.0)
    etag = '"' + hashlib.blake2b(plan.header + repr(plan.runs).encode(),
                                 digest_size=16).hexdigest() + '"'
    past = end_us < now_us - 60_000_000
    headers = {"ETag": etag, "Accept-Ranges": "bytes",
               "Cache-Control": "public, max-age=86400" if past else "no-cache",
               "Content-Disposition": f'inline; filename="{sid}.mp4"'}
    if _etag_matches(request, etag):
        return web.Response(status=304, headers=headers)
    first, last = 0, plan.size - 1
    status = 200
    rng = parse_byte_range(request.headers.get("Range"), plan.size)
    if rng is not None and request.headers.get("If-Range", etag) == etag:
        (first, last), status = rng, 206
        headers["Content-Range"] = f"bytes {first}-{last}/{plan.size}"
    resp = web.StreamResponse(status=status, headers=headers)
    resp.content_type = "video/mp4"
    resp.content_length = last - first + 1
    await resp.prepare(request)

    async def fetch(segment_id: str) -> bytes:
        blob = await load_segment(ctx, sid, segment_id)
        if blob is None:  # expired between planning and sending: cannot keep the promise
            raise ConnectionAbortedError("segment vanished mid-clip")
        return blob.data

    try:
        async for chunk in plan.stream(fetch, first, last):
            await resp.write(chunk)
    except ConnectionAbortedError:
        # Headers (and Content-Length) are already sent: the only honest signal left is to
        # cut the connection, so the client sees a short body instead of a corrupt file.
        log.warning("clip of %s cut short: a segment expired while streaming", sid)
        if request.transport is not None:
            request.transport.abort()
        return resp
    await resp.write_eof()
    request[SERVED] = "CLIP"
    return resp


async def _thumb_segment(ctx: Context, sid: str, at: str | None) -> dict[str, Any]:
    if at is None:
        view = await load_manifest(ctx, sid)
        entries = view.keyframes() if view is not None else []
        if not entries:
            raise Problem(404, "no_recording", "the stream has no recent segment")
        return entries[-1]
    at_us = parse_time(at, "at")
    lookback = 300_000_000
    rows = await ctx.source.segments(sid, at_us - lookback, at_us + 1)
    rows = [r for r in covering(rows, at_us - lookback, at_us + 1)
            if r["start_time"] <= at_us and r.get("independent", True)]
    if not rows:
        raise Problem(404, "no_recording", "no keyframe recorded in the 5 minutes before 'at'")
    return rows[-1]


async def thumbnail(request: web.Request) -> web.Response:
    """GET /v1/streams/{stream_id}/thumbnail.jpg?at= — keyframe at/before ``at`` (default now)."""
    ctx = request.app[CONTEXT]
    sid = request.match_info["stream_id"]
    at = request.query.get("at")
    seg = await _thumb_segment(ctx, sid, at)

    async def render() -> Blob:
        init_blob = await load_init(ctx, sid, seg["init_id"])
        seg_blob = await load_segment(ctx, sid, seg["segment_id"])
        if init_blob is None or seg_blob is None:
            raise Problem(404, "no_recording", "the keyframe's segment has expired")
        try:
            jpeg = await asyncio.to_thread(render_jpeg, init_blob.data, seg_blob.data)
        except ThumbnailError as exc:
            raise Problem(422, "undecodable", str(exc)) from None
        return _blob(jpeg)  # type: ignore[return-value]

    blob = await ctx.cache.get_or_load(("thumb", sid, seg["segment_id"]), render,
                                       size=lambda b: len(b.data) + 200)
    cache = "public, max-age=3600" if at else f"public, max-age={max(1, int(ctx.segment_target_s))}"
    resp = send_bytes(request, blob, "image/jpeg", cache)
    request[SERVED] = "THUMBNAIL"
    return resp


def routes(_ctx: Context) -> list[web.RouteDef]:
    """The media routes."""
    return [web.get("/v1/streams/{stream_id}/segments/{segment_id}.m4s", segment),
            web.get("/v1/streams/{stream_id}/init/{init_id}.mp4", init),
            web.get("/v1/streams/{stream_id}/parts/{msn}.{index}.m4s", part),
            web.get("/v1/streams/{stream_id}/clip.mp4", clip),
            web.get("/v1/streams/{stream_id}/thumbnail.jpg", thumbnail)]
