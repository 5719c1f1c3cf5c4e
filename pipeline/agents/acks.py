"""Releases Kafka events for commit strictly in offset order per partition, once each is settled.

Why not simply ``event.ack()`` when a segment is stored: Faust (faust-streaming 0.15,
``Consumer._new_offset``) commits the first run of consecutive acked offsets and only guards the
head of the run with ``min(acked) - committed > 1`` — so one unacked message right after the
committed offset, or any gap while nothing was committed yet (``committed`` is None/0), is
skipped. Acking only a contiguous settled prefix keeps every offset Faust commits behind every
frame not yet sealed. Pure bookkeeping: the caller performs the returned acks.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

__all__ = ["AckBook"]


class AckBook:
    """Per partition: offsets seen in order, which are settled, and the prefix safe to ack."""

    def __init__(self) -> None:
        self._parts: dict[Hashable, OrderedDict[int, list[Any]]] = {}

    def add(self, tp: Hashable, offset: int, event: Any) -> None:
        """Remember a delivered event (offsets arrive in increasing order per partition)."""
        self._parts.setdefault(tp, OrderedDict())[offset] = [event, False]

    def settle(self, tp: Hashable, offset: int) -> list[Any]:
        """Mark one offset done; return the events now safe to ack, in offset order."""
        part = self._parts.get(tp)
        if part is None or offset not in part:
            return []  # partition revoked meanwhile: the new owner re-reads it
        part[offset][1] = True
        out = []
        while part:
            first = next(iter(part))
            event, done = part[first]
            if not done:
                break
            del part[first]
            out.append(event)
        return out

    def __contains__(self, tp: Hashable) -> bool:
        """Whether the partition is still ours (not dropped since its events were added)."""
        return tp in self._parts

    def drop(self, tp: Hashable) -> None:
        """Forget a revoked partition (its events will be redelivered to the next owner)."""
        self._parts.pop(tp, None)

    def unsettled(self, tp: Hashable | None = None) -> int:
        """How many events wait (settled or not) behind the oldest unsettled one."""
        parts = [self._parts.get(tp, {})] if tp is not None else list(self._parts.values())
        return sum(len(p) for p in parts)
