"""Sanity checks on decoded events before a view uses them (pure).

Avro guarantees the types, not the values: an event with an unusable stream id or absurd times
would poison a row (or a Cassandra ``int`` column), so it is dead-lettered with the reason.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["MAX_TIME_US", "STREAM_ID", "problem"]

#: Valid stream ids, as documented on FrameChunk.stream_id.
STREAM_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
#: Times must fall in [1970, 2100).
MAX_TIME_US = 4_102_444_800_000_000
_HOUR_US = 3_600_000_000


def _time(r: Mapping[str, Any], *names: str) -> str | None:
    for n in names:
        if not 0 <= int(r[n]) < MAX_TIME_US:
            return f"{n} {r[n]} is outside 1970..2100"
    return None


def _stream(r: Mapping[str, Any], optional: bool = False) -> str | None:
    sid = r.get("stream_id")
    if optional and sid is None:
        return None
    if not isinstance(sid, str) or not STREAM_ID.fullmatch(sid):
        return f"invalid stream_id {sid!r}"
    return None


def _segment(r: Mapping[str, Any]) -> str | None:
    if int(r["sequence"]) < 0:
        return f"negative sequence {r['sequence']}"
    if not 0 < int(r["duration_us"]) <= _HOUR_US:
        return f"duration_us {r['duration_us']} is not within (0, 1 h]"
    if not r.get("segment_id") or not r.get("init_id"):
        return "empty segment_id or init_id"
    return _time(r, "start_time", "end_time", "ingest_end")


def _chunk(r: Mapping[str, Any]) -> str | None:
    if int(r["seq"]) < 0:
        return f"negative seq {r['seq']}"
    if int(r.get("timescale") or 0) <= 0:
        return f"timescale {r.get('timescale')} must be positive"
    return _time(r, "producer_time", "ingest_time")


def _playback(r: Mapping[str, Any]) -> str | None:
    if not r.get("event_id"):
        return "empty event_id"
    if int(r.get("bytes") or 0) < 0:
        return "negative bytes"
    return _time(r, "time")


_CHECKS: dict[str, Callable[[Mapping[str, Any]], str | None]] = {
    "SealedSegment": _segment,
    "FrameChunk": _chunk,
    "SessionChange": lambda r: _time(r, "time"),
    "PlaybackEvent": _playback,
    "DeadLetter": lambda r: _time(r, "time"),
}


def problem(event_name: str, record: Mapping[str, Any]) -> str | None:
    """Why a decoded event cannot feed the views, or None when it can."""
    reason = _stream(record, optional=event_name == "DeadLetter")
    if reason is None:
        check = _CHECKS.get(event_name)
        reason = check(record) if check else None
    return reason
