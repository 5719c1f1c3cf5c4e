"""HLS (RFC 8216, version 7) playlists rendered from view rows: pure functions, no I/O.

``render_live`` turns a ``live_manifest`` row into a live media playlist; ``render_vod`` turns
the time index's segments-with-gaps into a recording playlist. URLs come from callbacks so
signing and routing stay with the playback service.
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from pipeline.views.timeindex import Gap

__all__ = ["GAP_MODES", "program_date_time", "render_live", "render_vod"]

Row = Mapping[str, Any]
UrlFor = Callable[[Row], str]
InitUrlFor = Callable[[str], str]
GapUrlFor = Callable[[int], str]

#: How a hole in a recording is shown: skipped with a discontinuity, or as EXT-X-GAP segments.
GAP_MODES = ("discontinuity", "gap")


def program_date_time(time_us: int) -> str:
    """ISO 8601 with milliseconds and ``Z``, as EXT-X-PROGRAM-DATE-TIME wants."""
    d = _dt.datetime.fromtimestamp(time_us // 1_000_000, _dt.UTC)
    return d.strftime("%Y-%m-%dT%H:%M:%S") + f".{(time_us % 1_000_000) // 1000:03d}Z"


def _extinf(duration_us: int) -> str:
    return f"#EXTINF:{duration_us / 1e6:.3f},"


def _target(durations: Iterable[int], floor: int = 1) -> int:
    # Every EXTINF rounded to the nearest integer must be <= the target; ceil is always safe.
    return max([floor, *(-(-int(d) // 1_000_000) for d in durations)])


def _header(target: int, media_sequence: int, disc_sequence: int, independent: bool,
            playlist_type: str | None = None) -> list[str]:
    lines = ["#EXTM3U", "#EXT-X-VERSION:7", f"#EXT-X-TARGETDURATION:{target}"]
    if playlist_type:
        lines.append(f"#EXT-X-PLAYLIST-TYPE:{playlist_type}")
    lines.append(f"#EXT-X-MEDIA-SEQUENCE:{media_sequence}")
    lines.append(f"#EXT-X-DISCONTINUITY-SEQUENCE:{disc_sequence}")
    if independent:
        lines.append("#EXT-X-INDEPENDENT-SEGMENTS")
    return lines


class _Body:
    """Accumulates segment lines, adding EXT-X-MAP whenever the init segment changes."""

    def __init__(self, url_for_init: InitUrlFor) -> None:
        self.lines: list[str] = []
        self._init: str | None = None
        self._url_for_init = url_for_init

    def segment(self, seg: Row, url: str, discontinuity: bool, gap: bool = False) -> None:
        if discontinuity:
            self.lines.append("#EXT-X-DISCONTINUITY")
        init = seg.get("init_id")
        if init and init != self._init:
            self.lines.append(f'#EXT-X-MAP:URI="{self._url_for_init(init)}"')
            self._init = init
        self.lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{program_date_time(int(seg['start_time']))}")
        if gap:
            self.lines.append("#EXT-X-GAP")
        self.lines.append(_extinf(int(seg["duration_us"])))
        self.lines.append(url)


def _entries(row: Row) -> list[Row]:
    raw = row.get("window_entries") or row.get("entries") or []
    items = json.loads(raw) if isinstance(raw, (str, bytes)) else list(raw)
    return sorted(items, key=lambda e: e["sequence"])


def _holes(prev: Row | None, nxt: Row, first_seq: int) -> list[tuple[int, Row]]:
    """Placeholders ``(sequence, row)`` for sequence numbers missing before ``nxt``."""
    lo = prev["sequence"] + 1 if prev is not None else first_seq
    missing = nxt["sequence"] - lo
    if missing <= 0:
        return []
    if prev is not None:
        end = int(prev["start_time"]) + int(prev["duration_us"])
        span = max(int(nxt["start_time"]) - end, 0)
        part = span // missing if span else int(prev["duration_us"])
    else:  # before the first segment we know: assume segments like it
        part = int(nxt["duration_us"])
        end = int(nxt["start_time"]) - part * missing
    init = (prev or nxt).get("init_id")
    return [(lo + k, {"start_time": end + k * part, "duration_us": part, "init_id": init})
            for k in range(missing)]


def render_live(manifest_row: Row, url_for_segment: UrlFor, url_for_init: InitUrlFor,
                url_for_gap: GapUrlFor | None = None) -> str:
    """The live media playlist for a ``live_manifest`` row.

    A sequence number of the window with no segment seen (an event not yet arrived) is kept as
    an EXT-X-GAP placeholder so every segment keeps its media sequence number.
    """
    entries = _entries(manifest_row)
    gap_url = url_for_gap or (lambda seq: f"gap-{seq}.m4s")
    ms = int(manifest_row.get("media_sequence") or 0)
    if entries and not ms <= entries[0]["sequence"]:
        ms = entries[0]["sequence"]
    target = max(int(manifest_row.get("target_duration") or 0),
                 _target(e["duration_us"] for e in entries))
    independent = bool(entries) and all(e.get("independent", True) for e in entries)
    lines = _header(target, ms, int(manifest_row.get("discontinuity_sequence") or 0), independent)
    body = _Body(url_for_init)
    prev: Row | None = None
    for e in entries:
        for seq, hole in _holes(prev, e, ms):
            body.segment(hole, gap_url(seq), False, gap=True)
        body.segment(e, url_for_segment(e), bool(e.get("discontinuity")))
        prev = e
    lines += body.lines
    if manifest_row.get("ended"):
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


def _is_gap(item: Any) -> bool:
    return isinstance(item, Gap)


def render_vod(segments_with_gaps: Sequence[Any], url_for_segment: UrlFor,
               url_for_init: InitUrlFor, *, ended: bool = True, gap_mode: str = "discontinuity",
               url_for_gap: GapUrlFor | None = None) -> str:
    """A recording playlist from ``timeindex.with_gaps`` output (segment rows and ``Gap``s).

    ``gap_mode="discontinuity"`` skips a hole and marks the next segment discontinuous (its
    program date-time shows the jump); ``"gap"`` fills it with EXT-X-GAP segments no longer than
    the target duration. ``ended=False`` makes an EVENT playlist for a range still recording.
    """
    if gap_mode not in GAP_MODES:
        raise ValueError(f"gap_mode must be one of {GAP_MODES}")
    segs = [s for s in segments_with_gaps if not _is_gap(s)]
    target = _target(int(s["duration_us"]) for s in segs)
    independent = bool(segs) and all(s.get("independent", True) for s in segs)
    lines = _header(target, 0, 0, independent, "VOD" if ended else "EVENT")
    body = _Body(url_for_init)
    gap_url = url_for_gap or (lambda n: f"gap-{n}.m4s")
    pending_disc, started, n_gap, last_init = False, False, 0, None
    for item in segments_with_gaps:
        if _is_gap(item):
            if gap_mode == "discontinuity" or last_init is None:
                pending_disc = started
                continue
            t, step = int(item.start_time), target * 1_000_000
            while t < int(item.end_time):
                d = min(step, int(item.end_time) - t)
                body.segment({"start_time": t, "duration_us": d, "init_id": last_init},
                             gap_url(n_gap), False, gap=True)
                t, n_gap = t + d, n_gap + 1
            continue
        disc = started and (pending_disc or bool(item.get("discontinuity")))
        body.segment(item, url_for_segment(item), disc)
        pending_disc, started, last_init = False, True, item.get("init_id")
    lines += body.lines
    if ended:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"
