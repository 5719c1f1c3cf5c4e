"""``camlog topology apply|diff``."""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline import ROOT
from pipeline.config import Settings
from pipeline.errors import CliError

__all__ = ["register"]


def _targets(args: argparse.Namespace) -> dict:
    return {"kafka": not args.cassandra_only, "cassandra": not args.kafka_only,
            "keyspace": args.into}


def _apply(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.topology.apply import apply_all

    changes = apply_all(settings, **_targets(args))
    for c in changes:
        print(f"changed {c}")
    print(f"topology applied: {len(changes)} change(s)" if changes
          else "topology up to date: no changes")
    return 0


def _diff(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.topology.apply import diff_all

    changes = diff_all(settings, **_targets(args))
    for c in changes:
        print(f"drift {c}")
    if not changes:
        print("no drift")
    return 1 if changes else 0


def _k8s(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.topology.k8s import KafkaCluster, generate, write
    from pipeline.topology.spec import load_topics

    if not 1 <= args.brokers <= 100:
        raise CliError("--brokers must be within 1..100")
    files = generate(load_topics(), KafkaCluster(brokers=args.brokers))
    if args.check:
        stale = [n for n, text in files.items()
                 if not (args.out / n).is_file() or (args.out / n).read_text() != text]
        for name in stale:
            print(f"stale {args.out / name}: run `camlog topology k8s --out {args.out}`")
        return 1 if stale else 0
    for path in write(args.out, files):
        print(f"wrote {path}")
    return 0


def register(parser: argparse.ArgumentParser) -> None:
    """Add ``apply``, ``diff`` and ``k8s``."""
    sub = parser.add_subparsers(dest="action", required=True)
    for name, fn, help_ in (("apply", _apply, "create what is missing, fix drift, never delete"),
                            ("diff", _diff, "print drift; exit 1 when there is any")):
        p = sub.add_parser(name, help=help_)
        p.add_argument("--kafka-only", action="store_true")
        p.add_argument("--cassandra-only", action="store_true")
        p.add_argument("--into", metavar="KEYSPACE", help="another keyspace (e.g. for a rebuild)")
        p.set_defaults(func=fn)
    k = sub.add_parser("k8s",
                       help="write Strimzi Kafka/KafkaTopic manifests of topology/kafka.toml")
    k.add_argument("--out", type=Path, default=ROOT / "ops" / "k8s" / "generated")
    k.add_argument("--brokers", type=int, default=3, help="broker count (caps replication)")
    k.add_argument("--check", action="store_true", help="exit 1 when the files in --out differ")
    k.set_defaults(func=_k8s)
