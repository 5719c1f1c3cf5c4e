"""The benchmark's result: headline figures as ratios to same-run baselines, table, JSON
(the plots: ``ops.bench.plots``)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

__all__ = ["figures", "table", "write"]


def _row(name: str, value: Any, baseline: Any, unit: str, target: str, ratio: float | None,
         met: bool | None, note: str = "") -> dict:
    return {"figure": name, "value": value, "baseline": baseline, "unit": unit,
            "ratio": ratio, "target": target, "met": met, "note": note}


def _div(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _best_full(cap: dict | None) -> dict | None:
    """The passing full-length trial with the most cameras."""
    if not cap:
        return None
    full = [t for t in cap["trials"] if t.get("passed") and t["seconds"] >= cap["full_s"]]
    return max(full, key=lambda t: t["cameras"]) if full else None


def figures(res: dict, target_s: float) -> list[dict]:
    """The four headline figures (five rows: serving has playlist and segment)."""
    rows = []
    system = res.get("system", {})
    raw = system.get("raw_kafka", {})
    cap = system.get("capacity", {})
    best = _best_full(cap.get("640x360"))
    e2e = best["stored_mb_per_s"] if best else None
    base = raw.get("640x360", {}).get("media_mb_per_s")
    r = _div(e2e, base)
    rows.append(_row("ingest efficiency", e2e, base, "MB/s", ">= 0.8", r,
                     None if r is None else r >= 0.8,
                     "stored media MB/s at the 640x360 capacity ÷ raw produce+consume"))
    lat = system.get("latency", {})
    p99 = lat.get("glass_to_playable_p99_s")
    r = _div(p99, target_s)
    rows.append(_row("latency ratio", p99, target_s, "s", "<= 1.1", r,
                     None if r is None else r <= 1.1,
                     f"glass-to-playable p99 ÷ segment target over {lat.get('segments_seen', 0)} "
                     f"segments; ingest->sealed p99 {_fmt(lat.get('seal_p99_s'))} s, "
                     f"sealed->in playlist p99 {_fmt(lat.get('sealed_to_playlist_p99_s'))} s"))
    for size, goal in (("640x360", 500), ("1280x720", None)):
        c = cap.get(size)
        if not c:
            continue
        b = _best_full(c)
        per_cam = _div(b["stored_mb_per_s"], b["cameras"]) if b else None
        raw_cams = _div(raw.get(size, {}).get("media_mb_per_s"), per_cam)
        n = b["cameras"] if b else 0  # the largest full-length pass, even if the search broke
        more = "" if c.get("upper") else " (none within the trial budget)"
        more += "" if c.get("complete", True) else "; SEARCH INCOMPLETE"
        if c.get("complete", True) and c.get("converged") is False:
            more += f"; not within {c.get('ratio', 1.1):g}x (trial budget spent)"
        rows.append(_row(f"capacity {size}", n, None if raw_cams is None else round(raw_cams),
                         "cameras", f">= {goal}" if goal else "-", _div(n, raw_cams),
                         None if goal is None else n >= goal,
                         f"15 fps, {c['full_s']:.0f}s trials; first failing count "
                         f"{c.get('upper')}{more}; baseline = cameras raw Kafka could carry"))
    ll = system.get("llhls", {})
    for key in sorted((k for k in ll if k.startswith("part_latency_")),
                      key=lambda k: int(k.rsplit("_", 1)[1])):
        x = ll[key]
        r = x.get("part_latency_p99_ratio")
        rows.append(_row(f"LL part latency p99, {x['cameras']} cameras", x["part_latency_p99_s"],
                         x["part_target_s"], "s", "<= 1.3", r, None if r is None else r <= 1.3,
                         f"capture of a part's first frame -> blocking playlist listing it, "
                         f"÷ PART-TARGET; p50 {_fmt(x['part_latency_p50_s'])} s over "
                         f"{x['parts_seen']} parts"))
    if "player" in ll:
        x = ll["player"]
        r = x.get("player_latency_ratio")
        rows.append(_row("LL player latency (hls.js)", x["player_latency_p50_s"],
                         x["part_hold_back_s"], "s", "<= 1.3", r, None if r is None else r <= 1.3,
                         f"now - playingDate p50 in Chromium ÷ PART-HOLD-BACK; "
                         f"{x['blocking_requests']} blocking playlist requests"))
    if "events" in ll:
        x = ll["events"]
        after, before = (x.get("part_chunks", {}).get("per_camera_second"),
                         x.get("one_frame_chunks", {}).get("per_camera_second"))
        r = _div(after, before)
        rows.append(_row("events per camera-second", after, before, "events", "-", r, None,
                         "camlog.frames events, part-sized chunks ÷ one-frame chunks (15 fps)"))
    pb = res.get("playback", {})
    for kind in ("playlist", "segment"):
        if kind in pb:
            x = pb[kind]
            r = x.get("rps_ratio")
            rows.append(_row(f"serving efficiency ({kind})", x["camlog"]["rps"],
                             x["nginx"]["rps"], "req/s", ">= 0.5", r,
                             None if r is None else r >= 0.5,
                             "camlog playback ÷ nginx, same bytes"))
    ing = res.get("ingest", {})
    if "ratio_bridge_to_raw" in ing:
        rows.append(_row("(info) bridge saturated ÷ raw produce", ing["bridge_sustained_mb_per_s"],
                         ing["raw_mb_per_s"], "MB/s", "-", ing["ratio_bridge_to_raw"], None,
                         "ingest benchmark, bridge only"))
    seg = res.get("segmenter", {})
    if "cpu_ratio_vs_ffmpeg" in seg:
        rows.append(_row("(info) segmenter CPU ÷ ffmpeg remux",
                         seg["segmenter"]["cpu_s_per_media_s"],
                         seg["ffmpeg"]["cpu_s_per_media_s"], "CPU s/media s", "-",
                         seg["cpu_ratio_vs_ffmpeg"], None, "segmenter benchmark (lower is better)"))
    cass = res.get("cassandra_options", {})
    if "ratio_declared_to_defaults" in cass:
        per = cass["cassandra_pct_per_camera"]
        rows.append(_row("(info) Cassandra CPU per camera, declared options", per["declared"],
                         per["defaults"], "% core", "-", cass["ratio_declared_to_defaults"], None,
                         f"TWCS + uncompressed media ÷ STCS + LZ4, {cass['cameras']} cameras "
                         f"640x360, {cass['seconds']:.0f}s x {cass['rounds']} round(s)"))
    return rows


def _fmt(v: Any) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return "n/a" if math.isnan(v) else (f"{v:.3g}" if abs(v) < 100 else f"{v:.0f}")
    return str(v)


def table(rows: list[dict]) -> str:
    """The summary table as aligned text."""
    head = ("figure", "value", "baseline", "ratio", "target", "met?")
    body = [(r["figure"], f"{_fmt(r['value'])} {r['unit']}", f"{_fmt(r['baseline'])} {r['unit']}",
             _fmt(r["ratio"]), r["target"],
             {True: "yes", False: "NO", None: "n/a"}[r["met"]]) for r in rows]
    widths = [max(len(str(x[i])) for x in [head, *body]) for i in range(len(head))]

    def line(cells: list) -> str:
        return "  ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True))

    return "\n".join([line(head), line(["-" * w for w in widths]), *map(line, body)])


def write(res: dict, out_dir: Path, stamp: str, latest: str = "latest.json") -> Path:
    """``bench-<stamp>.json`` and a copy as ``latest`` (a partial run names its own copy)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    text = json.dumps(res, indent=1, default=str) + "\n"
    path = out_dir / f"bench-{stamp}.json"
    path.write_text(text)
    (out_dir / latest).write_text(text)
    return path
