"""The playback boundary's one error type, made a JSON problem body (RFC 9457) in one place."""

from __future__ import annotations

from typing import Any

__all__ = ["Problem", "problem_body"]


class Problem(Exception):
    """An HTTP-facing failure: status, short title and a detail meant for the client."""

    def __init__(self, status: int, title: str, detail: str = "", **extra: Any) -> None:
        super().__init__(f"{status} {title}: {detail}")
        self.status = status
        self.title = title
        self.detail = detail
        self.extra = extra


def problem_body(p: Problem, instance: str = "") -> dict[str, Any]:
    """The JSON body for ``p`` (``type`` is about:blank: the status says what kind it is)."""
    body: dict[str, Any] = {"type": "about:blank", "title": p.title, "status": p.status}
    if p.detail:
        body["detail"] = p.detail
    if instance:
        body["instance"] = instance
    body.update(p.extra)
    return body
