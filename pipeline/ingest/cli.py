"""``camlog bridge``: run the HTTP ingest bridge."""

from __future__ import annotations

import argparse

from pipeline.config import Settings

__all__ = ["register"]


def register(parser: argparse.ArgumentParser) -> None:
    """Add bridge options."""
    parser.add_argument("--addr", help="host:port to listen on (default Settings.bridge_addr)")
    parser.add_argument("--rate", type=float, default=200.0, help="requests/s per stream (429 above)")
    parser.add_argument("--burst", type=float, default=400.0, help="burst size per stream")
    parser.add_argument("--recover-s", type=float, default=60.0,
                        help="seconds of camlog.frames to scan at start for stream state")
    parser.add_argument("--ack-timeout", type=float, default=8.0,
                        help="seconds to wait for Kafka's ack before answering 503")
    parser.set_defaults(func=_handle)


def _handle(args: argparse.Namespace, settings: Settings) -> int:
    from aiohttp import web

    from pipeline.ingest.app import build_app
    from pipeline.telemetry import setup, shutdown

    setup("camlog-bridge", settings)
    host, _, port = (args.addr or settings.bridge_addr).rpartition(":")
    app = build_app(settings, rate=args.rate, burst=args.burst, recover_s=args.recover_s,
                    ack_timeout_s=args.ack_timeout)
    try:
        web.run_app(app, host=host or "127.0.0.1", port=int(port), access_log=None,
                    print=lambda *_: None, handle_signals=True)
    finally:
        shutdown()
    return 0
