"""Command-line times: ISO-8601 (UTC unless an offset is given) or epoch seconds (pure)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal

from pipeline.errors import CliError

__all__ = ["format_time", "parse_time"]


def parse_time(text: str) -> int:
    """``"2026-11-25T12:00:00Z"``, ``"2026-11-25 12:00"`` or ``"1764072000.5"`` → epoch µs."""
    raw = text.strip()
    if re.fullmatch(r"-?\d+(\.\d*)?", raw):
        return int(Decimal(raw) * 1_000_000)
    iso = raw[:-1] + "+00:00" if raw.endswith(("Z", "z")) else raw
    try:
        dt = datetime.fromisoformat(iso)
    except ValueError:
        raise CliError(f"bad time {text!r}: use ISO-8601 (e.g. 2026-11-25T12:00:00Z) "
                       "or epoch seconds") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return round(dt.timestamp() * 1_000_000)


def format_time(us: int) -> str:
    """Epoch µs → ISO-8601 UTC with a ``Z``."""
    dt = datetime.fromtimestamp(us / 1_000_000, tz=UTC)
    return dt.isoformat().replace("+00:00", "Z")
