"""Annex-B H.264/H.265 inspection: NAL split, parameter sets, SPS → size and RFC 6381 codec."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "DROP_IN_SAMPLE",
    "PARAM_TYPES",
    "MediaError",
    "StreamInfo",
    "is_keyframe",
    "nal_type",
    "parameter_sets",
    "parse_config",
    "split_nals",
    "to_length_prefixed",
]

#: Parameter-set NAL types per codec, in the order they belong in a configuration record.
PARAM_TYPES = {"H264": (7, 8), "H265": (32, 33, 34)}
#: NAL types left out of mp4 samples: parameter sets (they live in the init) and delimiters.
DROP_IN_SAMPLE = {"H264": {7, 8, 9}, "H265": {32, 33, 34, 35}}


class MediaError(ValueError):
    """Bytes that are not the H.264/H.265 Annex-B the segmenter needs; the message says why."""


def split_nals(data: bytes) -> list[bytes]:
    """NAL units of an Annex-B buffer, start codes and trailing zero bytes removed."""
    # bytes.split runs in C; a 4-byte start code leaves its leading zero on the previous NAL.
    return [n for n in (p.rstrip(b"\x00") for p in data.split(b"\x00\x00\x01")[1:]) if n]


def nal_type(codec: str, nal: bytes) -> int:
    """NAL unit type (H.264: low 5 bits of byte 0; H.265: bits 1..6 of byte 0)."""
    return (nal[0] >> 1) & 0x3F if codec == "H265" else nal[0] & 0x1F


def is_keyframe(codec: str, data: bytes) -> bool:
    """True when the access unit is a random access point (H.264 IDR, H.265 IRAP)."""
    for nal in split_nals(data):
        t = nal_type(codec, nal)
        if (codec == "H265" and 16 <= t <= 21) or (codec != "H265" and t == 5):
            return True
    return False


def parameter_sets(codec: str, data: bytes) -> bytes | None:
    """The VPS/SPS/PPS NALs of ``data`` re-joined as Annex-B, or None unless all kinds are there."""
    wanted = PARAM_TYPES[codec]
    found: dict[int, list[bytes]] = {}
    for nal in split_nals(data):
        t = nal_type(codec, nal)
        if t in wanted and nal not in found.setdefault(t, []):
            found[t].append(nal)
    if set(found) != set(wanted):
        return None
    return b"".join(b"\x00\x00\x00\x01" + n for t in wanted for n in found[t])


def to_length_prefixed(codec: str, data: bytes) -> bytes:
    """An Annex-B access unit as an mp4 sample: 4-byte lengths, no parameter sets or delimiters."""
    drop = DROP_IN_SAMPLE[codec]
    return b"".join(len(n).to_bytes(4, "big") + n for n in split_nals(data)
                    if nal_type(codec, n) not in drop)


class _Bits:
    """MSB-first bit reader over an RBSP (emulation prevention already removed)."""

    def __init__(self, rbsp: bytes):
        self.data, self.pos = rbsp, 0

    def u(self, n: int) -> int:
        v = 0
        for _ in range(n):
            if self.pos >> 3 >= len(self.data):
                raise MediaError("parameter set ends early")
            v = (v << 1) | ((self.data[self.pos >> 3] >> (7 - (self.pos & 7))) & 1)
            self.pos += 1
        return v

    def ue(self) -> int:
        zeros = 0
        while self.u(1) == 0:
            zeros += 1
            if zeros > 31:
                raise MediaError("exp-Golomb code too long")
        return (1 << zeros) - 1 + self.u(zeros)

    def se(self) -> int:
        k = self.ue()
        return (k + 1) // 2 if k & 1 else -(k // 2)


def _rbsp(nal: bytes) -> bytes:
    out, zeros = bytearray(), 0
    for b in nal:
        if zeros >= 2 and b == 3:
            zeros = 0
            continue
        out.append(b)
        zeros = zeros + 1 if b == 0 else 0
    return bytes(out)


_HIGH_PROFILES = (100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135)


def _h264_sps(nal: bytes) -> tuple[str, int, int]:
    if len(nal) < 4:
        raise MediaError("H.264 SPS too short")
    codec = f"avc1.{nal[1]:02x}{nal[2]:02x}{nal[3]:02x}"
    b = _Bits(_rbsp(nal[1:]))
    profile = b.u(8)
    b.u(16)
    b.ue()
    chroma = 1
    if profile in _HIGH_PROFILES:
        chroma = b.ue()
        if chroma == 3:
            b.u(1)
        b.ue(), b.ue(), b.u(1)
        if b.u(1):
            for i in range(8 if chroma != 3 else 12):
                if b.u(1):
                    last = nxt = 8
                    for _ in range(16 if i < 6 else 64):
                        if nxt:
                            nxt = (last + b.se() + 256) % 256
                        last = nxt or last
    b.ue()
    poc = b.ue()
    if poc == 0:
        b.ue()
    elif poc == 1:
        b.u(1), b.se(), b.se()
        for _ in range(b.ue()):
            b.se()
    b.ue(), b.u(1)
    w_mbs, h_maps = b.ue() + 1, b.ue() + 1
    frame_mbs_only = b.u(1)
    if not frame_mbs_only:
        b.u(1)
    b.u(1)
    width, height = w_mbs * 16, (2 - frame_mbs_only) * h_maps * 16
    if b.u(1):
        left, right, top, bottom = b.ue(), b.ue(), b.ue(), b.ue()
        cx, cy = {0: (1, 1), 1: (2, 2), 2: (2, 1)}.get(chroma, (1, 1))
        width -= cx * (left + right)
        height -= cy * (2 - frame_mbs_only) * (top + bottom)
    return codec, width, height


def _h265_sps(nal: bytes) -> tuple[str, int, int]:
    b = _Bits(_rbsp(nal[2:]))
    b.u(4)
    max_sub = b.u(3)
    b.u(1)
    space, tier, profile = b.u(2), b.u(1), b.u(5)
    compat = b.u(32)
    constraints = [b.u(8) for _ in range(6)]
    level = b.u(8)
    flags = [(b.u(1), b.u(1)) for _ in range(max_sub)]
    if max_sub:
        b.u(2 * (8 - max_sub))
    for prof, lvl in flags:
        b.u(88 * prof + 8 * lvl)
    b.ue()
    chroma = b.ue()
    if chroma == 3:
        b.u(1)
    width, height = b.ue(), b.ue()
    if b.u(1):
        left, right, top, bottom = b.ue(), b.ue(), b.ue(), b.ue()
        cx, cy = {1: (2, 2), 2: (2, 1)}.get(chroma, (1, 1))
        width -= cx * (left + right)
        height -= cy * (top + bottom)
    rev = int(f"{compat:032b}"[::-1], 2)  # ISO/IEC 14496-15 E.3: compatibility flags bit-reversed
    while constraints and constraints[-1] == 0:
        constraints.pop()
    parts = ["hvc1", f"{'' if space == 0 else 'ABC'[space - 1]}{profile}", f"{rev:X}",
             f"{'H' if tier else 'L'}{level}"] + [f"{c:X}" for c in constraints]
    return ".".join(parts), width, height


@dataclass(frozen=True)
class StreamInfo:
    """What a configuration (VPS/SPS/PPS) says: RFC 6381 codec string and coded size."""

    codec: str  # "H264" | "H265"
    codec_string: str  # e.g. "avc1.64001f", "hvc1.1.6.L93.B0"
    width: int
    height: int


def parse_config(codec: str, config: bytes) -> StreamInfo:
    """Parse the SPS found in Annex-B parameter sets; raise ``MediaError`` when it is unreadable."""
    if codec not in PARAM_TYPES:
        raise MediaError(f"unsupported codec {codec!r}")
    sps_type = PARAM_TYPES[codec][-2]
    sps = next((n for n in split_nals(config) if nal_type(codec, n) == sps_type), None)
    if sps is None:
        raise MediaError(f"{codec} configuration has no SPS")
    try:
        cs, w, h = (_h265_sps if codec == "H265" else _h264_sps)(sps)
    except IndexError:
        raise MediaError(f"{codec} SPS is truncated") from None
    if w <= 0 or h <= 0:
        raise MediaError(f"{codec} SPS gives an impossible size {w}x{h}")
    return StreamInfo(codec, cs, w, h)
