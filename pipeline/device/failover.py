"""Which bridge a device talks to: its home region first, the others in order when home is down.

Pure policy with an injected clock, fed by the uploader's request outcomes:
* the device moves to the next bridge once the current one has failed every request for
  ``detect_s`` (a dead region refuses connections at once; a hung one costs a request timeout
  each, so detection is bounded by ``detect_s`` + one request timeout);
* away from home it asks home's ``/readyz`` every ``probe_s`` and goes back as soon as home
  answers ready, so a stream lives in its home region whenever that region is up.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["BridgeChooser", "parse_bridges"]


def parse_bridges(raw: str | Sequence[str]) -> tuple[str, ...]:
    """``"URL1,URL2"`` (or a list) → the ordered bridge base URLs, home first, without '/'."""
    parts = raw.split(",") if isinstance(raw, str) else list(raw)
    urls = tuple(p.strip().rstrip("/") for p in parts if p.strip())
    if not urls:
        raise ValueError("at least one bridge URL is needed")
    if len(set(urls)) != len(urls):
        raise ValueError(f"bridge URLs repeat: {', '.join(urls)}")
    return urls


@dataclass
class BridgeChooser:
    """The current bridge among ``urls`` (index 0 is home) and when to switch."""

    urls: tuple[str, ...]
    detect_s: float = 2.0
    probe_s: float = 2.0
    index: int = 0
    failing_since: float | None = None
    last_probe: float = 0.0
    switches: list[tuple[float, str]] = field(default_factory=list)  # (time, url moved to)

    @property
    def current(self) -> str:
        """Base URL of the bridge to use now."""
        return self.urls[self.index]

    @property
    def home(self) -> str:
        """Base URL of the home bridge."""
        return self.urls[0]

    def succeeded(self, now: float) -> None:
        """The current bridge answered (any HTTP answer that is not a retryable failure)."""
        self.failing_since = None

    def failed(self, now: float) -> bool:
        """The current bridge failed a request; returns True when this moved to the next one."""
        if self.failing_since is None:
            self.failing_since = now
        if len(self.urls) == 1 or now - self.failing_since < self.detect_s:
            return False
        self._move((self.index + 1) % len(self.urls), now)
        return True

    def probe_due(self, now: float) -> bool:
        """Away from home and time to ask whether home is back."""
        return self.index != 0 and now - self.last_probe >= self.probe_s

    def probed(self, now: float, home_ready: bool) -> bool:
        """Record a probe of home; returns True when this moved back home."""
        self.last_probe = now
        if home_ready and self.index != 0:
            self._move(0, now)
            return True
        return False

    def _move(self, index: int, now: float) -> None:
        self.index, self.failing_since, self.last_probe = index, None, now
        self.switches.append((now, self.urls[index]))
