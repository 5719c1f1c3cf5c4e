"""The playback aiohttp application: middlewares (problems, tokens, access log) composed with
the routes each handler module declares (``routes(ctx)``); shared state lives in ``context``."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from opentelemetry import metrics, trace

from pipeline.http.problems import problem_response
from pipeline.playback import api, jwks, media, openapi, pages, playlists
from pipeline.playback.context import (
    CONTEXT,
    KEEP,
    SERVED,
    VIEWER,
    Context,
    authorize,
    in_path,
)
from pipeline.playback.errors import Problem
from pipeline.playback.fastpath import Answer, head_of, target_token
from pipeline.playback.params import check_id
from pipeline.playback.playlists import TEMPLATE_HEADER
from pipeline.retry import patiently
from pipeline.store.cluster import StoreUnavailable

__all__ = ["AccessLogger", "accounting", "build_app"]

log = logging.getLogger("camlog.playback")
#: Retry-After (seconds) of a 503 while Cassandra is unreachable (the driver retries every <= 2 s).
STORE_RETRY_AFTER_S = 2

#: The handler modules, in registration order; each declares its routes with ``routes(ctx)``.
HANDLERS = (api, playlists, media, pages, jwks, openapi)


_tracer = trace.get_tracer("camlog.playback")
_meter = metrics.get_meter("camlog.playback")
_latency = _meter.create_histogram("camlog.playback.request_duration", unit="ms",
                                   description="time to the response headers, by route")
_VIEWER_WINDOW_S, _VIEWERS_MAX = 60.0, 100_000
_recent_viewers: dict[str, float] = {}  # viewer id -> last request (monotonic), bounded


def _active_viewers(options: Any) -> list[metrics.Observation]:
    cutoff = time.monotonic() - _VIEWER_WINDOW_S
    for vid in [v for v, t in _recent_viewers.items() if t < cutoff]:
        del _recent_viewers[vid]
    return [metrics.Observation(len(_recent_viewers))]


_meter.create_observable_gauge("camlog.playback.viewers", [_active_viewers],
                               description="distinct viewer tokens seen in the last 60 s")


@web.middleware
async def problems(request: web.Request, handler: Callable[[web.Request], Awaitable[Any]]) -> Any:
    """The one place where errors become JSON problem bodies (RFC 9457); one span per request."""
    route = request.match_info.route.resource
    name = route.canonical if route is not None else "unmatched"
    t0 = time.perf_counter()
    with _tracer.start_as_current_span(
            f"{request.method} {name}", kind=trace.SpanKind.SERVER,
            record_exception=False, set_status_on_exception=False) as span:
        resp = await _problems(request, handler)
        ms = (time.perf_counter() - t0) * 1000
        ctx = request.app[CONTEXT]
        kind = request.get(SERVED)  # one playback event per request a handler served
        _account(ctx, request.match_info.get("stream_id", ""), kind, request.get(VIEWER, ""),
                 resp.status, resp.content_length or 0, ms, name)
        span.set_attribute("http.response.status_code", resp.status)
        if kind and resp.status == 200 and ctx.answers is not None and (ttl := request.get(KEEP)):
            _keep(ctx, request, resp, kind, name, ttl)
        return resp


def _account(ctx: Context, stream_id: str, kind: str | None, viewer: str, status: int,
             nbytes: int, ms: float, route: str) -> None:
    """What every answered request counts: latency, the viewers gauge, its playback event."""
    if viewer and len(_recent_viewers) < _VIEWERS_MAX:
        _recent_viewers[viewer] = time.monotonic()
    if kind:
        ctx.record(stream_id, kind, viewer=viewer, status=status, bytes=nbytes, latency_ms=ms)
    _latency.record(ms, {"route": route, "status": status // 100 * 100})


def _keep(ctx: Context, request: web.Request, resp: web.StreamResponse, kind: str, route: str,
          ttl: float) -> None:
    """Hand a 200 answer to a plain GET the fast path can repeat (``fastpath``)."""
    body = getattr(resp, "body", None)
    if (request.method != "GET" or not isinstance(body, bytes)
            or target_token(request.raw_path.encode("latin-1")) is None
            or "Authorization" in request.headers or TEMPLATE_HEADER in request.headers):
        return
    head = head_of(200, "OK", {**resp.headers, **_CORS}, len(body))
    answer = Answer(request.match_info["stream_id"], request.get(VIEWER, ""), kind, route, head,
                    body, 0.0)
    ctx.answers.keep(request.raw_path.encode("latin-1"), answer, ttl)  # type: ignore[union-attr]


def accounting(ctx: Context) -> Callable[[Answer, float], None]:
    """The fast path's accounting of a hit: as ``problems`` accounts a served request."""
    def account(answer: Answer, ms: float) -> None:
        _account(ctx, answer.stream_id, answer.kind, answer.viewer, 200, len(answer.body), ms,
                 answer.route)
    return account


async def _problems(request: web.Request, handler: Callable[[web.Request], Awaitable[Any]]) -> Any:
    try:
        return await handler(request)
    except Problem as p:
        return problem_response(p, request.path)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = exc.reason.lower().replace(" ", "_")
        return problem_response(Problem(exc.status, code), request.path)
    except StoreUnavailable:  # degrade: the client retries; what is cached is still served
        return problem_response(Problem(
            503, "store_unavailable", "the segment store is not answering; retry shortly",
            retry_after=STORE_RETRY_AFTER_S), request.path)
    except Exception:
        log.exception("unhandled error on %s", request.path)
        return problem_response(Problem(500, "internal_error", "see server logs"), request.path)


@web.middleware
async def stream_auth(
    request: web.Request, handler: Callable[[web.Request], Awaitable[Any]]
) -> Any:
    """Every ``/v1/streams/{stream_id}/...`` route: valid id, then a token for that stream."""
    sid = request.match_info.get("stream_id")
    if sid is not None:
        check_id(sid, "stream id")
        authorize(request, sid)
    return await handler(request)


class AccessLogger(AbstractAccessLogger):
    """Access log lines with the path only: the query (it may hold ``token=``) is never logged."""

    @property
    def enabled(self) -> bool:
        """aiohttp skips ``log`` entirely when the logger would drop the line."""
        return self.logger.isEnabledFor(logging.INFO)

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        """One line per request: method, path, status, bytes, milliseconds."""
        self.logger.info(
            "%s %s %s %s %.1fms", request.method, request.rel_url.path, response.status,
            response.body_length, time * 1000.0,
        )


_CORS = {
    "Access-Control-Allow-Origin": "*",  # tokens, not cookies, authorize: any page may embed
    "Access-Control-Expose-Headers": "Content-Length, Content-Range, ETag, Accept-Ranges",
}
_PREFLIGHT = {
    **_CORS,
    "Access-Control-Allow-Methods": "GET, HEAD, POST, OPTIONS",
    "Access-Control-Allow-Headers": "Authorization, Range, If-None-Match, If-Range, Content-Type",
    "Access-Control-Max-Age": "86400",
}


async def _cors(request: web.Request, response: web.StreamResponse) -> None:
    if request.path.startswith("/v1/"):
        response.headers.update(_CORS)


async def _preflight(request: web.Request) -> web.Response:
    return web.Response(status=204, headers=_PREFLIGHT)


def build_app(ctx: Context) -> web.Application:
    """The application with every route; ``ctx.source`` and ``ctx.events`` start with it."""
    app = web.Application(middlewares=[problems, stream_auth], client_max_size=64 << 10)
    app[CONTEXT] = ctx
    app.on_response_prepare.append(_cors)
    app.router.add_route("OPTIONS", "/v1/{tail:.*}", _preflight)
    for handler in HANDLERS:
        for route in handler.routes(ctx):
            app.router.add_routes([route])
            alias = in_path(route.path) if isinstance(route, web.RouteDef) else None
            if alias is not None:
                app.router.add_route(route.method, alias, route.handler)

    async def lifecycle(app: web.Application) -> Any:
        await patiently(ctx.source.start, "playback.start", (StoreUnavailable,))
        if ctx.events is not None:
            ctx.events.start()
        if ctx.follower is not None:
            ctx.follower.start()
        ctx.ready = True
        yield
        ctx.ready = False
        if ctx.follower is not None:
            await ctx.follower.close()
        if ctx.events is not None:
            ctx.events.close()
        await ctx.source.close()
        if ctx.bridge is not None:
            await ctx.bridge.close()

    app.cleanup_ctx.append(lifecycle)
    return app
