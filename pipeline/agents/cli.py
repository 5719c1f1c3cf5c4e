"""``camlog worker``: run the Faust worker (segmenter and views) in this process."""

from __future__ import annotations

import argparse
import sys

from pipeline.config import Settings

__all__ = ["register"]


def register(parser: argparse.ArgumentParser) -> None:
    """Add the worker's options."""
    parser.add_argument("--loglevel", default=None, help="Faust log level (default: settings)")
    parser.add_argument("--only", action="append", default=None, metavar="MODULE",
                        help="register only these agent modules (repeatable)")
    parser.add_argument("--app-id", default=None,
                        help="Faust app id / consumer group (default camlog-worker; for tests)")
    parser.add_argument("--stream-prefix", default="",
                        help="segment only streams whose id starts with this (canary/tests)")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace, settings: Settings) -> int:
    import faust

    from pipeline import telemetry
    from pipeline.agents.app import create_app

    # The Cassandra driver and Kafka client hand results over from their I/O threads; with the
    # default 5 ms GIL switch interval a busy event loop adds up to 5 ms per hand-over.
    sys.setswitchinterval(0.0005)
    telemetry.setup("camlog-worker", settings)
    extra = {"app_id": args.app_id} if args.app_id else {}
    app = create_app(settings, modules=args.only, stream_prefix=args.stream_prefix, **extra)
    worker = faust.Worker(app, loglevel=(args.loglevel or settings.log_level).lower(),
                          quiet=True, override_logging=False)
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        return int(exc.code or 0)
    finally:
        telemetry.shutdown()
    return 0
