"""``camlog capacity``: a deployment plan for a fleet from the committed benchmark results."""

from __future__ import annotations

import argparse
import json
import re
import shlex
from pathlib import Path

from pipeline.admin import capacity as cap
from pipeline.config import Settings
from pipeline.errors import CliError

__all__ = ["DEFAULT_RESULTS", "load_figures", "refresh_blocks", "register", "render"]

DEFAULT_RESULTS = Path(__file__).resolve().parents[2] / "ops" / "bench" / "results" / "latest.json"


def load_figures(latest: Path) -> cap.Figures:
    """Read ``latest.json`` and the ``llhls.json`` beside it."""
    docs = []
    for path in (latest, latest.with_name("llhls.json")):
        try:
            docs.append(json.loads(path.read_text()))
        except (OSError, ValueError) as exc:
            raise CliError(f"cannot read benchmark results {path}: {exc}") from exc
    return cap.figures_from(*docs)


def _fmt(v: float) -> str:
    if v == int(v) and abs(v) >= 1:
        return f"{int(v):,}"
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:,.3g}" if abs(v) >= 1 else f"{v:.3g}"


def _fleet_text(p: cap.Plan) -> str:
    f = p.fleet
    mix = ", ".join(f"{k} {v:.0%}" for k, v in f.mix.items())
    return (f"{f.cameras:,} cameras ({mix}, duty cycle {f.duty_cycle:g}), "
            f"{f.viewers_per_day:,} viewer sessions/day of {f.session_s:g} s "
            f"({f.vod_share:.0%} VOD, {f.viewers_per_stream:g} viewer(s) per watched stream), "
            f"{f.retention_days} days retention, {f.regions} region(s); "
            f"results {p.stamp}, planned at HEADROOM {cap.HEADROOM:g} of measured capacity")


def render(p: cap.Plan, fmt: str) -> str:
    """The plan as ``text``, ``markdown`` or ``json``."""
    if fmt == "json":
        return json.dumps({"fleet": {**vars(p.fleet), "mix": dict(p.fleet.mix)},
                           "results": p.stamp, "headroom": cap.HEADROOM,
                           "lines": [vars(line) for line in p.lines]}, indent=1)
    out: list[str] = []
    section = None
    if fmt == "markdown":
        out.append(f"Plan for {_fleet_text(p)}.")
        for line in p.lines:
            if line.section != section:
                section = line.section
                out += ["", f"**{section}**", "", "| figure | value | unit | from |",
                        "|---|---:|---|---|"]
            out.append(f"| `{line.key}` | {_fmt(line.value)} | {line.unit} | {line.source} |")
    else:
        out.append(_fleet_text(p))
        for line in p.lines:
            if line.section != section:
                section = line.section
                out += ["", section]
            out.append(f"  {line.key:<32} {_fmt(line.value):>14} {line.unit:<28} {line.source}")
    return "\n".join(out) + "\n"


# A generated block: <!-- capacity[:NAME]:begin [ARGS] --> ... <!-- capacity[:NAME]:end -->,
# where ARGS are `camlog capacity` flags (the reference fleet when empty).
_BLOCK = re.compile(r"(?P<begin><!-- capacity(?P<name>(?::[\w-]+)?):begin(?P<args>[^>]*?)-->\n)"
                    r"(?P<body>.*?)(?P<end><!-- capacity(?P=name):end -->)", re.S)


def refresh_blocks(text: str, figures: cap.Figures) -> str:
    """``text`` with every generated capacity block recomputed (pure)."""
    def one(m: re.Match) -> str:
        parser = argparse.ArgumentParser(prog="capacity", exit_on_error=False)
        register(parser)
        try:
            args, extra = parser.parse_known_args(shlex.split(m["args"]))
        except argparse.ArgumentError as exc:
            raise CliError(f"bad capacity block arguments {m['args'].strip()!r}: {exc}") from exc
        if extra:
            raise CliError(f"bad capacity block arguments {m['args'].strip()!r}: {extra}")
        body = render(cap.plan(figures, _fleet(args)), "markdown")
        return f"{m['begin']}{body}{m['end']}"
    return _BLOCK.sub(one, text)


def _fleet(args: argparse.Namespace) -> cap.Fleet:
    return cap.Fleet(
        cameras=args.cameras, mix=cap.parse_mix(args.resolution_mix),
        viewers_per_day=args.viewers, retention_days=args.retention_days, regions=args.regions,
        session_s=args.session_s, vod_share=args.vod_share,
        viewers_per_stream=args.viewers_per_stream, duty_cycle=args.duty_cycle,
        node_disk_tb=args.node_disk_tb)


def _run(args: argparse.Namespace, settings: Settings) -> int:
    figures = load_figures(Path(args.results))
    if args.update:
        path = Path(args.update)
        try:
            text = path.read_text()
        except OSError as exc:
            raise CliError(f"cannot read {path}: {exc}") from exc
        new = refresh_blocks(text, figures)
        if new != text:
            path.write_text(new)
        print(f"{path}: {'updated' if new != text else 'up to date'}")
        return 0
    print(render(cap.plan(figures, _fleet(args)), args.format), end="")
    return 0


def register(p: argparse.ArgumentParser) -> None:
    """Add the ``capacity`` flags."""
    d = cap.Fleet()
    mix = ",".join(f"{k}={v:g}" for k, v in d.mix.items())
    p.add_argument("--cameras", type=int, default=d.cameras, help=f"default {d.cameras:,}")
    p.add_argument("--resolution-mix", default=mix, help=f"shares per resolution (default {mix})")
    p.add_argument("--viewers", type=int, default=d.viewers_per_day,
                   help=f"viewer sessions per day (default {d.viewers_per_day:,})")
    p.add_argument("--retention-days", type=int, default=d.retention_days)
    p.add_argument("--regions", type=int, default=d.regions)
    p.add_argument("--session-s", type=float, default=d.session_s,
                   help="seconds per viewer session (an assumption)")
    p.add_argument("--vod-share", type=float, default=d.vod_share,
                   help="share of sessions watching recordings (an assumption)")
    p.add_argument("--viewers-per-stream", type=float, default=d.viewers_per_stream,
                   help="viewers per watched stream, what the edge collapses (an assumption)")
    p.add_argument("--duty-cycle", type=float, default=d.duty_cycle,
                   help="share of the day a camera streams (an assumption)")
    p.add_argument("--node-disk-tb", type=float, default=d.node_disk_tb,
                   help="usable data disk per Cassandra node (your hardware)")
    p.add_argument("--results", default=str(DEFAULT_RESULTS),
                   help="latest.json of a benchmark run (llhls.json is read beside it)")
    p.add_argument("--format", choices=("text", "markdown", "json"), default="text")
    p.add_argument("--update", metavar="FILE",
                   help="recompute FILE's <!-- capacity:begin ARGS --> blocks (docs/design.md)")
    p.set_defaults(func=_run)
