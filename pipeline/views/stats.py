"""Playback statistics per stream per minute and per hour (pure; the store is injected).

Each PlaybackEvent is kept as a small ``Hit`` keyed by its ``event_id`` (in production the key
space is a Faust table with a changelog), so a redelivered event overwrites itself instead of
counting twice, and a window's values are always *recomputed* from its hits, never incremented.
A minute window is flushed once it is closed (its end plus a grace period has passed); the hour
row is recomputed from the hits of its closed minutes each time one of them flushes. Hits are
forgotten once their hour has closed and been flushed; events later than that are dropped.

Write timestamps are ``window start + number of hits``: a function of the window's set of
events, strictly growing as the set grows, so a replay writes the same cells at the same
timestamp and a recomputation that saw more events always wins (fine below 60 million events
per minute per stream).

Distinct viewers: exact (a set) up to ``EXACT_VIEWERS`` ids per window, then a HyperLogLog with
2^11 registers (standard error about 2.3 %).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from dataclasses import astuple, dataclass
from typing import Any

__all__ = [
    "EXACT_VIEWERS",
    "HOUR_US",
    "MINUTE_US",
    "Hit",
    "StatsBook",
    "ViewerSketch",
    "WindowRow",
    "WindowStats",
    "aggregate",
    "hit_of",
]

MINUTE_US = 60_000_000
HOUR_US = 3_600_000_000
DAY_US = 86_400_000_000
EXACT_VIEWERS = 1024
_HLL_BITS = 11


@dataclass(frozen=True)
class Hit:
    """The part of a PlaybackEvent that stats need; stored as a JSON list."""

    stream_id: str
    time: int
    kind: str
    status: int = 200
    bytes: int = 0
    viewer: str = ""
    startup_ms: float | None = None
    rebuffers: int | None = None
    error: bool = False
    partition: int = 0

    def to_list(self) -> list[Any]:
        """Compact form for the Faust table."""
        return list(astuple(self))

    @classmethod
    def from_list(cls, values: Iterable[Any]) -> Hit:
        """Inverse of ``to_list``."""
        return cls(*values)

    @property
    def minute(self) -> int:
        """Start (µs) of the minute window the hit belongs to."""
        return self.time - self.time % MINUTE_US


def hit_of(event: Mapping[str, Any], partition: int = 0) -> Hit:
    """Build a hit from a decoded PlaybackEvent record."""
    return Hit(
        stream_id=event["stream_id"], time=int(event["time"]), kind=event["kind"],
        status=int(event.get("status", 200)), bytes=int(event.get("bytes") or 0),
        viewer=event.get("viewer") or "", startup_ms=event.get("startup_ms"),
        rebuffers=event.get("rebuffers"), partition=partition,
        error=bool(event.get("error")) or int(event.get("status", 200)) >= 400,
    )


class ViewerSketch:
    """Distinct viewer ids: an exact set up to ``EXACT_VIEWERS``, then HyperLogLog."""

    def __init__(self) -> None:
        self._ids: set[str] | None = set()
        self._regs: bytearray | None = None

    def _hll_add(self, viewer: str) -> None:
        h = int.from_bytes(hashlib.blake2b(viewer.encode(), digest_size=8).digest(), "big")
        idx = h >> (64 - _HLL_BITS)
        rest = (h << _HLL_BITS) & ((1 << 64) - 1)
        rank = min(64 - rest.bit_length() + 1, 64 - _HLL_BITS + 1)
        assert self._regs is not None
        self._regs[idx] = max(self._regs[idx], rank)

    def add(self, viewer: str) -> None:
        """Count one viewer id (empty ids are anonymous and not counted)."""
        if not viewer:
            return
        if self._ids is not None:
            self._ids.add(viewer)
            if len(self._ids) > EXACT_VIEWERS:
                ids, self._ids, self._regs = self._ids, None, bytearray(1 << _HLL_BITS)
                for v in ids:
                    self._hll_add(v)
        else:
            self._hll_add(viewer)

    def estimate(self) -> int:
        """Number of distinct viewers (exact while below the limit)."""
        if self._ids is not None:
            return len(self._ids)
        assert self._regs is not None
        m = len(self._regs)
        raw = (0.7213 / (1 + 1.079 / m)) * m * m / sum(2.0 ** -r for r in self._regs)
        zeros = self._regs.count(0)
        if raw <= 2.5 * m and zeros:
            raw = m * math.log(m / zeros)
        return round(raw)


@dataclass(frozen=True)
class WindowStats:
    """Values of one playback_minute / playback_hour row."""

    manifest_requests: int = 0
    segment_requests: int = 0
    other_requests: int = 0
    bytes: int = 0
    viewers: int = 0
    errors: int = 0
    startup_ms_sum: float = 0.0
    startup_samples: int = 0
    rebuffers: int = 0
    events: int = 0


_SEGMENT_KINDS = {"SEGMENT", "INIT"}


def aggregate(hits: Iterable[Hit]) -> WindowStats:
    """Recompute a window's values from its (deduplicated) hits."""
    c = dict(manifest=0, segment=0, other=0, bytes=0, errors=0, rebuf=0, n=0)
    startups: list[float] = []
    viewers = ViewerSketch()
    for h in hits:
        c["n"] += 1
        if h.kind == "MANIFEST":
            c["manifest"] += 1
        elif h.kind in _SEGMENT_KINDS:
            c["segment"] += 1
        elif h.kind != "BEACON":
            c["other"] += 1
        c["bytes"] += h.bytes
        c["errors"] += h.error
        if h.startup_ms is not None:
            startups.append(h.startup_ms)
        c["rebuf"] += h.rebuffers or 0
        viewers.add(h.viewer)
    return WindowStats(c["manifest"], c["segment"], c["other"], c["bytes"], viewers.estimate(),
                       c["errors"], math.fsum(startups), len(startups), c["rebuf"], c["n"])


@dataclass(frozen=True)
class WindowRow:
    """A closed window ready to write: ``resolution`` is ``"minute"`` or ``"hour"``."""

    stream_id: str
    resolution: str
    start_us: int
    stats: WindowStats

    @property
    def write_ts(self) -> int:
        """Write timestamp: window start + number of events (grows with the event set)."""
        return self.start_us + self.stats.events

    @property
    def bucket(self) -> int:
        """Partition bucket: day number (minute rows) or year*100+month (hour rows)."""
        if self.resolution == "minute":
            return self.start_us // DAY_US
        import datetime as _dt
        d = _dt.datetime.fromtimestamp(self.start_us / 1e6, _dt.UTC)
        return d.year * 100 + d.month

    def to_row(self) -> dict[str, Any]:
        """Columns for the playback_minute / playback_hour table."""
        row = {k: v for k, v in self.stats.__dict__.items() if k != "events"}
        key = "day" if self.resolution == "minute" else "month"
        row.update({"stream_id": self.stream_id, key: self.bucket, self.resolution: self.start_us})
        return row


class StatsBook:
    """Hits keyed by event id in an injected mapping, indexed by window; emits closed windows."""

    def __init__(self, store: MutableMapping[str, Any], grace_us: int = 5_000_000) -> None:
        self.store = store
        self.grace_us = grace_us
        self._index: dict[tuple[str, int], set[str]] = {}
        self._flushed: dict[tuple[str, str, int], int] = {}

    def rebuild(self) -> None:
        """Re-index the store (after a restart the hits come back from the changelog)."""
        self._index.clear()
        for eid, value in list(self.store.items()):
            h = Hit.from_list(value)
            self._index.setdefault((h.stream_id, h.minute), set()).add(eid)

    def add(self, event_id: str, hit: Hit) -> bool:
        """Keep a hit; False (and nothing written) when the event id was already seen."""
        if event_id in self.store:
            return False
        self.store[event_id] = hit.to_list()
        self._index.setdefault((hit.stream_id, hit.minute), set()).add(event_id)
        return True

    def _hits(self, key: tuple[str, int]) -> Iterator[Hit]:
        for eid in self._index.get(key, ()):
            value = self.store.get(eid)
            if value is not None:
                yield Hit.from_list(value)

    def due(self, now_us: int) -> list[WindowRow]:
        """Closed minute windows (and their hour rollups) whose values changed since flushed."""
        out: list[WindowRow] = []
        hours: set[tuple[str, int]] = set()
        for stream, minute in sorted(self._index):
            if minute + MINUTE_US + self.grace_us > now_us:
                continue
            n = len(self._index[(stream, minute)])
            if self._flushed.get((stream, "minute", minute)) == n:
                continue
            out.append(WindowRow(stream, "minute", minute, aggregate(self._hits((stream, minute)))))
            hours.add((stream, minute - minute % HOUR_US))
        for stream, hour in sorted(hours):
            hits = [h for m in range(hour, hour + HOUR_US, MINUTE_US)
                    if m + MINUTE_US + self.grace_us <= now_us for h in self._hits((stream, m))]
            out.append(WindowRow(stream, "hour", hour, aggregate(hits)))
        return out

    def mark_flushed(self, row: WindowRow) -> None:
        """Remember a row was written so it is not written again until it changes."""
        self._flushed[(row.stream_id, row.resolution, row.start_us)] = row.stats.events

    def evictable(self, partition: int, now_us: int) -> list[str]:
        """Event ids on ``partition`` whose hour has closed and whose minute was flushed."""
        out = []
        for (stream, minute), ids in list(self._index.items()):
            hour_end = minute - minute % HOUR_US + HOUR_US
            if hour_end + self.grace_us > now_us or (stream, "minute", minute) not in self._flushed:
                continue
            for eid in list(ids):
                value = self.store.get(eid)
                if value is not None and Hit.from_list(value).partition == partition:
                    out.append(eid)
        return out

    def forget(self, event_id: str) -> None:
        """Drop a hit (its window is closed and written)."""
        value = self.store.pop(event_id, None)
        if value is None:
            return
        h = Hit.from_list(value)
        ids = self._index.get((h.stream_id, h.minute))
        if ids is not None:
            ids.discard(event_id)
            if not ids:
                del self._index[(h.stream_id, h.minute)]
                self._flushed.pop((h.stream_id, "minute", h.minute), None)
