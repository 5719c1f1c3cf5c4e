"""Low-Latency HLS (draft-pantos-hls-rfc8216bis) live playlists and blocking-reload rules: pure.

``decide`` is the whole protocol of one playlist request: given the live window (complete
segments with their parts, plus the parts of the segment in progress), the parsed query and an
injected clock, it answers ``Hold`` (wait for a part, then ask again), a ``Problem`` (400 or
503) or the ``Playlist`` text. ``render`` is a function of the window and the configuration
only, with URLs from callbacks (playback passes templates ending in a token placeholder, as for
``hls.render_live``), so every instance serves the same bytes for the same state: no prefixes,
no counters, no per-instance state; a restart changes nothing.

How playback will learn of new parts: each instance follows ``camlog.segments`` with an
assigned, group-less consumer and folds ``SealedPart``/``SealedSegment`` events into the windows
of the streams someone watches; each fold wakes the ``Hold``s of that stream, which call
``decide`` again. No Cassandra query per waiting request; Cassandra only seeds a window.

Fixed for the life of a stream's playlist (HLS forbids changing them): PART-TARGET comes from
configuration (``CAMLOG_PART_TARGET_S``), TARGETDURATION is ceil of the Cutter's ``max_s``, the
longest segment the part planner can emit (``parts.PartPlanner`` cuts before a part could pass
it), not the longest seen so far as ``views.manifest`` does for whole-segment HLS.

Rules (section numbers of rfc8216bis):

* ``_HLS_part`` without ``_HLS_msn``, a value that is not a decimal integer, or a ``_HLS_skip``
  other than YES/v2 is 400. ``_HLS_msn`` beyond the last complete segment + 2, or a part more
  than the Advance Part Limit (3 / PART-TARGET, or 3 when PART-TARGET >= 1 s) past the last
  part, is 400 (6.2.5.2).
* ``_HLS_msn=M`` alone holds until segment M is complete; with ``_HLS_part=N`` until a part at
  or after (M, N) exists; N past the final part of a complete M means (M+1, 0). A hold that has
  waited 3 target durations is 503 with Retry-After. An ended stream never holds.
* EXT-X-PART tags cover every segment that ends within 3 target durations of the playlist's
  end, and the segment in progress; EXT-X-PRELOAD-HINT names the part after the last one listed
  (part URLs are (msn, part index), so the hint can be named before its segment exists).
* ``_HLS_skip=YES`` replaces the leading segments that end at least CAN-SKIP-UNTIL before the
  playlist's end with EXT-X-SKIP (4.4.5.2); the first segment shown re-states its EXT-X-MAP, so
  a delta is decodable on its own. There are no EXT-X-DATERANGE tags, so ``v2`` is the same.

Departures from gohlslib (``muxer_stream.go``): it answers ``_HLS_msn`` alone as soon as the
first part of M exists (the spec asks for segment M), returns 400 for an msn already gone from
the window (here it is simply satisfied), uses PART-HOLD-BACK = 2.5 x PART-TARGET (here >= 3,
the spec's SHOULD) and derives PART-TARGET from the longest part seen. Its preload-hint URL is a
stream-wide part counter; here it is (msn, index), which is what hls.js matches preloads on
(``fragment-preloader.ts`` compares ``frag.sn`` and ``part.index``, not URIs). From hls.js
(``base-playlist-controller.ts``): a client asks for (last part's msn, index + 1), or (msn + 1,
0) after a complete segment, and may add up to 1.5 target durations for CDN tune-in; the
Advance Part Limit leaves room for that.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from pipeline.playback.hls import program_date_time

__all__ = [
    "Hold",
    "LLConfig",
    "LivePart",
    "LiveSegment",
    "LiveWindow",
    "Playlist",
    "Problem",
    "Request",
    "Urls",
    "advance_part_limit",
    "decide",
    "parse_request",
    "part_status",
    "render",
]

_US = 1_000_000


@dataclass(frozen=True)
class LLConfig:
    """The per-deployment constants of every LL playlist; never changes during a stream."""

    part_target_us: int = 500_000
    target_duration: int = 6  # seconds: ceil(Cutter max_s)
    hold_back_parts: float = 3.0  # PART-HOLD-BACK in part targets
    skip_target_durations: float = 6.0  # CAN-SKIP-UNTIL in target durations

    def __post_init__(self) -> None:
        if not 0 < self.part_target_us <= self.target_duration * _US:
            raise ValueError("need 0 < PART-TARGET <= TARGETDURATION")
        if self.hold_back_parts < 3 or self.skip_target_durations < 6:
            raise ValueError("PART-HOLD-BACK must be >= 3 part targets, CAN-SKIP-UNTIL >= 6 TD")

    @classmethod
    def from_settings(cls, part_target_s: float, max_segment_s: float) -> LLConfig:
        """From the segmenter's settings: TARGETDURATION is the longest segment it can cut."""
        return cls(round(part_target_s * _US), max(1, math.ceil(max_segment_s)))

    @property
    def part_target_10us(self) -> int:
        """PART-TARGET as written (10 µs units, rounded up so no part exceeds what is shown)."""
        return -(-self.part_target_us // 10)

    @property
    def part_hold_back_10us(self) -> int:
        """PART-HOLD-BACK as written, from the written PART-TARGET."""
        return math.ceil(self.hold_back_parts * self.part_target_10us)

    @property
    def skip_until_us(self) -> int:
        """CAN-SKIP-UNTIL in µs (tenths of a second, rounded up)."""
        return math.ceil(self.skip_target_durations * self.target_duration * 10) * 100_000

    def window_segments(self, segment_target_s: float) -> int:
        """Segments an LL playlist keeps: enough that delta updates (EXT-X-SKIP) skip some, and
        the parts' 3 target durations plus the player's hold-back are always inside."""
        span = self.skip_until_us / _US + 3 * self.target_duration
        return max(6, math.ceil(span / segment_target_s))

    @property
    def hold_s(self) -> float:
        """How long a blocking request may wait: three target durations."""
        return 3.0 * self.target_duration


@dataclass(frozen=True)
class LivePart:
    """One part of a segment: its duration and whether it starts with a keyframe."""

    duration_us: int
    independent: bool = False


@dataclass(frozen=True)
class LiveSegment:
    """A segment of the window; for the one in progress ``duration_us`` is ignored."""

    sequence: int
    segment_id: str
    start_time: int  # µs, the EXT-X-PROGRAM-DATE-TIME
    init_id: str
    parts: tuple[LivePart, ...] = ()
    duration_us: int = 0
    independent: bool = True
    discontinuity: bool = False


@dataclass(frozen=True)
class LiveWindow:
    """Complete segments (ascending, contiguous) and the segment in progress."""

    segments: tuple[LiveSegment, ...] = ()
    current: LiveSegment | None = None
    media_sequence: int = 0
    discontinuity_sequence: int = 0
    ended: bool = False

    def __post_init__(self) -> None:
        seqs = [s.sequence for s in self.segments]
        if self.current is not None:
            seqs.append(self.current.sequence)
        if seqs and seqs != list(range(self.media_sequence, self.media_sequence + len(seqs))):
            raise ValueError("window sequences must run contiguously from the media sequence")
        if self.ended and self.current is not None:
            raise ValueError("an ended window has no segment in progress")

    @property
    def last_complete(self) -> int:
        """Media sequence number of the last complete segment (media_sequence - 1 if none)."""
        return self.segments[-1].sequence if self.segments else self.media_sequence - 1

    @property
    def newest_part(self) -> tuple[int, int]:
        """(msn, index) of the newest part; index -1 means none yet in segment msn."""
        if self.current is not None and self.current.parts:
            return self.current.sequence, len(self.current.parts) - 1
        return self.last_complete + 1, -1

    def segment(self, msn: int) -> LiveSegment | None:
        """The complete segment ``msn``, if in the window."""
        i = msn - self.media_sequence
        return self.segments[i] if 0 <= i < len(self.segments) else None

    def has(self, msn: int, part: int | None) -> bool:
        """Whether a blocking request for (msn, part) is satisfied."""
        if part is None:
            return self.last_complete >= msn
        seg = self.segment(msn)
        if seg is not None and part >= len(seg.parts):
            msn, part = msn + 1, 0
        return (msn, part) <= self.newest_part


@dataclass(frozen=True)
class Urls:
    """URL callbacks; each must be a pure function of its arguments (same bytes everywhere)."""

    segment: Callable[[LiveSegment], str]
    part: Callable[[int, int], str]  # (msn, part index)
    init: Callable[[str], str]


@dataclass(frozen=True)
class Request:
    """The delivery directives of a playlist request."""

    msn: int | None = None
    part: int | None = None
    skip: bool = False


@dataclass(frozen=True)
class Hold:
    """Wait until (msn, part) exists or ``deadline`` passes, then call ``decide`` again."""

    msn: int
    part: int | None
    deadline: float


@dataclass(frozen=True)
class Problem:
    """An error answer (the handler turns it into a JSON problem response)."""

    status: int
    title: str
    detail: str
    retry_after: int | None = None


@dataclass(frozen=True)
class Playlist:
    """The media playlist to send; ``blocking`` answers may be cached keyed by the full query."""

    text: str
    skipped: int = 0
    blocking: bool = False


def _bad(detail: str) -> Problem:
    return Problem(400, "bad delivery directive", detail)


def parse_request(query: Mapping[str, str]) -> Request | Problem:
    """Read ``_HLS_msn``, ``_HLS_part`` and ``_HLS_skip``; anything malformed is a 400."""
    values: dict[str, int | None] = {}
    for name in ("_HLS_msn", "_HLS_part"):
        raw = query.get(name)
        if raw is not None and not (raw.isascii() and raw.isdigit() and len(raw) <= 18):
            return _bad(f"{name} must be a decimal integer, got {raw[:40]!r}")
        values[name] = None if raw is None else int(raw)
    skip = query.get("_HLS_skip")
    if skip is not None and skip not in ("YES", "v2"):
        return _bad(f"_HLS_skip must be YES or v2, got {skip[:40]!r}")
    if values["_HLS_part"] is not None and values["_HLS_msn"] is None:
        return _bad("_HLS_part requires _HLS_msn")
    return Request(values["_HLS_msn"], values["_HLS_part"], skip is not None)


def advance_part_limit(config: LLConfig) -> int:
    """How many parts past the last one a request may ask for (rfc8216bis 6.2.5.2)."""
    if config.part_target_us >= _US:
        return 3
    return math.floor(3 * _US / config.part_target_us)


def _ahead(window: LiveWindow, msn: int, part: int) -> int:
    seq, idx = window.newest_part
    if msn < seq:
        return 0
    return part - idx if msn == seq else part + 1


def decide(window: LiveWindow, request: Request, config: LLConfig, urls: Urls, *,
           arrived: float, now: float) -> Hold | Problem | Playlist:
    """Answer one playlist request at ``now`` for a request that arrived at ``arrived``."""
    msn, part = request.msn, request.part
    if part is not None and msn is None:
        return _bad("_HLS_part requires _HLS_msn")
    if msn is not None and not window.ended:
        if msn > window.last_complete + 2:
            return _bad(f"_HLS_msn {msn} is beyond the last segment "
                        f"({window.last_complete}) + 2")
        if part is not None and _ahead(window, msn, part) > advance_part_limit(config):
            return _bad(f"_HLS_part {part} of {msn} is too far past the last part")
        if not window.has(msn, part):
            if now - arrived >= config.hold_s:
                return Problem(503, "part not available",
                               f"no part ({msn}, {part}) within {config.hold_s:g} s",
                               retry_after=1)
            return Hold(msn, part, arrived + config.hold_s)
    text, skipped = render(window, config, urls, skip=request.skip)
    return Playlist(text, skipped, blocking=msn is not None)


def part_status(window: LiveWindow, msn: int, index: int) -> str:
    """For a part URL: ``ready``, ``pending`` (hold), ``gone`` (404) or ``unknown`` (storage)."""
    if msn < window.media_sequence:
        return "unknown"
    seg = window.segment(msn)
    if seg is not None:
        return "ready" if index < len(seg.parts) else "gone"
    cur = window.current
    if cur is not None and cur.sequence == msn and index < len(cur.parts):
        return "ready"
    return "gone" if window.ended else "pending"


def _secs10(v: int) -> str:
    return f"{v / 100_000:.5f}"


def render(window: LiveWindow, config: LLConfig, urls: Urls, *,
           skip: bool = False) -> tuple[str, int]:
    """The LL-HLS media playlist and how many segments EXT-X-SKIP replaced."""
    segs = window.segments
    cur = window.current if window.current is not None and window.current.parts else None
    ends, t = [], 0
    for s in segs:
        t += s.duration_us
        ends.append(t)
    edge = t + (sum(p.duration_us for p in cur.parts) if cur else 0)
    skipped = 0
    if skip:
        while skipped < len(segs) and ends[skipped] <= edge - config.skip_until_us:
            skipped += 1
    shown = [*segs, cur] if cur else list(segs)
    lines = ["#EXTM3U", "#EXT-X-VERSION:9", f"#EXT-X-TARGETDURATION:{config.target_duration}",
             ("#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,"
              f"PART-HOLD-BACK={_secs10(config.part_hold_back_10us)},"
              f"CAN-SKIP-UNTIL={config.skip_until_us / _US:.1f}"),
             f"#EXT-X-PART-INF:PART-TARGET={_secs10(config.part_target_10us)}",
             f"#EXT-X-MEDIA-SEQUENCE:{window.media_sequence}",
             f"#EXT-X-DISCONTINUITY-SEQUENCE:{window.discontinuity_sequence}"]
    if shown and all(s.independent for s in shown):
        lines.append("#EXT-X-INDEPENDENT-SEGMENTS")
    if skipped:
        lines.append(f"#EXT-X-SKIP:SKIPPED-SEGMENTS={skipped}")
    init: str | None = None
    for i, s in enumerate(shown[skipped:], start=skipped):
        if s.discontinuity:
            lines.append("#EXT-X-DISCONTINUITY")
        if s.init_id != init:
            lines.append(f'#EXT-X-MAP:URI="{urls.init(s.init_id)}"')
            init = s.init_id
        lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{program_date_time(s.start_time)}")
        complete = i < len(segs)
        if not complete or ends[i] > edge - 3 * config.target_duration * _US:
            for n, p in enumerate(s.parts):
                lines.append(f"#EXT-X-PART:DURATION={_secs10(-(-p.duration_us // 10))},"
                             f'URI="{urls.part(s.sequence, n)}"'
                             + (",INDEPENDENT=YES" if p.independent else ""))
        if complete:
            lines.append(f"#EXTINF:{s.duration_us / _US:.3f},")
            lines.append(urls.segment(s))
    if window.ended:
        lines.append("#EXT-X-ENDLIST")
    else:
        msn, idx = window.newest_part
        lines.append(f'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="{urls.part(msn, idx + 1)}"')
    return "\n".join(lines) + "\n", skipped
