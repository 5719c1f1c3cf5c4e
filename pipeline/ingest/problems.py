"""The one error type of the ingest HTTP boundary; its body is the shared problem format."""

from __future__ import annotations

from typing import Any

from pipeline.http.problems import Problem, problem_body

__all__ = ["IngestError", "problem_body"]


class IngestError(Problem):
    """A request the bridge refuses: HTTP ``status``, short ``code``, words in ``detail``.

    Its body also carries ``problem`` (the same value as ``code``): camera SDKs released before
    the bridge answered RFC 9457 bodies read the code from there.
    """

    @property
    def problem(self) -> str:
        """The short code (the bridge's historic name for it)."""
        return self.code

    def members(self) -> dict[str, Any]:
        """The shared extension members plus the ``problem`` alias."""
        return {**super().members(), "problem": self.code}
