"""JSON routes: stream listing with device state, player beacons, health and readiness."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from pipeline.auth.tokens import TokenError, scope_allows
from pipeline.auth.viewer import verify
from pipeline.playback.context import CONTEXT, Context, authorize, token_of, viewer_id
from pipeline.playback.errors import Problem
from pipeline.playback.liveness import BridgeView, Liveness, classify, default_slack_us
from pipeline.playback.params import check_id, parse_limit

__all__ = ["routes", "stream_json", "viewer_filter"]

_BEACON_FIELDS = {"startup_ms": float, "rebuffers": int, "error": str}


def viewer_filter(ctx: Context, request: web.Request) -> Callable[[str], bool]:
    """For a valid viewer token (any stream), a predicate telling which streams it covers."""
    try:
        claims = verify(ctx.keys, token_of(request), None, ctx.now())  # signature and expiry
    except TokenError as exc:
        raise Problem(exc.status, exc.problem, exc.detail) from None
    return lambda sid: scope_allows(claims.scopes, sid)


def _iso(us: int | None) -> str | None:
    if not us:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(us / 1e6)) + f".{us // 1000 % 1000:03d}Z"


def stream_json(row: dict[str, Any], now_us: int, idle_us: int,
                live: Liveness | None = None) -> dict[str, Any]:
    """The public shape of one stream's device state, with its derived ``state``."""
    sid = row["stream_id"]
    live = live or classify(row, None, now_us, idle_us, 0)
    return {
        "stream_id": sid,
        "online": live.online,
        "state": live.state,
        "behind_s": live.behind_s,
        "offline_since": _iso(live.offline_since_us),
        "codec": row.get("codec") or "",
        "width": row.get("width") or 0,
        "height": row.get("height") or 0,
        "fps": round(float(row.get("fps") or 0.0), 2),
        "bitrate": int(row.get("bitrate") or 0),
        "last_seen": _iso(row.get("last_seen")),
        "last_seen_us": row.get("last_seen") or 0,
        "connected_since": _iso(row.get("connected_since")),
        "segments": int(row.get("segments") or 0),
        "gaps": int(row.get("gaps") or 0),
        "links": {
            "live": f"/v1/streams/{sid}/live.m3u8",
            "thumbnail": f"/v1/streams/{sid}/thumbnail.jpg",
            "watch": f"/watch/{sid}",
        },
    }


async def _bridge_views(ctx: Context, ids: list[str]) -> dict[str, BridgeView | None] | None:
    """The bridge's view of ``ids`` (one request, cached), or None without a bridge answer."""
    if ctx.bridge is None or not ids:
        return None
    return await ctx.bridge.lookup(ids)


def _with_state(ctx: Context, rows: list[tuple[str, dict[str, Any] | None]],
                views: dict[str, BridgeView | None] | None) -> list[dict[str, Any]]:
    """``stream_json`` of (id, device_state row or None) pairs, classified with the bridge's
    view."""
    now_us = int(ctx.now() * 1_000_000)
    idle_us = int(ctx.idle_timeout_s * 1_000_000)
    slack_us = default_slack_us(ctx.segment_target_s)
    out = []
    for sid, row in rows:
        bridge = None
        if views is not None:  # answered: an id it does not know is a silent stream
            bridge = views.get(sid) or BridgeView(False, 0, 0)
        live = classify(row, bridge, now_us, idle_us, slack_us)
        out.append(stream_json(row or {"stream_id": sid}, now_us, idle_us, live))
    return out


async def streams(request: web.Request) -> web.Response:
    """GET /v1/streams?limit=&cursor= — the streams this token may see, with device state."""
    ctx = request.app[CONTEXT]
    allowed = viewer_filter(ctx, request)
    limit = parse_limit(request.query.get("limit"), 50, 500)
    cursor = request.query.get("cursor")
    try:
        rows, nxt = await ctx.source.list_streams(limit, cursor)
    except ValueError:
        raise Problem(400, "bad_cursor", "cursor is not one this server issued") from None
    rows = [r for r in rows if allowed(r["stream_id"])]
    ids = [r["stream_id"] for r in rows]
    items = _with_state(ctx, list(zip(ids, rows, strict=True)), await _bridge_views(ctx, ids))
    items.sort(key=lambda s: s["stream_id"])
    return web.json_response({"streams": items, "next_cursor": nxt},
                             headers={"Cache-Control": "private, max-age=2"})


async def stream(request: web.Request) -> web.Response:
    """GET /v1/streams/{stream_id} — one stream's device state; a stream the bridge hears but
    the worker has not reduced yet is answered too (``waiting``)."""
    ctx = request.app[CONTEXT]
    sid = request.match_info["stream_id"]
    row = await ctx.source.device_state(sid)
    views = await _bridge_views(ctx, [sid])
    heard = (views or {}).get(sid)
    if row is None and not (heard and heard.connected):
        raise Problem(404, "unknown_stream", "no such stream")
    (item,) = _with_state(ctx, [(sid, row)], views)
    return web.json_response(item, headers={"Cache-Control": "private, max-age=2"})


async def beacon(request: web.Request) -> web.Response:
    """POST /v1/beacons — a player's report (startup time, rebuffers, error) becomes an event."""
    ctx = request.app[CONTEXT]
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError):
        raise Problem(400, "bad_json", "body must be a JSON object") from None
    if not isinstance(body, dict):
        raise Problem(400, "bad_json", "body must be a JSON object")
    sid = check_id(str(body.get("stream_id", "")), "stream id")
    authorize(request, sid)
    fields: dict[str, Any] = {}
    for name, kind in _BEACON_FIELDS.items():
        value = body.get(name)
        if value is None:
            continue
        try:
            value = kind(value)
        except (TypeError, ValueError, OverflowError):  # OverflowError: int(inf) from 1e400
            raise Problem(400, "bad_beacon", f"{name} must be a {kind.__name__}") from None
        if kind is str:
            value = value[:500]
        elif not 0 <= value < 1e9:
            raise Problem(400, "bad_beacon", f"{name} out of range")
        fields[name] = value
    ctx.record(sid, "BEACON", viewer=viewer_id(request), **fields)
    return web.json_response({"accepted": True}, status=202)


async def healthz(request: web.Request) -> web.Response:
    """Liveness: the process answers."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Readiness: started. Without Cassandra the service still serves what it knows (stale live
    playlists, cached media, 503 for the rest), so it stays in the load balancer: "degraded"."""
    ctx = request.app[CONTEXT]
    store = ctx.ready and await ctx.source.ping()
    status = "not_ready" if not ctx.ready else "ready" if store else "degraded"
    body: dict[str, Any] = {"status": status, "store": "ok" if store else "unavailable"}
    if ctx.events is not None:
        body["events"] = {"sent": ctx.events.sent, "dropped": ctx.events.dropped}
    return web.json_response(body, status=200 if ctx.ready else 503)


def routes(_ctx: Context) -> list[web.RouteDef]:
    """The JSON routes."""
    return [web.get("/v1/streams", streams), web.get("/v1/streams/{stream_id}", stream),
            web.post("/v1/beacons", beacon), web.get("/healthz", healthz),
            web.get("/readyz", readyz)]
