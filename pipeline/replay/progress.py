"""Progress lines for long replays: events, bytes, rate and ETA, throttled, on stderr."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

__all__ = ["Progress"]


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


class Progress:
    """Reports ``done/total`` scanned messages with rate and ETA at most every ``interval`` s."""

    def __init__(self, total: int, label: str = "export", out: TextIO | None = None,
                 now: Callable[[], float] = time.monotonic, interval: float = 1.0,
                 enabled: bool = True):
        self.total, self.label, self._out = total, label, out or sys.stderr
        self._now, self._interval, self.enabled = now, interval, enabled
        self._t0 = now()
        self._last = self._t0
        self.events = self.bytes = self.scanned = 0

    def update(self, events: int, bytes_: int, scanned: int) -> None:
        """Record absolute counters; prints when the interval has passed."""
        self.events, self.bytes, self.scanned = events, bytes_, scanned
        t = self._now()
        if self.enabled and t - self._last >= self._interval:
            self._last = t
            print(self.line(), file=self._out, flush=True)

    def line(self) -> str:
        """The current progress line."""
        elapsed = max(self._now() - self._t0, 1e-9)
        rate = self.events / elapsed
        scan_rate = self.scanned / elapsed
        left = max(self.total - self.scanned, 0)
        eta = f"{left / scan_rate:.0f}s" if scan_rate > 0 else "?"
        pct = 100.0 * self.scanned / self.total if self.total else 100.0
        return (f"{self.label}: {self.events} events, {_human(self.bytes)}, {rate:.0f} ev/s "
                f"({_human(self.bytes / elapsed)}/s), {pct:.1f}% scanned, ETA {eta}")

    def finish(self) -> str:
        """Print and return the final summary line."""
        line = self.line().replace(", ETA 0s", "") + f" in {self._now() - self._t0:.1f}s"
        if self.enabled:
            print(line, file=self._out, flush=True)
        return line
