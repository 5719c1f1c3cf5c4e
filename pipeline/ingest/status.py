"""``POST /v1/status``: which streams this bridge hears, for viewers' "offline" vs "behind".

Device state is written by the worker, so when the worker is behind every stream looks quiet.
The bridge is the process that acknowledged the frames: its own view (connected, last heard)
does not depend on the worker. A viewer token covering the asked streams reads it; the
playback service asks once per listing page, never once per stream.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from pipeline.auth.keys import ViewerKeyError, ViewerKeys
from pipeline.auth.tokens import scope_allows
from pipeline.auth.viewer import verify
from pipeline.ingest.bridge import Bridge
from pipeline.ingest.problems import IngestError
from pipeline.ingest.streams import StreamTable

__all__ = ["MAX_IDS", "add_routes", "status_of"]

#: Stream ids per request: one listing page of the playback service.
MAX_IDS = 1000


def status_of(table: StreamTable, ids: list[str], now: float) -> dict[str, Any]:
    """What the bridge knows of ``ids`` (unknown ids are left out), with its own clock."""
    streams = {}
    for sid in ids:
        st = table.get(sid)
        if st is not None:
            streams[sid] = {"connected": st.connected, "last_seen_us": int(st.last_seen * 1e6),
                            "last_seq": st.last_seq, "inflight": st.inflight}
    return {"now_us": int(now * 1e6), "streams": streams}


def _ids(body: Any) -> list[str]:
    ids = body.get("stream_ids") if isinstance(body, dict) else None
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise IngestError(400, "bad_status_request", 'body must be {"stream_ids": [string, ...]}')
    if len(ids) > MAX_IDS:
        raise IngestError(400, "bad_status_request", f"at most {MAX_IDS} stream ids")
    return ids


def add_routes(app: web.Application, bridge: Bridge, keys: Callable[[], ViewerKeys],
               now: Callable[[], float] = time.time) -> None:
    """Register ``POST /v1/status`` (viewer JWT; ``keys`` is read on first use)."""

    async def status(request: web.Request) -> web.Response:
        header = request.headers.get("Authorization", "")
        token = header[7:].strip() if header[:7].lower() == "bearer " else None
        t = now()
        try:
            ring = keys()
        except ViewerKeyError:
            raise IngestError(503, "no_viewer_keys", "this bridge has no viewer keys") from None
        claims = verify(ring, token, None, t)  # signature and expiry; scopes below
        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError):
            raise IngestError(400, "bad_json", "body must be a JSON object") from None
        ids = _ids(body)
        if not all(scope_allows(claims.scopes, i) for i in ids):
            raise IngestError(403, "token_scope", "the viewer token does not cover every stream")
        return web.json_response(status_of(bridge.table, ids, t),
                                 headers={"Cache-Control": "no-store"})

    app.router.add_post("/v1/status", status)
