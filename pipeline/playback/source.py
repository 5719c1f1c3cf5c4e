"""Where the playback service reads from: the store's media and view tables, each read bounded.

Consistency: segment and init bytes are immutable and content-addressed, so any one replica
that has them is right: LOCAL_ONE, and a miss is retried once at LOCAL_QUORUM (a replica may
not have the write yet). Manifests, device state and the time index are read at LOCAL_QUORUM
(``ViewStore``'s default) so an acknowledged segment is seen; the in-process cache keeps that
cost to one read per stream per half target duration.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from typing import Any, Protocol

__all__ = ["READ_TIMEOUT_S", "CassandraSource", "Source"]

#: A viewer waits at most this long for Cassandra: a frozen node (a long GC pause) turns into a
#: stale playlist or a 503 with Retry-After, never a hung request. Healthy reads take ms.
READ_TIMEOUT_S = 2.0


class Source(Protocol):
    """The reads the playback service needs; every one is bounded by its arguments."""

    async def start(self) -> None: ...
    async def close(self) -> None: ...
    async def ping(self) -> bool: ...
    async def live_manifest(self, stream_id: str) -> dict[str, Any] | None: ...
    async def device_state(self, stream_id: str) -> dict[str, Any] | None: ...
    async def list_streams(
        self, limit: int, cursor: str | None) -> tuple[list[dict[str, Any]], str | None]: ...
    async def segments(
        self, stream_id: str, start_us: int, end_us: int) -> list[dict[str, Any]]: ...
    async def segment_bytes(self, stream_id: str, segment_id: str) -> bytes | None: ...
    async def part_bytes(self, stream_id: str, segment_id: str, index: int) -> bytes | None: ...
    async def init_bytes(self, stream_id: str, init_id: str) -> bytes | None: ...


_MAC = 16  # bytes of HMAC-SHA256 after each cursor's paging state


def _mac(key: bytes, state: bytes) -> bytes:
    return hmac.new(key, b"camlog-cursor\0" + state, hashlib.sha256).digest()[:_MAC]


def _cursor_out(paging_state: bytes | None, key: bytes = b"") -> str | None:
    """The paging state with its MAC, base64url: only cursors this service issued come back."""
    if not paging_state:
        return None
    raw = paging_state + _mac(key, paging_state)
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _cursor_in(cursor: str | None, keys: Mapping[str, bytes] | None = None) -> bytes | None:
    """The paging state of a cursor; ``ValueError`` unless one of ``keys`` signed it (Cassandra
    answers a forged paging state with a protocol error and drops the connection)."""
    if not cursor:
        return None
    if len(cursor) > 512:
        raise ValueError("cursor too long")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except (binascii.Error, ValueError):
        raise ValueError("bad cursor") from None
    state, mac = raw[:-_MAC], raw[-_MAC:]
    if not state or not any(hmac.compare_digest(mac, _mac(k, state))
                            for k in (keys or {"": b""}).values()):
        raise ValueError("bad cursor")
    return state


class CassandraSource:
    """``Source`` over ``store.segments.SegmentStore`` and ``store.views.ViewStore``."""

    def __init__(self, settings: Any) -> None:
        self._settings = settings
        self._session: Any = None
        self.segments_store: Any = None
        self.views_store: Any = None
        self._ping: Any = None

    async def start(self) -> None:
        """Connect (in a thread: the driver's connect blocks) and prepare statements."""
        from pipeline.store.cluster import connect
        from pipeline.store.segments import SegmentStore
        from pipeline.store.views import ViewStore

        s = self._settings
        self._session = await asyncio.to_thread(connect, s, s.keyspace, READ_TIMEOUT_S)
        self.segments_store = SegmentStore(s, self._session)
        self.views_store = ViewStore(s, self._session)
        await self.segments_store.start()
        await self.views_store.start()
        self._ping = await asyncio.to_thread(self._session.prepare,
                                             "SELECT release_version FROM system.local")

    async def close(self) -> None:
        """Shut the driver's cluster down."""
        if self._session is not None:
            await asyncio.to_thread(self._session.cluster.shutdown)
            self._session = None

    async def ping(self) -> bool:
        """True when a local replica answers."""
        from pipeline.store.cluster import LOCAL_ONE_PROFILE, aexecute

        try:
            await aexecute(self._session, self._ping, None, execution_profile=LOCAL_ONE_PROFILE)
            return True
        except Exception:
            return False

    async def live_manifest(self, stream_id: str) -> dict[str, Any] | None:
        """The ``live_manifest`` row, or None."""
        return await self.views_store.get_live_manifest(stream_id)

    async def device_state(self, stream_id: str) -> dict[str, Any] | None:
        """The ``device_state`` row, or None."""
        return await self.views_store.get_device_state(stream_id)

    async def list_streams(
        self, limit: int, cursor: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of ``device_state`` rows (token order) and the cursor of the next page."""
        keys = self._settings.keys
        rows, nxt = await self.views_store.list_streams(limit, _cursor_in(cursor, keys))
        return rows, _cursor_out(nxt, next(iter(keys.values()), b""))

    async def segments(self, stream_id: str, start_us: int, end_us: int) -> list[dict[str, Any]]:
        """Index rows covering [start, end) in order (bounded: ``store.views.MAX_INDEX_ROWS``)."""
        items = await self.views_store.segments_in_range(stream_id, start_us, end_us)
        return [i for i in items if isinstance(i, dict)]

    async def segment_bytes(self, stream_id: str, segment_id: str) -> bytes | None:
        """The stored moof+mdat, or None when absent or incomplete."""
        data = await self.segments_store.segment_bytes(stream_id, segment_id, fast=True)
        if data is None:
            data = await self.segments_store.segment_bytes(stream_id, segment_id)
        return data

    async def part_bytes(self, stream_id: str, segment_id: str, index: int) -> bytes | None:
        """One stored CMAF part (moof+mdat), or None."""
        data = await self.segments_store.part_bytes(stream_id, segment_id, index, fast=True)
        if data is None:  # a replica that has not got it yet: ask a quorum
            data = await self.segments_store.part_bytes(stream_id, segment_id, index)
        return data

    async def init_bytes(self, stream_id: str, init_id: str) -> bytes | None:
        """The stored ftyp+moov, or None."""
        row = await self.segments_store.init_segment(stream_id, init_id, fast=True)
        if row is None:
            row = await self.segments_store.init_segment(stream_id, init_id)
        return None if row is None else bytes(row.data)
