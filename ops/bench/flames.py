"""Where the CPU goes at load: py-spy flame graphs of the bridge and the worker, with CPU shares.

Runs ``cameras`` simulated cameras against a fresh bench system and, after a settle time,
records each service with ``py-spy record`` for ``seconds``: an SVG per service (committed
beside the results) and the collapsed stacks, from which the top frames by own time are
summarised into the JSON (so a reader sees the hot spots without opening the SVG).
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from ops.bench.system import BenchSystem, TrialSpec

__all__ = ["flame_run", "top_frames"]

Report = Callable[[str], None]
SERVICES = ("bridge", "worker")


def top_frames(collapsed: str, n: int = 15) -> list[tuple[str, float]]:
    """The ``n`` frames with the most own samples in py-spy's collapsed (``raw``) output, as
    (frame, share of all samples)."""
    own: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        total += int(count)
        own[stack.rsplit(";", 1)[-1]] += int(count)
    return [(f, round(c / total, 4)) for f, c in own.most_common(n)] if total else []


def _record(pid: int, out: Path, seconds: float, fmt: str) -> subprocess.Popen:
    py_spy = Path(sys.executable).with_name("py-spy")
    return subprocess.Popen([str(py_spy), "record", "--pid", str(pid), "--duration",
                             str(int(seconds)), "--rate", "50", "--subprocesses", "--nonblocking",
                             "--format", fmt, "--output", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def flame_run(system: BenchSystem, spec: TrialSpec, out_dir: Path, report: Report,
              settle_s: float = 15.0, keep_raw: bool = False) -> dict:
    """Cameras for ``spec.seconds``; py-spy the services over the middle of the run."""
    stream = system.new_stream(f"flame-n{spec.cameras}")
    report(f"  {spec.cameras} cameras {spec.size}: py-spy bridge and worker ...")
    cam = system.spawn_cameras(spec, stream)
    time.sleep(settle_s)
    seconds = max(5.0, spec.seconds - settle_s - 10)
    pids = {c.name: c.proc.pid for c in system.runner.children if c.name in SERVICES}
    cpu0, t0 = system.cpu_seconds(), time.monotonic()
    spies = {}
    for name, pid in pids.items():
        for fmt, ext in (("flamegraph", "svg"), ("raw", "txt")):
            spies[(name, ext)] = _record(pid, out_dir / f"flame-{name}.{ext}", seconds, fmt)
    for (name, ext), p in spies.items():
        _, err = p.communicate(timeout=seconds + 60)
        if p.returncode:
            report(f"    py-spy {name} ({ext}) exited {p.returncode}: {err.decode()[-300:]}")
    cpu1, el = system.cpu_seconds(), time.monotonic() - t0
    summary = system.finish_cameras(cam, timeout=spec.seconds + 30)
    shares = {k: round((cpu1[k] - cpu0.get(k, 0.0)) / el, 3) for k in cpu1}
    out = {"cameras": spec.cameras, "size": spec.size, "seconds_profiled": round(el, 1),
           "camera": summary, "cpu_cores_by_process": shares, "top_frames": {}}
    for name in pids:
        raw = out_dir / f"flame-{name}.txt"
        if raw.exists():
            out["top_frames"][name] = top_frames(raw.read_text(errors="replace"))
            if not keep_raw:
                raw.unlink()  # the SVG is the committed picture; the summary keeps the numbers
    report(f"    CPU cores by process: {shares}")
    for name, frames in out["top_frames"].items():
        report(f"    {name} top: " + "; ".join(f"{f} {s:.0%}" for f, s in frames[:6]))
    return out
