"""The benchmark's plots, a pure function of one result JSON (README's Performance pictures).

    .venv/bin/python -m ops.bench.plots ops/bench/results/latest.json   # rewrite the PNGs beside it

``make bench`` calls ``render`` on the result it just wrote; running this module alone redraws
them from a committed result, so a plot change never needs a new measurement. The series are
extracted by small pure functions (tested without matplotlib); ``render`` only draws them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["PLOTS", "capacity_points", "cpu_rows", "render", "stored_rate"]

# file name -> what it shows (README references each)
PLOTS = {
    "throughput.png": "MB/s stored in the glass-to-playable run; acknowledged frames/s per trial",
    "latency.png": "glass-to-playable per segment over time; worker lag per capacity trial",
    "latency_hist.png": "glass-to-playable histogram with p50, p99 and 1.1 x target",
    "capacity.png": "capacity search: every trial, pass or fail, by camera count",
    "cpu.png": "CPU by process per capacity trial, and CPU per camera",
}


def stored_rate(stored: list[dict], width: float) -> list[tuple[float, float]]:
    """(seconds since the first seal, MB/s) in ``width``-second bins, empty bins as 0."""
    if not stored:
        return []
    t0 = min(s["sealed"] for s in stored)
    bins: dict[int, float] = {}
    for s in stored:
        k = int((s["sealed"] - t0) // width)
        bins[k] = bins.get(k, 0.0) + s["bytes"] / 1e6 / width
    return [(k * width, bins.get(k, 0.0)) for k in range(max(bins) + 1)]


def capacity_points(res: dict) -> dict[str, list[tuple[int, float, bool]]]:
    """Per size, each trial of the search in order as (cameras, seconds, passed)."""
    cap = res.get("system", {}).get("capacity") or {}
    return {size: [(t["cameras"], t["seconds"], bool(t["passed"])) for t in c.get("trials", [])]
            for size, c in cap.items()}


def cpu_rows(res: dict) -> dict[str, list[dict]]:
    """Per size, the capacity trials that measured CPU, by camera count then length:
    ``{"cameras", "seconds", "passed", "cpu_pct": {process: % of one core}}``."""
    cap = res.get("system", {}).get("capacity") or {}
    out: dict[str, list[dict]] = {}
    for size, c in cap.items():
        rows = [{"cameras": t["cameras"], "seconds": t["seconds"], "passed": bool(t["passed"]),
                 "cpu_pct": dict(t["cpu_pct"])} for t in c.get("trials", []) if t.get("cpu_pct")]
        if rows:
            out[size] = sorted(rows, key=lambda r: (r["cameras"], r["seconds"]))
    return out


def render(res: dict, out_dir: Path, prefix: str = "") -> list[str]:
    """Draw every plot of ``res`` into ``out_dir`` (PNG, Agg); the file names written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    target_s = float(res.get("segment_target_s") or 2.0)
    system = res.get("system", {})
    lat = system.get("latency") or {}
    cap = system.get("capacity") or {}
    out_dir.mkdir(parents=True, exist_ok=True)
    made = []

    def save(fig: Any, name: str) -> None:
        fig.tight_layout()
        fig.savefig(out_dir / f"{prefix}{name}", dpi=90)
        plt.close(fig)
        made.append(f"{prefix}{name}")

    fig, (a1, a2) = plt.subplots(2, 1, figsize=(10, 7))
    rate = stored_rate(lat.get("stored") or [], max(1.0, target_s))
    if rate:
        a1.plot(*zip(*rate, strict=True), drawstyle="steps-post")
    a1.set(title=f"whole system: MB/s stored, {target_s:g} s bins "
                 f"({lat.get('cameras', '?')} cameras)", xlabel="s", ylabel="MB/s")
    for size, c in cap.items():
        for t in c["trials"]:
            pts = [(s["t"], s["acked_per_s"]) for s in t.get("samples", [])
                   if s["acked_per_s"] and s.get("fleet", True)]
            if pts:
                a2.plot(*zip(*pts, strict=True), label=f"{size} n={t['cameras']} "
                        f"{'pass' if t['passed'] else 'fail'}", alpha=0.8)
    a2.set(title="capacity trials: acknowledged frames/s", xlabel="s", ylabel="frames/s")
    if a2.lines:
        a2.legend(fontsize=7, ncol=3)
    save(fig, "throughput.png")

    pts = lat.get("points") or []
    fig, (b1, b2) = plt.subplots(2, 1, figsize=(10, 7))
    if pts:
        t0 = pts[0]["seen"]
        b1.scatter([p["seen"] - t0 for p in pts], [p["glass_to_playable_s"] for p in pts], s=8,
                   label="glass-to-playable")
        b1.scatter([p["seen"] - t0 for p in pts], [p["seal_s"] for p in pts], s=8,
                   label="ingest -> sealed")
        b1.axhline(target_s * 1.1, color="r", ls="--", label="1.1 × target duration")
        b1.legend(fontsize=8)
    b1.set(title="glass-to-playable per segment over time", xlabel="s", ylabel="s")
    for size, c in cap.items():
        for t in c["trials"]:
            p = [(s["t"], s["lag_s"]) for s in t.get("samples", [])
                 if s["lag_s"] is not None and s.get("fleet", True)]
            if p:
                b2.plot(*zip(*p, strict=True), label=f"{size} n={t['cameras']}", alpha=0.8)
    b2.set(title="capacity trials: worker lag (age of the oldest uncommitted frame chunk)",
           xlabel="s", ylabel="s")
    if b2.lines:
        b2.legend(fontsize=7, ncol=3)
    save(fig, "latency.png")

    fig, ax = plt.subplots(figsize=(8, 4.5))
    g = [p["glass_to_playable_s"] for p in pts]
    if g:
        ax.hist(g, bins=min(50, max(5, len(g) // 4)))
        for q, style in ((lat.get("glass_to_playable_p50_s"), ":"),
                         (lat.get("glass_to_playable_p99_s"), "--")):
            if q is not None:
                ax.axvline(q, color="k", ls=style)
        ax.axvline(target_s * 1.1, color="r", ls="--")
    ax.set(title="glass-to-playable histogram (dotted p50, dashed p99, red 1.1 × target)",
           xlabel="s", ylabel="segments")
    save(fig, "latency_hist.png")

    points = capacity_points(res)
    fig, axes = plt.subplots(1, max(1, len(points)), figsize=(6 * max(1, len(points)), 4.5),
                             squeeze=False)
    for ax, (size, trials) in zip(axes[0], points.items(), strict=False):
        c = cap[size]
        full_s = max((sec for _, sec, _ in trials), default=0)
        if c.get("capacity") and c.get("upper"):
            ax.axvspan(c["capacity"], c["upper"], color="g", alpha=0.12)
        for k, (n, sec, ok) in enumerate(trials):
            ax.scatter(n, k + 1, marker="o" if ok else "X", s=45,
                       color=("g" if ok else "r") if sec >= full_s else "none",
                       edgecolors="g" if ok else "r")
        ax.set_xscale("log", base=2)
        ax.invert_yaxis()
        ax.set(title=f"{size}: capacity {c.get('capacity')}, first failure {c.get('upper')}",
               xlabel="cameras", ylabel="trial")
    axes[0][0].text(0.01, 0.01, "o pass, X fail; hollow: short bracketing trial, filled: "
                    "full length; band: capacity .. first failure", transform=axes[0][0].transAxes,
                    fontsize=7)
    save(fig, "capacity.png")

    rows = cpu_rows(res)
    fig, axes = plt.subplots(2, max(1, len(rows)), figsize=(6 * max(1, len(rows)), 8),
                             squeeze=False)
    procs = sorted({p for rs in rows.values() for r in rs for p in r["cpu_pct"]})
    colors = {p: plt.cm.tab10(i % 10) for i, p in enumerate(procs)}
    for col, (size, rs) in enumerate(rows.items()):
        top, per_cam = axes[0][col], axes[1][col]
        labels = [f"{r['cameras']}{'' if r['passed'] else ' x'}\n{r['seconds']:.0f}s" for r in rs]
        bottom = [0.0] * len(rs)
        for p in procs:
            vals = [r["cpu_pct"].get(p, 0.0) for r in rs]
            top.bar(range(len(rs)), vals, bottom=bottom, label=p, color=colors[p])
            bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
        top.axhline(100 * (res.get("machine", {}).get("cores_logical") or 2), color="k", ls=":",
                    lw=1, label="all cores")
        top.set_xticks(range(len(rs)), labels, fontsize=7)
        top.set(title=f"{size}: CPU % of one core by process per trial (x = failed)",
                ylabel="% of one core")
        top.legend(fontsize=7, ncol=3)
        for p in procs:
            xs = [(r["cameras"], r["cpu_pct"][p] / r["cameras"]) for r in rs
                  if p in r["cpu_pct"] and r["cameras"]]
            if xs:
                per_cam.plot(*zip(*xs, strict=True), marker="o", label=p, color=colors[p])
        per_cam.set_xscale("log", base=2)
        per_cam.set(title=f"{size}: CPU % per camera", xlabel="cameras",
                    ylabel="% of one core per camera")
        per_cam.legend(fontsize=7, ncol=3)
    save(fig, "cpu.png")
    return made


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ops.bench.plots",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("result", type=Path, help="a result JSON (ops/bench/results/latest.json)")
    ap.add_argument("--out", type=Path, help="directory for the PNGs (default: beside the JSON)")
    ap.add_argument("--prefix", default="", help="prefix of each file name")
    a = ap.parse_args(argv)
    made = render(json.loads(a.result.read_text()), a.out or a.result.parent, a.prefix)
    print(f"wrote {', '.join(made)} in {a.out or a.result.parent}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
