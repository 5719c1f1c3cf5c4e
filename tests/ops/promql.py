"""What the SLO rules and the dashboard read: metric names in PromQL, recorded names, scrapes."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

__all__ = ["DECLARED", "RULES", "declared_metrics", "metric_names", "recorded", "rule_exprs",
           "scraped_names"]

ROOT = Path(__file__).resolve().parents[2]
RULES = sorted((ROOT / "ops/prometheus/rules").glob("*.yml"))
#: The metric names camlog's processes export that rules and dashboards may use.
DECLARED = ROOT / "ops/prometheus/metrics.txt"
#: Series Prometheus makes itself, not the services.
SYNTHETIC = {"up"}

_KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left",
             "group_right", "bool", "offset", "inf", "nan"}
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGES = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENT = re.compile(r"(?<![\w:.])([A-Za-z_:][\w:]*)(?![\w:])(?!\s*\()")
_TEMPLATE = re.compile(r"\$\{?\w+\}?")


def metric_names(expr: str) -> set[str]:
    """Series names an expression selects (no functions, keywords, labels, grouping, numbers)."""
    text = _TEMPLATE.sub("1", expr)  # Grafana variables such as $__rate_interval
    text = _STRINGS.sub('""', text)
    text = _MATCHERS.sub("", text)
    text = _RANGES.sub("", text)
    text = _GROUPING.sub("", text)
    return {m for m in _IDENT.findall(text) if m.lower() not in _KEYWORDS}


def _rules() -> list[dict]:
    return [r for path in RULES for g in yaml.safe_load(path.read_text())["groups"]
            for r in g["rules"]]


def rule_exprs() -> list[str]:
    """Every rule's expression, in file order."""
    return [r["expr"] for r in _rules()]


def recorded() -> set[str]:
    """Names the recording rules produce."""
    return {r["record"] for r in _rules() if "record" in r}


def declared_metrics() -> set[str]:
    """ops/prometheus/metrics.txt: one exported series name a line, # comments."""
    lines = (ln.split("#", 1)[0].strip() for ln in DECLARED.read_text().splitlines())
    return {ln for ln in lines if ln}


def scraped_names(text: str) -> set[str]:
    """Series names in a Prometheus text exposition."""
    return {ln.split("{", 1)[0].split(" ", 1)[0] for ln in text.splitlines()
            if ln and not ln.startswith("#")}
