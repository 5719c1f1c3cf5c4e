"""``replay as-of``: a stream's device state and live manifest at a past moment, from the log alone.

Every event of the stream logged before the moment is folded through the same pure reducers
the view agents use (``pipeline.views``); no table is read.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from pipeline.config import Settings
from pipeline.kafka import topics
from pipeline.replay.select import LogReader, Selection
from pipeline.views import device_state as ds
from pipeline.views.manifest import ManifestState, apply_segment, ended_from_session

__all__ = ["Snapshot", "as_of", "fold"]


@dataclass(frozen=True)
class Snapshot:
    """What the views held for a stream at ``time_us``."""

    stream_id: str
    time_us: int
    device: ds.DeviceState
    manifest: ManifestState
    ended: bool | None
    events: int

    def device_columns(self) -> dict[str, Any]:
        """The stored device_state columns."""
        full = asdict(self.device)
        cols = {c for kind in ds.OWNED.values() for c in kind}
        return {k: full[k] for k in sorted(cols)}

    def manifest_row(self) -> dict[str, Any]:
        """The live_manifest row (as the playback service reads it)."""
        row = self.manifest.to_row()
        row["ended"] = bool(self.ended)
        return row

    def playlist(self) -> str:
        """The live playlist this row renders to (relative segment and init URLs)."""
        from pipeline.playback.hls import render_live

        return render_live(self.manifest_row(), lambda s: f"segments/{s['segment_id']}.m4s",
                           lambda init_id: f"init/{init_id}.mp4")


def fold(stream_id: str, events: list[tuple[int, str, Any]], time_us: int, window: int,
         idle_us: int) -> Snapshot:
    """Fold ``(log time µs, topic, record)`` events (any order) up to ``time_us`` (pure).

    Frame chunks may be given already summarized (``ChunkSummary``), which keeps memory small.
    """
    dev = ds.DeviceState(stream_id=stream_id)
    man = ManifestState(stream_id, window)
    ended: bool | None = None
    n = 0
    for t, topic, rec in sorted(events, key=lambda e: e[0]):
        if t > time_us:
            break
        n += 1
        new: ds.DeviceState | None = None
        if topic == topics.FRAMES:
            summary = rec if isinstance(rec, ds.ChunkSummary) else ds.summarize_chunk(rec)
            new = ds.on_chunks(dev, [summary])
        elif topic == topics.SESSIONS:
            new = ds.on_session(dev, rec)
            e = ended_from_session(rec)
            ended = e[0] if e is not None else ended
        elif topic == topics.SEGMENTS:
            new = ds.on_segment(dev, rec)
            man = apply_segment(man, rec)
        elif topic == topics.DLQ:
            new = ds.on_dlq(dev, rec)
        dev = new if new is not None else dev
    dev = ds.expire(dev, time_us, idle_us) or dev
    return Snapshot(stream_id, time_us, dev, man, ended, n)


def as_of(settings: Settings, stream_id: str, time_us: int) -> Snapshot:
    """Read the stream's events logged up to ``time_us`` and fold them."""
    wanted = (topics.SESSIONS, topics.FRAMES, topics.SEGMENTS, topics.DLQ)
    sel = Selection(wanted, None, time_us + 1, frozenset({stream_id}), slack_us=0)
    events: list[tuple[int, str, Any]] = []
    with LogReader(settings, sel, missing_ok=True) as reader:
        for e in reader.events():
            rec = e.record()
            if rec.get("stream_id") == stream_id:
                if e.topic == topics.FRAMES:
                    rec = ds.summarize_chunk(rec)  # the frames' bytes are not needed
                events.append((e.timestamp_ms * 1000, e.topic, rec))
    return fold(stream_id, events, time_us, settings.live_window,
                int(settings.idle_timeout_s * 1_000_000))
