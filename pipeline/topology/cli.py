"""``camlog topology apply|diff``."""

from __future__ import annotations

import argparse

from pipeline.config import Settings

__all__ = ["register"]


def _targets(args: argparse.Namespace) -> dict:
    return {"kafka": not args.cassandra_only, "cassandra": not args.kafka_only,
            "keyspace": args.into}


def _apply(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.topology.apply import apply_all

    changes = apply_all(settings, **_targets(args))
    for c in changes:
        print(f"changed {c}")
    print(f"topology applied: {len(changes)} change(s)" if changes else "topology up to date: no changes")
    return 0


def _diff(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.topology.apply import diff_all

    changes = diff_all(settings, **_targets(args))
    for c in changes:
        print(f"drift {c}")
    if not changes:
        print("no drift")
    return 1 if changes else 0


def register(parser: argparse.ArgumentParser) -> None:
    """Add ``apply`` and ``diff``."""
    sub = parser.add_subparsers(dest="action", required=True)
    for name, fn, help_ in (("apply", _apply, "create what is missing, fix drift, never delete"),
                            ("diff", _diff, "print drift; exit 1 when there is any")):
        p = sub.add_parser(name, help=help_)
        p.add_argument("--kafka-only", action="store_true")
        p.add_argument("--cassandra-only", action="store_true")
        p.add_argument("--into", metavar="KEYSPACE", help="another keyspace (e.g. for a rebuild)")
        p.set_defaults(func=fn)
