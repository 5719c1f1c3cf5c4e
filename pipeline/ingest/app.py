"""The aiohttp application of ``camlog bridge``: routes, auth, limits and the one error mapper."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from pipeline.auth.keys import viewer_keys
from pipeline.auth.tokens import Claims, TokenError, authenticate, authorize
from pipeline.config import Settings
from pipeline.http.problems import problem_response
from pipeline.ingest.bridge import Bridge
from pipeline.ingest.checks import STREAM_ID_RE
from pipeline.ingest.framing import RESUME_HEADER, FramingError, parse_chunk
from pipeline.ingest.problems import IngestError
from pipeline.ingest.ratelimit import RateLimiter
from pipeline.kafka.producer import EventProducer
from pipeline.telemetry import get_logger, get_meter, get_tracer

__all__ = ["BRIDGE", "build_app"]

BRIDGE = web.AppKey("bridge", Bridge)
_ID = re.compile(STREAM_ID_RE)
_FRAMING_STATUS = {"too_large": 413, "unknown_codec": 415}
_log = get_logger("camlog.ingest")
_tracer = get_tracer("camlog.ingest")
_rejects = get_meter("camlog.ingest").create_counter(
    "camlog.ingest.rejects", description="refused requests by reason")


def _to_problem(exc: Exception) -> IngestError:
    """Every domain error that can leave a handler, as one ``IngestError``."""
    if isinstance(exc, IngestError):
        return exc
    if isinstance(exc, TokenError):
        return IngestError(exc.status, exc.problem, exc.detail)
    if isinstance(exc, FramingError):
        return IngestError(_FRAMING_STATUS.get(exc.reason, 400),
                           "unsupported_codec" if exc.reason == "unknown_codec" else "bad_framing",
                           exc.detail, reason=exc.reason)
    raise exc


@web.middleware
async def _problems(request: web.Request, handler: Callable[[web.Request], Awaitable]) -> Any:
    """The one place that turns refusals (and unhandled errors) into problem responses."""
    try:
        return await handler(request)
    except (IngestError, TokenError, FramingError) as exc:
        err = _to_problem(exc)
        _log.info("refused %s %s: %s %s", request.method, request.path, err.status, err.problem)
    except web.HTTPException as exc:  # aiohttp's own 404/405/413: same problem shape
        if exc.status < 400:
            raise
        err = IngestError(exc.status, exc.reason.lower().replace(" ", "_"), exc.reason)
    except Exception:
        _log.exception("unhandled error on %s %s", request.method, request.path)
        err = IngestError(500, "internal_error", "see server logs")
    _rejects.add(1, {"reason": err.problem, "status": str(err.status)})
    return problem_response(err, request.path)


class _Authenticator:
    """Verified token signatures remembered per exact token string (bounded LRU).

    Only the time-independent check is cached; kind, expiry and scope run on every request.
    """

    def __init__(self, keys: Mapping[str, bytes], size: int = 10_000):
        self.keys, self.size = keys, size
        self._seen: OrderedDict[str, Claims] = OrderedDict()

    def __call__(self, request: web.Request, now: float) -> str:
        """Stream id from the path, checked for syntax and against the bearer token."""
        stream_id = request.match_info["stream_id"]
        if not _ID.fullmatch(stream_id):
            raise IngestError(400, "bad_stream_id", f"stream id must match {STREAM_ID_RE}")
        header = request.headers.get("Authorization", "")
        token = header[7:].strip() if header[:7].lower() == "bearer " else None
        claims = self._seen.get(token) if token else None
        if claims is None:
            claims = authenticate(self.keys, token)
            self._seen[token] = claims
            if len(self._seen) > self.size:
                self._seen.popitem(last=False)
        authorize(claims, "device", stream_id, now)
        return stream_id


async def _read_body(request: web.Request, limit: int) -> bytes:
    if request.content_length is not None and request.content_length > limit:
        raise IngestError(413, "too_large", f"chunk body exceeds {limit} bytes", limit=limit)
    buf = bytearray()
    async for part in request.content.iter_any():
        buf += part
        if len(buf) > limit:
            raise IngestError(413, "too_large", f"chunk body exceeds {limit} bytes", limit=limit)
    return bytes(buf)


def build_app(settings: Settings, *, producer: EventProducer | None = None,
              rate: float | None = None, burst: float | None = None,
              recover_s: float | None = None, ack_timeout_s: float | None = None,
              now: Callable[[], float] = time.time) -> web.Application:
    """The bridge application; Kafka starts/stops with the app (``on_startup``/``on_cleanup``).

    ``rate``, ``burst``, ``recover_s`` and ``ack_timeout_s`` override the ``ingest_*`` settings.
    """
    rate = settings.ingest_rate if rate is None else rate
    burst = settings.ingest_burst if burst is None else burst
    recover_s = settings.ingest_recover_s if recover_s is None else recover_s
    ack_timeout_s = settings.ingest_ack_timeout_s if ack_timeout_s is None else ack_timeout_s
    from pipeline.ingest import openapi, status
    from pipeline.ingest.push import push_handler
    from pipeline.ingest.recovery import recover

    # librdkafka keeps retrying a message (in order) for the delivery timeout: longer than a
    # push may wait, so no chunk of a push fails before the push's own bound ends it.
    producer = producer or EventProducer(
        settings.kafka, delivery_timeout_ms=int((settings.push_buffer_s + 5) * 1000))
    bridge = Bridge(producer, idle_timeout_s=settings.idle_timeout_s,
                    ack_timeout_s=ack_timeout_s, now=now)
    limiter = RateLimiter(rate, burst)
    auth = _Authenticator(settings.require_keys())
    state: dict[str, Any] = {"recovered": False}
    app = web.Application(middlewares=[_problems], client_max_size=settings.chunk_max_bytes)
    app[BRIDGE] = bridge

    def gate(stream_id: str, t: float) -> None:
        if not state["recovered"]:
            raise IngestError(503, "starting", "bridge is recovering stream state", retry_after=1)
        wait = limiter.take(stream_id, t)
        if wait:
            raise IngestError(429, "rate_limited", "too many requests for this stream",
                              retry_after=wait)

    async def chunks(request: web.Request) -> web.Response:
        t = now()
        with _tracer.start_as_current_span("ingest.chunk") as span:
            stream_id = auth(request, t)
            span.set_attribute("camlog.stream_id", stream_id)
            gate(stream_id, t)
            body = await _read_body(request, settings.chunk_max_bytes)
            chunk = parse_chunk(body, settings.chunk_max_bytes)
            span.set_attribute("camlog.seq", chunk.seq)
            # Set by the SDK once another bridge (another region) acked this stream.
            resumed = request.headers.get(RESUME_HEADER) == "1"
            ack = await bridge.submit(stream_id, chunk, received=t, resumed=resumed)
            return web.json_response(ack)

    async def push(request: web.Request) -> web.StreamResponse:
        t = now()
        with _tracer.start_as_current_span("ingest.push") as span:
            stream_id = auth(request, t)
            span.set_attribute("camlog.stream_id", stream_id)
            gate(stream_id, t)
            return await push_handler(request, bridge, stream_id, settings.chunk_max_bytes,
                                      buffer_bytes=settings.push_buffer_bytes,
                                      buffer_s=settings.push_buffer_s,
                                      part_target_s=settings.part_target_s)

    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_request: web.Request) -> web.Response:
        ok = state["recovered"] and await asyncio.to_thread(producer.ping, 2.0)
        return web.json_response({"ready": bool(ok), "kafka": bool(ok)}, status=200 if ok else 503)

    async def idle_loop() -> None:
        while True:
            await asyncio.sleep(min(1.0, settings.idle_timeout_s / 4))
            with contextlib.suppress(Exception):
                await bridge.expire_idle()

    async def on_startup(_app: web.Application) -> None:
        await producer.start()

        async def do_recover() -> None:
            try:
                states = await asyncio.to_thread(recover, settings.kafka, recover_s, now())
                for st in states:
                    bridge.table.restore(st)
                _log.info("recovered state of %d stream(s) from the last %.0f s of the log",
                          len(states), recover_s)
            except Exception as exc:  # an empty or missing topic is not fatal: start fresh
                _log.warning("stream state recovery skipped: %s", exc)
            state["recovered"] = True

        state["tasks"] = [asyncio.create_task(do_recover()), asyncio.create_task(idle_loop())]

    async def on_cleanup(_app: web.Application) -> None:
        for task in state.get("tasks", []):
            task.cancel()
        await producer.close()

    app.router.add_post("/v1/streams/{stream_id}/chunks", chunks)
    app.router.add_post("/v1/streams/{stream_id}/ingest", push)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/openapi.json", openapi.serve)
    status.add_routes(app, bridge, lambda: viewer_keys(settings).public_only(), now)
    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    return app
