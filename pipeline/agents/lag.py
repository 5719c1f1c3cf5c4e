"""Consumer lag in seconds per consumer and partition (``camlog_consumer_lag_seconds``).

Lag is the age (Kafka timestamp) of the newest event a consumer has read while its partition
holds more (the high watermark is beyond it), else 0. The watermark is read when the metric is
observed, so a consumer that stalls falls behind on the gauge even if it was caught up before.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Iterable
from typing import Any

from pipeline.telemetry import get_meter

__all__ = ["LagClock", "lag_clock"]


class LagClock:
    """What each consumer read last per partition; observed as a gauge on every scrape."""

    def __init__(self, highwater: Callable[[Hashable], int | None],
                 now: Callable[[], float] = time.time) -> None:
        self.highwater, self.now = highwater, now
        self._read: dict[tuple[str, Hashable], tuple[int, float]] = {}
        get_meter("camlog.worker").create_observable_gauge(
            "camlog_consumer_lag_seconds", unit="s", callbacks=[self._observe],
            description="age of the newest event read while its partition holds more, else 0")

    def read(self, consumer: str, events: Iterable[Any]) -> None:
        """Note Faust events just read by ``consumer`` (any order; the newest offset wins)."""
        for e in events:
            msg = e.message
            key, ts = (consumer, msg.tp), getattr(msg, "timestamp", None)
            if ts and msg.offset >= self._read.get(key, (-1, 0.0))[0]:
                self._read[key] = (msg.offset, float(ts))

    def lags(self) -> dict[tuple[str, Hashable], float]:
        """Seconds behind per (consumer, partition); partitions no longer assigned are dropped."""
        now, out = self.now(), {}
        for key, (offset, at) in list(self._read.items()):
            try:
                hw = self.highwater(key[1])
            except Exception:  # not assigned here any more: its new owner reports
                self._read.pop(key, None)
                continue
            out[key] = max(0.0, now - at) if hw is not None and hw > offset + 1 else 0.0
        return out

    def _observe(self, _options: Any) -> list:
        from opentelemetry.metrics import Observation

        return [Observation(v, {"consumer": c, "topic": str(getattr(tp, "topic", "")),
                                "partition": str(getattr(tp, "partition", tp))})
                for (c, tp), v in self.lags().items()]


def lag_clock(app: Any) -> LagClock:
    """The Faust app's one clock (made on first use), fed by every agent of the app."""
    clock = getattr(app, "camlog_lag", None)
    if clock is None:
        clock = app.camlog_lag = LagClock(lambda tp: app.consumer.highwater(tp))
    return clock
