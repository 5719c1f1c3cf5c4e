"""Cassandra CPU per camera: the media tables' declared options versus Cassandra's defaults.

    .venv/bin/python -m ops.bench.cassandra_options --cameras 64 --seconds 120 --rounds 2

Each variant gets a keyspace of its own, made by the topology code: ``declared`` is
``topology/cassandra.toml`` (TWCS windows matched to the retention, media bytes uncompressed),
``defaults`` the same tables with no options (SizeTieredCompactionStrategy, LZ4 on everything, as
before the options were declared). A fresh bench system writes into it while the same camera
fleet runs a capacity trial; the variants alternate, in swapped order each round, so drift on
the box hits both. Writes ``ops/bench/results/cassandra_options.json``: Cassandra's CPU (% of
one core) per camera for each run, the options read back from ``system_schema.tables``, the
load averages, and the declared ÷ defaults ratio. Compaction CPU comes in after flushes, so a
run should last minutes, not seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from pathlib import Path

from pipeline.topology.spec import TableSpec, load_tables

__all__ = ["VARIANTS", "summarize", "variant_specs"]

RESULTS = Path(__file__).resolve().parent / "results"
VARIANTS = ("defaults", "declared")
MEDIA = ("segments", "segment_data", "init_segments")


def variant_specs(variant: str, tables: list[TableSpec] | None = None) -> list[TableSpec]:
    """The tables a variant's keyspace is made of: declared as is, or with no options."""
    tables = load_tables() if tables is None else tables
    if variant == "declared":
        return tables
    if variant == "defaults":
        return [TableSpec(t.name, t.columns, t.partition_key, t.clustering, {}, t.doc)
                for t in tables]
    raise ValueError(f"unknown variant {variant!r}")


def order(rounds: int) -> list[str]:
    """Variants in run order: swapped every round (defaults, declared, declared, defaults...)."""
    return [v for r in range(rounds) for v in (VARIANTS if r % 2 == 0 else VARIANTS[::-1])]


def summarize(runs: list[dict]) -> dict:
    """Mean Cassandra CPU % of one core per camera for each variant over its passing runs, and
    declared ÷ defaults (None when a variant has no passing run)."""
    per: dict[str, float | None] = {}
    for v in VARIANTS:
        xs = [r["cassandra_pct_per_camera"] for r in runs
              if r["variant"] == v and r["passed"] and r["cassandra_pct_per_camera"] is not None]
        per[v] = round(sum(xs) / len(xs), 4) if xs else None
    before, after = per["defaults"], per["declared"]
    return {"cassandra_pct_per_camera": per,
            "ratio_declared_to_defaults": round(after / before, 3) if after and before else None}


def _options(session, keyspace: str) -> dict:
    rows = session.execute("SELECT table_name, compaction, compression FROM system_schema.tables "
                           "WHERE keyspace_name = %s", (keyspace,))
    return {r.table_name: {"compaction": r.compaction["class"].rsplit(".", 1)[-1],
                           "compression": dict(r.compression)}
            for r in rows if r.table_name in MEDIA}


def _run(settings, variant: str, cameras: int, seconds: float, log_dir: Path, say) -> dict:
    from ops.bench.system import BenchSystem, TrialSpec
    from ops.bench.trials import capacity_trial
    from pipeline.store.cluster import connect
    from pipeline.topology.cassandra import apply_cassandra, plan_cassandra

    ks = f"bench_{uuid.uuid4().hex[:6]}_{variant}"
    session = connect(settings)
    try:
        apply_cassandra(session, plan_cassandra(session, settings, ks, variant_specs(variant)))
        opts = _options(session, ks)
        system = BenchSystem(settings.replace(keyspace=ks), log_dir / ks)
        load0 = os.getloadavg()
        try:
            system.start()
            say(f"== {variant}: keyspace {ks}, {cameras} cameras 640x360 for {seconds:.0f}s")
            trial = capacity_trial(system, TrialSpec(cameras, "640x360", seconds, chunk_frames=3,
                                                     variants=1), say)
        finally:
            system.stop()
    finally:
        session.execute(f"DROP KEYSPACE IF EXISTS {ks}", timeout=120)
        session.cluster.shutdown()
    cass = trial["cpu_pct"].get("cassandra")
    return {"variant": variant, "keyspace": ks, "cameras": cameras, "seconds": seconds,
            "passed": trial["passed"], "reason": trial.get("reason"), "cpu_pct": trial["cpu_pct"],
            "cassandra_pct_per_camera": None if cass is None else round(cass / cameras, 4),
            "options": opts, "load_avg_before": [round(x, 2) for x in load0],
            "load_avg_after": [round(x, 2) for x in os.getloadavg()]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ops.bench.cassandra_options",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--cameras", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=120.0)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--json", type=Path, default=RESULTS / "cassandra_options.json")
    a = ap.parse_args(argv)
    import tempfile

    from pipeline.config import load_settings

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    settings = load_settings()
    log_dir = Path(tempfile.mkdtemp(prefix="camlog-cass-"))
    runs = [_run(settings, v, a.cameras, a.seconds, log_dir, say) for v in order(a.rounds)]
    out = {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "cameras": a.cameras,
           "seconds": a.seconds, "rounds": a.rounds, **summarize(runs), "runs": runs}
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps(out, indent=1) + "\n")
    say(f"Cassandra % of one core per camera: {out['cassandra_pct_per_camera']}; declared ÷ "
        f"defaults {out['ratio_declared_to_defaults']} ({a.json})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
