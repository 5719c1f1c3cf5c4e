"""``replay verify``'s pure parts: the row diff (either way round, any side names) and the
per-stream DC comparison over fetchers, and the command line's choice of what to compare."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.cli import main
from pipeline.replay.verify import compare_streams, diff_rows, retention_days
from pipeline.topology.spec import load_tables
from pipeline.views.timeindex import DAY_US, day_of

KEYS = {t.name: (*t.partition_key, *t.clustering) for t in load_tables()}

# rows keyed by (k, c), one row per key as in a table
_rows = st.dictionaries(
    st.tuples(st.integers(0, 5), st.sampled_from("xy")),
    st.one_of(st.none(), st.integers(0, 3), st.binary(max_size=3)), max_size=12,
).map(lambda d: [{"k": k, "c": c, "v": v} for (k, c), v in d.items()])


def _flip(what: str, sides: tuple[str, str]) -> str:
    """A difference's words with the two sides swapped (names travel with their rows)."""
    a, b = sides
    if what.startswith("missing in "):  # missing in dc2 either way round
        return what
    col, _, rest = what.partition(": ")
    left, _, right = rest[len(a) + 1:].partition(f" != {b} ")
    return f"{col}: {b} {right} != {a} {left}"


@given(_rows, _rows)
def test_the_diff_is_symmetric(a, b):
    """A vs B lists the same keys as B vs A, each difference from the other side's view."""
    ab = diff_rows("t", ("k", "c"), a, b, sides=("dc1", "dc2"))
    ba = diff_rows("t", ("k", "c"), b, a, sides=("dc2", "dc1"))
    assert [d.key for d in ab] == [d.key for d in ba]
    assert sorted(_flip(d.what, ("dc1", "dc2")) for d in ab) == sorted(d.what for d in ba)


@given(_rows)
def test_equal_sets_have_no_differences(a):
    assert diff_rows("t", ("k", "c"), a, list(reversed(a)), sides=("dc1", "dc2")) == []


def test_the_words_name_the_sides():
    a = [{"k": 1, "v": 1}, {"k": 2, "v": 1}]
    b = [{"k": 1, "v": 2}, {"k": 3, "v": 1}]
    assert [str(d) for d in diff_rows("t", ("k",), a, b, sides=("dc1", "dc2"))] == [
        "t (1,): v: dc1 1 != dc2 2", "t (2,): missing in dc2", "t (3,): missing in dc1"]
    assert str(diff_rows("t", ("k",), a[:1], [], )[0]) == "t (1,): missing in rebuilt"


def _fetch(tables: dict[str, list[dict[str, Any]]]):
    def fetch(table: str, where: dict[str, Any]) -> list[dict[str, Any]]:
        return [r for r in tables.get(table, []) if all(r[k] == v for k, v in where.items())]
    return fetch


def _side(day: int, parts: int = 2) -> dict[str, list[dict[str, Any]]]:
    seg = {"stream_id": "s", "day": day, "start_time": day * DAY_US + 5, "segment_id": "g1",
           "sealed_time": 1, "duration": 2.0}
    return {
        "segments": [seg],
        "segment_data": [{"stream_id": "s", "segment_id": "g1", "part": p, "data": b"m%d" % p}
                         for p in range(parts)],
        "init_segments": [{"stream_id": "s", "init_id": "i1", "data": b"init"}],
        "device_state": [{"stream_id": "s", "online": True}],
        "live_manifest": [{"stream_id": "s", "window_entries": "[]"}],
    }


def test_the_dc_comparison_reads_every_table_of_each_stream():
    today = 20_000
    same = compare_streams(_fetch(_side(today)), _fetch(_side(today)), ["s"],
                           retention_days(today * DAY_US, 7), KEYS, ("dc1", "dc2"))
    assert same.differences == []
    assert same.rows == {"segments": 2, "segment_data": 4, "init_segments": 2,
                         "device_state": 2, "live_manifest": 2}
    # dc2 lacks the segment's last part, and has a row of yesterday dc1 has not seen
    dc2 = _side(today, parts=1)
    dc2["segments"].append({**dc2["segments"][0], "day": today - 1, "segment_id": "g0",
                            "start_time": (today - 1) * DAY_US})
    dc2["segments"][0] = {**dc2["segments"][0], "sealed_time": 99}  # wall clock: not compared
    got = compare_streams(_fetch(_side(today)), _fetch(dc2), ["s"],
                          retention_days(today * DAY_US, 7), KEYS, ("dc1", "dc2"))
    assert [str(d) for d in got.differences] == [
        f"segments ('s', {today - 1}, {(today - 1) * DAY_US}, 'g0'): missing in dc1",
        "segment_data ('s', 'g1', 1): missing in dc2"]


def test_the_day_buckets_cover_retention_and_a_day_either_side():
    now = 20_000 * DAY_US + 123
    days = retention_days(now, 7)
    assert days[0] == day_of(now) + 1 and days[-1] == day_of(now) - 7 and len(days) == 9


@pytest.mark.parametrize("argv", [["replay", "verify"],
                                  ["replay", "verify", "--against", "k", "--dcs", "dc1,dc2"]])
def test_against_or_dcs_exactly_one(argv, capsys):
    with pytest.raises(SystemExit) as ei:
        main(argv)
    assert ei.value.code == 2
    assert "--against" in capsys.readouterr().err
