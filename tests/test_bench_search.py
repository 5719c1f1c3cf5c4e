"""The benchmark's capacity search and summary: pure logic, no services."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ops.bench.report import figures, table
from ops.bench.search import capacity_search, converged, trial_bound


@given(short_limit=st.integers(0, 5000), full_limit=st.integers(0, 5000),
       start=st.integers(1, 64), cap=st.sampled_from([256, 1024, 4096]),
       ratio=st.sampled_from([1.05, 1.10, 1.25, 1.5]), two_lengths=st.booleans())
def test_search_converges_within_its_bound_on_any_monotone_threshold(
        short_limit, full_limit, start, cap, ratio, two_lengths):
    full_limit = min(full_limit, short_limit)  # a longer trial is never easier
    short_s = 30 if two_lengths else 120

    def trial(n: int, seconds: float) -> bool:
        return n <= (short_limit if seconds < 120 else full_limit)

    res = capacity_search(trial, start, short_s, 120, ratio, cap=cap)
    assert len(res.trials) <= trial_bound(start, cap, ratio, two_lengths)
    assert res.converged
    assert res.capacity <= full_limit  # only a full-length pass counts
    assert all(t["passed"] == trial(t["cameras"], t["seconds"]) for t in res.trials)
    full_passes = [t["cameras"] for t in res.trials if t["passed"] and t["seconds"] == 120]
    assert res.capacity == max(full_passes, default=0)
    if res.upper is None:
        assert res.capacity * 2 > cap  # passed at every doubling up to the cap
    else:
        assert res.upper > full_limit
        assert res.upper - res.capacity <= 1 or res.upper <= ratio * res.capacity


@given(outcomes=st.lists(st.booleans(), max_size=60), start=st.integers(1, 64),
       budget=st.integers(0, 40))
def test_a_failing_count_is_never_reported_as_capacity(outcomes, start, budget):
    """Whatever the trials answer (flaky, non-monotone, budget cut short)."""
    answers = iter(outcomes)
    res = capacity_search(lambda n, s: next(answers, False), start, 20, 120, max_trials=budget)
    assert len(res.trials) <= budget
    failed = [t["cameras"] for t in res.trials if not t["passed"]]
    assert all(n > res.capacity for n in failed)
    if res.capacity:
        assert {"cameras": res.capacity, "seconds": 120, "passed": True} in res.trials
    if res.upper is not None:
        assert res.upper in failed and res.upper > res.capacity
    assert res.converged == converged(res.capacity, res.upper, 1.10, 4096)


def test_the_measured_case_ends_within_ten_percent():
    # the last full run: 128 pass, 192 fail; say the true limit is 130 at full length
    res = capacity_search(lambda n, s: n <= (150 if s < 120 else 130), 16, 20, 120)
    assert (res.capacity, res.upper, res.converged) == (128, 136, True)
    assert len(res.trials) == 10  # 5 doubling, 1 confirm, 4 bisections


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


def test_cassandra_options_variants_and_summary():
    from ops.bench.cassandra_options import order, summarize, variant_specs
    from pipeline.topology.spec import load_tables

    declared = {t.name: t for t in variant_specs("declared")}
    assert declared == {t.name: t for t in load_tables()}
    bare = variant_specs("defaults")
    assert all(t.options == {} for t in bare)
    assert [t.columns for t in bare] == [t.columns for t in load_tables()]
    assert order(2) == ["defaults", "declared", "declared", "defaults"]

    def run(v, pct, passed=True):
        return {"variant": v, "passed": passed, "cassandra_pct_per_camera": pct}

    s = summarize([run("defaults", 0.4), run("declared", 0.3), run("declared", 0.1),
                   run("defaults", 0.2), run("defaults", 9.0, passed=False)])
    assert s["cassandra_pct_per_camera"] == {"defaults": 0.3, "declared": 0.2}
    assert s["ratio_declared_to_defaults"] == 0.667
    assert summarize([run("declared", 0.3)])["ratio_declared_to_defaults"] is None
    res = {"cassandra_options": {**s, "cameras": 64, "seconds": 120.0, "rounds": 2}}
    row = next(r for r in figures(res, 2.0) if r["figure"].startswith("(info) Cassandra"))
    assert (row["value"], row["baseline"], row["ratio"]) == (0.2, 0.3, 0.667)
