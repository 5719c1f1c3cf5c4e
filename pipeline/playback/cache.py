"""An in-process LRU cache bounded in bytes, with request coalescing so a herd costs one load."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["ByteCache", "CacheStats"]

V = TypeVar("V")


@dataclass
class CacheStats:
    """Counters for metrics and tests: hits, misses, loads actually run, evictions, bytes held."""

    hits: int = 0
    misses: int = 0
    loads: int = 0
    coalesced: int = 0
    evictions: int = 0
    bytes: int = 0


@dataclass
class _Entry(Generic[V]):
    value: V
    size: int
    expires: float  # monotonic seconds; inf = until evicted


class ByteCache(Generic[V]):
    """LRU keyed by any hashable, bounded by the summed ``size`` of its values, never by count.

    ``get_or_load`` runs the loader once per key however many callers wait for it at the same
    time (they share the one future); a loader error reaches every waiter and is not cached.
    """

    def __init__(
        self,
        max_bytes: int,
        *,
        max_entry_fraction: float = 0.25,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_bytes < 0:
            raise ValueError("max_bytes must be >= 0")
        self.max_bytes = max_bytes
        self.max_entry = int(max_bytes * max_entry_fraction)
        self._now = now
        self._entries: OrderedDict[Hashable, _Entry[V]] = OrderedDict()
        self._inflight: dict[Hashable, asyncio.Future[V]] = {}
        self.stats = CacheStats()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: Hashable) -> bool:
        return self._lookup(key) is not None

    def _lookup(self, key: Hashable) -> _Entry[V] | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires <= self._now():
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return entry

    def _drop(self, key: Hashable) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self.stats.bytes -= entry.size

    def get(self, key: Hashable) -> V | None:
        """The cached value, or None when absent or expired (counts a hit or a miss)."""
        entry = self._lookup(key)
        if entry is None:
            self.stats.misses += 1
            return None
        self.stats.hits += 1
        return entry.value

    def cached(self, key: Hashable) -> V | None:
        """The cached value without loading: a hit is counted, an absence is not (the caller
        then goes on to ``get_or_load``, which counts it). The per-request fast path."""
        entry = self._lookup(key)
        if entry is None:
            return None
        self.stats.hits += 1
        return entry.value

    def put(self, key: Hashable, value: V, size: int, ttl: float | None = None) -> bool:
        """Store ``value`` costing ``size`` bytes; returns False when it is too big to cache."""
        self._drop(key)
        if size < 0 or size > self.max_entry:
            return False
        expires = float("inf") if ttl is None else self._now() + ttl
        self._entries[key] = _Entry(value, size, expires)
        self.stats.bytes += size
        while self.stats.bytes > self.max_bytes and self._entries:
            _, entry = self._entries.popitem(last=False)
            self.stats.bytes -= entry.size
            self.stats.evictions += 1
        return True

    def invalidate(self, key: Hashable) -> None:
        """Forget ``key`` (the next ``get_or_load`` loads it again)."""
        self._drop(key)

    async def get_or_load(
        self,
        key: Hashable,
        loader: Callable[[], Awaitable[V]],
        *,
        size: Callable[[V], int] = len,  # type: ignore[assignment]
        ttl: Callable[[V], float | None] | float | None = None,
    ) -> V:
        """The cached value, else one shared run of ``loader`` whose result is cached.

        ``ttl`` may depend on the value (e.g. a short life for "not found"); a ttl of 0 means
        the value is shared with concurrent waiters but not kept.
        """
        entry = self._lookup(key)
        if entry is not None:
            self.stats.hits += 1
            return entry.value
        self.stats.misses += 1
        task = self._inflight.get(key)
        if task is not None:
            self.stats.coalesced += 1
        else:
            # The load runs as its own task so a caller that goes away (client disconnect
            # cancels its handler) does not cancel the load the other waiters share.
            task = asyncio.ensure_future(self._load(key, loader, size, ttl))
            task.add_done_callback(_retrieve)
            self._inflight[key] = task
            self.stats.loads += 1
        return await asyncio.shield(task)

    async def _load(self, key, loader, size, ttl) -> V:  # type: ignore[no-untyped-def]
        try:
            value = await loader()
            life = ttl(value) if callable(ttl) else ttl
            if life is None or life > 0:
                self.put(key, value, size(value), life)
            return value
        finally:
            self._inflight.pop(key, None)


def _retrieve(task: asyncio.Future) -> None:
    # Every waiter may have gone away; reading the exception keeps asyncio from warning.
    if not task.cancelled():
        task.exception()
