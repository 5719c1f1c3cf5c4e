"""``camlog camera``: run N simulated cameras against a bridge."""

from __future__ import annotations

import argparse

from pipeline.config import Settings
from pipeline.errors import CliError

__all__ = ["register"]


def _size(text: str) -> tuple[int, int]:
    w, _, h = text.lower().partition("x")
    if not (w.isdigit() and h.isdigit()) or int(w) % 2 or int(h) % 2:
        raise argparse.ArgumentTypeError("size must be WxH with even numbers, e.g. 640x360")
    return int(w), int(h)


def _rate(text: str) -> int:
    mult = {"k": 1000, "m": 1_000_000}.get(text[-1:].lower(), 1)
    try:
        return int(float(text[:-1] if mult > 1 else text) * mult)
    except ValueError:
        raise argparse.ArgumentTypeError("bitrate like 500k or 2M") from None


def register(parser: argparse.ArgumentParser) -> None:
    """Add camera options."""
    parser.add_argument("--count", type=int, default=1, help="number of cameras")
    parser.add_argument("--fps", type=float, default=15.0)
    parser.add_argument("--size", type=_size, default=(640, 360), help="WxH (default 640x360)")
    parser.add_argument("--bitrate", type=_rate, default=500_000, help="e.g. 500k, 2M")
    parser.add_argument("--gop", type=float, default=2.0, help="GOP length in seconds")
    parser.add_argument("--bridge", default=None,
                        help="bridge URL, or URL1,URL2,... home region first: the cameras fail "
                             "over in that order after CAMLOG_FAILOVER_S of failures and return "
                             "home when it is ready (default http://bridge_addr)")
    parser.add_argument("--stream", default="cam", help="stream id (NAME-1..NAME-N when N > 1)")
    parser.add_argument("--token", help="device token (default: sign one per camera locally)")
    parser.add_argument("--duration", type=float, help="seconds to run (default: until Ctrl-C)")
    parser.add_argument("--chunk-frames", type=int, default=None,
                        help="frames per chunk (default: one part, CAMLOG_PART_TARGET_S of frames)")
    parser.add_argument("--variants", type=int, default=4, help="distinct patterns encoded")
    parser.add_argument("--progress-s", type=float, default=2.0,
                        help="seconds between progress lines (benchmarks sample them)")
    parser.set_defaults(func=_handle)


def _handle(args: argparse.Namespace, settings: Settings) -> int:
    import asyncio

    if args.count < 1:
        raise CliError("--count must be >= 1")
    return asyncio.run(_main(args, settings))


async def _main(args: argparse.Namespace, settings: Settings) -> int:
    import asyncio
    import time

    import aiohttp

    from pipeline.auth.tokens import issue
    from pipeline.device.camera import Camera, FleetConfig, run_fleet, stream_names
    from pipeline.device.client import ChunkUploader
    from pipeline.device.pattern import encode_loop

    width, height = args.size
    names = stream_names(args.stream, args.count)
    variants = max(1, min(args.variants, args.count))
    print(f"encoding {variants} pattern loop(s) {width}x{height} @ {args.fps} fps ...", flush=True)
    loops = await asyncio.gather(*(
        asyncio.to_thread(encode_loop, v, fps=args.fps, width=width, height=height,
                          bitrate=args.bitrate, gop_s=args.gop) for v in range(variants)))
    from pipeline.device.failover import parse_bridges

    try:
        bridges = parse_bridges(args.bridge or f"http://{settings.bridge_addr}")
    except ValueError as exc:
        raise CliError(f"--bridge: {exc}") from None
    bridge = ",".join(bridges)
    # A chunk per LL-HLS part (not per frame): one request and one event per part target.
    chunk_frames = args.chunk_frames
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0)
    seq0 = int(time.time() * 1000)  # seqs continue upward across camera restarts
    async with aiohttp.ClientSession(connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=30)) as session:
        cams = []
        for i, name in enumerate(names):
            token = args.token or issue(settings.require_keys(), None, "device", [name], 86400,
                                        time.time())
            up = ChunkUploader(session, bridges, name, token, chunk_frames=chunk_frames,
                               part_target_s=settings.part_target_s,
                               first_seq=seq0, failover_s=settings.failover_s)
            cams.append(Camera(name, loops[i % variants], up, phase=i // variants))
        print(f"{len(cams)} camera(s) -> {bridge}: {names[0]}{' …' if len(names) > 1 else ''}"
              f" ({f'{chunk_frames} frame(s)' if chunk_frames else f'{settings.part_target_s} s'}"
              " per chunk)", flush=True)
        result = await run_fleet(cams, FleetConfig(args.fps, args.duration, chunk_frames or 1,
                                                   progress_s=args.progress_s),
                                 report=lambda s: print(s, flush=True))
    print(f"done: {result}", flush=True)
    return 0
