"""Live HLS window per stream, reduced from SealedSegment events (pure; no I/O).

The state is a join-semilattice, so the final window depends only on the *set* of events seen:

* the window is the N sequence numbers ending at the highest one seen (N =
  ``Settings.live_window``), so the media sequence ``max(0, highest - N + 1)`` can only grow;
  ``entries`` are the segments seen inside it (a missing one is a hole the renderer fills with
  an EXT-X-GAP placeholder). A sequence seen twice keeps the greater version (a total order on
  its content), so redelivery and reordering give the same window.
* discontinuities are remembered by sequence number; the discontinuity sequence is the number of
  them below the media sequence. Past ``DISC_MEMORY`` remembered numbers the oldest are folded
  into a count, so exactness for a discontinuity arriving that late is traded for bounded state.
* the target duration is the max over every segment ever seen (HLS forbids it to change).
* ``time_us`` (the write timestamp) is the greatest ``ingest_end`` seen.

Whether the stream has ended is not derived here: it is a separate cell written from session
events (``ended_from_session``), which last-write-wins by event time in Cassandra.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

__all__ = [
    "DISC_MEMORY",
    "Entry",
    "ManifestState",
    "apply_segment",
    "ended_from_session",
    "reduce_segments",
    "target_seconds",
]

#: How many discontinuity sequence numbers are remembered before folding into a count.
DISC_MEMORY = 1024


def target_seconds(duration_us: int) -> int:
    """EXT-X-TARGETDURATION for a segment: whole seconds, rounded up, at least 1."""
    return max(1, -(-int(duration_us) // 1_000_000))


@dataclass(frozen=True, order=True)
class Entry:
    """One segment of the live window, as stored in ``live_manifest.window_entries``."""

    sequence: int
    segment_id: str
    start_time: int  # µs, the EXT-X-PROGRAM-DATE-TIME
    duration_us: int
    init_id: str
    independent: bool = True
    byte_size: int = 0
    ingest_end: int = 0
    discontinuity: bool = False

    @classmethod
    def from_event(cls, seg: Mapping[str, Any]) -> Entry:
        """Build from a decoded SealedSegment record."""
        return cls(
            sequence=int(seg["sequence"]), segment_id=seg["segment_id"],
            start_time=int(seg["start_time"]), duration_us=int(seg["duration_us"]),
            init_id=seg["init_id"], independent=bool(seg.get("independent", True)),
            byte_size=int(seg.get("byte_size", 0)), ingest_end=int(seg.get("ingest_end", 0)),
            discontinuity=bool(seg.get("discontinuity", False)),
        )

    def to_json(self) -> dict[str, Any]:
        """Plain dict for the ``window_entries`` JSON column."""
        return {
            "sequence": self.sequence, "segment_id": self.segment_id,
            "start_time": self.start_time, "duration_us": self.duration_us,
            "init_id": self.init_id, "independent": self.independent,
            "byte_size": self.byte_size, "ingest_end": self.ingest_end,
            "discontinuity": self.discontinuity,
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Entry:
        """Inverse of ``to_json``."""
        return cls(**{k: d[k] for k in d if k in _ENTRY_FIELDS})

    def merge(self, other: Entry) -> Entry:
        """Two versions of one sequence: the greater wins, discontinuity is or-ed (commutative)."""
        best = max(self, other)
        disc = self.discontinuity or other.discontinuity
        return best if best.discontinuity == disc else replace(best, discontinuity=disc)


_ENTRY_FIELDS = {f for f in Entry.__dataclass_fields__}


@dataclass(frozen=True)
class ManifestState:
    """The live window of one stream; ``apply_segment`` is its only transition."""

    stream_id: str
    window: int = 6
    entries: tuple[Entry, ...] = ()  # ascending by sequence, at most ``window``
    disc_seqs: tuple[int, ...] = ()  # sorted sequence numbers of discontinuities seen
    disc_folded: int = 0  # discontinuities forgotten (all at sequences <= fold_upto)
    fold_upto: int = -1
    target_duration: int = 0
    time_us: int = 0

    @property
    def media_sequence(self) -> int:
        """EXT-X-MEDIA-SEQUENCE: the first sequence number of the window."""
        return max(0, self.entries[-1].sequence - self.window + 1) if self.entries else 0

    @property
    def discontinuity_sequence(self) -> int:
        """EXT-X-DISCONTINUITY-SEQUENCE: discontinuities that slid out of the window."""
        ms = self.media_sequence
        return self.disc_folded + bisect.bisect_left(self.disc_seqs, ms)

    def to_row(self) -> dict[str, Any]:
        """Columns of ``live_manifest`` (without ``ended``, which session events own)."""
        return {
            "stream_id": self.stream_id,
            "media_sequence": self.media_sequence,
            "discontinuity_sequence": self.discontinuity_sequence,
            "target_duration": self.target_duration,
            "window_entries": json.dumps([e.to_json() for e in self.entries],
                                         separators=(",", ":")),
            "updated_time": self.time_us,
        }

    @classmethod
    def from_row(cls, row: Mapping[str, Any], window: int) -> ManifestState:
        """Re-derive the state from a stored row (after a restart or rebalance)."""
        raw = row.get("window_entries") or "[]"
        entries = tuple(sorted(Entry.from_json(d) for d in json.loads(raw)))
        ms = max(0, entries[-1].sequence - window + 1) if entries else 0
        entries = tuple(e for e in entries if e.sequence >= ms)
        return cls(
            stream_id=row["stream_id"], window=window, entries=entries,
            disc_seqs=tuple(e.sequence for e in entries if e.discontinuity),
            disc_folded=int(row.get("discontinuity_sequence") or 0), fold_upto=ms - 1,
            target_duration=int(row.get("target_duration") or 0),
            time_us=int(row.get("updated_time") or 0),
        )


def _add_disc(state: ManifestState, seq: int) -> tuple[tuple[int, ...], int, int]:
    seqs, folded, upto = state.disc_seqs, state.disc_folded, state.fold_upto
    if seq <= upto:
        return seqs, folded, upto  # already accounted for in the folded count
    i = bisect.bisect_left(seqs, seq)
    if i < len(seqs) and seqs[i] == seq:
        return seqs, folded, upto
    seqs = (*seqs[:i], seq, *seqs[i:])
    if len(seqs) > DISC_MEMORY:
        drop = len(seqs) - DISC_MEMORY
        folded, upto, seqs = folded + drop, seqs[drop - 1], seqs[drop:]
    return seqs, folded, upto


def apply_segment(state: ManifestState, seg: Mapping[str, Any]) -> ManifestState:
    """Fold one SealedSegment into the window; returns ``state`` itself when nothing changed."""
    new = Entry.from_event(seg)
    entries = list(state.entries)
    seqs = [e.sequence for e in entries]
    i = bisect.bisect_left(seqs, new.sequence)
    if i < len(entries) and seqs[i] == new.sequence:
        entries[i] = entries[i].merge(new)
    else:
        entries.insert(i, new)
        lo = entries[-1].sequence - state.window + 1
        entries = [e for e in entries if e.sequence >= lo]
    disc = _add_disc(state, new.sequence) if new.discontinuity else (
        state.disc_seqs, state.disc_folded, state.fold_upto)
    out = replace(
        state, entries=tuple(entries), disc_seqs=disc[0], disc_folded=disc[1], fold_upto=disc[2],
        target_duration=max(state.target_duration, target_seconds(new.duration_us)),
        time_us=max(state.time_us, new.ingest_end),
    )
    return state if out == state else out


def reduce_segments(stream_id: str, segments: Iterable[Mapping[str, Any]],
                    window: int = 6) -> ManifestState:
    """Fold many segments from an empty window (replays, tests)."""
    state = ManifestState(stream_id=stream_id, window=window)
    for seg in segments:
        state = apply_segment(state, seg)
    return state


_ENDS = {"DISCONNECTED": True, "STREAM_STOPPED": True, "CONNECTED": False, "STREAM_STARTED": False}


def ended_from_session(change: Mapping[str, Any]) -> tuple[bool, int] | None:
    """``(ended, time_us)`` for the ``ended`` cell from a SessionChange; None if it says nothing."""
    ended = _ENDS.get(change.get("kind", ""))
    return None if ended is None else (ended, int(change["time"]))
