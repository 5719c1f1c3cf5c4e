"""Cassandra I/O for the materialized views: live_manifest, device_state, playback_minute/hour.

Every write is an idempotent upsert stamped ``USING TIMESTAMP <event time µs>`` (the reducers in
``pipeline.views`` say which time), at LOCAL_QUORUM through the driver's async API, so replays,
redeliveries and other regions converge to the same cells.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipeline.config import Settings
from pipeline.store.cluster import Store, aexecute, prepare
from pipeline.store.segments import SegmentStore
from pipeline.views.stats import WindowRow
from pipeline.views.timeindex import Gap, day_of, with_gaps

__all__ = ["ViewStore"]

_STATS_COLS = ("manifest_requests", "segment_requests", "other_requests", "bytes", "viewers",
               "errors", "startup_ms_sum", "startup_samples", "rebuffers")
_MANIFEST_COLS = ("stream_id", "media_sequence", "discontinuity_sequence", "target_duration",
                  "window_entries", "updated_time")


def _months(start_us: int, end_us: int) -> list[int]:
    import datetime as dt

    a = dt.datetime.fromtimestamp(start_us / 1e6, dt.UTC)
    b = dt.datetime.fromtimestamp(max(start_us, end_us - 1) / 1e6, dt.UTC)
    out, y, m = [], a.year, a.month
    while (y, m) <= (b.year, b.month):
        out.append(y * 100 + m)
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


class ViewStore(Store):
    """Prepared statements for the view tables; connects in ``start()``, ends in ``close()``."""

    def __init__(self, settings: Settings, session: Any = None) -> None:
        super().__init__(settings, session)
        self._segments: SegmentStore | None = None

    def queries(self) -> dict[str, str]:
        """The statements this store prepares."""
        cols = ", ".join(_MANIFEST_COLS)
        marks = ", ".join("?" * len(_MANIFEST_COLS))
        stats = ", ".join(_STATS_COLS)
        smarks = ", ".join("?" * len(_STATS_COLS))
        queries = {
            "manifest_w": f"INSERT INTO live_manifest ({cols}) VALUES ({marks}) USING TIMESTAMP ?",
            "ended_w": "UPDATE live_manifest USING TIMESTAMP ? SET ended = ? WHERE stream_id = ?",
            "minute_w": f"INSERT INTO playback_minute (stream_id, day, minute, {stats}) "
                        f"VALUES (?, ?, ?, {smarks}) USING TIMESTAMP ?",
            "hour_w": f"INSERT INTO playback_hour (stream_id, month, hour, {stats}) "
                      f"VALUES (?, ?, ?, {smarks}) USING TIMESTAMP ?",
            "manifest_r": "SELECT * FROM live_manifest WHERE stream_id = ?",
            "device_r": "SELECT * FROM device_state WHERE stream_id = ?",
            "devices_r": "SELECT * FROM device_state",
            "minute_r": "SELECT * FROM playback_minute WHERE stream_id = ? AND day = ? "
                        "AND minute >= ? AND minute < ?",
            "hour_r": "SELECT * FROM playback_hour WHERE stream_id = ? AND month = ? "
                      "AND hour >= ? AND hour < ?",
        }
        return queries

    async def _run(self, stmt: Any, params: Any, **kw: Any) -> Any:
        return await aexecute(self._session, stmt, params, **kw)

    # -- writes ----------------------------------------------------------------------------
    async def write_manifest(self, row: Mapping[str, Any], ts: int) -> None:
        """Upsert a live window (``ManifestState.to_row()``) at write time ``ts`` µs."""
        await self._run(self._ps["manifest_w"], [row[c] for c in _MANIFEST_COLS] + [int(ts)])

    async def write_ended(self, stream_id: str, ended: bool, ts: int) -> None:
        """Set the live/ended cell from a session event at its event time."""
        await self._run(self._ps["ended_w"], (int(ts), ended, stream_id))

    async def _device_stmt(self, names: tuple[str, ...]) -> Any:
        ps = self._ps.get(names)
        if ps is None:
            sets = ", ".join(f"{c} = ?" for c in names)
            cql = f"UPDATE device_state USING TIMESTAMP ? SET {sets} WHERE stream_id = ?"
            ps = self._ps[names] = await prepare(self._session, cql)
        return ps

    async def write_device(self, stream_id: str, cols: Mapping[str, Any], ts: int) -> None:
        """Write some device_state cells (``device_state.columns(...)``) at event time ``ts``."""
        names = tuple(sorted(cols))
        ps = await self._device_stmt(names)
        await self._run(ps, [int(ts)] + [cols[c] for c in names] + [stream_id])

    async def write_window(self, w: WindowRow) -> None:
        """Upsert a closed playback window (minute or hour) at ``w.write_ts``."""
        s = w.stats
        values = [s.manifest_requests, s.segment_requests, s.other_requests, s.bytes, s.viewers,
                  s.errors, float(s.startup_ms_sum), s.startup_samples, s.rebuffers]
        ps = self._ps["minute_w" if w.resolution == "minute" else "hour_w"]
        await self._run(ps, [w.stream_id, w.bucket, w.start_us, *values, w.write_ts])

    # -- reads -----------------------------------------------------------------------------
    async def get_live_manifest(self, stream_id: str) -> dict[str, Any] | None:
        """The live_manifest row (``window_entries`` still JSON text), or None."""
        row = (await self._run(self._ps["manifest_r"], (stream_id,))).one()
        return None if row is None else dict(row._asdict())

    async def get_device_state(self, stream_id: str) -> dict[str, Any] | None:
        """The device_state row, or None."""
        row = (await self._run(self._ps["device_r"], (stream_id,))).one()
        return None if row is None else dict(row._asdict())

    async def list_streams(self, page_size: int = 100, paging_state: bytes | None = None
                           ) -> tuple[list[dict[str, Any]], bytes | None]:
        """One page of device_state rows (token order) and the paging state of the next page."""
        stmt = self._ps["devices_r"].bind(())
        stmt.fetch_size = page_size
        rs = await self._run(stmt, None, paging_state=paging_state)
        return [dict(r._asdict()) for r in rs.current_rows], rs.paging_state

    async def get_stats(self, stream_id: str, from_us: int, to_us: int,
                        resolution: str = "minute") -> list[dict[str, Any]]:
        """Playback rows whose window starts in [from, to), oldest first."""
        if resolution == "minute":
            buckets = range(day_of(from_us), day_of(max(from_us, to_us - 1)) + 1)
            ps = self._ps["minute_r"]
        elif resolution == "hour":
            buckets, ps = _months(from_us, to_us), self._ps["hour_r"]
        else:
            raise ValueError("resolution is 'minute' or 'hour'")
        out: list[dict[str, Any]] = []
        for b in buckets:
            rs = await self._run(ps, (stream_id, b, from_us, to_us))
            out.extend(dict(r._asdict()) for r in rs.current_rows)
        return out

    async def segments_in_range(self, stream_id: str, start_us: int, end_us: int,
                                tolerance_us: int = 100_000, trailing: bool = True
                                ) -> list[dict[str, Any] | Gap]:
        """Segments (as dicts) covering [start, end) in order, with ``Gap`` items for holes.

        Reads through the segmenter's ``SegmentStore.segments_between`` (one bounded slice per
        day bucket, LOCAL_QUORUM) and adds the gaps with ``timeindex.with_gaps``.
        """
        if self._segments is None:
            store = SegmentStore(self._settings, self._session)
            await store.start()
            self._segments = store
        rows = await self._segments.segments_between(stream_id, start_us, end_us)
        dicts = [{k: v for k, v in r.__dict__.items() if k != "resume"} for r in rows]
        return with_gaps(dicts, start_us, end_us, tolerance_us, trailing)

