"""``camlog playback``: run the playback service (HLS, clips, thumbnails, pages)."""

from __future__ import annotations

import argparse
import os
import signal

from pipeline.config import Settings
from pipeline.errors import CliError

__all__ = ["build_context", "register", "start"]


def register(parser: argparse.ArgumentParser) -> None:
    """Add the playback arguments."""
    parser.add_argument("--addr", help="host:port to listen on (default Settings.playback_addr)")
    parser.add_argument("--workers", type=int, default=1,
                        help="processes sharing the port with SO_REUSEPORT (default 1)")
    parser.add_argument("--cache-mb", type=int,
                        help="in-process cache for manifests, segments and thumbnails, in MiB "
                             "(CAMLOG_PLAYBACK_CACHE_MB, 256)")
    parser.add_argument("--max-range", type=int,
                        help="longest VOD range in seconds (CAMLOG_PLAYBACK_MAX_RANGE_S, 6 h)")
    parser.add_argument("--max-clip", type=int,
                        help="longest clip in seconds (CAMLOG_PLAYBACK_MAX_CLIP_S, 10 min)")
    parser.add_argument("--no-events", action="store_true",
                        help="do not produce playback events to Kafka")
    parser.set_defaults(func=run)


def build_context(settings: Settings, cache_mb: int | None = None, max_range_s: int | None = None,
                  max_clip_s: int | None = None, events: bool = True):  # -> Context
    """The service's context from settings (nothing connects until the app starts); the limits
    given override ``playback_cache_mb``, ``playback_max_range_s`` and ``playback_max_clip_s``."""
    from pipeline.auth.keys import viewer_keys
    from pipeline.playback.bridgestatus import BridgeStatus
    from pipeline.playback.cache import ByteCache
    from pipeline.playback.context import Context
    from pipeline.playback.events import EventSink
    from pipeline.playback.follow import Follower
    from pipeline.playback.llhls import LLConfig
    from pipeline.playback.source import CassandraSource

    cache_mb = settings.playback_cache_mb if cache_mb is None else cache_mb
    max_range_s = settings.playback_max_range_s if max_range_s is None else max_range_s
    max_clip_s = settings.playback_max_clip_s if max_clip_s is None else max_clip_s
    keys = viewer_keys(settings)
    sink = EventSink(settings.kafka, region=settings.region) if events else None
    ll = LLConfig.from_settings(settings.part_target_s, settings.segment_max_s)
    segments = ll.window_segments(settings.segment_target_s)
    follower = Follower(settings.kafka, window_segments=segments,
                        rewind_s=segments * settings.segment_max_s + 10.0,
                        fresh_s=settings.idle_timeout_s + 2 * settings.segment_max_s)
    return Context(
        keys=keys, source=CassandraSource(settings), events=sink,
        region=settings.region, segment_target_s=settings.segment_target_s,
        idle_timeout_s=settings.idle_timeout_s, max_range_s=max_range_s, max_clip_s=max_clip_s,
        cache=ByteCache(cache_mb << 20),
        bridge=BridgeStatus(settings.bridge_addr, keys) if settings.bridge_addr else None,
        follower=follower, ll=ll,
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Serve until interrupted."""
    import uvloop

    from pipeline.telemetry import setup

    host, _, port = (args.addr or settings.playback_addr).rpartition(":")
    if not port.isdigit():
        raise CliError(f"--addr must be host:port, got {args.addr!r}")
    if not 1 <= args.workers <= 64:
        raise CliError("--workers must be within 1..64")
    children = []
    for _ in range(args.workers - 1):
        pid = os.fork()
        if pid == 0:
            children = []
            break
        children.append(pid)
    setup("camlog-playback", settings)
    ctx = build_context(settings, args.cache_mb, args.max_range, args.max_clip, not args.no_events)
    try:
        uvloop.run(_serve(ctx, host or "127.0.0.1", int(port), args.workers > 1,
                          quiet=children == [] and args.workers > 1))
    finally:
        for pid in children:
            os.kill(pid, signal.SIGTERM)
            os.waitpid(pid, 0)
    return 0


async def start(ctx, host: str, port: int, reuse_port: bool = False):
    """The app listening on ``host:port`` behind the fast path (``fastpath``) when this aiohttp
    allows it; returns its runner (``cleanup()`` stops it)."""
    import logging

    from aiohttp import web

    from pipeline.playback import fastpath
    from pipeline.playback.app import AccessLogger, accounting, build_app

    if fastpath.supported():
        # a quarter of the in-process cache's budget: kept answers mostly share its bytes
        ctx.answers = fastpath.Answers(ctx.cache.max_bytes // 4, ctx.grants.allowed,
                                       accounting(ctx))
    else:
        logging.getLogger("camlog.playback").warning(
            "fast path off: this aiohttp lacks the handler state it reads")
    runner = web.AppRunner(build_app(ctx), handle_signals=False,
                           access_log=logging.getLogger("camlog.playback.access"),
                           access_log_class=AccessLogger)
    await runner.setup()
    try:
        site = (fastpath.FastSite(runner, host, port, ctx.answers, reuse_port=reuse_port)
                if ctx.answers is not None else web.TCPSite(runner, host, port,
                                                            reuse_port=reuse_port))
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner


async def _serve(ctx, host: str, port: int, reuse_port: bool, quiet: bool) -> None:
    """Serve until SIGINT or SIGTERM."""
    import asyncio

    runner = await start(ctx, host, port, reuse_port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        if not quiet:
            print(f"camlog playback on http://{host}:{port}", flush=True)
        await stop.wait()
    finally:
        await runner.cleanup()
