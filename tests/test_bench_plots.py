"""The benchmark's plots: a pure function of one result JSON, runnable alone; no services."""

from __future__ import annotations

import json

from ops.bench import plots
from pipeline import ROOT


def _result() -> dict:
    trials = [
        {"cameras": 16, "seconds": 20, "passed": True, "samples": [
            {"t": 1.0, "acked_per_s": 240.0, "lag_s": 0.2}],
         "cpu_pct": {"bridge": 6.0, "cassandra": 16.0}},
        {"cameras": 32, "seconds": 20, "passed": False, "cpu_pct": {"bridge": 10.0}},
        {"cameras": 16, "seconds": 120, "passed": True,
         "cpu_pct": {"bridge": 7.0, "cassandra": 12.0, "worker": 20.0}},
    ]
    stored = [{"sealed": 100.0, "bytes": 2e6}, {"sealed": 101.0, "bytes": 1e6},
              {"sealed": 105.0, "bytes": 4e6}]
    points = [{"seen": 10.0 + i, "glass_to_playable_s": 2.0 + i / 10, "seal_s": 1.9}
              for i in range(12)]
    return {"segment_target_s": 2.0, "machine": {"cores_logical": 2}, "system": {
        "latency": {"cameras": 8, "stored": stored, "points": points,
                    "glass_to_playable_p50_s": 2.5, "glass_to_playable_p99_s": 3.1},
        "capacity": {"640x360": {"capacity": 16, "upper": 32, "full_s": 120, "trials": trials}}}}


def test_series_come_from_the_json_alone():
    res = _result()
    assert plots.stored_rate(res["system"]["latency"]["stored"], 2.0) == [
        (0.0, 1.5), (2.0, 0.0), (4.0, 2.0)]
    assert plots.capacity_points(res) == {"640x360": [(16, 20, True), (32, 20, False),
                                                      (16, 120, True)]}
    rows = plots.cpu_rows(res)["640x360"]
    assert [(r["cameras"], r["seconds"]) for r in rows] == [(16, 20), (16, 120), (32, 20)]
    assert rows[1]["cpu_pct"]["cassandra"] == 12.0
    assert plots.stored_rate([], 2.0) == [] and plots.cpu_rows({}) == {}


def test_the_module_alone_draws_every_plot_from_a_result_file(tmp_path):
    path = tmp_path / "r.json"
    path.write_text(json.dumps(_result()))
    assert plots.main([str(path)]) == 0
    for name in plots.PLOTS:
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    assert plots.render({}, tmp_path / "empty", "partial-") == [f"partial-{n}" for n in plots.PLOTS]


def test_readme_shows_every_plot_and_each_is_committed():
    readme = (ROOT / "README.md").read_text()
    for name in plots.PLOTS:
        assert f"ops/bench/results/{name}" in readme, name
        assert (ROOT / "ops" / "bench" / "results" / name).is_file(), name
