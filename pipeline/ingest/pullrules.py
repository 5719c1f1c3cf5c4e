"""The RTSP puller's decisions as pure functions: backoff, URLs, timestamps, access units.

Nothing here does I/O or reads a clock, so each rule is checked with hypothesis in milliseconds
(``tests/test_rtsp_rules.py``); ``pipeline.ingest.rtsp`` applies them to PyAV's packets.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from pipeline.errors import CamlogError
from pipeline.ingest.framing import Frame
from pipeline.telemetry.logs import redact as redact_text

__all__ = ["MAX_URL", "AccessUnits", "BadCameraUrl", "Timeline", "backoff_delay",
           "check_rtsp_url", "producer_time_us", "redact", "with_credentials"]

MAX_URL = 2048
_USERINFO = re.compile(r"(?<=://)[^?#]*@")  # up to the last @: a password may hold "/"


class BadCameraUrl(CamlogError):
    """A camera URL camlog cannot pull (the message never contains its credentials)."""


def backoff_delay(attempt: int, rand: float, *, base_s: float = 0.5, cap_s: float = 30.0) -> float:
    """Seconds to wait before reconnect ``attempt`` (0-based): exponential, jittered, capped.

    Half of the exponential step is fixed and half random ("equal jitter"), so a fleet of
    pullers that lost the same camera spreads out but never retries in a tight loop.
    """
    step = min(cap_s, base_s * 2 ** min(attempt, 32))
    return step / 2 + step / 2 * min(max(rand, 0.0), 1.0)


def redact(url: str) -> str:
    """``url`` fit for a log line or metric label: user:password replaced by ``***`` (up to the
    last @, even in a malformed URL) and token/password query values by the log redaction."""
    return redact_text(_USERINFO.sub("***@", url, count=1))


def check_rtsp_url(url: str) -> str:
    """The URL if camlog can pull it (rtsp/rtsps, a host, bounded); ``BadCameraUrl`` otherwise."""
    if len(url) > MAX_URL:
        raise BadCameraUrl(f"camera URL longer than {MAX_URL} characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError as exc:
        raise BadCameraUrl(f"camera URL {redact(url)!r} is malformed: {exc}") from None
    if parts.scheme not in ("rtsp", "rtsps") or not parts.hostname:
        raise BadCameraUrl(f"camera URL {redact(url)!r} must be rtsp://HOST[:PORT]/PATH")
    if any(c.isspace() for c in url):
        raise BadCameraUrl(f"camera URL {redact(url)!r} contains white space")
    return url


def with_credentials(url: str, user: str, password: str) -> str:
    """``url`` with percent-encoded user:password (for tests and the CLI's ``--user``)."""
    scheme, rest = url.split("://", 1)
    return f"{scheme}://{quote(user, safe='')}:{quote(password, safe='')}@{rest}"


def producer_time_us(pts: int, timescale: int, *, sr_base_us: int | None, first_pts: int,
                     arrival_us: int) -> int:
    """A frame's producer time: the camera clock from RTCP sender reports when it sent them
    (``sr_base_us`` is the wall time of ``first_pts``), else the puller's clock at arrival."""
    if sr_base_us is None:
        return arrival_us
    return sr_base_us + (pts - first_pts) * 1_000_000 // timescale


class Timeline:
    """Camera decode times checked for sanity: backwards or jumping time is a discontinuity.

    ``place`` answers True when the frame continues the run and False when a new session must
    start at it (the segmenter then marks a discontinuity); a stream is never refused for it.
    """

    def __init__(self, max_gap_ticks: int):
        self.max_gap_ticks = max_gap_ticks
        self.last_dts: int | None = None

    def place(self, dts: int) -> bool:
        """Accept ``dts`` as the next decode time; False when it breaks the run."""
        last, self.last_dts = self.last_dts, dts
        return last is None or 0 < dts - last <= self.max_gap_ticks

    def reset(self) -> None:
        """Forget the run (after a reconnect)."""
        self.last_dts = None


@dataclass
class _Pending:
    pts: int | None
    dts: int | None
    keyframe: bool
    data: bytearray


class AccessUnits:
    """Packets in, whole access units out.

    FFmpeg's RTSP demuxer may hand one access unit over as several packets: slices of one frame
    with the same timestamp, and a first packet without any timestamp (before RTCP synchronised
    the clocks). Packets without a timestamp are joined to the next one, packets with the same
    decode time as the open unit are appended to it; a unit is out once a later one starts.
    """

    def __init__(self, max_bytes: int = 1 << 20):
        self.max_bytes = max_bytes
        self._open: _Pending | None = None
        self.oversized = 0  # units dropped for exceeding ``max_bytes``

    def feed(self, pts: int | None, dts: int | None, keyframe: bool, data: bytes) -> list[Frame]:
        """Add one packet; the units it completed."""
        if dts is None:
            dts = pts
        cur = self._open
        if cur is not None and (cur.dts is None or cur.dts == dts):
            cur.data += data
            cur.keyframe = cur.keyframe or keyframe
            if cur.dts is None:
                cur.pts, cur.dts = pts, dts
            return []
        out = self.flush()
        self._open = _Pending(pts, dts, keyframe, bytearray(data))
        return out

    def flush(self) -> list[Frame]:
        """Emit the open unit (end of stream); units that never got a timestamp are dropped."""
        cur, self._open = self._open, None
        if cur is None or cur.dts is None or cur.pts is None or not cur.data:
            return []
        if len(cur.data) > self.max_bytes:
            self.oversized += 1
            return []
        return [Frame(cur.pts, min(cur.dts, cur.pts), cur.keyframe, bytes(cur.data))]
