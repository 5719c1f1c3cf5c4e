"""``make soak``: the whole system at half its measured capacity for a long run, memory watched.

    .venv/bin/python -m ops.bench.soak                          # 30 min, half the capacity
    .venv/bin/python -m ops.bench.soak --minutes 3 --cameras 16  # a smoke run

Starts the benchmark system (``ops.bench.system``: bridge, private worker, playback) with one
camera fleet, and every ``--interval`` seconds samples the RSS of each process (camlog's and
Kafka's and Cassandra's), the worker's consumer lag, the bridge's ack latency (its Prometheus
histogram, per interval) and a few live-playlist requests. Writes
``ops/bench/results/soak.json`` and ``soak.png``. The verdict: each camlog process's RSS grows
less than 10 % from minute 5 to the end (medians over a minute at each end, so one GC or buffer
burst does not decide it); the JVMs' RSS is recorded but not judged (their heaps are sized
up front). Not in CI: the lead runs it on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["JUDGED", "LIMIT", "ack_quantiles", "default_cameras", "growth", "main",
           "parse_histogram", "verdict"]

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "ops" / "bench" / "results"
#: Processes whose RSS growth decides the verdict (Kafka and Cassandra are only recorded).
JUDGED = ("bridge", "worker", "playback", "camera")
LIMIT = 0.10
_ACK = "camlog_ingest_ack_latency"
T0 = time.monotonic()


def say(line: str) -> None:
    """Progress on stderr, stamped with the minutes since start."""
    el = time.monotonic() - T0
    print(f"[{int(el // 60):02d}:{int(el % 60):02d}] {line}", file=sys.stderr, flush=True)


def default_cameras(latest: Path = RESULTS / "latest.json", fallback: int = 64) -> int:
    """Half the 640x360 capacity of the last ``make bench`` (``fallback`` when unknown)."""
    try:
        cap = json.loads(latest.read_text())["system"]["capacity"]["640x360"]["capacity"]
    except (OSError, ValueError, KeyError, TypeError):
        return fallback
    return max(1, int(cap) // 2) if cap else fallback


def parse_histogram(text: str, prefix: str = _ACK) -> dict | None:
    """Cumulative buckets, sum and count of the Prometheus histogram named ``prefix*``."""
    from prometheus_client.parser import text_string_to_metric_families

    buckets: dict[float, float] = {}
    total = count = 0.0
    found = False
    for fam in text_string_to_metric_families(text):
        if fam.type != "histogram" or not fam.name.startswith(prefix):
            continue
        found = True
        for s in fam.samples:  # every label set summed: one histogram for the bridge
            if s.name.endswith("_bucket"):
                le = float(s.labels["le"])
                buckets[le] = buckets.get(le, 0.0) + s.value
            elif s.name.endswith("_sum"):
                total += s.value
            elif s.name.endswith("_count"):
                count += s.value
    if not found:
        return None
    return {"buckets": sorted(buckets.items()), "sum": total, "count": count}


def ack_quantiles(prev: Mapping | None, cur: Mapping | None,
                  qs: Sequence[float] = (0.5, 0.99)) -> dict[str, float | None]:
    """Mean and quantiles of what was observed between two scrapes (bucket interpolation)."""
    out: dict[str, float | None] = {"n": 0, "mean_ms": None,
                                    **{f"p{q * 100:g}_ms": None for q in qs}}
    if not cur:
        return out
    before = dict(prev["buckets"]) if prev else {}
    n = cur["count"] - (prev["count"] if prev else 0.0)
    if n <= 0:
        return out
    out["n"] = int(n)
    out["mean_ms"] = (cur["sum"] - (prev["sum"] if prev else 0.0)) / n
    delta = [(le, c - before.get(le, 0.0)) for le, c in cur["buckets"]]
    for q in qs:
        rank, lo, below = q * n, 0.0, 0.0
        for le, c in delta:
            if c >= rank:
                if le == float("inf"):  # beyond the last bound: the bound is all we know
                    out[f"p{q * 100:g}_ms"] = lo
                else:
                    span = c - below
                    out[f"p{q * 100:g}_ms"] = lo + (le - lo) * ((rank - below) / span if span
                                                                else 1.0)
                break
            lo, below = le, c
    return out


def growth(samples: Sequence[Mapping], name: str, warm_s: float, window_s: float) -> dict | None:
    """RSS of ``name``: median over [warm, warm + window) vs. median over the last window."""
    pts = [(s["t"], s["rss_mb"][name]) for s in samples if name in s.get("rss_mb", {})]
    if not pts:
        return None
    end_t = pts[-1][0]
    start = [v for t, v in pts if warm_s <= t < warm_s + window_s]
    end = [v for t, v in pts if t > end_t - window_s]
    if not start or not end:
        return None
    a, b = statistics.median(start), statistics.median(end)
    return {"start_mb": round(a, 1), "end_mb": round(b, 1), "growth": round(b / a - 1, 4),
            "from_s": warm_s, "to_s": end_t}


def verdict(samples: Sequence[Mapping], warm_s: float, window_s: float,
            limit: float = LIMIT) -> dict:
    """Growth per process; passed when every judged process grew less than ``limit``."""
    names = sorted({n for s in samples for n in s.get("rss_mb", {})})
    per = {n: growth(samples, n, warm_s, window_s) for n in names}
    for n, g in per.items():
        if g is not None:
            g["judged"] = n in JUDGED
            g["passed"] = g["growth"] < limit if n in JUDGED else None
    missing = [n for n in JUDGED if per.get(n) is None]
    failed = [n for n, g in per.items() if g and g["passed"] is False]
    return {"limit": limit, "warm_s": warm_s, "window_s": window_s, "processes": per,
            "missing": missing, "failed": failed, "passed": not failed and not missing}


def _get(url: str, timeout: float = 5.0) -> tuple[int, float, bytes]:
    t = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, (time.monotonic() - t) * 1000, r.read()
    except urllib.error.HTTPError as e:
        return e.code, (time.monotonic() - t) * 1000, b""
    except OSError:
        return 0, (time.monotonic() - t) * 1000, b""


def _playback(base: str, names: Sequence[str], token: str) -> dict:
    """A few live-playlist requests, as a viewer would make them."""
    got = [_get(f"{base}/v1/streams/{n}/live.m3u8?token={token}") for n in names]
    return {"status": [g[0] for g in got], "max_ms": round(max(g[1] for g in got), 1)}


def _args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m ops.bench.soak",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--cameras", type=int, default=None,
                    help="default: half the 640x360 capacity in results/latest.json, else 64")
    ap.add_argument("--size", default="640x360")
    ap.add_argument("--fps", type=float, default=15.0)
    ap.add_argument("--bitrate", default="500k")
    ap.add_argument("--interval", type=float, default=10.0, help="seconds between samples")
    ap.add_argument("--warm-minutes", type=float, default=5.0,
                    help="RSS growth is judged from here (at most half the run) to the end")
    ap.add_argument("--out", type=Path, default=RESULTS)
    a = ap.parse_args(argv)
    if a.cameras is None:
        a.cameras = default_cameras()
    return a


def _run(a: argparse.Namespace, settings: Any, out: dict, report: Callable[[str], None]) -> None:
    """Start the system and the fleet, sample until the fleet is done (into ``out``)."""
    from ops.bench.system import BenchSystem, TrialSpec, progress_samples, stream_ids
    from pipeline.auth.keys import viewer_keys
    from pipeline.auth.viewer import issue as issue_viewer

    seconds = a.minutes * 60
    system = BenchSystem(settings, settings.state_dir / "bench-logs" / f"soak-{out['stamp']}",
                         bridge_metrics=True)
    samples: list[dict] = out.setdefault("samples", [])
    out["system"] = {"run_id": system.run_id, "stream_prefix": system.prefix,
                     "worker_group": system.app_id, "log_dir": str(system.log_dir)}
    try:
        report(f"starting bridge, worker (group {system.app_id}) and playback")
        system.start()
        stream = system.new_stream(f"soak{a.size}-n{a.cameras}")
        names = stream_ids(stream, a.cameras)
        token = issue_viewer(viewer_keys(system.settings), [f"{stream}*"], int(seconds) + 3600,
                      time.time())
        scrape = f"http://127.0.0.1:{system.metrics_ports['bridge']}/metrics"
        spec = TrialSpec(a.cameras, a.size, seconds, a.fps, chunk_frames=3, bitrate=a.bitrate,
                         variants=1)  # one pattern: camera start-up in seconds
        cam = system.spawn_cameras(spec, stream)
        report(f"{a.cameras} cameras {a.size} @ {a.fps:g} fps for {a.minutes:g} min; "
               f"a sample every {a.interval:g} s")
        t0, fleet_t0, prev_hist = time.monotonic(), None, None
        while cam.alive and time.monotonic() - t0 < seconds + 180:
            tick = time.monotonic()
            system.check_alive()
            log = cam.log.read_text(errors="replace")
            if fleet_t0 is None and "camera(s) ->" in log:
                fleet_t0 = tick
            hist = parse_histogram(_get(scrape)[2].decode(errors="replace"))
            lag_msgs, lag_s = system.lag()
            prog = progress_samples(log)
            s = {"t": round(tick - (fleet_t0 or t0), 1), "fleet": fleet_t0 is not None,
                 "wall": round(time.time(), 1), "load_avg": os.getloadavg()[0],
                 "rss_mb": {k: round(v / 2**20, 1) for k, v in system.rss_bytes().items()},
                 "lag_msgs": lag_msgs, "lag_s": lag_s,
                 "ack": ack_quantiles(prev_hist, hist),
                 "acked_per_s": prog[-1][1] if prog else None,
                 "playback": _playback(system.playback_url, names[:3], token)}
            prev_hist = hist or prev_hist
            samples.append(s)
            report(f"  t={s['t']:6.0f}s  lag {'?' if lag_s is None else f'{lag_s:.1f}s'}  "
                   f"ack p99 {s['ack']['p99_ms'] or 0:.0f} ms  acked/s {s['acked_per_s']}  RSS MB "
                   + " ".join(f"{k} {v:.0f}" for k, v in sorted(s["rss_mb"].items())))
            time.sleep(max(0.0, tick + a.interval - time.monotonic()))
        out["camera"] = system.finish_cameras(cam, timeout=60)
    finally:
        system.stop()


def plot(res: dict, path: Path) -> None:
    """RSS per process, consumer lag and ack latency over time (PNG, Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = [s for s in res.get("samples", []) if s["fleet"]]
    fig, (a1, a2, a3) = plt.subplots(3, 1, figsize=(10, 10), sharex=True)
    names = sorted({n for s in pts for n in s["rss_mb"]})
    for n in names:
        xs = [(s["t"] / 60, s["rss_mb"][n]) for s in pts if n in s["rss_mb"]]
        a1.plot(*zip(*xs, strict=True), label=n, ls="-" if n in JUDGED else ":")
    v = res.get("verdict", {})
    if v.get("warm_s") is not None:
        a1.axvline(v["warm_s"] / 60, color="k", ls="--", lw=0.8)
    a1.set(title=f"RSS per process ({res['parameters']['cameras']} cameras; verdict "
                 f"{'PASS' if v.get('passed') else 'FAIL'}: growth < {LIMIT:.0%} from the "
                 f"dashed line)", ylabel="MiB")
    a1.set_yscale("log")
    if a1.lines:
        a1.legend(fontsize=7, ncol=3)
    lag = [(s["t"] / 60, s["lag_s"]) for s in pts if s["lag_s"] is not None]
    if lag:
        a2.plot(*zip(*lag, strict=True))
    a2.set(title="worker consumer lag (age of the oldest uncommitted frame chunk)", ylabel="s")
    for key, style in (("p50_ms", "-"), ("p99_ms", "--"), ("mean_ms", ":")):
        xs = [(s["t"] / 60, s["ack"][key]) for s in pts if s["ack"].get(key) is not None]
        if xs:
            a3.plot(*zip(*xs, strict=True), ls=style, label=key.removesuffix("_ms"))
    a3.set(title="bridge ack latency per interval (request received to Kafka ack)",
           xlabel="minutes", ylabel="ms")
    if a3.lines:
        a3.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Run the soak, write soak.json and soak.png, print the verdict; 1 when it failed."""
    a = _args(argv)
    signal.signal(signal.SIGTERM, _interrupt)  # SIGTERM too stops every child and writes
    from ops.bench.machine import describe
    from pipeline.config import load_settings

    settings = load_settings()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    params = {k: str(v) if isinstance(v, Path) else v for k, v in vars(a).items()}
    res: dict = {"stamp": stamp, "command": " ".join(
        [Path(sys.executable).name, "-m", "ops.bench.soak",
         *(argv if argv is not None else sys.argv[1:])]),
        "parameters": params, "machine": describe(settings)}
    say(f"camlog soak {stamp}: {a.cameras} cameras for {a.minutes:g} min; load average "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    try:
        _run(a, settings, res, say)
    except (Exception, KeyboardInterrupt) as exc:  # keep what was sampled
        res["error"] = f"{type(exc).__name__}: {exc}"
        say(f"soak stopped early: {res['error']}")
    fleet = [s for s in res.get("samples", []) if s["fleet"]]
    end_t = fleet[-1]["t"] if fleet else 0.0
    warm = min(a.warm_minutes * 60, end_t / 2)
    window = min(60.0, max(a.interval, (end_t - warm) / 4))
    res["verdict"] = verdict(fleet, warm, window)
    res["load_avg_after"] = os.getloadavg()
    res["wall_s"] = time.monotonic() - T0
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "soak.json").write_text(json.dumps(res, indent=1, default=str) + "\n")
    try:
        plot(res, a.out / "soak.png")
    except Exception as exc:  # the JSON is the result; a plot is a view of it
        say(f"no plot: {type(exc).__name__}: {exc}")
    v = res["verdict"]
    print(f"RSS growth from {v['warm_s'] / 60:.1f} min to the end (limit {LIMIT:.0%}):")
    for n, g in sorted(v["processes"].items()):
        if g:
            mark = {True: "ok", False: "GROWS", None: "(not judged)"}[g["passed"]]
            print(f"  {n:10s} {g['start_mb']:8.1f} -> {g['end_mb']:8.1f} MiB  "
                  f"{g['growth']:+7.1%}  {mark}")
    if v["missing"]:
        print(f"  no samples for: {', '.join(v['missing'])}")
    print(f"{'PASS' if v['passed'] else 'FAIL'}; results: {(a.out / 'soak.json')} and soak.png; "
          f"took {res['wall_s'] / 60:.1f} min")
    return 0 if v["passed"] and "error" not in res else 1


if __name__ == "__main__":
    sys.exit(main())
