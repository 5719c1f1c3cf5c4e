"""Test-pattern video encoded once: a loop of whole GOPs that simulated cameras replay.

Each variant is a distinct moving pattern with its variant number, frame number and the
wall-clock time *at encode time* drawn in. Cameras re-stamp pts/dts and producer time as they
replay the loop, so the drawn clock repeats every loop length: it shows when the loop was
encoded, not when the frame was sent (the chunk's ``producer_time`` carries that).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from fractions import Fraction

__all__ = ["EncodedFrame", "GopLoop", "encode_loop"]


@dataclass(frozen=True)
class EncodedFrame:
    """One encoded access unit of the loop (Annex-B, SPS/PPS repeated on keyframes)."""

    index: int
    keyframe: bool
    data: bytes


@dataclass(frozen=True)
class GopLoop:
    """A replayable loop of closed GOPs: frames in decode order, starting with a keyframe."""

    variant: int
    fps: float
    width: int
    height: int
    gop_frames: int
    frames: tuple[EncodedFrame, ...]

    @property
    def gop_starts(self) -> list[int]:
        """Indices of the keyframes (where a camera may start)."""
        return [f.index for f in self.frames if f.keyframe]


def _picture(variant: int, n: int, width: int, height: int, fps: float):
    import numpy as np
    from PIL import Image, ImageDraw

    y, x = np.mgrid[0:height, 0:width]
    shift = n * (4 + variant)
    r = ((x + shift) * (3 + variant) // 7) % 256
    g = ((y * 2 + shift * (variant % 3 + 1)) % 256)
    b = ((x + y + variant * 40 + n * 2) % 256)
    img = Image.fromarray(np.dstack([r, g, b]).astype("uint8"), "RGB")
    draw = ImageDraw.Draw(img)
    box = max(12, height // 12)
    bx = int((n * 6 + variant * 50) % max(1, width - box))
    draw.rectangle([bx, height // 2 - box, bx + box, height // 2], fill=(255, 255, 255))
    stamp = time.strftime("%H:%M:%S", time.gmtime()) + f".{int(time.time() * 1000) % 1000:03d}"
    text = f"pattern {variant}  frame {n}  {stamp}"
    draw.rectangle([4, 4, 8 + 7 * len(text), 20], fill=(0, 0, 0))
    draw.text((6, 6), text, fill=(255, 255, 0))
    return img


def encode_loop(variant: int, *, fps: float, width: int, height: int, bitrate: int,
                gop_s: float, gops: int = 2) -> GopLoop:
    """Encode ``gops`` closed GOPs of ``gop_s`` seconds with libx264 (no B-frames, zerolatency)."""
    import av

    gop = max(1, round(gop_s * fps))
    ctx = av.CodecContext.create("libx264", "w")
    ctx.width, ctx.height, ctx.pix_fmt = width, height, "yuv420p"
    ctx.time_base = Fraction(1, 90000)
    ctx.framerate = Fraction(fps).limit_denominator(1001)
    ctx.bit_rate = bitrate
    ctx.gop_size = gop
    ctx.max_b_frames = 0
    ctx.options = {"tune": "zerolatency", "preset": "veryfast", "bf": "0", "threads": "1",
                   "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:repeat-headers=1"
                                  ":bframes=0:aud=0"}
    ctx.open()
    frames: list[EncodedFrame] = []

    def take(packets) -> None:
        for p in packets:
            frames.append(EncodedFrame(len(frames), p.is_keyframe, bytes(p)))

    for n in range(gop * gops):
        vf = av.VideoFrame.from_image(_picture(variant, n, width, height, fps))
        vf = vf.reformat(format="yuv420p")
        vf.pts = int(n * 90000 / fps)
        vf.pict_type = (av.video.frame.PictureType.I if n % gop == 0
                        else av.video.frame.PictureType.NONE)
        take(ctx.encode(vf))
    take(ctx.encode(None))
    return GopLoop(variant, fps, width, height, gop, tuple(frames))
