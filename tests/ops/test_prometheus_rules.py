"""The SLO rules load and pass their promtool unit tests; they read only declared metrics."""

from __future__ import annotations

import subprocess

from tests.clients import require
from tests.ops.promql import (
    ROOT,
    RULES,
    SYNTHETIC,
    declared_metrics,
    metric_names,
    recorded,
    rule_exprs,
)

PROM = ROOT / "ops/prometheus"


def _promtool(*args: str) -> None:
    out = subprocess.run([require("promtool"), *args], cwd=PROM, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


def test_rules_are_valid() -> None:
    assert RULES
    _promtool("check", "rules", *(str(p) for p in RULES))


def test_rules_unit_tests_pass() -> None:
    tests = sorted(str(p) for p in (PROM / "tests").glob("*.yml"))
    assert len(tests) >= 3
    _promtool("test", "rules", *tests)


def test_example_scrape_config_is_valid() -> None:
    _promtool("check", "config", "prometheus.yml")


def test_rules_read_only_declared_metrics() -> None:
    used = set().union(*map(metric_names, rule_exprs())) - recorded() - SYNTHETIC
    assert used, "no metric names found: the PromQL name extractor is broken"
    assert used <= declared_metrics(), sorted(used - declared_metrics())


def test_metric_name_extraction() -> None:
    expr = ('sum by (le, view) (rate(a_bucket{kind="x", view!~"y|z"}[5m])) / 1e3 '
            '+ (b_total or vector(0)) and on (slo) c:d:ratio offset 1h > bool 2')
    assert metric_names(expr) == {"a_bucket", "b_total", "c:d:ratio"}
