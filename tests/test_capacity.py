"""`camlog capacity`: the planner's figures, its properties, its constants and its CLI."""

from __future__ import annotations

import json
import tomllib
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.admin import capacity as cap
from pipeline.admin.capacity_cli import DEFAULT_RESULTS, load_figures, render
from pipeline.cli import main
from pipeline.errors import CliError

ROOT = Path(__file__).resolve().parents[1]
LATEST = json.loads(DEFAULT_RESULTS.read_text())
FIG = load_figures(DEFAULT_RESULTS)

INSTANCES_FOR_CAMERAS = ("bridge_processes", "worker_processes", "kafka_brokers",
                         "frames_partitions", "cassandra_nodes_per_dc")
INSTANCES_FOR_VIEWERS = ("edge_boxes_per_region", "playback_processes_per_region")


def test_figures_are_read_from_the_committed_trials():
    t = next(t for t in LATEST["system"]["capacity"]["640x360"]["trials"]
             if t["passed"] and t["seconds"] == 120.0)
    r = FIG.resolutions["360p"]
    assert r.cameras == t["cameras"]
    assert r.bytes_per_camera_s == pytest.approx(t["stored_bytes"] / (t["cameras"] * 120.0))
    assert r.core_per_camera["worker"] == pytest.approx(t["cpu_pct"]["worker"] / 100 / t["cameras"])
    assert set(FIG.resolutions) == {"360p", "720p"}
    assert FIG.kafka_mb_s == LATEST["system"]["raw_kafka"]["640x360"]["media_mb_per_s"]


def test_plan_arithmetic_for_one_resolution():
    fleet = cap.Fleet(cameras=1000, mix={"360p": 1.0}, viewers_per_day=0, regions=1)
    p = cap.plan(FIG, fleet)
    r = FIG.resolutions["360p"]
    assert p.value("ingest_mb_s") == pytest.approx(1000 * r.bytes_per_camera_s / 1e6)
    worker_cores = 1000 * r.core_per_camera["worker"]
    assert p.value("worker_processes") == -(-worker_cores // cap.HEADROOM)
    assert p.value("ingest_http_rps") == pytest.approx(1000 * FIG.chunks_per_camera_s)
    assert p.value("playback_processes_per_region") == 0


def test_two_regions_each_carry_the_whole_fleet():
    one = cap.plan(FIG, cap.Fleet(regions=1))
    two = cap.plan(FIG, cap.Fleet(regions=2))
    three = cap.plan(FIG, cap.Fleet(regions=3))
    assert two.value("worker_processes") == one.value("worker_processes")
    assert three.value("worker_processes") < two.value("worker_processes")
    assert two.value("cassandra_disk_tb_all_dcs") == 2 * two.value("cassandra_disk_tb_per_dc")


fleets = st.builds(
    cap.Fleet,
    cameras=st.integers(0, 5_000_000),
    mix=st.floats(0.01, 0.99).map(lambda a: {"360p": a, "720p": 1 - a}),
    viewers_per_day=st.integers(0, 10**9),
    retention_days=st.integers(1, 400),
    regions=st.integers(1, 5),
)


@settings(max_examples=200, deadline=None)
@given(fleets, st.sampled_from(["cameras", "viewers_per_day", "retention_days"]),
       st.integers(1, 10**6))
def test_plan_is_monotone(fleet, knob, more):
    bigger = replace(fleet, **{knob: getattr(fleet, knob) + more})
    small, big = cap.plan(FIG, fleet), cap.plan(FIG, bigger)
    for a, b in zip(small.lines, big.lines, strict=True):
        assert a.key == b.key
        assert b.value >= a.value - 1e-9 * abs(a.value), (knob, a.key, a.value, b.value)


@settings(max_examples=200, deadline=None)
@given(fleets)
def test_no_zero_instances_for_nonzero_load(fleet):
    p = cap.plan(FIG, fleet)
    for key in INSTANCES_FOR_CAMERAS:
        assert (p.value(key) >= 1) == (fleet.cameras > 0), key
    for key in INSTANCES_FOR_VIEWERS:
        assert (p.value(key) >= 1) == (fleet.viewers_per_day > 0), key
    if fleet.cameras:
        assert p.value("kafka_brokers") >= cap.KAFKA_RF
        assert p.value("cassandra_nodes_per_dc") >= cap.CASSANDRA_RF
    assert all(line.value == int(line.value) for line in p.lines
               if line.key in INSTANCES_FOR_CAMERAS + INSTANCES_FOR_VIEWERS)


def test_constants_match_the_declared_topology():
    kafka = tomllib.loads((ROOT / "topology" / "kafka.toml").read_text())
    assert kafka["defaults"]["replication_factor"] == cap.KAFKA_RF
    assert kafka["defaults"]["partitions"] == cap.KAFKA_PARTITIONS
    frames_ms = int(kafka["topics"]["camlog.frames"]["config"]["retention.ms"])
    assert frames_ms == cap.FRAMES_RETENTION_DAYS * 86_400_000
    tables = tomllib.loads((ROOT / "topology" / "cassandra.toml").read_text())["tables"]
    opts = tables["segment_data"]["options"]
    assert opts["compaction"]["class"] == "TimeWindowCompactionStrategy"
    assert opts["compaction"]["compaction_window_unit"] == "HOURS"
    assert opts["compaction"]["compaction_window_size"] == "retention/28"  # twcs_window_hours
    assert opts["gc_grace_seconds"] == cap.GC_GRACE_H * 3600


@pytest.mark.parametrize("text", ["360p", "360p=x", "=1", "360p=0.5,360p=0.5", "360p=-1,720p=2",
                                  "360p=0.5", "360p=nan"])
def test_bad_mix_is_refused(text):
    with pytest.raises(CliError):
        cap.parse_mix(text)


def test_mix_parses():
    assert cap.parse_mix("360p=0.25, 720p=0.75") == {"360p": 0.25, "720p": 0.75}


def _camlog(monkeypatch, tmp_path, capsys, *argv):
    monkeypatch.setenv("CAMLOG_STATE_DIR", str(tmp_path))
    code = main(["capacity", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("argv, message", [
    (["--resolution-mix", "1080p=1"], "no measured capacity for 1080p"),
    (["--resolution-mix", "360p=0.5"], "add up to 0.5"),
    (["--regions", "0"], "--regions"),
    (["--retention-days", "0"], "--retention-days"),
    (["--cameras", "-5"], "must not be negative"),
    (["--vod-share", "2"], "--vod-share"),
    (["--viewers-per-stream", "0.5"], "--viewers-per-stream"),
    (["--results", "/nonexistent/latest.json"], "cannot read benchmark results"),
])
def test_bad_flags_exit_2_with_a_message(monkeypatch, tmp_path, capsys, argv, message):
    code, out, err = _camlog(monkeypatch, tmp_path, capsys, *argv)
    assert code == 2
    assert out == ""
    assert message in err and err.startswith("camlog capacity:")


@pytest.mark.parametrize("argv", [["--format", "yaml"], ["--cameras", "many"]])
def test_unparseable_flags_exit_2(monkeypatch, tmp_path, capsys, argv):
    with pytest.raises(SystemExit) as exc:
        _camlog(monkeypatch, tmp_path, capsys, *argv)
    assert exc.value.code == 2
    assert "usage" in capsys.readouterr().err


def test_results_without_capacity_are_refused(monkeypatch, tmp_path, capsys):
    doc = dict(LATEST)
    doc["system"] = {k: v for k, v in LATEST["system"].items() if k != "capacity"}
    (tmp_path / "latest.json").write_text(json.dumps(doc))
    (tmp_path / "llhls.json").write_text((DEFAULT_RESULTS.parent / "llhls.json").read_text())
    results = str(tmp_path / "latest.json")
    code, _, err = _camlog(monkeypatch, tmp_path, capsys, "--results", results)
    assert code == 2 and "system.capacity" in err


def test_cli_json_is_the_plan(monkeypatch, tmp_path, capsys):
    code, out, _ = _camlog(monkeypatch, tmp_path, capsys, "--cameras", "500", "--format", "json")
    assert code == 0
    doc = json.loads(out)
    expected = cap.plan(FIG, cap.Fleet(cameras=500))
    assert {d["key"]: d["value"] for d in doc["lines"]} == {
        line.key: line.value for line in expected.lines}
    assert doc["fleet"]["cameras"] == 500 and doc["results"] == LATEST["stamp"]


def test_update_rewrites_a_stale_block_in_place(monkeypatch, tmp_path, capsys):
    doc = tmp_path / "design.md"
    doc.write_text("a\n<!-- capacity:begin -->\nstale\n<!-- capacity:end -->\nb\n")
    code, out, _ = _camlog(monkeypatch, tmp_path, capsys, "--update", str(doc))
    assert code == 0 and "updated" in out
    expected = render(cap.plan(FIG, cap.Fleet()), "markdown")
    assert doc.read_text() == f"a\n<!-- capacity:begin -->\n{expected}<!-- capacity:end -->\nb\n"
    code, out, _ = _camlog(monkeypatch, tmp_path, capsys, "--update", str(doc))
    assert code == 0 and "up to date" in out


def test_text_and_markdown_list_every_line():
    p = cap.plan(FIG, cap.Fleet())
    for fmt in ("text", "markdown"):
        out = render(p, fmt)
        assert all(line.key in out for line in p.lines)
