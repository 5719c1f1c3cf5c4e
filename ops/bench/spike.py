"""The 10x spike case of ``make bench``: a base fleet, nine times more cameras for a minute, back.

Runs on the benchmark system (``ops.bench.system``). A base fleet runs throughout; after
``calm_s`` a second fleet of ``9 x base`` cameras runs ``spike_s`` seconds (10x the traffic);
then the base fleet alone again until the worker's lag is back to its pre-spike level. Every
second it samples what the devices see (acknowledged frames/s, 429/503 answers and how many
carried Retry-After, chunks buffered in the SDK, frames dropped) from the cameras' progress
lines, the worker's lag on camlog.frames (chunks produced but not yet consumed, and the age of
the oldest) and each process's CPU. It records what saturated first and the recovery time, and
writes ``ops/bench/results/spike.json`` and ``spike.png`` (the spike window shaded).
"""

from __future__ import annotations

import ast
import json
import re
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from ops.bench.system import BenchSystem, TrialSpec, progress_samples

__all__ = ["SpikeSpec", "saturation", "spike_run", "write"]

Report = Callable[[str], None]
_TAIL = re.compile(r"buffered (\d+)\s+retry-after (\d+)\s+http (\{[^}]*\})")
#: Thresholds that count as saturated: acks below this share of the offered frames, worker lag
#: this many seconds above its base level, a process at this share of one core.
ACK_SHARE, LAG_OVER_S, CPU_PCT = 0.9, 5.0, 90.0


@dataclass(frozen=True)
class SpikeSpec:
    """Base fleet size and timings; the spike fleet is ``factor - 1`` times the base."""

    base: int
    size: str = "640x360"
    bitrate: str = "500k"
    fps: float = 15.0
    chunk_frames: int = 3
    factor: int = 10
    calm_s: float = 30.0  # base only, before the spike (the base level)
    spike_s: float = 60.0
    recover_max_s: float = 180.0  # base only, after the spike, at most


def _device(log: str) -> dict:
    """The last progress line of one camera child: rates now, counters so far."""
    prog = progress_samples(log)
    tails = _TAIL.findall(log)
    if not prog or not tails:
        return {}
    frames, acked, retries, dropped = prog[-1]
    buffered, retry_after, http = tails[-1]
    return {"frames_per_s": frames, "acked_per_s": acked, "retries": retries, "dropped": dropped,
            "buffered": int(buffered), "retry_after": int(retry_after),
            "http": {int(k): v for k, v in ast.literal_eval(http).items()}}


def _sum(devices: list[dict]) -> dict:
    out: dict = {"frames_per_s": 0, "acked_per_s": 0, "retries": 0, "dropped": 0, "buffered": 0,
                 "retry_after": 0, "http": {}}
    for d in devices:
        for k, v in d.items():
            if k == "http":
                for code, n in v.items():
                    out["http"][code] = out["http"].get(code, 0) + n
            else:
                out[k] += v
    return out


def _started(cam) -> bool:
    return "camera(s) ->" in cam.log.read_text(errors="replace")


def spike_run(system: BenchSystem, spec: SpikeSpec, report: Report) -> dict:
    """Run the spike on a started ``system``; the per-second samples and the verdicts."""
    stream = system.new_stream(f"spike-n{spec.base}")
    trial = TrialSpec(spec.base, spec.size, spec.calm_s + spec.spike_s + spec.recover_max_s + 30,
                      spec.fps, chunk_frames=spec.chunk_frames, bitrate=spec.bitrate, variants=1)
    cams = [system.spawn_cameras(trial, stream, "--progress-s", "1")]
    report(f"  spike: {spec.base} cameras {spec.size}, then {spec.factor}x for {spec.spike_s:.0f}s")
    t0 = window = None
    last_cpu, last_codes = None, {}
    samples: list[dict] = []
    while True:
        tick = time.monotonic()
        system.check_alive()
        if t0 is None and _started(cams[0]):
            t0 = tick
        if t0 is None:
            time.sleep(0.5)
            continue
        t = tick - t0
        if len(cams) == 1 and t >= spec.calm_s:
            extra = TrialSpec(spec.base * (spec.factor - 1), spec.size, spec.spike_s, spec.fps,
                              chunk_frames=spec.chunk_frames, bitrate=spec.bitrate, variants=1)
            cams.append(system.spawn_cameras(extra, f"{stream}x", "--progress-s", "1"))
        if window is None and len(cams) == 2 and _started(cams[1]):
            window = (t, t + spec.spike_s)
        # a fleet that finished (its uploaders flushing) prints no more progress: not counted
        dev = _sum([_device(c.log.read_text(errors="replace")) for c in cams if c.alive])
        lag_msgs, lag_s = system.lag()
        cpu = system.cpu_seconds()
        pct = ({k: round(100 * (v - last_cpu[1][k]) / (tick - last_cpu[0]), 1)
                for k, v in cpu.items() if k in last_cpu[1] and v >= last_cpu[1][k]}
               if last_cpu else {})  # a fleet that came or went this second: next one
        last_cpu = (tick, cpu)
        new = {code: n - last_codes.get(code, 0) for code, n in dev["http"].items()}
        last_codes = dev["http"]
        samples.append({"t": round(t, 2), "phase": _phase(t, window), **dev, "http_new": new,
                        "lag_msgs": lag_msgs, "lag_s": lag_s, "cpu_pct": pct})
        s = samples[-1]
        report(f"    t={t:5.0f}s {s['phase']:<5} acked/s {s['acked_per_s']:>5} of "
               f"{s['frames_per_s']:>5}  http {new}  buffered {s['buffered']}  lag "
               f"{'?' if lag_s is None else f'{lag_s:.1f}s'} ({lag_msgs})")
        if window and t > window[1] + spec.calm_s and _recovered(samples, window) is not None:
            break
        if window and t > window[1] + spec.recover_max_s:
            break
        if window is None and t > spec.calm_s + 120:
            raise RuntimeError("the spike fleet never started")
        time.sleep(max(0.0, tick + 1.0 - time.monotonic()))
    summaries = [system.finish_cameras(c, timeout=1) for c in cams]
    out = {"spec": asdict(spec), "stream": stream, "window_s": window, "samples": samples,
           "cameras": summaries}
    out.update(saturation(samples, window, spec.fps * spec.base))
    return out


def _phase(t: float, window: tuple[float, float] | None) -> str:
    if window is None:
        return "base"
    return "spike" if window[0] <= t < window[1] else ("after" if t >= window[1] else "base")


def _base_lag(samples: list[dict], window: tuple[float, float]) -> float:
    before = [s["lag_s"] for s in samples if s["t"] < window[0] and s["lag_s"] is not None]
    return statistics.median(before) if before else 0.0


def _recovered(samples: list[dict], window: tuple[float, float]) -> float | None:
    """Seconds after the spike until the lag is back within 1 s of its base level."""
    base = _base_lag(samples, window)
    for s in samples:
        if s["t"] >= window[1] and s["lag_s"] is not None and s["lag_s"] <= base + 1.0:
            return round(s["t"] - window[1], 1)
    return None


def saturation(samples: list[dict], window: tuple[float, float] | None,
               base_fps: float) -> dict:
    """When each resource first saturated during/after the spike, in order, and the recovery."""
    if window is None:
        return {"saturated": [], "first_saturated": None, "recovery_s": None}
    base = _base_lag(samples, window)
    first: dict[str, float] = {}
    for i, s in enumerate(samples):
        if s["t"] < window[0]:
            continue
        hits = []
        # acks over 3 s: one-second progress windows split a request's frames unevenly
        offered = sum(x["frames_per_s"] for x in samples[max(0, i - 2):i + 1])
        acked = sum(x["acked_per_s"] for x in samples[max(0, i - 2):i + 1])
        if s["frames_per_s"] > 2 * base_fps and acked < ACK_SHARE * offered:
            hits.append("acks (bridge/Kafka)")
        if any(s["http_new"].get(c) for c in (429, 503)):
            hits.append("device back-pressure (429/503)")
        if s["lag_s"] is not None and s["lag_s"] > base + LAG_OVER_S:
            hits.append("worker lag")
        hits += [f"CPU {name}" for name, p in s["cpu_pct"].items() if p >= CPU_PCT]
        for h in hits:
            first.setdefault(h, round(s["t"] - window[0], 1))
    order = sorted(first.items(), key=lambda kv: kv[1])
    return {"saturated": [{"what": k, "after_s": v} for k, v in order],
            "first_saturated": order[0][0] if order else None,
            "base_lag_s": base, "recovery_s": _recovered(samples, window),
            "max_lag_s": max((s["lag_s"] or 0 for s in samples), default=0),
            "max_buffered_chunks": max((s["buffered"] for s in samples), default=0),
            "dropped_frames": max((s["dropped"] for s in samples), default=0),
            "responses": {str(c): sum(s["http_new"].get(c, 0) for s in samples)
                          for c in sorted({c for s in samples for c in s["http_new"]})},
            "retry_after": max((s["retry_after"] for s in samples), default=0)}


def _plot(res: dict, path: Path) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s, window = res["samples"], res["window_s"]
    t = [x["t"] for x in s]
    fig, axes = plt.subplots(4, 1, figsize=(10, 10), sharex=True)
    a, b, c, d = axes
    a.plot(t, [x["frames_per_s"] for x in s], label="offered frames/s")
    a.plot(t, [x["acked_per_s"] for x in s], label="acknowledged frames/s")
    a.set(ylabel="frames/s", title=f"10x spike: {res['spec']['base']} -> "
          f"{res['spec']['base'] * res['spec']['factor']} cameras {res['spec']['size']}; first "
          f"saturated: {res.get('first_saturated')}; recovery {res.get('recovery_s')} s")
    for code in (429, 503):
        b.plot(t, [x["http_new"].get(code, 0) for x in s], label=f"{code}/s")
    b.plot(t, [x["buffered"] for x in s], label="SDK buffered chunks")
    b.plot(t, [x["dropped"] for x in s], label="SDK dropped frames (total)")
    b.set(ylabel="count")
    c.plot(t, [x["lag_s"] for x in s], label="worker lag (s, oldest unconsumed chunk)")
    c2 = c.twinx()
    c2.plot(t, [x["lag_msgs"] for x in s], color="grey", ls=":", label="lag (chunks)")
    c2.set(ylabel="chunks")
    c.set(ylabel="s")
    for name in sorted({n for x in s for n in x["cpu_pct"]}):
        d.plot(t, [x["cpu_pct"].get(name) for x in s], label=name)
    d.set(ylabel="% of one core", xlabel="s")
    for ax in axes:
        if window:
            ax.axvspan(*window, color="orange", alpha=0.15)
        ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path.name


def write(res: dict, out_dir: Path) -> list[str]:
    """``spike.json`` and ``spike.png`` in ``out_dir``; the file names written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    made = []
    try:
        made.append(_plot(res, out_dir / "spike.png"))
    except ImportError as exc:  # matplotlib is in the bench extra; the figures still count
        res["plot_error"] = str(exc)
    (out_dir / "spike.json").write_text(json.dumps(res, indent=1, default=str) + "\n")
    return ["spike.json", *made]
