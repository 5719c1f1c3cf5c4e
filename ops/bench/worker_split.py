"""Part latency with the worker's views in their own process versus in the segmenter's Faust app.

    .venv/bin/python -m ops.bench.worker_split --cameras 100 --seconds 40 --rounds 2

(``make bench`` runs it too; ``--skip worker_split`` leaves it out.)

Runs ``part_latency_run`` on fresh bench systems, alternating the two worker shapes (so drift on
the box hits both), and writes ``ops/bench/results/worker_split.json`` with the load average of
each run. In one Faust app all agents share one consumer: a view that falls behind fills its
stream buffer and stops delivery to the segmenter too.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from ops.bench.llhls import part_latency_run
from ops.bench.system import BenchSystem, TrialSpec
from pipeline.config import load_settings

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cameras", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=40.0)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--json", type=Path, default=RESULTS / "worker_split.json")
    a = ap.parse_args()
    settings = load_settings()
    runs = []
    for r in range(a.rounds):
        for one in (True, False):
            system = BenchSystem(settings, Path(tempfile.mkdtemp()), worker_one_process=one)
            try:
                system.start()
                load0 = os.getloadavg()
                cpu0, t0 = system.cpu_seconds(), time.monotonic()
                out = part_latency_run(system, TrialSpec(a.cameras, "640x360", a.seconds), print,
                                       settings.part_target_s)
                el = time.monotonic() - t0
                cpu1 = system.cpu_seconds()
            finally:
                system.stop()
            out.pop("latencies_s", None)
            out.pop("slow_parts", None)
            out.update(round=r, worker="one-process" if one else "split",
                       load_avg_before=[round(x, 2) for x in load0],
                       load_avg_after=[round(x, 2) for x in os.getloadavg()],
                       cpu_cores_by_process={k: round((cpu1[k] - cpu0.get(k, 0.0)) / el, 3)
                                             for k in cpu1})
            runs.append(out)
            print(f"  round {r} {out['worker']}: p50 {out['part_latency_p50_s']:.3f} s "
                  f"p99 {out['part_latency_p99_s']:.3f} s, load {out['load_avg_after']}")
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps(
        {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "cameras": a.cameras,
         "seconds": a.seconds, "runs": runs}, indent=1))


if __name__ == "__main__":
    main()
