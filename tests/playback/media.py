"""Test media made on the fly: H.264 (libx264 via PyAV) in fMP4, split into init + fragments."""

from __future__ import annotations

import io
from fractions import Fraction

import av
import numpy as np

from pipeline.playback.boxes import iter_boxes


def fmp4(frames: int = 60, fps: int = 30, gop: int = 30, width: int = 320, height: int = 240,
         bframes: int = 0) -> tuple[bytes, list[bytes]]:
    """``frames`` frames of moving test pattern → (init segment, [moof+mdat per GOP])."""
    buf = io.BytesIO()
    out = av.open(buf, "w", format="mp4",
                  options={"movflags": "frag_keyframe+empty_moov+default_base_moof"})
    st = out.add_stream("libx264", rate=fps)
    st.width, st.height, st.pix_fmt = width, height, "yuv420p"
    st.codec_context.gop_size = gop
    st.codec_context.options = {"preset": "ultrafast",
                                "tune": "zerolatency" if not bframes else "film",
                                "bf": str(bframes), "keyint_min": str(gop), "sc_threshold": "0"}
    st.codec_context.time_base = Fraction(1, fps)
    img = np.zeros((height, width, 3), dtype=np.uint8)
    for i in range(frames):
        img[:] = 0
        x = (i * 7) % width
        img[:, max(0, x - 20):x, 0] = 255
        img[(i * 3) % height, :, 1] = 255
        f = av.VideoFrame.from_ndarray(img, format="rgb24")
        f.pts = i
        f.time_base = Fraction(1, fps)
        for p in st.encode(f):
            out.mux(p)
    for p in st.encode():
        out.mux(p)
    out.close()
    data = buf.getvalue()
    init, frags, cur = b"", [], b""
    for b in iter_boxes(data):
        chunk = data[b.start:b.start + b.size]
        if b.type in (b"ftyp", b"moov"):
            init += chunk
        elif b.type == b"moof":
            if cur:
                frags.append(cur)
            cur = chunk
        elif b.type == b"mdat":
            cur += chunk
    if cur:
        frags.append(cur)
    return init, frags
