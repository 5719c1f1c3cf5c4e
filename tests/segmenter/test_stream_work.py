"""A stream's pending chunks: settling releases exactly those up to the settle point, once."""

from __future__ import annotations

import asyncio

from hypothesis import given
from hypothesis import strategies as st

from pipeline.agents.stream_work import Pending, StreamWork
from pipeline.media.cutter import Cutter


def _work() -> StreamWork:
    return StreamWork("s", Cutter("s", target_s=2.0, max_s=4.0, part_target_s=0.5, idle_s=5.0,
                                  now=lambda: 0.0))


@given(seqs=st.lists(st.integers(0, 50), max_size=30), points=st.lists(st.integers(-1, 60)))
def test_settle_releases_each_chunk_once_in_arrival_order(seqs, points):
    work = _work()
    for i, seq in enumerate(seqs):
        work.receive(Pending(seq, "tp", i, None))
    released: list[Pending] = []
    for through in points:
        out = work.settle(through)
        assert all(p.seq <= through for p in out)
        assert all(p.seq > through for p in work.waiting)
        released += out
    assert sorted(p.offset for p in released + work.waiting) == list(range(len(seqs)))


def test_a_deferred_settle_point_goes_to_the_tail_only_once():
    async def main() -> None:
        work = _work()
        first = asyncio.create_task(asyncio.sleep(0))
        second = asyncio.create_task(asyncio.sleep(0))
        work.tail = second
        work.defer(3)
        work.defer(1)
        assert work.take_deferred(first) is None  # not the stream's last task
        assert work.take_deferred(second) == 3
        assert work.take_deferred(second) is None
        await asyncio.gather(first, second)

    asyncio.run(main())
