"""``replay verify``: row-by-row comparison of a rebuilt keyspace with the live one."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.errors import CliError

__all__ = ["IGNORED", "Difference", "diff_rows", "verify"]

#: Columns stamped with the wall clock of the process that wrote them, not derived from events.
IGNORED: dict[str, frozenset[str]] = {
    "segments": frozenset({"sealed_time"}),
}


@dataclass(frozen=True)
class Difference:
    """One row that is not the same on both sides."""

    table: str
    key: tuple
    what: str  # "missing in live", "missing in rebuilt", or "column: live != rebuilt"

    def __str__(self) -> str:
        return f"{self.table} {self.key}: {self.what}"


def _show(v: Any) -> str:
    if isinstance(v, (bytes, bytearray)):
        return f"<{len(v)} bytes {hashlib.sha256(v).hexdigest()[:12]}>"
    text = repr(v)
    return text if len(text) <= 80 else text[:77] + "..."


def diff_rows(table: str, key_cols: Sequence[str], live: Iterable[Mapping[str, Any]],
              rebuilt: Iterable[Mapping[str, Any]]) -> list[Difference]:
    """Differences between two sets of rows of one table, matched by primary key (pure)."""
    ignore = IGNORED.get(table, frozenset())
    a = {tuple(r[k] for k in key_cols): r for r in live}
    b = {tuple(r[k] for k in key_cols): r for r in rebuilt}
    out = []
    for key in sorted(a.keys() | b.keys(), key=repr):
        if key not in b:
            out.append(Difference(table, key, "missing in rebuilt"))
        elif key not in a:
            out.append(Difference(table, key, "missing in live"))
        else:
            for col in sorted(a[key].keys() | b[key].keys()):
                if col in ignore:
                    continue
                x, y = a[key].get(col), b[key].get(col)
                if x != y:
                    out.append(Difference(table, key,
                                          f"{col}: live {_show(x)} != rebuilt {_show(y)}"))
    return out


#: Playback stats tables and their time bucket (partition key part); clustering is the window.
_STATS = {"playback_minute": "day", "playback_hour": "month"}


def _compare_span(rows: Any, live_ks: str, against: str, table: str, bucket: str,
                  key_cols: Sequence[str], sid: str, buckets: list[int]) -> list[Difference]:
    """Rows of the rebuilt buckets vs. the live ones over the same window span."""
    window = key_cols[-1]
    q = f"SELECT * FROM {{ks}}.{table} WHERE stream_id = %s AND {bucket} = %s"
    built = [r for b in sorted(buckets) for r in rows(against, q, (sid, b))]
    if not built:
        return []
    lo, hi = min(r[window] for r in built), max(r[window] for r in built)
    live = [r for b in sorted(buckets) for r in rows(live_ks, q, (sid, b))
            if lo <= r[window] <= hi]
    return diff_rows(table, key_cols, live, built)


def _keyspaces(session: Any) -> set[str]:
    rows = session.execute("SELECT keyspace_name FROM system_schema.keyspaces")
    return {r.keyspace_name for r in rows}


def verify(settings: Any, against: str, streams: Sequence[str] = ()) -> list[Difference]:
    """Compare the live keyspace with ``against`` for ``streams`` (default: all rebuilt streams).

    Time-partitioned rows are compared over the span the rebuilt keyspace covers, so a rebuild
    of part of the log is checked against the same part of the live views.
    """
    from pipeline.store.cluster import connect
    from pipeline.topology.spec import load_tables

    keys = {t.name: (*t.partition_key, *t.clustering) for t in load_tables()}
    live_ks = settings.keyspace
    session = connect(settings)
    try:
        have = _keyspaces(session)
        for ks in (against, live_ks):
            if ks not in have:
                raise CliError(f"keyspace {ks} does not exist")

        def rows(ks: str, cql: str, params: Sequence[Any] = ()) -> list[dict]:
            res = session.execute(cql.replace("{ks}", ks), params, timeout=60)
            return [r._asdict() if hasattr(r, "_asdict") else dict(r) for r in res]

        # the rebuilt keyspace is small: its time partitions can be listed outright
        parts = rows(against, "SELECT DISTINCT stream_id, day FROM {ks}.segments")
        stats = {t: rows(against, f"SELECT DISTINCT stream_id, {b} FROM {{ks}}.{t}")
                 for t, b in _STATS.items()}
        if not streams:
            streams = sorted({r["stream_id"] for r in
                              rows(against, "SELECT DISTINCT stream_id FROM {ks}.device_state")} |
                             {r["stream_id"] for r in
                              rows(against, "SELECT DISTINCT stream_id FROM {ks}.init_segments")} |
                             {r["stream_id"] for r in stats["playback_minute"]})
        out: list[Difference] = []
        for sid in streams:
            for table, bucket in _STATS.items():
                out += _compare_span(rows, live_ks, against, table, bucket, keys[table], sid,
                                     [r[bucket] for r in stats[table] if r["stream_id"] == sid])
            for table in ("init_segments", "live_manifest", "device_state"):
                q = f"SELECT * FROM {{ks}}.{table} WHERE stream_id = %s"
                out += diff_rows(table, keys[table], rows(live_ks, q, (sid,)),
                                 rows(against, q, (sid,)))
            days = sorted(r["day"] for r in parts if r["stream_id"] == sid)
            built = [r for d in days for r in rows(
                against, "SELECT * FROM {ks}.segments WHERE stream_id = %s AND day = %s", (sid, d))]
            if not built:
                continue
            lo, hi = min(r["start_time"] for r in built), max(r["start_time"] for r in built)
            live = [r for d in days for r in rows(
                live_ks, "SELECT * FROM {ks}.segments WHERE stream_id = %s AND day = %s "
                         "AND start_time >= %s AND start_time <= %s", (sid, d, lo, hi))]
            out += diff_rows("segments", keys["segments"], live, built)
            q = "SELECT * FROM {ks}.segment_data WHERE stream_id = %s AND segment_id = %s"
            ids = {r["segment_id"] for r in built} | {r["segment_id"] for r in live}
            for seg_id in sorted(ids):
                out += diff_rows("segment_data", keys["segment_data"],
                                 rows(live_ks, q, (sid, seg_id)), rows(against, q, (sid, seg_id)))
        return out
    finally:
        session.cluster.shutdown()
