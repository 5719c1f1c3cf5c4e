"""``camlog schemas list|check``: the event catalog and its backward compatibility."""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.config import Settings

__all__ = ["check_dir", "register"]


def check_dir(schema_dir: Path) -> list[str]:
    """Problems found comparing each ``X.avsc`` with every released ``history/<Name>/*.avsc``."""
    from pipeline.events.catalog import load_schema
    from pipeline.events.compat import incompatibilities

    problems = []
    current = {load_schema(p)["name"]: p for p in sorted(schema_dir.glob("*.avsc"))}
    for name, path in current.items():
        reader = load_schema(path)
        for old in sorted((schema_dir / "history" / name).glob("*.avsc")):
            for reason in incompatibilities(reader, load_schema(old)):
                problems.append(f"{path.name} cannot read data written with "
                                f"history/{name}/{old.name}: {reason}")
    for hist in sorted((schema_dir / "history").glob("*")):
        if hist.is_dir() and hist.name not in current:
            problems.append(f"history/{hist.name} has no current schema (an event was removed)")
    return problems


def _list(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.events.catalog import EVENTS

    for e in EVENTS.values():
        print(f"{e.name:<15} {e.topic:<17} CRC-64-AVRO {e.fingerprint.hex()}  {e.file.name}")
    return 0


def _check(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.events.catalog import SCHEMA_DIR

    problems = check_dir(Path(args.dir) if args.dir else SCHEMA_DIR)
    for p in problems:
        print(f"incompatible: {p}")
    if problems:
        print(f"schemas check failed: {len(problems)} problem(s); "
              "add defaults or a new event instead")
        return 1
    print("schemas check: every schema reads all its released versions")
    return 0


def register(parser: argparse.ArgumentParser) -> None:
    """Add ``list`` and ``check``."""
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("list", help="each schema with its topic and fingerprint").set_defaults(
        func=_list)
    p = sub.add_parser("check", help="every schema can read data of its released versions")
    p.add_argument("--dir", help="schema folder (default: schemas/)")
    p.set_defaults(func=_check)
