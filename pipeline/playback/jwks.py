"""``GET /.well-known/jwks.json``: the public viewer-token keys (RFC 7517), for edges and CDNs.

Cached ``public, max-age=300``: a verifier that fetches it learns a new key within five minutes,
which is why a new key is published (listed after the current one) before it signs (README,
"Tokens"). The body is rendered once per process: keys change only with a restart.
"""

from __future__ import annotations

import hashlib
import json

from aiohttp import web

from pipeline.playback.context import Context

__all__ = ["MAX_AGE_S", "routes"]

MAX_AGE_S = 300


def routes(ctx: Context) -> list[web.RouteDef]:
    """The JWKS route (no token: the keys are public), its body rendered once."""
    body = json.dumps(ctx.keys.jwks(), separators=(",", ":")).encode()
    etag = '"' + hashlib.blake2b(body, digest_size=8).hexdigest() + '"'
    headers = {"Cache-Control": f"public, max-age={MAX_AGE_S}", "ETag": etag,
               "Access-Control-Allow-Origin": "*"}

    async def serve(request: web.Request) -> web.Response:
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers=headers)
        return web.Response(body=body, content_type="application/jwk-set+json", headers=headers)

    return [web.get("/.well-known/jwks.json", serve)]
