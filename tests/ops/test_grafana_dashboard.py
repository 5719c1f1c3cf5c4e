"""The Grafana dashboard is valid and every panel reads only recorded SLIs or exported series."""

from __future__ import annotations

import json

from tests.ops.promql import ROOT, SYNTHETIC, declared_metrics, metric_names, recorded

DASHBOARD = ROOT / "ops/grafana/camlog.json"


def _panels(items: list[dict]) -> list[dict]:
    out = []
    for p in items:
        out.append(p)
        out += _panels(p.get("panels", []))
    return out


def test_dashboard_shape() -> None:
    dash = json.loads(DASHBOARD.read_text())
    assert dash["schemaVersion"] >= 36 and dash["uid"] and dash["title"]
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    panels = _panels(dash["panels"])
    assert len({p["id"] for p in panels}) == len(panels)
    for p in panels:
        if p["type"] != "row":
            assert p["datasource"]["uid"] == "${datasource}", p["title"]
            assert p["targets"], p["title"]


def test_panels_read_only_known_series() -> None:
    known = recorded() | declared_metrics() | SYNTHETIC
    used: set[str] = set()
    for p in _panels(json.loads(DASHBOARD.read_text())["panels"]):
        for t in p.get("targets", []):
            names = metric_names(t["expr"])
            assert names, (p["title"], t["expr"])
            assert names <= known, (p["title"], sorted(names - known))
            used |= names
    # a panel for every SLI the rules record
    assert {r for r in recorded() if r.startswith("camlog:")} <= used
    assert {f"slo:sli_error:ratio_rate{w}" for w in ("5m", "30m", "1h", "6h", "3d")} <= used
    assert "process_cpu_seconds_total" in used
