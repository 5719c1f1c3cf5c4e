"""Parsing of untrusted request input: ids, times, time ranges and HTTP Range headers (pure)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from pipeline.playback.errors import Problem

__all__ = [
    "MAX_TIME_CHARS",
    "check_id",
    "parse_byte_range",
    "parse_limit",
    "parse_range",
    "parse_time",
]

# Stream, segment and init ids: short, printable, path- and CQL-safe. Anything else is refused
# before any lookup, so hostile ids never reach Cassandra or a log line unescaped.
_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
_EPOCH_RE = re.compile(r"-?\d{1,17}(?:\.\d{1,6})?")
MAX_TIME_CHARS = 40
# 2000-01-01 .. 2200-01-01 in µs: outside that a time is a typo, not a recording.
_MIN_US = 946_684_800_000_000
_MAX_US = 7_258_118_400_000_000


def check_id(value: str, what: str = "id") -> str:
    """Return ``value`` if it is a well-formed id, else raise a 400 problem."""
    if not isinstance(value, str) or not _ID_RE.fullmatch(value):
        raise Problem(400, "bad_id", f"malformed {what}")
    return value


def parse_time(text: str, what: str = "time") -> int:
    """ISO-8601 (``2026-11-25T12:00:00Z``, offsets allowed; naive = UTC) or epoch seconds,
    milliseconds or microseconds (told apart by magnitude) → µs since the epoch."""
    text = (text or "").strip()
    if not text or len(text) > MAX_TIME_CHARS:
        raise Problem(400, "bad_time", f"{what}: expected ISO-8601 or epoch seconds")
    if _EPOCH_RE.fullmatch(text):
        value = float(text) if "." in text else int(text)
        if abs(value) < 1e11:  # seconds (until year 5138)
            us = round(value * 1_000_000)
        elif abs(value) < 1e14:  # milliseconds
            us = round(value * 1_000)
        else:
            us = int(value)
    else:
        iso = text[:-1] + "+00:00" if text[-1:] in "Zz" else text
        try:
            dt = datetime.fromisoformat(iso)
        except ValueError:
            raise Problem(400, "bad_time", f"{what}: expected ISO-8601 or epoch seconds") from None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        delta = dt - datetime(1970, 1, 1, tzinfo=UTC)
        us = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    if not _MIN_US <= us <= _MAX_US:
        raise Problem(400, "bad_time", f"{what}: out of the supported range (2000..2200)")
    return us


def parse_range(
    start: str | None, end: str | None, max_us: int, now_us: int, default_us: int | None = None
) -> tuple[int, int]:
    """``start``/``end`` query values → ``(start_us, end_us)``; ``end`` defaults to now and
    ``start`` to ``end - default_us`` when ``default_us`` is given. Refuses inverted, empty and
    over-long ranges (400) so no query scans an unbounded time span."""
    end_us = parse_time(end, "end") if end else now_us
    if start:
        start_us = parse_time(start, "start")
    elif default_us is not None:
        start_us = end_us - default_us
    else:
        raise Problem(400, "bad_range", "start is required")
    if end_us <= start_us:
        raise Problem(400, "bad_range", "end must be after start")
    if end_us - start_us > max_us:
        raise Problem(400, "range_too_long", f"a range may span at most {max_us // 1_000_000} s")
    return start_us, end_us


_RANGE_RE = re.compile(r"bytes=(\d{0,19})-(\d{0,19})")


def parse_byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """An HTTP ``Range`` header → inclusive ``(first, last)`` within ``size``, or None for the
    whole body. One range only (multipart ranges are answered with the whole body, as RFC 9110
    allows). Unsatisfiable ranges raise a 416 problem carrying ``size``."""
    if not header:
        return None
    m = _RANGE_RE.fullmatch(header.strip())
    if not m or (not m.group(1) and not m.group(2)):
        return None  # syntactically invalid or multi-range: ignore the header
    a, b = m.group(1), m.group(2)
    if not a:  # suffix range: the last n bytes
        n = int(b)
        if n == 0 or size == 0:
            raise Problem(416, "range_not_satisfiable", "empty suffix range", size=size)
        return max(0, size - n), size - 1
    first = int(a)
    last = int(b) if b else max(first, size - 1)
    if last < first:
        return None  # invalid byte-range-spec: ignore
    if first >= size:
        raise Problem(416, "range_not_satisfiable", "range starts beyond the end", size=size)
    return first, min(last, size - 1)


def parse_limit(text: str | None, default: int, maximum: int) -> int:
    """A page-size query value within ``1..maximum``."""
    if text is None or text == "":
        return default
    if not text.isdigit() or len(text) > 6 or not 1 <= int(text) <= maximum:
        raise Problem(400, "bad_limit", f"limit must be within 1..{maximum}")
    return int(text)
