"""Cassandra access for media: ``init_segments``, ``segments`` (time index) and ``segment_data``.

Writes are idempotent upserts at LOCAL_QUORUM stamped ``USING TIMESTAMP <event time µs>`` with
the stream's retention as TTL (init segments never expire: a configuration can outlive any one
segment). A segment is written bytes first, metadata row last, so a row that exists always has
its bytes. Every call goes through the driver's async API; the event loop never blocks.

The segmenter stores each CMAF part as a ``segment_data`` row as soon as it is complete
(``put_part``); sealing the segment (``seal_segment``) then sets the partition's static ``parts``
and ``byte_size`` and writes the metadata row. The media bytes exist once: a segment is its parts'
rows read in order.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.config import Settings
from pipeline.store.cluster import LOCAL_ONE_PROFILE, Store, aexecute, unavailable
from pipeline.views.timeindex import day_of, plan_buckets

__all__ = ["MAX_PART_BYTES", "PART_BYTES", "InitRow", "SegmentRow", "SegmentStore", "later_copies"]

#: Whole segments written at once (``put_segment``: imports, fixtures) are split into rows of at
#: most this size (Cassandra likes cells well under 1 MB).
PART_BYTES = 256 * 1024
#: A CMAF part is one cell; parts are at most PART-TARGET long, so this bounds the bitrate at
#: 8 MiB per part (134 Mbit/s at 0.5 s), far beyond a camera's, and under Cassandra's mutation
#: limit (half the 32 MiB commit log segment).
MAX_PART_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class InitRow:
    """One init segment (ftyp+moov) of a stream, content-addressed by ``init_id``."""

    stream_id: str
    init_id: str
    codec: str  # RFC 6381 codec string
    width: int
    height: int
    codec_config: bytes  # Annex-B parameter sets
    data: bytes
    created: int  # µs


@dataclass(frozen=True)
class SegmentRow:
    """A ``segments`` row: one media segment's metadata (times in µs, ``decode_time`` in ticks)."""

    stream_id: str
    day: int
    start_time: int
    segment_id: str
    sequence: int
    end_time: int
    producer_start: int
    producer_end: int
    ingest_start: int
    ingest_end: int
    duration_us: int
    frame_count: int
    byte_size: int
    independent: bool
    init_id: str
    discontinuity: bool
    codec: str
    width: int
    height: int
    first_chunk_seq: int
    last_chunk_seq: int
    decode_time: int
    timescale: int
    parts: int
    sealed_time: int
    resume: str | None = None  # the segmenter's snapshot after this segment (JSON)
    part_list: str | None = None  # JSON [[duration_us, independent, byte_size], ...]
    discontinuity_sequence: int = 0

    def as_event(self) -> dict[str, Any]:
        """The SealedSegment record describing this row (same fields, same values)."""
        names = ("stream_id", "segment_id", "sequence", "start_time", "end_time",
                 "producer_start", "producer_end", "ingest_start", "ingest_end", "duration_us",
                 "frame_count", "byte_size", "independent", "init_id", "discontinuity", "codec",
                 "width", "height", "first_chunk_seq", "last_chunk_seq", "sealed_time")
        event = {n: getattr(self, n) for n in names}
        event["parts"] = [{"duration_us": d, "independent": bool(i), "byte_size": b}
                          for d, i, b in json.loads(self.part_list or "[]")]
        event["discontinuity_sequence"] = self.discontinuity_sequence or 0
        return event


#: Write time of an init row is this minus its ``created`` (µs): the earliest write wins.
FIRST_WINS = 1 << 62
_SEG_COLS = tuple(f.name for f in dataclasses.fields(SegmentRow))
_INIT_COLS = tuple(f.name for f in dataclasses.fields(InitRow))


def _segment(row: Any) -> SegmentRow:
    return SegmentRow(**{c: getattr(row, c) for c in _SEG_COLS})


def later_copies(rows: Iterable[SegmentRow]) -> list[SegmentRow]:
    """One row per segment id, the later copy's (``ingest_end`` is its write time), in order.

    Two regions that cut one segment from a re-sent GOP and sealed it before either saw the
    other's seal both wrote an index row, under different start times (each bridge stamps its
    own). Their ``segment_data`` cells converge on the later copy by LWW; so does this read.
    """
    best: dict[str, SegmentRow] = {}
    for r in rows:
        kept = best.get(r.segment_id)
        if kept is None or (r.ingest_end, r.start_time) > (kept.ingest_end, kept.start_time):
            best[r.segment_id] = r
    return sorted(best.values(), key=lambda r: (r.start_time, r.segment_id))


class SegmentStore(Store):
    """Prepared statements for the media tables; connects in ``start()``, shuts down in ``close()``.

    Reads take ``fast=True`` to use LOCAL_ONE (playback hot path); the default is LOCAL_QUORUM.
    """

    def __init__(self, settings: Settings, session: Any = None) -> None:
        super().__init__(settings, session)
        self.ttl = settings.retention_days * 86_400
        self.max_segment_us = int(settings.segment_max_s * 1_000_000) + 1_000_000

    def queries(self) -> dict[str, str]:
        """The statements this store prepares."""
        seg_cols, init_cols = ", ".join(_SEG_COLS), ", ".join(_INIT_COLS)
        queries = {
            "init_w": f"INSERT INTO init_segments ({init_cols}) VALUES "
                      f"({', '.join('?' * len(_INIT_COLS))}) USING TIMESTAMP ?",
            "seg_w": f"INSERT INTO segments ({seg_cols}) VALUES "
                     f"({', '.join('?' * len(_SEG_COLS))}) USING TTL ? AND TIMESTAMP ?",
            "part_w": "INSERT INTO segment_data (stream_id, segment_id, part, data, byte_size, "
                      "parts) VALUES (?, ?, ?, ?, ?, ?) USING TTL ? AND TIMESTAMP ?",
            "cmaf_w": "INSERT INTO segment_data (stream_id, segment_id, part, data) "
                      "VALUES (?, ?, ?, ?) USING TTL ? AND TIMESTAMP ?",
            "seal_w": "UPDATE segment_data USING TTL ? AND TIMESTAMP ? SET parts = ?, "
                      "byte_size = ?, start_time = ? WHERE stream_id = ? AND segment_id = ?",
            "sealed_r": "SELECT parts, start_time, writetime(parts) AS sealed_at FROM "
                        "segment_data WHERE stream_id = ? AND segment_id = ? LIMIT 1",
            "unindex_w": "DELETE FROM segments USING TIMESTAMP ? WHERE stream_id = ? AND day = ? "
                         "AND start_time = ? AND segment_id = ?",
            "resume_w": "INSERT INTO segment_resume (stream_id, region, segment_id, start_time, "
                        "last_chunk_seq, resume) VALUES (?, ?, ?, ?, ?, ?) "
                        "USING TTL ? AND TIMESTAMP ?",
            "resume_r": "SELECT segment_id, start_time, last_chunk_seq, resume FROM "
                        "segment_resume WHERE stream_id = ? AND region = ?",
            "one_r": f"SELECT {seg_cols} FROM segments WHERE stream_id = ? AND day = ? "
                     "AND start_time = ? AND segment_id = ?",
            "cmaf_r": "SELECT data FROM segment_data WHERE stream_id = ? AND segment_id = ? "
                      "AND part = ?",
            "init_r": f"SELECT {init_cols} FROM init_segments WHERE stream_id = ? AND init_id = ?",
            "parts_r": "SELECT part, data, parts, byte_size FROM segment_data "
                       "WHERE stream_id = ? AND segment_id = ?",
            "range_r": f"SELECT {seg_cols} FROM segments WHERE stream_id = ? AND day = ? "
                       "AND start_time >= ? AND start_time < ?",
            "last_r": f"SELECT {seg_cols} FROM segments WHERE stream_id = ? AND day = ? "
                      "ORDER BY start_time DESC LIMIT 1",
        }
        return queries

    async def _rows(self, stmt: Any, params: Sequence[Any], fast: bool = False) -> list[Any]:
        """All rows of a query, every page fetched through the async API."""
        loop = asyncio.get_running_loop()
        pages: asyncio.Queue = asyncio.Queue()
        kw = {"execution_profile": LOCAL_ONE_PROFILE} if fast else {}
        rf = self._session.execute_async(stmt, params, **kw)
        rf.add_callbacks(lambda rows: loop.call_soon_threadsafe(pages.put_nowait, (rows, None)),
                         lambda exc: loop.call_soon_threadsafe(pages.put_nowait, (None, exc)))
        out: list[Any] = []
        while True:
            rows, exc = await pages.get()
            if exc is not None:
                raise unavailable(exc) from exc
            out.extend(rows or ())
            if not rf.has_more_pages:
                return out
            rf.start_fetching_next_page()

    # -- writes ----------------------------------------------------------------------------
    async def put_init(self, row: InitRow) -> None:
        """Store an init segment (idempotent; same id means same bytes).

        Each worker writes it once per life, stamped with the first chunk it saw carry it: a
        restarted worker or the other region would move ``created`` later. The write time
        counts down from ``FIRST_WINS`` instead, so the earliest sighting wins everywhere, as a
        rebuild from the log finds it.
        """
        await aexecute(self._session, self._ps["init_w"],
                       [getattr(row, c) for c in _INIT_COLS] + [FIRST_WINS - row.created])

    async def put_segment(self, row: SegmentRow, data: bytes) -> None:
        """Store a media segment: its bytes in parts, then its metadata row, at ``ingest_end``."""
        ts = row.ingest_end
        parts = [data[i:i + PART_BYTES] for i in range(0, len(data), PART_BYTES)] or [b""]
        assert row.parts == len(parts) and row.byte_size == len(data), "row does not match bytes"
        writes = [aexecute(self._session, self._ps["part_w"], (
            row.stream_id, row.segment_id, i, p, len(data), len(parts), self.ttl, ts))
            for i, p in enumerate(parts)]
        await (writes[0] if len(writes) == 1 else asyncio.gather(*writes))
        await aexecute(self._session, self._ps["seg_w"],
                       [getattr(row, c) for c in _SEG_COLS] + [self.ttl, ts])

    async def put_part(self, stream_id: str, segment_id: str, index: int, data: bytes,
                       ts: int) -> None:
        """Store one CMAF part of a segment still being cut (idempotent: same id, same bytes)."""
        if len(data) > MAX_PART_BYTES:
            raise ValueError(f"part {segment_id}.{index} is {len(data)} bytes "
                             f"(limit {MAX_PART_BYTES})")
        await aexecute(self._session, self._ps["cmaf_w"],
                       (stream_id, segment_id, index, data, self.ttl, ts))

    async def seal_segment(self, row: SegmentRow, region: str | None = None,
                           check: bool = False) -> bool:
        """A segment whose parts are all stored: make its bytes readable, then write its row.

        ``region``: also record the row's resume point as that region's (``resume_point``).
        ``check``: the segment may also have been cut by another region from its copy of the
        same frames (a device that moved re-sends its open GOP, so both regions' logs hold it).
        The copy with the later event time wins everywhere, as each of its cells does by LWW:
        if the stored one is later, this one writes no index row (False: superseded); if it is
        earlier and indexed under another start time, its index row is deleted at our time.
        """
        ts = row.ingest_end
        written = True
        if check:
            prior = await self._rows(self._ps["sealed_r"], (row.stream_id, row.segment_id))
            if prior and prior[0].parts is not None and prior[0].sealed_at is not None:
                if prior[0].sealed_at > ts:
                    written = False
                elif prior[0].sealed_at < ts and prior[0].start_time not in (None,
                                                                              row.start_time):
                    old = prior[0].start_time
                    await aexecute(self._session, self._ps["unindex_w"], (
                        ts, row.stream_id, day_of(old), old, row.segment_id))
        if written:
            await aexecute(self._session, self._ps["seal_w"], (
                self.ttl, ts, row.parts, row.byte_size, row.start_time, row.stream_id,
                row.segment_id))
            await aexecute(self._session, self._ps["seg_w"],
                           [getattr(row, c) for c in _SEG_COLS] + [self.ttl, ts])
        if region is not None:
            await aexecute(self._session, self._ps["resume_w"], (
                row.stream_id, region, row.segment_id, row.start_time, row.last_chunk_seq,
                row.resume, self.ttl, ts))
        return written

    async def resume_point(self, stream_id: str, region: str) -> Any:
        """The region's own resume point for the stream (segment_id, start_time,
        last_chunk_seq, resume), or None when that region never cut it."""
        rows = await self._rows(self._ps["resume_r"], (stream_id, region))
        return rows[0] if rows else None

    async def segment_at(self, stream_id: str, start_time: int, segment_id: str
                         ) -> SegmentRow | None:
        """One ``segments`` row by its key, or None (never written, or superseded)."""
        rows = await self._rows(self._ps["one_r"], (stream_id, day_of(start_time), start_time,
                                                    segment_id))
        return _segment(rows[0]) if rows else None

    # -- reads -----------------------------------------------------------------------------
    async def part_bytes(self, stream_id: str, segment_id: str, index: int, fast: bool = False
                         ) -> bytes | None:
        """One stored CMAF part's moof+mdat, or None."""
        rows = await self._rows(self._ps["cmaf_r"], (stream_id, segment_id, index), fast)
        return rows[0].data if rows and rows[0].data is not None else None

    async def init_segment(self, stream_id: str, init_id: str, fast: bool = False
                           ) -> InitRow | None:
        """The init segment a media segment's ``init_id`` names, or None."""
        rows = await self._rows(self._ps["init_r"], (stream_id, init_id), fast)
        return InitRow(**{c: getattr(rows[0], c) for c in _INIT_COLS}) if rows else None

    async def segment_bytes(self, stream_id: str, segment_id: str, fast: bool = False
                            ) -> bytes | None:
        """A media segment's moof+mdat, or None when absent or incomplete (expired mid-way)."""
        rows = await self._rows(self._ps["parts_r"], (stream_id, segment_id), fast)
        if not rows or rows[0].parts != len(rows) \
                or [r.part for r in rows] != list(range(len(rows))):
            return None
        data = b"".join(r.data or b"" for r in rows)
        return data if len(data) == rows[0].byte_size else None

    async def segments_between(self, stream_id: str, start_us: int, end_us: int,
                               fast: bool = False) -> list[SegmentRow]:
        """Segments overlapping [start, end), ordered by start time (reads each day bucket)."""
        out: list[SegmentRow] = []
        for q in plan_buckets(start_us, end_us, self.max_segment_us):
            rows = await self._rows(self._ps["range_r"], (stream_id, q.day, q.lo, q.hi), fast)
            out += [s for s in map(_segment, rows) if s.end_time > start_us]
        return later_copies(out)

    async def latest_segment(self, stream_id: str, now_us: int, days: int | None = None
                             ) -> SegmentRow | None:
        """The stream's newest segment, searching day buckets back from ``now_us`` (+1 day)."""
        days = self._settings.retention_days + 1 if days is None else days
        top = day_of(now_us) + 1
        found = await asyncio.gather(*(self._rows(self._ps["last_r"], (stream_id, day))
                                       for day in range(top, top - days - 1, -1)))
        return next((_segment(rows[0]) for rows in found if rows), None)
