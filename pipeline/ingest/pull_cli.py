"""``camlog pull`` (one camera in the foreground) and ``camlog puller`` (a consumer-group
member)."""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import Awaitable, Callable

from pipeline.config import Settings
from pipeline.errors import CliError
from pipeline.ingest.checks import STREAM_ID_RE

__all__ = ["register", "register_puller", "run_until_signal"]


def register(parser: argparse.ArgumentParser) -> None:
    """Add ``pull`` options."""
    parser.add_argument("--url", required=True, help="rtsp://[user:password@]HOST[:PORT]/PATH")
    parser.add_argument("--stream", required=True, help="stream id the frames are produced under")
    parser.add_argument("--transport", choices=("tcp", "udp"), default="tcp",
                        help="RTP over the RTSP connection (tcp, default) or over udp")
    parser.set_defaults(func=_pull)


def register_puller(parser: argparse.ArgumentParser) -> None:
    """Add ``puller`` options."""
    parser.add_argument("--group", default="camlog-pullers", help="consumer group of the pullers")
    parser.add_argument("--name", default="", help="this member's name (client id suffix)")
    parser.set_defaults(func=_puller)


def run_until_signal(main: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run ``main(stop)`` with ``stop`` set on SIGTERM or SIGINT."""

    async def go() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await main(stop)

    asyncio.run(go())


def _pull(args: argparse.Namespace, settings: Settings) -> int:
    import re

    from pipeline.ingest.puller import PullHost
    from pipeline.ingest.pullrules import check_rtsp_url
    from pipeline.ingest.registry import CameraSpec
    from pipeline.telemetry import setup, shutdown

    if not re.fullmatch(STREAM_ID_RE, args.stream):
        raise CliError(f"stream id {args.stream!r} must match {STREAM_ID_RE}")
    spec = CameraSpec(args.stream, check_rtsp_url(args.url), args.transport.upper())
    setup("camlog-puller", settings)

    async def main(stop: asyncio.Event) -> None:
        host = PullHost(settings)
        await host.start()
        try:
            host.pull(spec)
            await stop.wait()
        finally:
            await host.close()

    try:
        run_until_signal(main)
    finally:
        shutdown()
    return 0


def _puller(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.ingest.puller import Puller
    from pipeline.telemetry import setup, shutdown

    setup("camlog-puller", settings)
    try:
        run_until_signal(Puller(settings, args.group, args.name).run)
    finally:
        shutdown()
    return 0
