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


@given(st.lists(st.tuples(st.sampled_from(["add", "settle", "fail", "drop"]),
                          st.sampled_from(["a", "b"]), st.integers(0, 30)), max_size=200))
def test_failures_at_random_points_never_release_unsettled_work(ops):
    """Adds, settles, failures (an offset that is never settled) and revocations, interleaved:
    what is released is always a gapless, settled prefix of what each partition added."""
    book = AckBook()
    added: dict[str, list[int]] = {"a": [], "b": []}
    settled: dict[str, set[int]] = {"a": set(), "b": set()}
    failed: dict[str, set[int]] = {"a": set(), "b": set()}
    released: dict[str, list[int]] = {"a": [], "b": []}
    for op, tp, n in ops:
        if op == "add":
            off = (added[tp][-1] + 1) if added[tp] else 0
            book.add(tp, off, (tp, off))
            added[tp].append(off)
        elif op == "drop":  # revoked: the next owner re-reads everything unreleased
            book.drop(tp)
            added[tp], settled[tp], failed[tp] = [], set(), set()
            released[tp] = []
        elif added[tp]:
            off = added[tp][n % len(added[tp])]
            if off in settled[tp]:
                continue
            if op == "fail" or off in failed[tp]:
                failed[tp].add(off)  # its store write never succeeded: never settled
                continue
            settled[tp].add(off)
            out = book.settle(tp, off)
            assert all(t == tp for t, _ in out)
            released[tp] += [o for _, o in out]
        for p in ("a", "b"):
            got = released[p]
            assert got == added[p][:len(got)], (p, got)  # gapless prefix, in order
            assert set(got) <= settled[p] and not set(got) & failed[p]
