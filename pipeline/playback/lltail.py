"""The live tail of one stream, folded from ``camlog.segments`` events: pure, no I/O.

Each playback instance follows ``camlog.segments`` (``follow.Follower``) and folds every
``SealedPart`` and ``SealedSegment`` into a ``Tail``; ``Tail.window`` is the ``llhls.LiveWindow``
the LL-HLS playlist is rendered from. The fold is idempotent and order-insensitive within a
segment (a part seen twice, or after its segment, changes nothing; a segment's own part list wins
over the parts seen), and the window is a function of the events seen only, never of when this
instance started or how many requests it served: two instances that read the same log render
the same bytes, and a restarted one (which rewinds the topic far enough to see a whole window)
renders what it rendered before.

The window is the newest run of consecutive complete segments, at most ``keep`` of them, and the
segment in progress after the newest complete one, as far as its parts run from 0 without a
hole. EXT-X-DISCONTINUITY-SEQUENCE comes from the segmenter's count of discontinuities carried by
every event, so it needs no history older than the window.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pipeline.playback.llhls import LivePart, LiveSegment, LiveWindow

__all__ = ["Tail"]


@dataclass
class _Open:
    """A segment in progress: what its parts' events said."""

    segment_id: str
    parts: dict[int, LivePart] = field(default_factory=dict)
    start_time: int | None = None  # from part 0
    init_id: str = ""
    discontinuity: bool = False
    discontinuity_sequence: int = 0


@dataclass
class Tail:
    """Complete segments and parts in progress of one stream; ``keep`` bounds what is kept."""

    keep: int = 32
    complete: dict[int, LiveSegment] = field(default_factory=dict)
    open: dict[int, _Open] = field(default_factory=dict)
    disc: dict[int, int] = field(default_factory=dict)  # msn -> discontinuity count through it
    version: int = 0  # bumped on every change: a cache key for rendered playlists
    seen_us: int = 0  # newest event time seen (ingest clock), for freshness

    def fold(self, kind: str, event: Mapping[str, Any]) -> bool:
        """Apply a ``SealedPart`` or ``SealedSegment``; True when the window may have changed."""
        msn = int(event["sequence"])
        self.seen_us = max(self.seen_us, int(event.get("ingest_end", 0)))
        if kind == "SealedPart":
            changed = self._part(msn, event)
        elif kind == "SealedSegment":
            changed = self._segment(msn, event)
        else:
            return False
        if changed:
            self.version += 1
        return changed

    def _part(self, msn: int, e: Mapping[str, Any]) -> bool:
        if msn in self.complete or (self.complete and msn <= min(self.complete)):
            return False
        seg = self.open.get(msn)
        if seg is None or seg.segment_id != e["segment_id"]:
            seg = self.open[msn] = _Open(e["segment_id"])
        index = int(e["part"])
        part = LivePart(int(e["duration_us"]), bool(e["independent"]))
        if seg.parts.get(index) == part:
            return False
        seg.parts[index] = part
        seg.init_id = e["init_id"]
        seg.discontinuity_sequence = int(e["discontinuity_sequence"])
        if index == 0:
            seg.start_time, seg.discontinuity = int(e["start_time"]), bool(e["discontinuity"])
        return True

    def _segment(self, msn: int, e: Mapping[str, Any]) -> bool:
        parts = tuple(LivePart(int(p["duration_us"]), bool(p["independent"]))
                      for p in e.get("parts") or ())
        seg = LiveSegment(msn, e["segment_id"], int(e["start_time"]), e["init_id"], parts,
                          int(e["duration_us"]), bool(e["independent"]), bool(e["discontinuity"]))
        if self.complete.get(msn) == seg:
            return False
        self.complete[msn] = seg
        self.disc[msn] = int(e.get("discontinuity_sequence") or 0)
        self.open.pop(msn, None)
        top = max(self.complete)
        for old in [m for m in self.complete if m <= top - self.keep]:
            del self.complete[old]
            self.disc.pop(old, None)
        for old in [m for m in self.open if m <= top]:
            del self.open[old]
        return True

    def window(self, segments: int) -> LiveWindow | None:
        """The LL window: up to ``segments`` complete segments and the one in progress."""
        cur = None
        if self.complete:
            last = max(self.complete)
            first = last
            while first - 1 in self.complete and last - first + 1 < segments:
                first -= 1
            shown = [self.complete[m] for m in range(first, last + 1)]
            nxt = self.open.get(last + 1)
        else:
            shown, first = [], min(self.open) if self.open else 0
            nxt = self.open.get(first)
        if nxt is not None and 0 in nxt.parts and nxt.start_time is not None:
            n = 0
            while n in nxt.parts:
                n += 1
            cur = LiveSegment(first + len(shown), nxt.segment_id, nxt.start_time, nxt.init_id,
                              tuple(nxt.parts[i] for i in range(n)),
                              independent=nxt.parts[0].independent,
                              discontinuity=nxt.discontinuity)
        if not shown and cur is None:
            return None
        if shown:
            head, count = shown[0], self.disc.get(first, 0)
        else:
            head, count = cur, nxt.discontinuity_sequence  # type: ignore[union-attr]
        ds = max(0, count - (1 if head.discontinuity else 0))  # type: ignore[union-attr]
        return LiveWindow(tuple(shown), cur, media_sequence=first, discontinuity_sequence=ds)
