"""JPEG thumbnails: decode the first keyframe of a stored segment with PyAV (call off the loop)."""

from __future__ import annotations

import io
from fractions import Fraction

__all__ = ["ThumbnailError", "render_jpeg"]


class ThumbnailError(ValueError):
    """The segment could not be decoded into a picture."""


def render_jpeg(init: bytes, segment: bytes, max_width: int = 640, quality: int = 5) -> bytes:
    """The first decodable frame of ``init + segment`` as a JPEG at most ``max_width`` wide.

    Blocking (PyAV decode and encode): run it in a thread. ``quality`` is the MJPEG qscale
    (2 = best, 31 = worst).
    """
    import av  # heavy: imported on first use

    try:
        with av.open(io.BytesIO(init + segment), "r", format="mp4") as src:
            stream = src.streams.video[0]
            stream.codec_context.skip_frame = "NONKEY"
            frame = next(src.decode(stream), None)
    except (av.FFmpegError, StopIteration) as exc:
        raise ThumbnailError(f"cannot decode segment: {exc}") from exc
    if frame is None:
        raise ThumbnailError("segment has no decodable frame")
    width = min(max_width, frame.width) & ~1
    height = max(2, round(frame.height * width / frame.width)) & ~1
    picture = frame.reformat(width=width, height=height, format="yuvj420p")
    enc = av.CodecContext.create("mjpeg", "w")
    enc.width, enc.height, enc.pix_fmt = width, height, "yuvj420p"
    enc.time_base = Fraction(1, 25)
    enc.options = {"qscale": str(quality)}
    enc.qmin = enc.qmax = quality
    packets = enc.encode(picture) + enc.encode(None)
    if not packets:
        raise ThumbnailError("JPEG encoder produced nothing")
    return b"".join(bytes(p) for p in packets)
