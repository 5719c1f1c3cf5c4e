"""The web pages: the stream dashboard and the player, served as static files with hls.js."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from pipeline.playback.context import Context
from pipeline.playback.params import check_id

__all__ = ["STATIC", "routes"]

STATIC = Path(__file__).with_name("static")
_PAGE_HEADERS = {
    "Cache-Control": "no-cache",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; media-src 'self' blob:; "
                               "worker-src 'self' blob:; style-src 'self' 'unsafe-inline'",
    "Referrer-Policy": "no-referrer",  # page URLs carry the token
}


async def dashboard(request: web.Request) -> web.FileResponse:
    """GET / — the stream dashboard."""
    return web.FileResponse(STATIC / "dashboard.html", headers=_PAGE_HEADERS)


async def watch(request: web.Request) -> web.FileResponse:
    """GET /watch/{id} — the player page (the id is read by the page from its URL)."""
    check_id(request.match_info["id"], "stream id")
    return web.FileResponse(STATIC / "watch.html", headers=_PAGE_HEADERS)


def routes(_ctx: Context) -> list[web.AbstractRouteDef]:
    """The pages and the static files (including ``static/vendor/hls.min.js``)."""
    return [web.get("/", dashboard), web.get("/watch/{id}", watch),
            web.static("/static/", STATIC, follow_symlinks=False)]
