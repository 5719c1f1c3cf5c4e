"""Per-stream device state reduced from session, frame, segment and dead-letter events (pure).

Each event kind owns some columns of ``device_state`` and is written with its own event time as
the write timestamp, so Cassandra merges the kinds cell by cell (last write wins by event time)
no matter which worker or region wrote them. Counters are deduplicated by position: chunks by
their per-stream ``seq``, segments by their contiguous ``sequence``, dead letters by their time,
so a redelivered or replayed event never counts twice. Offline needs no disconnect event:
``expire`` marks a stream offline at ``last_seen + idle timeout`` (a deterministic event time).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

__all__ = [
    "OWNED",
    "ChunkSummary",
    "DeviceState",
    "EventClock",
    "columns",
    "effective_online",
    "expire",
    "on_chunk",
    "on_chunks",
    "on_dlq",
    "on_segment",
    "on_session",
    "summarize_chunk",
]

_SKEW_SAMPLES = 16
_EWMA = 0.3


@dataclass(frozen=True)
class ChunkSummary:
    """What device state needs from a FrameChunk (the frame bytes are dropped early)."""

    stream_id: str
    seq: int
    session_id: str
    codec: str
    width: int
    height: int
    timescale: int
    producer_time: int
    ingest_time: int
    frames: int
    bytes: int
    first_dts: int
    last_dts: int
    keyframe: bool
    gap_before: int


def summarize_chunk(chunk: Mapping[str, Any]) -> ChunkSummary:
    """Summarise a decoded FrameChunk record."""
    frames = chunk.get("frames") or []
    return ChunkSummary(
        stream_id=chunk["stream_id"], seq=int(chunk["seq"]), session_id=chunk["session_id"],
        codec=str(chunk.get("codec") or ""), width=int(chunk.get("width") or 0),
        height=int(chunk.get("height") or 0), timescale=int(chunk.get("timescale") or 90000),
        producer_time=int(chunk["producer_time"]), ingest_time=int(chunk["ingest_time"]),
        frames=len(frames), bytes=sum(len(f["data"]) for f in frames),
        first_dts=int(frames[0]["dts"]) if frames else 0,
        last_dts=int(frames[-1]["dts"]) if frames else 0,
        keyframe=any(f["keyframe"] for f in frames), gap_before=int(chunk.get("gap_before") or 0),
    )


@dataclass(frozen=True)
class DeviceState:
    """One stream's device state; the stored columns plus a little volatile estimator state."""

    stream_id: str
    online: bool = False
    session_id: str = ""
    connected_since: int = 0
    last_seen: int = 0
    last_frame_producer: int = 0
    last_frame_ingest: int = 0
    codec: str = ""
    width: int = 0
    height: int = 0
    fps: float = 0.0
    bitrate: int = 0
    last_keyframe: int = 0
    skew_us: int = 0
    gaps: int = 0
    discontinuities: int = 0
    dlq: int = 0
    segments: int = 0
    last_chunk_seq: int = -1
    dlq_last: int = 0
    session_time: int = 0
    segment_time: int = 0
    offline_time: int = 0
    # volatile: re-derived from the next chunks after a restart
    skew_samples: tuple[int, ...] = ()
    prev_chunk: ChunkSummary | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any] | None, stream_id: str) -> DeviceState:
        """Re-derive from a stored ``device_state`` row (None → a fresh state)."""
        if not row:
            return cls(stream_id=stream_id)
        known = {k: v for k, v in row.items() if k in _STORED and v is not None}
        known["stream_id"] = stream_id
        return cls(**known)


#: Columns each event kind writes (``updated_time`` is added to every write).
OWNED: dict[str, tuple[str, ...]] = {
    "session": ("online", "session_id", "connected_since", "last_seen"),
    "chunk": ("online", "session_id", "connected_since", "last_seen", "last_frame_producer",
              "last_frame_ingest", "codec", "width", "height", "fps", "bitrate", "last_keyframe",
              "skew_us", "gaps", "last_chunk_seq"),
    "segment": ("segments", "discontinuities"),
    "dlq": ("dlq", "dlq_last"),
    "offline": ("online",),
}
_STORED = {c for cols in OWNED.values() for c in cols} | {"stream_id"}


def columns(state: DeviceState, kind: str) -> tuple[dict[str, Any], int]:
    """The cells an event kind writes and the event time to stamp them with."""
    cols = {c: getattr(state, c) for c in OWNED[kind]}
    ts = {"session": state.session_time, "chunk": state.last_frame_ingest,
          "segment": state.segment_time, "dlq": state.dlq_last,
          "offline": state.offline_time}[kind]
    cols["updated_time"] = ts
    return cols, ts


_UP = {"CONNECTED", "STREAM_STARTED"}
_DOWN = {"DISCONNECTED", "STREAM_STOPPED"}


def on_session(state: DeviceState, change: Mapping[str, Any]) -> DeviceState | None:
    """Apply a SessionChange; older or repeated changes return None (they lose by LWW anyway)."""
    t = int(change["time"])
    if t <= state.session_time:
        return None
    kind = change["kind"]
    new = replace(state, session_time=t, last_seen=max(state.last_seen, t))
    if kind in _UP:
        # the session's chunks may have been applied first (another topic): the earliest wins
        since = min(state.connected_since, t) if (state.online and state.session_id ==
                                                  change["session_id"]) else t
        new = replace(new, online=True, session_id=change["session_id"], connected_since=since)
    elif kind in _DOWN:
        new = replace(new, online=False)
    return new


def _rate(prev: float, inst: float) -> float:
    return inst if prev <= 0 else prev * (1 - _EWMA) + inst * _EWMA


def on_chunk(state: DeviceState, c: ChunkSummary) -> DeviceState | None:
    """Apply one chunk summary; a seq already seen returns None (no double-counted gaps)."""
    if c.seq <= state.last_chunk_seq:
        return None
    fps, bitrate = state.fps, float(state.bitrate)
    p = state.prev_chunk
    if p and c.gap_before == 0 and p.session_id == c.session_id and p.timescale == c.timescale:
        dt = (c.first_dts - p.first_dts) / c.timescale
        if dt > 0:
            fps, bitrate = _rate(fps, p.frames / dt), _rate(bitrate, p.bytes * 8 / dt)
    elif c.frames >= 2 and c.last_dts > c.first_dts:
        dt = (c.last_dts - c.first_dts) / c.timescale
        fps, bitrate = _rate(fps, (c.frames - 1) / dt), _rate(bitrate, c.bytes * 8 * (c.frames - 1)
                                                              / c.frames / dt)
    samples = (*state.skew_samples, c.producer_time - c.ingest_time)[-_SKEW_SAMPLES:]
    new_session = c.session_id != state.session_id or not state.online
    return replace(
        state, online=True, session_id=c.session_id,
        connected_since=c.ingest_time if new_session else min(state.connected_since,
                                                              c.ingest_time),
        last_seen=max(state.last_seen, c.ingest_time),
        last_frame_producer=c.producer_time, last_frame_ingest=c.ingest_time,
        codec=c.codec or state.codec, width=c.width or state.width,
        height=c.height or state.height, fps=round(fps, 3), bitrate=int(bitrate),
        last_keyframe=c.ingest_time if c.keyframe else state.last_keyframe,
        # device clock minus bridge clock; the largest sample had the least network delay
        skew_us=max(samples), skew_samples=samples,
        gaps=state.gaps + (1 if c.gap_before > 0 else 0), last_chunk_seq=c.seq, prev_chunk=c,
    )


def on_chunks(state: DeviceState, chunks: Iterable[ChunkSummary]) -> DeviceState | None:
    """Apply a batch of one stream's chunk summaries in order; None when none was new."""
    out = None
    for c in chunks:
        out = on_chunk(out or state, c) or out
    return out


def on_segment(state: DeviceState, seg: Mapping[str, Any]) -> DeviceState | None:
    """Apply a SealedSegment: segments = highest sequence + 1; new discontinuities counted once."""
    seq = int(seg["sequence"])
    if seq < state.segments:
        return None
    return replace(
        state, segments=seq + 1,
        discontinuities=state.discontinuities + (1 if seg.get("discontinuity") else 0),
        segment_time=max(state.segment_time, int(seg.get("ingest_end") or seg["end_time"])),
    )


def on_dlq(state: DeviceState, dead: Mapping[str, Any]) -> DeviceState | None:
    """Apply a DeadLetter about this stream; one at or before the last counted one is a repeat."""
    t = int(dead["time"])
    if t <= state.dlq_last:
        return None
    return replace(state, dlq=state.dlq + 1, dlq_last=t)


@dataclass
class EventClock:
    """Event-time "now" for idle timeouts: a consumer running behind must not call live devices
    idle.

    It advances with the newest event seen and, between events, with the wall clock — so when
    every stream stops, devices still go offline one idle timeout after the last event was read.
    """

    mark_us: int | None = None
    seen_at: float = 0.0

    def observe(self, event_us: int, wall: float) -> None:
        """An event with this (ingest) time was processed at wall-clock ``wall``."""
        if self.mark_us is None or event_us > self.mark_us:
            self.mark_us, self.seen_at = event_us, wall

    def now_us(self, wall: float) -> int:
        """The event-time estimate of now (never ahead of the wall clock)."""
        w = int(wall * 1_000_000)
        if self.mark_us is None:
            return w
        return min(w, self.mark_us + int((wall - self.seen_at) * 1_000_000))


def expire(state: DeviceState, now_us: int, idle_us: int) -> DeviceState | None:
    """Mark an online stream offline once nothing was heard for ``idle_us``; else None."""
    if not state.online or now_us - state.last_seen < idle_us:
        return None
    return replace(state, online=False, offline_time=state.last_seen + idle_us)


def effective_online(row: Mapping[str, Any], now_us: int, idle_us: int) -> bool:
    """Readers' view: online only if the row says so and the stream was heard recently."""
    return bool(row.get("online")) and now_us - int(row.get("last_seen") or 0) < idle_us
