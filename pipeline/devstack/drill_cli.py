"""``camlog drill region-outage --region dc1``: the region-outage drill against a running
two-region demo (``camlog demo --regions dc1,dc2``), whose supervisor restarts the services the
drill kills. Prints the figures as JSON; exit 1 when something that must hold did not."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from pipeline.config import Settings
from pipeline.errors import CliError

__all__ = ["register"]


def _outage(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.devstack.drill import region_outage
    from pipeline.devstack.regiondemo import region_settings
    from pipeline.devstack.regions import load_regions
    from pipeline.devstack.stack import Stack

    names = [r.name for r in load_regions(Stack(settings.state_dir))]
    if not names:
        raise CliError(f"no two-region stack in {settings.state_dir}: start "
                       "`camlog demo --regions dc1,dc2` first")
    if args.region not in names:
        raise CliError(f"--region {args.region}: the stack's regions are {', '.join(names)}")
    if not 5 <= args.outage_s <= 600:
        raise CliError("--outage-s must be between 5 and 600")
    per = region_settings(settings, names)
    res = asyncio.run(region_outage(per, args.region, settings.state_dir,
                                    outage_s=args.outage_s,
                                    say=lambda m: print(m, file=sys.stderr)))
    print(json.dumps({"stream_id": res.stream_id, "ok": res.ok, "figures": res.figures,
                      "problems": res.problems}, indent=1))
    return 0 if res.ok else 1


def register(parser: argparse.ArgumentParser) -> None:
    """Add ``region-outage``."""
    sub = parser.add_subparsers(dest="drill_command", metavar="DRILL", required=True)
    p = sub.add_parser("region-outage",
                       help="SIGKILL every process of a region under a camera and a viewer, "
                            "bring it back, check nothing acknowledged was lost")
    p.add_argument("--region", required=True, help="the region to kill (e.g. dc1)")
    p.add_argument("--outage-s", type=float, default=20.0,
                   help="how long the region stays down (default 20)")
    p.set_defaults(func=_outage)
