"""The one problem format of camlog's HTTP services (RFC 9457 ``application/problem+json``).

The bridge and playback raise subclasses of ``Problem`` (``ingest.problems.IngestError``,
``playback.errors.Problem``) and answer them through ``problem_response``: every refusal has
``type`` (about:blank: the status says what kind it is), ``title`` and ``code`` (the short
machine-readable code, e.g. ``seq_regression``), ``status``, ``detail`` and, where a request is
known, ``instance`` (its path), plus problem-specific extension members.
"""

from __future__ import annotations

import math
from typing import Any

from aiohttp import web

__all__ = ["MEDIA_TYPE", "Problem", "problem_body", "problem_response", "retry_after_header"]

MEDIA_TYPE = "application/problem+json"
#: The members RFC 9457 defines and camlog's ``code``: no extension member may replace them.
STANDARD = frozenset({"type", "title", "status", "detail", "instance", "code"})


class Problem(Exception):
    """An HTTP-facing refusal: status, short machine-readable ``code``, words for the client."""

    def __init__(self, status: int, code: str, detail: str = "", *,
                 retry_after: float | None = None, **extra: Any) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status, self.code, self.detail = status, code, detail
        self.retry_after = retry_after
        self.extra = extra

    def members(self) -> dict[str, Any]:
        """Extension members of the body (subclasses add compatibility aliases here)."""
        out: dict[str, Any] = {}
        if self.retry_after is not None:
            out["retry_after"] = self.retry_after
        out.update(self.extra)
        return out


def problem_body(p: Problem, instance: str = "") -> dict[str, Any]:
    """The JSON body for ``p``; the standard members cannot be overridden by extensions."""
    body = {k: v for k, v in p.members().items() if k not in STANDARD}
    body.update({"type": "about:blank", "title": p.code, "status": p.status, "code": p.code})
    if p.detail:
        body["detail"] = p.detail
    if instance:
        body["instance"] = instance
    return body


def retry_after_header(seconds: float) -> str:
    """``Retry-After`` takes whole seconds: round up, and never ask for less than one."""
    return str(max(1, math.ceil(seconds)))


def problem_response(p: Problem, instance: str = "") -> web.Response:
    """The response for ``p``: problem+json, never cached, with the headers its status implies."""
    headers = {"Cache-Control": "no-store"}
    if p.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="camlog"'
    if p.status == 416 and "size" in p.extra:
        headers["Content-Range"] = f"bytes */{p.extra['size']}"
    if p.retry_after is not None:
        headers["Retry-After"] = retry_after_header(p.retry_after)
    return web.json_response(problem_body(p, instance), status=p.status, headers=headers,
                             content_type=MEDIA_TYPE)
