"""``camlog token device|viewer``: print a signed token for the local key ring."""

from __future__ import annotations

import argparse
import time

from pipeline.config import Settings
from pipeline.errors import CliError

__all__ = ["register"]


def register(parser: argparse.ArgumentParser) -> None:
    """Add ``device`` and ``viewer`` sub-commands."""
    sub = parser.add_subparsers(dest="kind", metavar="KIND", required=True)
    for kind, ttl, help_ in (
        ("device", "30d", "token a camera uses to upload to its stream(s)"),
        ("viewer", "1h", "token a player uses to watch stream(s)"),
    ):
        sp = sub.add_parser(kind, help=help_, description=help_)
        sp.add_argument("--stream", action="append", required=True, metavar="ID",
                        help="stream id or prefix ending in '*' (repeatable)")
        sp.add_argument("--ttl", default=ttl, help=f"lifetime, e.g. 90s, 15m, 1h, 30d (default {ttl})")
        sp.set_defaults(func=_handle)


def _handle(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.auth.tokens import issue, parse_ttl

    try:
        ttl = parse_ttl(args.ttl)
        token = issue(settings.keys, None, args.kind, args.stream, ttl, time.time())
    except ValueError as exc:
        raise CliError(str(exc)) from None
    print(token)
    return 0
