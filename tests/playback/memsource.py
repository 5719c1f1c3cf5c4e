"""An in-memory Source for fast handler tests (the Cassandra-backed one is tested separately)."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from pipeline.store.cluster import StoreUnavailable
from pipeline.views.manifest import reduce_segments
from tests.playback.media import fmp4


class MemorySource:
    """Holds rows as the views would; counts every read so tests can assert on them."""

    def __init__(self) -> None:
        self.manifests: dict[str, dict[str, Any]] = {}
        self.states: dict[str, dict[str, Any]] = {}
        self.index: dict[str, list[dict[str, Any]]] = {}
        self.blobs: dict[tuple[str, str], bytes] = {}
        self.inits: dict[tuple[str, str], bytes] = {}
        self.reads: Counter = Counter()
        self.delay = 0.0
        self.down = False  # every read raises StoreUnavailable, as Cassandra being unreachable

    def _read(self, kind: str) -> None:
        self.reads[kind] += 1
        if self.down:
            raise StoreUnavailable("NoHostAvailable: injected")

    async def start(self) -> None: ...
    async def close(self) -> None: ...
    async def ping(self) -> bool:
        return True

    async def live_manifest(self, sid):
        self._read("manifest")
        return self.manifests.get(sid)

    async def device_state(self, sid):
        self._read("state")
        return self.states.get(sid)

    async def list_streams(self, limit, cursor):
        self._read("list")
        if cursor not in (None, "x"):
            raise ValueError("bad cursor")
        rows = sorted(self.states.values(), key=lambda r: r["stream_id"])
        return rows[:limit], None

    async def segments(self, sid, start_us, end_us):
        self._read("index")
        return [r for r in self.index.get(sid, []) if r["start_time"] < end_us
                and r["end_time"] > start_us - 10_000_000]

    async def segment_bytes(self, sid, seg_id):
        self._read("segment")
        await asyncio.sleep(self.delay)
        return self.blobs.get((sid, seg_id))

    async def init_bytes(self, sid, init_id):
        self._read("init")
        return self.inits.get((sid, init_id))


def add_stream(src: MemorySource, sid: str, t0_us: int, seconds: int = 5, fps: int = 30,
               gap_after: int | None = None, ended: bool = False) -> list[dict[str, Any]]:
    """Store ``seconds`` one-second segments of fresh H.264 for ``sid`` starting at ``t0_us``."""
    init, frags = fmp4(frames=seconds * fps, fps=fps, gop=fps)
    init_id = "i" + sid
    src.inits[(sid, init_id)] = init
    rows = []
    t = t0_us
    for i, frag in enumerate(frags):
        if gap_after is not None and i == gap_after + 1:
            t += 3_000_000
        seg = {"stream_id": sid, "segment_id": f"{sid}-{i:04d}", "sequence": i, "start_time": t,
               "end_time": t + 1_000_000, "duration_us": 1_000_000, "frame_count": fps,
               "byte_size": len(frag), "independent": True, "init_id": init_id,
               "discontinuity": gap_after is not None and i == gap_after + 1,
               "ingest_end": t + 1_000_000, "codec": "avc1.42c01e", "width": 320, "height": 240}
        src.blobs[(sid, seg["segment_id"])] = frag
        rows.append(seg)
        t += 1_000_000
    src.index[sid] = rows
    row = reduce_segments(sid, rows, window=6).to_row()
    row["ended"] = ended
    src.manifests[sid] = row
    src.states[sid] = {"stream_id": sid, "online": True, "last_seen": t, "codec": "avc1.42c01e",
                       "width": 320, "height": 240, "fps": float(fps), "bitrate": 400_000,
                       "segments": len(rows)}
    return rows
