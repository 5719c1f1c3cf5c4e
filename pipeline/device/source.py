"""Encoded packets from anything PyAV can open (file, URL, device), as Annex-B frames for the
SDK."""

from __future__ import annotations

from collections.abc import Iterator

from pipeline.device.client import packet_frame
from pipeline.ingest.framing import Frame

__all__ = ["CODECS", "read_frames"]

CODECS = {"h264": "H264", "hevc": "H265"}
_BSF = {"h264": "h264_mp4toannexb", "hevc": "hevc_mp4toannexb"}


def read_frames(url: str, timescale: int = 90000) -> Iterator[tuple[str, Frame]]:
    """Yield ``(codec, frame)`` per video packet, converting MP4/MKV (AVCC) to Annex-B
    (blocking)."""
    import av
    from av.bitstream import BitStreamFilterContext

    with av.open(url) as container:
        stream = container.streams.video[0]
        name = stream.codec_context.name
        if name not in CODECS:
            raise ValueError(f"codec {name!r} is not H.264 or H.265")
        extradata = stream.codec_context.extradata or b""
        bsf = BitStreamFilterContext(_BSF[name], stream) if extradata[:1] == b"\x01" else None
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            for p in (bsf.filter(packet) if bsf else [packet]):
                if p.pts is None:
                    continue
                p.time_base = stream.time_base
                yield CODECS[name], packet_frame(p, timescale)
