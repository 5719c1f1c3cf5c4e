"""ByteCache: bounded in bytes, LRU, TTL on an injected clock, one load per key under a herd."""

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.playback.cache import ByteCache


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


@given(st.lists(st.tuples(st.integers(0, 20), st.integers(0, 60)), max_size=200))
def test_never_holds_more_than_max_bytes(ops):
    c: ByteCache[bytes] = ByteCache(100, max_entry_fraction=0.5)
    for key, size in ops:
        c.put(key, b"x" * size, size)
        assert c.stats.bytes <= 100
        assert c.stats.bytes == sum(e.size for e in c._entries.values())


def test_lru_order_and_oversize_refused():
    c: ByteCache[str] = ByteCache(30, max_entry_fraction=0.5)
    assert c.put("a", "A", 10) and c.put("b", "B", 10)
    assert c.get("a") == "A"  # a is now most recent
    c.put("c", "C", 10)
    c.put("d", "D", 10)  # evicts b (least recent), not a
    assert "b" not in c and "a" in c
    assert not c.put("big", "X", 16)  # over half the budget: not cached
    assert "big" not in c


def test_ttl_uses_injected_clock():
    clock = Clock()
    c: ByteCache[str] = ByteCache(100, now=clock)
    c.put("k", "v", 1, ttl=1.0)
    clock.t = 0.99
    assert c.get("k") == "v"
    clock.t = 1.0
    assert c.get("k") is None
    assert c.stats.bytes == 0


async def test_herd_of_200_causes_one_load():
    c: ByteCache[bytes] = ByteCache(1 << 20)
    loads = 0
    gate = asyncio.Event()

    async def load() -> bytes:
        nonlocal loads
        loads += 1
        await gate.wait()
        return b"segment"

    tasks = [asyncio. create_task(c.get_or_load("seg", load)) for _ in range(200)]
    await asyncio.sleep(0)
    gate.set()
    results = await asyncio.gather(*tasks)
    assert loads == 1 and set(results) == {b"segment"}
    assert c.stats.loads == 1 and c.stats.coalesced == 199
    assert await c.get_or_load("seg", load) == b"segment" and loads == 1


async def test_error_reaches_all_waiters_and_is_not_cached():
    c: ByteCache[bytes] = ByteCache(1 << 20)
    calls = 0

    async def boom() -> bytes:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0)
        raise RuntimeError("cassandra down")

    results = await asyncio.gather(*(c.get_or_load("k", boom) for _ in range(5)),
                                   return_exceptions=True)
    assert calls == 1 and all(isinstance(r, RuntimeError) for r in results)
    with pytest.raises(RuntimeError):
        await c.get_or_load("k", boom)
    assert calls == 2


async def test_cancelled_leader_does_not_cancel_shared_load():
    c: ByteCache[bytes] = ByteCache(1 << 20)
    gate = asyncio.Event()

    async def load() -> bytes:
        await gate.wait()
        return b"v"

    leader = asyncio.create_task(c.get_or_load("k", load))
    await asyncio.sleep(0)
    follower = asyncio.create_task(c.get_or_load("k", load))
    await asyncio.sleep(0)
    leader.cancel()
    await asyncio.sleep(0)
    gate.set()
    assert await follower == b"v"


async def test_ttl_zero_shares_but_does_not_keep():
    c: ByteCache[bytes | None] = ByteCache(1 << 20)
    n = 0

    async def load():
        nonlocal n
        n += 1

    await c.get_or_load("missing", load, size=lambda v: 0, ttl=lambda v: 0 if v is None else None)
    await c.get_or_load("missing", load, size=lambda v: 0, ttl=lambda v: 0 if v is None else None)
    assert n == 2
