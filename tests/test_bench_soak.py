"""The soak's pure parts: default load, per-interval ack quantiles, RSS growth verdict."""

from __future__ import annotations

import json

import pytest

from ops.bench.soak import ack_quantiles, default_cameras, parse_histogram, verdict

_TEXT = """# HELP camlog_ingest_ack_latency_milliseconds request received to Kafka ack
# TYPE camlog_ingest_ack_latency_milliseconds histogram
camlog_ingest_ack_latency_milliseconds_bucket{le="5.0"} %d
camlog_ingest_ack_latency_milliseconds_bucket{le="10.0"} %d
camlog_ingest_ack_latency_milliseconds_bucket{le="+Inf"} %d
camlog_ingest_ack_latency_milliseconds_count %d
camlog_ingest_ack_latency_milliseconds_sum %f
"""


def _hist(b5: int, b10: int, inf: int, total: float) -> dict:
    h = parse_histogram(_TEXT % (b5, b10, inf, inf, total))
    assert h is not None
    return h


def test_default_cameras_is_half_the_measured_capacity(tmp_path):
    latest = tmp_path / "latest.json"
    latest.write_text(json.dumps({"system": {"capacity": {"640x360": {"capacity": 128}}}}))
    assert default_cameras(latest) == 64
    latest.write_text("{}")
    assert default_cameras(latest) == 64  # fallback
    assert default_cameras(tmp_path / "missing.json", fallback=8) == 8


def test_ack_quantiles_are_of_the_interval_between_scrapes():
    prev = _hist(100, 100, 100, 300.0)  # 100 fast acks before
    cur = _hist(100, 200, 200, 1100.0)  # then 100 acks between 5 and 10 ms
    q = ack_quantiles(prev, cur)
    assert q["n"] == 100 and q["mean_ms"] == pytest.approx(8.0)
    assert q["p50_ms"] == pytest.approx(7.5) and q["p99_ms"] == pytest.approx(9.95)
    assert ack_quantiles(cur, cur)["p99_ms"] is None  # nothing acked in between
    assert ack_quantiles(None, _hist(0, 0, 4, 80.0))["p50_ms"] == 10.0  # past the last bound
    assert parse_histogram("") is None


def _samples(rss: dict[str, list[float]]) -> list[dict]:
    n = len(next(iter(rss.values())))
    return [{"t": 10.0 * i, "rss_mb": {k: v[i] for k, v in rss.items()}} for i in range(n)]


def test_verdict_judges_camlog_processes_from_the_warm_point_to_the_end():
    flat = [100.0] * 30
    steady = [50.0 + i for i in range(10)] + [60.0] * 20  # warms up, then flat
    leak = [100.0 + 2 * i for i in range(30)]
    samples = _samples({"bridge": steady, "worker": flat, "playback": flat, "camera": flat,
                        "cassandra": leak})
    v = verdict(samples, warm_s=100, window_s=50)
    assert v["passed"] and v["processes"]["bridge"]["growth"] == 0.0
    assert v["processes"]["cassandra"]["passed"] is None  # recorded, not judged
    v = verdict(_samples({"bridge": flat, "worker": leak, "playback": flat, "camera": flat}),
                warm_s=100, window_s=50)
    assert not v["passed"] and v["failed"] == ["worker"]
    assert v["processes"]["worker"]["growth"] > 0.10
    v = verdict(_samples({"bridge": flat}), warm_s=100, window_s=50)
    assert not v["passed"] and v["missing"] == ["worker", "playback", "camera"]
