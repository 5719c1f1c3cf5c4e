"""``camlog bridge``: run the HTTP ingest bridge."""

from __future__ import annotations

import argparse

from pipeline.config import Settings

__all__ = ["register"]


def register(parser: argparse.ArgumentParser) -> None:
    """Add bridge options."""
    parser.add_argument("--addr", help="host:port to listen on (default Settings.bridge_addr)")
    parser.add_argument("--rate", type=float,
                        help="requests/s per stream, 429 above (CAMLOG_INGEST_RATE, 200)")
    parser.add_argument("--burst", type=float,
                        help="burst size per stream (CAMLOG_INGEST_BURST, 400)")
    parser.add_argument("--recover-s", type=float,
                        help="seconds of camlog.frames to scan at start for stream state "
                             "(CAMLOG_INGEST_RECOVER_S, 60)")
    parser.add_argument("--ack-timeout", type=float,
                        help="seconds to wait for Kafka's ack before answering 503 "
                             "(CAMLOG_INGEST_ACK_TIMEOUT_S, 8)")
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
