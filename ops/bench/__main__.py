"""``make bench``: ingest, segmenter and playback benchmarks plus a whole-system run, one result.

    .venv/bin/python -m ops.bench            # ~40 min on 2 cores: 2-minute capacity trials
    .venv/bin/python -m ops.bench --quick    # ~12 min: 10 s/20 s trials, shorter runs
    .venv/bin/python -m ops.bench --ratio 1.25 --max-trials 9   # a coarser, shorter search
    .venv/bin/python -m ops.bench --skip ingest,segmenter,playback,rtsp,latency,llhls,capacity
                                             # only the 10x spike (base: half of latest.json)

Writes ``ops/bench/results/bench-<UTC stamp>.json`` (+ ``latest.json``) and the PNG plots of
README's Performance section beside it (``ops.bench.plots``; a run with ``--latest NAME`` draws
``NAME-*.png`` instead, so a partial run never replaces them), py-spy flame graphs of bridge and
worker at the measured capacity (``flame-*.svg``, ``flames.json``), the worker shape
comparison (``worker_split.json``) and Cassandra's CPU per camera with the declared table options
against its defaults (``cassandra_options.json``), then prints the headline figures, each as a
ratio to a baseline measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "ops" / "bench" / "results"
T0 = time.monotonic()


def say(line: str) -> None:
    """Progress on stderr, stamped with the minutes since start."""
    el = time.monotonic() - T0
    print(f"[{int(el // 60):02d}:{int(el % 60):02d}] {line}", file=sys.stderr, flush=True)


def _args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m ops.bench", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short trials (a smoke run, ~6-10 min)")
    ap.add_argument("--skip", default="",
                    help="comma list of ingest,segmenter,playback,rtsp,worker_split,"
                         "cassandra_options,system,"
                         "latency,llhls,capacity,flames,spike")
    ap.add_argument("--results", type=Path, default=RESULTS,
                    help="directory for result files, plots and flame graphs (ops/bench/results)")
    ap.add_argument("--sizes", default="640x360,1280x720", help="capacity search sizes")
    ap.add_argument("--bitrates", default="640x360=500k,1280x720=2M",
                    help="camera bitrate per size")
    ap.add_argument("--fps", type=float, default=15.0)
    ap.add_argument("--trial-seconds", type=float, help="full trial length (120; quick 20)")
    ap.add_argument("--bracket-seconds", type=float,
                    help="doubling-phase trial length (20; quick 10)")
    ap.add_argument("--start", default="640x360=16,1280x720=4",
                    help="first camera count of each search")
    ap.add_argument("--ratio", type=float, default=1.10,
                    help="stop bisecting when first failing count / capacity <= this (1.10)")
    ap.add_argument("--max-trials", type=int,
                    help="per size (default: enough to converge, ops.bench.search.trial_bound)")
    ap.add_argument("--max-cameras", type=int, default=4096)
    ap.add_argument("--max-lag-s", type=float, default=15.0,
                    help="worker lag (seconds behind) that counts as unbounded")
    ap.add_argument("--latency-cameras", type=int, default=8)
    ap.add_argument("--latency-seconds", type=float, help="glass-to-playable run (90; quick 30)")
    ap.add_argument("--baseline-seconds", type=float, help="raw Kafka run per size (10; quick 5)")
    ap.add_argument("--ingest-cameras", type=int, help="ingest bench cameras (50; quick 20)")
    ap.add_argument("--ingest-seconds", type=float, help="(20; quick 10)")
    ap.add_argument("--segmenter-cameras", type=int, help="(50; quick 20)")
    ap.add_argument("--segmenter-seconds", type=int, help="(20; quick 10)")
    ap.add_argument("--playback-seconds", type=int, help="wrk run length (10; quick 3)")
    ap.add_argument("--playback-repeat", type=int, help="interleaved runs (3; quick 1)")
    ap.add_argument("--latest", help="name of the result copy (latest.json; partial.json when "
                    "--skip is given)")
    ap.add_argument("--ll-cameras", default="8,100", help="part latency runs (camera counts)")
    ap.add_argument("--ll-seconds", type=float, help="each part latency run (60; quick 20)")
    ap.add_argument("--player-seconds", type=float, help="hls.js latency run (45; quick 30)")
    ap.add_argument("--events-seconds", type=float, help="events/camera-second runs (20; quick 10)")
    ap.add_argument("--rtsp-cameras", type=int, help="RTSP pull bench cameras (32; quick 4)")
    ap.add_argument("--rtsp-seconds", type=float, help="(30; quick 5)")
    ap.add_argument("--spike-base", type=int,
                    help="10x spike: base cameras 640x360 (default half the measured capacity: "
                         "this run's, else ops/bench/results/latest.json)")
    ap.add_argument("--spike-seconds", type=float, default=60.0, help="10x spike length")
    ap.add_argument("--spike-calm-seconds", type=float, help="base-only run before (30; quick 10)")
    ap.add_argument("--flame-cameras", type=int,
                    help="py-spy run: cameras 640x360 (default the measured capacity: this "
                         "run's, else latest.json's, else 100)")
    ap.add_argument("--flame-seconds", type=float, help="py-spy run length (75; quick 30)")
    ap.add_argument("--split-cameras", type=int, help="worker shape comparison (100; quick 16)")
    ap.add_argument("--split-seconds", type=float, help="each shape's run (40; quick 15)")
    ap.add_argument("--split-rounds", type=int, help="alternations of the shapes (2; quick 1)")
    ap.add_argument("--cass-cameras", type=int,
                    help="Cassandra options A/B: cameras 640x360 (64; quick 8)")
    ap.add_argument("--cass-seconds", type=float, help="each variant's trial (120; quick 20)")
    ap.add_argument("--cass-rounds", type=int, help="rounds of both variants (2; quick 1)")
    a = ap.parse_args(argv)
    q = a.quick
    for name, full, quick in (("trial_seconds", 120.0, 20.0), ("bracket_seconds", 20.0, 10.0),
                              ("latency_seconds", 90.0, 30.0), ("baseline_seconds", 10.0, 5.0),
                              ("ingest_cameras", 50, 20), ("ingest_seconds", 20.0, 10.0),
                              ("segmenter_cameras", 50, 20), ("segmenter_seconds", 20, 10),
                              ("playback_seconds", 10, 3), ("playback_repeat", 3, 1),
                              ("rtsp_cameras", 32, 4), ("rtsp_seconds", 30.0, 5.0),
                              ("ll_seconds", 60.0, 20.0), ("player_seconds", 45.0, 30.0),
                              ("events_seconds", 20.0, 10.0), ("spike_calm_seconds", 30.0, 10.0),
                              ("flame_seconds", 75.0, 30.0), ("split_cameras", 100, 16),
                              ("split_seconds", 40.0, 15.0), ("split_rounds", 2, 1),
                              ("cass_cameras", 64, 8), ("cass_seconds", 120.0, 20.0),
                              ("cass_rounds", 2, 1)):
        if getattr(a, name) is None:
            setattr(a, name, quick if q else full)
    a.skip = {s.strip() for s in a.skip.split(",") if s.strip()}
    a.sizes = [s.strip() for s in a.sizes.split(",") if s.strip()]
    a.ll_cameras = [int(n) for n in a.ll_cameras.split(",") if n.strip()]
    a.bitrates = dict(kv.split("=") for kv in a.bitrates.split(","))
    a.start = {k: int(v) for k, v in (kv.split("=") for kv in a.start.split(","))}
    return a


def _sub(name: str, argv: list[str], timeout: float, result: Path | None) -> dict:
    """Run one per-issue benchmark as a child; its JSON, or an error record."""
    say(f"== {name} benchmark: {' '.join(argv)}")
    t = time.time()
    try:
        proc = subprocess.run([sys.executable, "-m", *argv], cwd=ROOT, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f}s"}
    if proc.returncode != 0:
        return {"error": f"exit status {proc.returncode}"}
    if result is None or not result.exists() or result.stat().st_mtime < t:
        return {"error": f"no fresh result file {result}"}
    return {**json.loads(result.read_text()), "argv": argv, "wall_s": time.time() - t}


def _sub_benches(a: argparse.Namespace, tmp: Path) -> dict:
    out = {}
    if "ingest" not in a.skip:
        j = tmp / "ingest.json"
        out["ingest"] = _sub("ingest", ["ops.bench.ingest.run", "--cameras", str(a.ingest_cameras),
                                        "--seconds", str(a.ingest_seconds), "--json", str(j)],
                             600, j)
    if "segmenter" not in a.skip:
        out["segmenter"] = _sub("segmenter", ["ops.bench.segmenter.run", "--cameras",
                                              str(a.segmenter_cameras), "--seconds",
                                              str(a.segmenter_seconds)],
                                900, RESULTS / "segmenter.json")
    if "playback" not in a.skip:
        out["playback"] = _sub("playback", ["ops.bench.playback.run", "--seconds",
                                            str(a.playback_seconds), "--repeat",
                                            str(a.playback_repeat)],
                               900, RESULTS / "playback.json")
    if "rtsp" not in a.skip:
        out["rtsp"] = _sub("rtsp", ["ops.bench.rtsp.run", "--cameras", str(a.rtsp_cameras),
                                    "--seconds", str(a.rtsp_seconds)], 600, RESULTS / "rtsp.json")
    if "worker_split" not in a.skip:
        j = a.results / "worker_split.json"
        out["worker_split"] = _sub("worker_split", [
            "ops.bench.worker_split", "--cameras", str(a.split_cameras), "--seconds",
            str(a.split_seconds), "--rounds", str(a.split_rounds), "--json", str(j)],
            a.split_rounds * 2 * (a.split_seconds + 240), j)
    if "cassandra_options" not in a.skip:
        j = a.results / "cassandra_options.json"
        out["cassandra_options"] = _sub("cassandra_options", [
            "ops.bench.cassandra_options", "--cameras", str(a.cass_cameras), "--seconds",
            str(a.cass_seconds), "--rounds", str(a.cass_rounds), "--json", str(j)],
            a.cass_rounds * 2 * (a.cass_seconds + 300), j)
    return out


def _system(a: argparse.Namespace, settings, log_dir: Path, out: dict) -> None:
    """Raw Kafka baselines, the glass-to-playable run and the capacity searches, into ``out``
    (filled as it goes, so a failure keeps what was measured)."""
    from ops.bench.baseline import raw_kafka
    from ops.bench.search import capacity_search
    from ops.bench.system import BenchSystem, TrialSpec
    from ops.bench.trials import capacity_trial, latency_run
    from pipeline.device.pattern import encode_loop

    out.update(raw_kafka={}, capacity={})
    chunk = 3  # frames per request in capacity trials (what `camlog camera` uses past 20)
    for size in [] if "capacity" in a.skip else a.sizes:
        w, h = map(int, size.split("x"))
        rate = a.bitrates.get(size, "500k")
        bps = (int(float(rate[:-1]) * {"k": 1e3, "M": 1e6}[rate[-1]]) if rate[-1] in "kM"
               else int(rate))
        say(f"== raw Kafka baseline {size} @ {rate}: produce + consume for "
            f"{a.baseline_seconds:.0f}s")
        loop = encode_loop(0, fps=a.fps, width=w, height=h, bitrate=bps, gop_s=2)
        out["raw_kafka"][size] = raw_kafka(settings.kafka, loop, chunk, a.baseline_seconds)
        say(f"   {out['raw_kafka'][size]['media_mb_per_s']:.1f} MB/s media "
            f"({out['raw_kafka'][size]['messages']} messages)")
    system = BenchSystem(settings, log_dir)
    out.update(run_id=system.run_id, stream_prefix=system.prefix, worker_group=system.app_id,
               idle_timeout_s=system.idle_timeout_s, log_dir=str(log_dir))
    say(f"== whole system: starting bridge, worker (group {system.app_id}, prefix "
        f"{system.prefix}) and playback")
    try:
        system.start()
        rate = a.bitrates.get("640x360", "500k")
        if "latency" not in a.skip:
            say(f"== glass-to-playable (whole segments): {a.latency_cameras} cameras 640x360")
            spec = TrialSpec(a.latency_cameras, "640x360", a.latency_seconds, a.fps, bitrate=rate)
            out["latency"] = latency_run(system, spec, say)
            lat = out["latency"]
            say(f"   p50 {lat['glass_to_playable_p50_s']} s, p99 "
                f"{lat['glass_to_playable_p99_s']} s over {lat['segments_seen']} segments")
        if "llhls" not in a.skip:
            out["llhls"] = _llhls(a, settings, system, rate)
        for size in [] if "capacity" in a.skip else a.sizes:
            say(f"== capacity search {size}: doubling from {a.start.get(size, 8)} with "
                f"{a.bracket_seconds:.0f}s trials, then {a.trial_seconds:.0f}s trials")
            trials: list[dict] = []
            entry = out["capacity"][size] = {"capacity": 0, "upper": None, "complete": False,
                                             "converged": False, "ratio": a.ratio,
                                             "full_s": a.trial_seconds,
                                             "short_s": a.bracket_seconds, "trials": trials}

            # size and trials bound now: the closure must not see a later iteration's values
            def trial(n: int, seconds: float, *, size: str = size,
                      trials: list[dict] = trials) -> bool:
                spec = TrialSpec(n, size, seconds, a.fps, chunk_frames=chunk,
                                 bitrate=a.bitrates.get(size, "500k"), max_lag_s=a.max_lag_s,
                                 variants=1)  # one pattern: camera start-up in seconds
                trials.append(capacity_trial(system, spec, say))
                return trials[-1]["passed"]

            res = capacity_search(trial, a.start.get(size, 8), a.bracket_seconds, a.trial_seconds,
                                  a.ratio, a.max_cameras, a.max_trials)
            entry.update(capacity=res.capacity, upper=res.upper, complete=True,
                         converged=res.converged)
            say(f"   capacity {size}: {res.capacity} cameras (first failure at {res.upper})")
        if "flames" not in a.skip:
            out["flames"] = _flames(a, system, out.get("capacity", {}).get("640x360", {}))
        if "spike" not in a.skip:
            out["spike"] = _spike(a, system, out.get("capacity", {}).get("640x360", {}))
    finally:
        system.stop()


def _flames(a: argparse.Namespace, system, cap: dict) -> dict:
    """py-spy flame graphs of bridge and worker at the capacity; SVGs + flames.json in results."""
    from ops.bench.flames import flame_run
    from ops.bench.soak import default_cameras
    from ops.bench.system import TrialSpec

    n = a.flame_cameras or cap.get("capacity") or 2 * default_cameras(fallback=50)
    spec = TrialSpec(n, "640x360", a.flame_seconds, a.fps,
                     bitrate=a.bitrates.get("640x360", "500k"), variants=1 if n > 16 else None)
    say(f"== py-spy flame graphs: {n} cameras 640x360 for {a.flame_seconds:.0f}s")
    a.results.mkdir(parents=True, exist_ok=True)
    load0 = os.getloadavg()
    out = flame_run(system, spec, a.results, say, settle_s=min(15.0, a.flame_seconds / 3))
    out.update(date=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
               load_avg_before=[round(x, 2) for x in load0],
               load_avg_after=[round(x, 2) for x in os.getloadavg()],
               svgs=[f"flame-{k}.svg" for k in out["top_frames"]])
    (a.results / "flames.json").write_text(json.dumps(out, indent=1) + "\n")
    return out


def _spike(a: argparse.Namespace, system, cap: dict) -> dict:
    """The 10x spike from half the capacity; writes spike.json + spike.png, returns the verdicts."""
    from ops.bench.soak import default_cameras
    from ops.bench.spike import SpikeSpec, spike_run, write

    base = a.spike_base or (max(1, cap["capacity"] // 2) if cap.get("capacity")
                            else default_cameras())
    spec = SpikeSpec(base, "640x360", a.bitrates.get("640x360", "500k"), a.fps,
                     calm_s=a.spike_calm_seconds, spike_s=a.spike_seconds)
    say(f"== 10x spike: {base} -> {base * spec.factor} cameras 640x360 for {spec.spike_s:.0f}s")
    res = spike_run(system, spec, say)
    files = write(res, a.results)
    say(f"   first saturated: {res['first_saturated']}; recovery {res['recovery_s']} s "
        f"({', '.join(files)})")
    return {k: v for k, v in res.items() if k != "samples"}


def _llhls(a: argparse.Namespace, settings, system, rate: str) -> dict:
    """Part latency at each camera count, hls.js latency, events per camera-second."""
    from ops.bench.llhls import events_per_camera_second, part_latency_run, player_latency_run
    from ops.bench.system import TrialSpec
    from pipeline.playback.llhls import LLConfig

    ll = LLConfig.from_settings(settings.part_target_s, settings.segment_max_s)
    out: dict = {"part_target_s": settings.part_target_s,
                 "part_hold_back_s": ll.part_hold_back_10us / 100_000}
    for n in a.ll_cameras:
        say(f"== LL-HLS part latency: {n} cameras 640x360")
        spec = TrialSpec(n, "640x360", a.ll_seconds, a.fps, bitrate=rate,
                         variants=1 if n > 16 else None)
        out[f"part_latency_{n}"] = part_latency_run(system, spec, say, settings.part_target_s)
    say("== LL-HLS player latency: hls.js in Chromium, one camera")
    out["player"] = player_latency_run(system, TrialSpec(1, "640x360", a.player_seconds, a.fps,
                                                         bitrate=rate), say,
                                       out["part_hold_back_s"])
    say("== events per camera-second on camlog.frames: part chunks vs one-frame chunks")
    out["events"] = events_per_camera_second(
        system, TrialSpec(8, "640x360", a.events_seconds, a.fps, bitrate=rate), say)
    return out


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Run everything, write the result file and plots, print the summary table."""
    a = _args(argv)
    signal.signal(signal.SIGTERM, _interrupt)  # SIGTERM too stops every child and writes
    from ops.bench import plots, report
    from ops.bench.machine import describe
    from pipeline.config import load_settings

    settings = load_settings()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    given = argv if argv is not None else sys.argv[1:]
    res: dict = {"stamp": stamp,
                 "command": " ".join([Path(sys.executable).name, "-m", "ops.bench", *given]),
                 "parameters": {k: (sorted(v) if isinstance(v, set) else v)
                                for k, v in vars(a).items()},
                 "machine": describe(settings),
                 "segment_target_s": settings.segment_target_s}
    say(f"camlog bench {stamp}{' (quick)' if a.quick else ''}: load average "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory(prefix="camlog-bench-") as tmp:
        res.update(_sub_benches(a, Path(tmp)))
        if "system" not in a.skip:
            log_dir = settings.state_dir / "bench-logs" / stamp
            try:
                _system(a, settings, log_dir, res.setdefault("system", {}))
            except (Exception, KeyboardInterrupt) as exc:  # keep what was measured
                res["system_error"] = f"{type(exc).__name__}: {exc}"
                say(f"whole-system run failed: {res['system_error']}")
    res["load_avg_after"] = os.getloadavg()
    res["wall_s"] = time.monotonic() - T0
    res["figures"] = report.figures(res, settings.segment_target_s)
    # a run that skipped parts keeps the full run's latest.json (capacity planning reads it)
    # and README's plots (a partial run draws NAME-*.png)
    latest = a.latest or ("partial.json" if a.skip else "latest.json")
    try:
        res["plots"] = plots.render(res, a.results,
                                    "" if latest == "latest.json" else Path(latest).stem + "-")
    except Exception as exc:
        res["plots_error"] = f"{type(exc).__name__}: {exc}"
    path = report.write(res, a.results, stamp, latest)
    print()
    print(report.table(res["figures"]))
    for row in res["figures"]:
        print(f"  {row['figure']}: {row['note']}")
    for size, c in res.get("system", {}).get("capacity", {}).items():
        for t in c["trials"]:
            print(f"  capacity {size} n={t['cameras']} {t['seconds']:.0f}s "
                  f"{'pass' if t['passed'] else 'FAIL: ' + str(t['reason'])}; CPU % "
                  + ", ".join(f"{k} {v:.0f}" for k, v in t.get("cpu_pct", {}).items()))
    errors = {k: v["error"] for k, v in res.items() if isinstance(v, dict) and "error" in v}
    if "system_error" in res:
        errors["system"] = res["system_error"]
    for k, v in errors.items():
        print(f"! {k}: {v}")
    print(f"\nresults: {path} (+ {latest}); plots: "
          f"{', '.join(res.get('plots', [])) or 'none'} in {a.results}; "
          f"took {res['wall_s'] / 60:.1f} min; load average now {res['load_avg_after'][0]:.1f}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
