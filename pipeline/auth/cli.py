"""``camlog token device|viewer|keygen|jwks``: tokens and the viewer-token keys."""

from __future__ import annotations

import argparse
import json
import time

from pipeline.config import Settings
from pipeline.errors import CliError

__all__ = ["register"]


def register(parser: argparse.ArgumentParser) -> None:
    """Add ``device``, ``viewer``, ``keygen`` and ``jwks`` sub-commands."""
    sub = parser.add_subparsers(dest="kind", metavar="KIND", required=True)
    for kind, ttl, help_ in (
        ("device", "30d", "HMAC token a camera uses to upload to its stream(s)"),
        ("viewer", "1h", "ES256 JWT a player uses to watch stream(s)"),
    ):
        sp = sub.add_parser(kind, help=help_, description=help_)
        sp.add_argument("--stream", action="append", required=True, metavar="ID",
                        help="stream id or prefix ending in '*' (repeatable)")
        sp.add_argument("--ttl", default=ttl,
                        help=f"lifetime, e.g. 90s, 15m, 1h, 30d (default {ttl})")
        sp.set_defaults(func=_handle)
    kg = sub.add_parser("keygen", help="make a new current viewer key (P-256) in the state dir",
                        description="make a new viewer-token key; older keys keep verifying")
    kg.add_argument("--kid", help="key id (default: v<UTC timestamp>, so the newest sorts first)")
    kg.set_defaults(func=_keygen)
    jw = sub.add_parser("jwks", help="print the public viewer keys as a JWK Set")
    jw.set_defaults(func=_jwks)


def _handle(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.auth.keys import viewer_keys
    from pipeline.auth.tokens import issue, parse_ttl
    from pipeline.auth.viewer import issue as issue_viewer
    from pipeline.config import ensure_dev_secret

    try:
        ttl = parse_ttl(args.ttl)
        if args.kind == "viewer":
            token = issue_viewer(viewer_keys(settings), args.stream, ttl, time.time())
        else:
            keys = ensure_dev_secret(settings).require_keys()
            token = issue(keys, None, args.kind, args.stream, ttl, time.time())
    except ValueError as exc:
        raise CliError(str(exc)) from None
    print(token)
    return 0


def _keygen(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.auth.keys import dev_key_dir, generate_key

    if settings.viewer_keys:
        raise CliError("CAMLOG_VIEWER_KEYS is set: put the new key's path first there instead")
    if args.kid and not args.kid.replace("-", "").isalnum():
        raise CliError("--kid must be alphanumeric (dashes allowed)")
    try:
        path = generate_key(dev_key_dir(settings.state_dir), args.kid)
    except FileExistsError:
        raise CliError(f"key {args.kid!r} exists already") from None
    print(path)
    return 0


def _jwks(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.auth.keys import viewer_keys

    print(json.dumps(viewer_keys(settings).jwks(), indent=1))
    return 0
