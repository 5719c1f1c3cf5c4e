"""The playback boundary's one error type; its body is the shared problem format."""

from __future__ import annotations

from pipeline.http.problems import Problem as _Problem
from pipeline.http.problems import problem_body

__all__ = ["Problem", "problem_body"]


class Problem(_Problem):
    """An HTTP-facing failure: status, short code (also its ``title``), detail for the client."""

    @property
    def title(self) -> str:
        """The problem's ``title`` member: the short code."""
        return self.code
