"""AckBook: events are released for commit only as a settled prefix, in offset order."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pipeline.agents.acks import AckBook


@given(st.integers(1, 60).flatmap(lambda n: st.permutations(range(n))))
def test_only_settled_prefixes_are_released_in_order(order):
    book = AckBook()
    for off in range(len(order)):
        book.add("tp", off, off)
    released: list[int] = []
    settled: set[int] = set()
    for off in order:
        settled.add(off)
        released += book.settle("tp", off)
        # what was released is exactly the longest settled prefix
        prefix = 0
        while prefix in settled:
            prefix += 1
        assert released == list(range(prefix))
    assert book.unsettled() == 0


def test_revoked_partition_is_forgotten():
    book = AckBook()
    book.add("a", 5, "e5")
    assert "a" in book
    book.drop("a")
    assert "a" not in book and book.settle("a", 5) == []
