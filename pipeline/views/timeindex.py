"""Planning and post-processing of segment time-index queries (pure; no I/O).

The ``segments`` table has one partition per stream per UTC day (``day`` = days since the epoch
of the segment's ``start_time``), clustered by ``start_time``. A range query reads each day
bucket the range touches with one bounded slice; a segment that starts before the range may
still cover its beginning, so the first slice starts ``max_segment_us`` early.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "DAY_US",
    "BucketQuery",
    "Gap",
    "covering",
    "day_of",
    "plan_buckets",
    "with_gaps",
]

DAY_US = 86_400_000_000

Segment = Mapping[str, Any]


def day_of(time_us: int) -> int:
    """The day bucket (days since 1970-01-01 UTC) a time falls in."""
    return int(time_us) // DAY_US


@dataclass(frozen=True)
class BucketQuery:
    """One bounded slice: ``WHERE stream_id=? AND day=? AND lo <= start_time < hi``."""

    day: int
    lo: int
    hi: int


@dataclass(frozen=True)
class Gap:
    """A hole in the recording between two instants (µs)."""

    start_time: int
    end_time: int

    @property
    def duration_us(self) -> int:
        """Length of the hole."""
        return self.end_time - self.start_time


def plan_buckets(start_us: int, end_us: int, max_segment_us: int) -> list[BucketQuery]:
    """The day slices to read, in time order, to find every segment overlapping [start, end)."""
    if end_us <= start_us:
        return []
    lo = start_us - max(0, max_segment_us)
    out = []
    for day in range(day_of(lo), day_of(end_us - 1) + 1):
        out.append(BucketQuery(day, max(lo, day * DAY_US), min(end_us, (day + 1) * DAY_US)))
    return out


def covering(segments: Iterable[Segment], start_us: int, end_us: int) -> list[Segment]:
    """Segments overlapping [start, end), ordered by start, without duplicates or nested ones."""
    seen: set[str] = set()
    rows = sorted(
        (s for s in segments if s["end_time"] > start_us and s["start_time"] < end_us),
        key=lambda s: (s["start_time"], s["segment_id"]),
    )
    out: list[Segment] = []
    for s in rows:
        if s["segment_id"] in seen:
            continue
        if out and s["end_time"] <= out[-1]["end_time"]:
            continue  # wholly inside the previous one (e.g. a re-cut); adds nothing playable
        seen.add(s["segment_id"])
        out.append(s)
    return out


def _gaps(segments: Sequence[Segment], start_us: int, end_us: int,
          tolerance_us: int) -> Iterator[Segment | Gap]:
    cursor = start_us
    for s in segments:
        if s["start_time"] - cursor > tolerance_us:
            yield Gap(cursor, s["start_time"])
        yield s
        cursor = max(cursor, s["end_time"])
    if end_us - cursor > tolerance_us:
        yield Gap(cursor, end_us)


def with_gaps(segments: Iterable[Segment], start_us: int, end_us: int,
              tolerance_us: int = 100_000, trailing: bool = True) -> list[Segment | Gap]:
    """Covering segments in order with ``Gap`` items where the timeline has holes.

    A hole shorter than ``tolerance_us`` (frame jitter) is not a gap. ``trailing=False`` drops a
    gap at the end of the range (the live edge of a stream still recording).
    """
    items = list(_gaps(covering(segments, start_us, end_us), start_us, end_us, tolerance_us))
    if not trailing and items and isinstance(items[-1], Gap):
        items.pop()
    return items
