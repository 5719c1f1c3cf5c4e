"""Test media made on the fly with PyAV (libx264/libx265, no B-frames) and FrameChunk records."""

from __future__ import annotations

import functools
import json
import subprocess
from fractions import Fraction
from typing import Any

from pipeline.media.annexb import parameter_sets

TIMESCALE = 90000


@functools.lru_cache(maxsize=16)
def encode(codec: str = "H264", n: int = 30, width: int = 160, height: int = 96, fps: int = 15,
           gop: int = 15) -> tuple[tuple[dict, ...], bytes]:
    """``n`` frames as FrameChunk frame dicts (90 kHz) and the Annex-B parameter sets."""
    import av
    import numpy as np

    ctx = av.CodecContext.create("libx264" if codec == "H264" else "libx265", "w")
    ctx.width, ctx.height, ctx.pix_fmt = width, height, "yuv420p"
    ctx.time_base, ctx.framerate = Fraction(1, fps), fps
    if codec == "H264":
        ctx.options = {"g": str(gop), "bf": "0", "preset": "ultrafast", "tune": "zerolatency"}
    else:
        ctx.options = {"preset": "ultrafast", "x265-params":
                       f"keyint={gop}:min-keyint={gop}:bframes=0:scenecut=0:log-level=error"}
    packets = []
    for i in range(n):
        img = np.zeros((height, width, 3), np.uint8)
        img[:, (i * 4) % width:] = (i * 7) % 255
        frame = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p")
        frame.pts = i
        packets += ctx.encode(frame)
    packets += ctx.encode(None)
    tick = TIMESCALE // fps
    frames = tuple({"pts": p.pts * tick, "dts": p.dts * tick, "keyframe": bool(p.is_keyframe),
                    "data": bytes(p)} for p in packets)
    return frames, parameter_sets(codec, frames[0]["data"])


def chunks(stream_id: str, frames: tuple[dict, ...] | list[dict], config: bytes, *,
           per_chunk: int = 3, seq0: int = 0, codec: str = "H264", session: str = "s1",
           t0_us: int = 1_700_000_000_000_000) -> list[dict[str, Any]]:
    """Group frames into FrameChunk records (config on the first chunk)."""
    out = []
    for n, i in enumerate(range(0, len(frames), per_chunk)):
        part = [dict(f) for f in frames[i:i + per_chunk]]
        t = t0_us + part[0]["pts"] * 1_000_000 // TIMESCALE
        out.append({"stream_id": stream_id, "seq": seq0 + n, "session_id": session,
                    "source": "SDK", "codec": codec,
                    "codec_config": config if n == 0 else None, "width": 0, "height": 0,
                    "timescale": TIMESCALE, "producer_time": t, "ingest_time": t + 50_000,
                    "frames": part, "gap_before": 0})
    return out


def ffprobe_frames(path: str) -> tuple[list[int], dict]:
    """Decoded frame pts (stream timescale) and stream facts, as ffprobe reports them."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_frames", "-show_streams",
         "-show_entries", "frame=pts:stream=codec_name,width,height,time_base,codec_tag_string",
         "-of", "json", path], check=True, capture_output=True, text=True).stdout
    data = json.loads(out)
    return [int(f["pts"]) for f in data["frames"]], data["streams"][0]
