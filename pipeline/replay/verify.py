"""``replay verify``: row-by-row comparison of the live keyspace with another copy of it.

* ``--against KEYSPACE``: a keyspace rebuilt from the log (``replay rebuild``), over the span the
  rebuild covers;
* ``--dcs dc1,dc2``: the live keyspace as each data centre holds it, to check that two regions
  converged (after an outage, say). Each side is read through its own DC only, at LOCAL_ONE
  (``store.cluster.connect_dc``), so a row that has not reached a DC shows as missing there. Rows
  are compared per stream: device state, live manifest, init segments, the segment index of
  every day bucket within retention (+1 day, like ``latest_segment``) and the data of every
  segment either side lists. Run it when the regions are quiet: a stream still being written
  differs by what is in flight.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pipeline.errors import CliError

__all__ = ["IGNORED", "Difference", "compare_streams", "diff_rows", "verify", "verify_dcs"]

#: Columns stamped with the wall clock of the process that wrote them, not derived from events.
IGNORED: dict[str, frozenset[str]] = {
    "segments": frozenset({"sealed_time"}),
}


@dataclass(frozen=True)
class Difference:
    """One row that is not the same on both sides."""

    table: str
    key: tuple
    what: str  # "missing in B", or "column: A x != B y" (sides: live/rebuilt, dc1/dc2)

    def __str__(self) -> str:
        return f"{self.table} {self.key}: {self.what}"


def _show(v: Any) -> str:
    if isinstance(v, (bytes, bytearray)):
        return f"<{len(v)} bytes {hashlib.sha256(v).hexdigest()[:12]}>"
    text = repr(v)
    return text if len(text) <= 80 else text[:77] + "..."


def diff_rows(table: str, key_cols: Sequence[str], left: Iterable[Mapping[str, Any]],
              right: Iterable[Mapping[str, Any]],
              sides: tuple[str, str] = ("live", "rebuilt")) -> list[Difference]:
    """Differences between two sets of rows of one table, matched by primary key (pure).

    ``sides`` names the two sets in the messages ("missing in rebuilt", "fps: live 1 != ...").
    """
    ignore = IGNORED.get(table, frozenset())
    a = {tuple(r[k] for k in key_cols): r for r in left}
    b = {tuple(r[k] for k in key_cols): r for r in right}
    out = []
    for key in sorted(a.keys() | b.keys(), key=repr):
        if key not in b:
            out.append(Difference(table, key, f"missing in {sides[1]}"))
        elif key not in a:
            out.append(Difference(table, key, f"missing in {sides[0]}"))
        else:
            for col in sorted(a[key].keys() | b[key].keys()):
                if col in ignore:
                    continue
                x, y = a[key].get(col), b[key].get(col)
                if x != y:
                    out.append(Difference(
                        table, key, f"{col}: {sides[0]} {_show(x)} != {sides[1]} {_show(y)}"))
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


# -- the live keyspace, DC by DC --------------------------------------------------------------

#: Reads the rows of ``table`` whose key columns equal ``where`` (one side's I/O edge).
Fetch = Callable[[str, Mapping[str, Any]], list[dict]]

#: Per-stream tables compared whole (one partition per stream).
_STREAM_TABLES = ("init_segments", "device_state", "live_manifest")


@dataclass
class Comparison:
    """What two sides were compared on: the differences, and rows read per table (both sides)."""

    differences: list[Difference] = field(default_factory=list)
    rows: Counter = field(default_factory=Counter)


def compare_streams(left: Fetch, right: Fetch, streams: Iterable[str], days: Sequence[int],
                    keys: Mapping[str, Sequence[str]],
                    sides: tuple[str, str]) -> Comparison:
    """Compare every stream's rows on two sides (pure given the fetchers).

    Segments are read bucket by bucket over ``days``; the data of every segment id either side
    lists is compared partition by partition, so a segment whose index row reached a DC but
    whose parts did not shows up as parts missing there.
    """
    out = Comparison()

    def both(table: str, where: Mapping[str, Any]) -> tuple[list[dict], list[dict]]:
        a, b = left(table, where), right(table, where)
        out.rows[table] += len(a) + len(b)
        return a, b

    for sid in streams:
        for table in _STREAM_TABLES:
            out.differences += diff_rows(table, keys[table], *both(table, {"stream_id": sid}),
                                         sides=sides)
        seg_a: list[dict] = []
        seg_b: list[dict] = []
        for day in days:
            a, b = both("segments", {"stream_id": sid, "day": day})
            seg_a += a
            seg_b += b
        out.differences += diff_rows("segments", keys["segments"], seg_a, seg_b, sides=sides)
        for seg_id in sorted({r["segment_id"] for r in seg_a + seg_b}, key=str):
            out.differences += diff_rows(
                "segment_data", keys["segment_data"],
                *both("segment_data", {"stream_id": sid, "segment_id": seg_id}), sides=sides)
    return out


def retention_days(now_us: int, retention: int) -> list[int]:
    """The day buckets a stream can have rows in: from tomorrow back over retention + 1 day
    (clock skew and a not-yet-expired last day), as ``SegmentStore.latest_segment`` searches."""
    from pipeline.views.timeindex import day_of

    top = day_of(now_us) + 1
    return list(range(top, top - (retention + 1) - 1, -1))


def verify_dcs(settings: Any, dcs: Sequence[str], streams: Sequence[str] = (),
               now_us: int | None = None) -> Comparison:
    """Compare the live keyspace as data centre ``dcs[0]`` holds it with ``dcs[1]``'s copy.

    ``streams`` default: every stream in ``init_segments`` or ``device_state`` of either DC.
    """
    import time

    from pipeline.store.cluster import UnknownDatacenter, connect_dc
    from pipeline.topology.spec import load_tables

    if len(dcs) != 2 or not all(dcs):
        raise CliError("--dcs takes two data centre names, e.g. dc1,dc2")
    keys = {t.name: (*t.partition_key, *t.clustering) for t in load_tables()}
    ks = settings.keyspace
    sessions: list[Any] = []
    try:
        for dc in dcs:
            try:
                sessions.append(connect_dc(settings, dc))
            except UnknownDatacenter as exc:
                raise CliError(f"--dcs: {exc}") from None
        if ks not in _keyspaces(sessions[0]):
            raise CliError(f"keyspace {ks} does not exist")

        def fetcher(session: Any) -> Fetch:
            def fetch(table: str, where: Mapping[str, Any]) -> list[dict]:
                cond = " AND ".join(f"{c} = %s" for c in where)
                res = session.execute(f"SELECT * FROM {ks}.{table} WHERE {cond}",
                                      tuple(where.values()), timeout=60)
                return [r._asdict() if hasattr(r, "_asdict") else dict(r) for r in res]
            return fetch

        if not streams:
            found: set[str] = set()
            for session in sessions:
                for table in ("init_segments", "device_state"):
                    found |= {r.stream_id for r in session.execute(
                        f"SELECT DISTINCT stream_id FROM {ks}.{table}", timeout=60)}
            streams = sorted(found)
        now_us = int(time.time() * 1_000_000) if now_us is None else now_us
        return compare_streams(fetcher(sessions[0]), fetcher(sessions[1]), streams,
                               retention_days(now_us, settings.retention_days), keys,
                               sides=(dcs[0], dcs[1]))
    finally:
        for session in sessions:
            session.cluster.shutdown()
