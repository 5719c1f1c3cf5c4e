"""The one error type of the ingest HTTP boundary and its JSON problem body."""

from __future__ import annotations

from typing import Any

__all__ = ["IngestError", "problem_body"]


class IngestError(Exception):
    """A request the bridge refuses: HTTP ``status``, short ``problem`` code, words in ``detail``."""

    def __init__(self, status: int, problem: str, detail: str, retry_after: float | None = None,
                 **extra: Any):
        super().__init__(f"{status} {problem}: {detail}")
        self.status, self.problem, self.detail = status, problem, detail
        self.retry_after = retry_after
        self.extra = extra


def problem_body(err: IngestError) -> dict[str, Any]:
    """``{"status", "problem", "detail", ...}``: what every refusal looks like on the wire."""
    body: dict[str, Any] = {"status": err.status, "problem": err.problem, "detail": err.detail}
    if err.retry_after is not None:
        body["retry_after"] = err.retry_after
    body.update(err.extra)
    return body
