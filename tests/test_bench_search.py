"""The benchmark's capacity search and summary: pure logic, no services."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ops.bench.report import figures, table
from ops.bench.search import capacity_search


@given(short_limit=st.integers(0, 3000), full_limit=st.integers(0, 3000),
       start=st.integers(1, 64), resolution=st.sampled_from([0.1, 0.25, 0.5]))
def test_search_brackets_the_full_length_capacity(short_limit, full_limit, start, resolution):
    full_limit = min(full_limit, short_limit)  # a longer trial is never easier

    def trial(n: int, seconds: float) -> bool:
        return n <= (short_limit if seconds < 120 else full_limit)

    res = capacity_search(trial, start, 30, 120, resolution, cap=4096, max_trials=100)
    assert res.capacity <= full_limit  # only a full-length pass counts
    assert all(t["passed"] == trial(t["cameras"], t["seconds"]) for t in res.trials)
    full_passes = [t["cameras"] for t in res.trials if t["passed"] and t["seconds"] == 120]
    assert res.capacity == max(full_passes, default=0)
    if res.upper is not None:
        assert res.upper > full_limit
        assert res.capacity == 0 or res.upper - res.capacity <= max(1, resolution * res.capacity)


def test_search_respects_the_trial_budget():
    calls = []
    res = capacity_search(lambda n, s: calls.append(n) or True, 8, 10, 20, max_trials=5)
    assert len(calls) <= 5 and res.upper is None and res.capacity == calls[-1]


def test_summary_reports_misses_honestly():
    res = {"system": {
        "raw_kafka": {"640x360": {"media_mb_per_s": 100.0}},
        "latency": {"glass_to_playable_p99_s": 3.0, "segments_seen": 10},
        "capacity": {"640x360": {"capacity": 40, "upper": 48, "full_s": 120, "trials": [
            {"cameras": 40, "seconds": 120, "passed": True, "stored_mb_per_s": 2.5}]}}},
        "playback": {"playlist": {"camlog": {"rps": 300.0}, "nginx": {"rps": 1000.0},
                                  "rps_ratio": 0.3}}}
    rows = {r["figure"]: r for r in figures(res, 2.0)}
    assert rows["ingest efficiency"]["ratio"] == 0.025 and rows["ingest efficiency"]["met"] is False
    assert rows["latency ratio"]["ratio"] == 1.5 and rows["latency ratio"]["met"] is False
    assert rows["capacity 640x360"]["value"] == 40 and rows["capacity 640x360"]["met"] is False
    assert rows["capacity 640x360"]["baseline"] == 1600  # 100 MB/s ÷ 2.5/40 MB/s per camera
    assert rows["serving efficiency (playlist)"]["met"] is False
    text = table(list(rows.values()))
    assert "NO" in text and "latency ratio" in text


def test_a_short_pass_alone_proves_nothing():
    # short trials pass at any size; at full length only up to 5 cameras do
    res = capacity_search(lambda n, s: s < 120 or n <= 5, 8, 10, 120, max_trials=5)
    assert [(t["cameras"], t["seconds"]) for t in res.trials] == [
        (8, 10), (16, 10), (32, 10), (32, 120), (16, 120)]
    assert res.capacity == 0 and res.upper == 16
