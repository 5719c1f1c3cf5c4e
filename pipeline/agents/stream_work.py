"""One stream's state on a segmenter worker: its cutter and the work not yet acked.

The segmenter keeps one ``StreamWork`` per stream key it owns, so forgetting a stream (evicted,
partition revoked, shutdown) is one ``pop``. The object holds what was spread over parallel
dicts: the cutter, the partition the stream arrives on, the chunks waiting for their segments to
be stored (``waiting``), the stream's last seal task (``tail``: each task waits for the one
before it), a settle point deferred until that task succeeds, recent keyframe trace contexts and
the byte sizes of parts stored but not yet sealed into a segment. It does no I/O and never acks:
the segmenter turns what ``settle`` returns into acks through its ``AckBook``.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import NamedTuple

from opentelemetry.context import Context

from pipeline.media.cutter import Cutter

__all__ = ["Pending", "StreamWork"]


class Pending(NamedTuple):
    """A delivered chunk of the stream, unacked until a settle point reaches its ``seq``."""

    seq: int
    tp: Hashable
    offset: int
    value: bytes | None


@dataclass(eq=False)
class StreamWork:
    """Cutter, pending chunks, seal-task chain, trace context and part sizes of one stream."""

    sid: str
    cutter: Cutter
    tp: Hashable | None = None  # partition the stream's chunks arrive on (set on first chunk)
    waiting: list[Pending] = field(default_factory=list)
    tail: asyncio.Task | None = None
    deferred: int | None = None  # settle point waiting for ``tail`` to succeed
    # trace contexts of recent keyframe chunks, so a segment's seal joins its first chunk's trace
    key_traces: deque[tuple[int, Context]] = field(default_factory=lambda: deque(maxlen=8))
    part_sizes: dict[str, int] = field(default_factory=dict)  # part id -> stored bytes
    adopted: bool = False  # resumed from the store and not sealed since (its next seal checks)

    def receive(self, pending: Pending, keyframe_trace: Context | None = None) -> None:
        """Remember a delivered chunk (and its trace, when it opens with a keyframe)."""
        self.waiting.append(pending)
        if keyframe_trace is not None:
            self.key_traces.append((pending.seq, keyframe_trace))

    def pending(self, seq: int) -> Pending | None:
        """The waiting chunk with this sequence number, if still waiting."""
        return next((p for p in self.waiting if p.seq == seq), None)

    def opened_trace(self, seq: int) -> Context | None:
        """Trace context of the keyframe chunk ``seq`` (the one that opened a segment)."""
        return next((c for s, c in self.key_traces if s == seq), None)

    def defer(self, through: int) -> None:
        """Hold a settle point until the stream's last task has stored its (earlier) work."""
        self.deferred = max(through, -1 if self.deferred is None else self.deferred)

    def take_deferred(self, task: asyncio.Task | None) -> int | None:
        """The deferred settle point, handed (once) to the stream's last task only."""
        if self.tail is not task or self.deferred is None:
            return None
        through, self.deferred = self.deferred, None
        return through

    def settle(self, through: int) -> list[Pending]:
        """Drop and return the waiting chunks up to ``through`` (the caller acks them)."""
        done = [p for p in self.waiting if p.seq <= through]
        self.waiting = [p for p in self.waiting if p.seq > through]
        return done

    def idle(self, now: float, evict_after_s: float) -> bool:
        """Nothing buffered, waiting or running, and no chunk for ``evict_after_s``."""
        return (not self.cutter.buffered_frames and not self.waiting
                and now - self.cutter.last_feed > evict_after_s
                and (self.tail is None or self.tail.done()))
