"""Per-stream ingest state (pure, injected clock): sequence checks, dedup acks, sessions.

The bridge asks ``admit`` before producing a chunk and reports ``persisted`` after Kafka acked.
Nothing here does I/O; session-change records are returned for the caller to produce.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from pipeline.ingest.problems import IngestError

__all__ = ["Admission", "StreamState", "StreamTable"]

_RECENT_ACKS = 64  # retries of any of the last 64 persisted seqs get their original ack


@dataclass
class StreamState:
    """What the bridge remembers about one stream."""

    stream_id: str
    session_id: str = ""
    source: str = "SDK"
    last_seq: int | None = None  # highest seq admitted (produced or in flight)
    acks: OrderedDict = field(default_factory=OrderedDict)  # seq -> ack dict (recent, bounded)
    codec: str | None = None
    config: bytes | None = None
    width: int = 0
    height: int = 0
    last_seen: float = 0.0
    connected: bool = False
    skipped_frames: int = 0
    inflight: int = 0  # chunks admitted and not yet persisted or failed


@dataclass(frozen=True)
class Admission:
    """Verdict for one chunk: a known ack to repeat, or what to produce."""

    ack: dict[str, Any] | None  # set when the seq was already persisted
    session_id: str = ""
    gap_before: int = 0
    codec_config: bytes | None = None  # attach to this chunk (first of session or changed)
    sessions: tuple[dict[str, Any], ...] = ()  # SessionChange records to produce first


def _now_us(now: float) -> int:
    return int(now * 1_000_000)


class StreamTable:
    """All streams' state, bounded (least recently seen streams are forgotten first)."""

    def __init__(self, idle_timeout_s: float, max_streams: int = 100_000):
        self.idle_timeout_s, self.max_streams = idle_timeout_s, max_streams
        self._streams: OrderedDict[str, StreamState] = OrderedDict()

    def get(self, stream_id: str) -> StreamState | None:
        """The state of ``stream_id`` if remembered."""
        return self._streams.get(stream_id)

    def restore(self, state: StreamState) -> None:
        """Seed state recovered from the log after a restart (newer knowledge wins)."""
        cur = self._streams.get(state.stream_id)
        if cur is None or (cur.last_seq or -1) < (state.last_seq or -1):
            self._put(state)

    def _put(self, st: StreamState) -> None:
        self._streams[st.stream_id] = st
        self._streams.move_to_end(st.stream_id)
        while len(self._streams) > self.max_streams:
            self._streams.popitem(last=False)

    def _session_event(self, st: StreamState, kind: str, now: float, reason: str,
                       **attrs: str) -> dict[str, Any]:
        return {
            "stream_id": st.stream_id, "session_id": st.session_id, "kind": kind,
            "time": _now_us(now), "reason": reason, "codec": st.codec, "width": st.width,
            "height": st.height, "source": st.source, "attributes": dict(attrs),
        }

    def admit(self, stream_id: str, seq: int, codec: str, *, keyframe_first: bool,
              config: bytes | None, width: int, height: int, now: float,
              source: str = "SDK", resumed: bool = False) -> Admission:
        """Decide what to do with chunk ``seq``; raise ``IngestError`` 409/422 to refuse it.

        ``resumed``: the device says the stream already runs (it was acked by another region's
        bridge before failing over here). An unknown stream is then taken mid-GOP like one
        recovered from the log after a restart: its parameter sets exist, this bridge has not
        seen them (the segmenter has, from the mirrored frames, or waits for the next keyframe).
        """
        st = self._streams.get(stream_id)
        if st is None:
            st = StreamState(stream_id, source=source)
            if resumed:
                st.codec, st.config, st.width, st.height = codec, b"", width, height
        if st.last_seq is not None and seq <= st.last_seq:
            if seq in st.acks:
                return Admission(ack=st.acks[seq])
            if seq == st.last_seq:  # in flight: the caller waits for the first attempt's ack
                return Admission(ack=None, session_id="")
            raise IngestError(409, "seq_regression",
                              f"seq {seq} is behind the last persisted seq {st.last_seq}",
                              last_seq=st.last_seq)
        events: list[dict[str, Any]] = []
        new_session = not st.connected or (not st.inflight
                                           and now - st.last_seen > self.idle_timeout_s)
        if new_session:
            if st.connected:  # idle gap noticed late: close the old session first
                events.append(self._session_event(st, "DISCONNECTED", st.last_seen, "idle timeout"))
            # A stream the bridge has never seen must open with a keyframe and parameter sets; a
            # known stream resuming after idle may continue mid-GOP (its config is known).
            fresh = keyframe_first and config is not None
            if st.config is None and not fresh:
                raise IngestError(422, "needs_keyframe",
                                  "the first chunk of a stream must start with a keyframe "
                                  "carrying its parameter sets")
            st.session_id, st.connected, st.source = uuid.uuid4().hex, True, source
            if fresh:
                st.codec, st.config, st.width, st.height = codec, config, width, height
            events.append(self._session_event(st, "CONNECTED", now, "first chunk"))
            attach = st.config or None
        else:
            attach = None
            if codec != st.codec and not (keyframe_first and config):
                raise IngestError(422, "codec_change_without_keyframe",
                                  f"codec changed {st.codec} -> {codec} without a keyframe")
            if config is not None and not st.config:  # recovered after restart: learn silently
                st.config, st.width, st.height = config, width, height
            elif config is not None and (config != st.config or codec != st.codec):
                old = f"{st.codec} {st.width}x{st.height}"
                st.codec, st.config, st.width, st.height = codec, config, width, height
                events.append(self._session_event(st, "CONFIG_CHANGED", now,
                                                  "parameter sets changed", previous=old))
                attach = config
        gap = 0 if st.last_seq is None else seq - st.last_seq - 1
        st.last_seq, st.last_seen = seq, now
        st.inflight += 1
        self._put(st)
        return Admission(ack=None, session_id=st.session_id, gap_before=max(gap, 0),
                         codec_config=attach, sessions=tuple(events))

    def persisted(self, stream_id: str, seq: int, ack: dict[str, Any],
                  now: float | None = None) -> None:
        """Remember the ack of ``seq`` so a retry gets the same answer.

        A device waiting on its request was connected all along, so the ack time counts as seen:
        a Kafka stall longer than the idle timeout must not split the session (a new session is
        a discontinuity the segmenter cuts at, dropping frames up to the next keyframe).
        """
        st = self._streams.get(stream_id)
        if st is None:
            return
        self._settle(st, now)
        st.acks[seq] = ack
        while len(st.acks) > _RECENT_ACKS:
            st.acks.popitem(last=False)

    def failed(self, stream_id: str, seq: int, now: float | None = None) -> None:
        """Kafka refused ``seq``: forget it was admitted so the device's retry is accepted."""
        st = self._streams.get(stream_id)
        if st is None:
            return
        self._settle(st, now)
        if st.last_seq == seq and seq not in st.acks:
            st.last_seq = max(st.acks) if st.acks else None

    @staticmethod
    def _settle(st: StreamState, now: float | None) -> None:
        st.inflight = max(0, st.inflight - 1)
        if now is not None:
            st.last_seen = max(st.last_seen, now)

    def end(self, stream_id: str, now: float, reason: str, **attrs: str) -> dict[str, Any] | None:
        """Close the stream's session (push ended); returns the DISCONNECTED record."""
        st = self._streams.get(stream_id)
        if st is None or not st.connected:
            return None
        st.connected = False
        return self._session_event(st, "DISCONNECTED", now, reason, **attrs)

    def expire(self, now: float) -> list[dict[str, Any]]:
        """DISCONNECTED records for sessions idle longer than the timeout."""
        out = []
        for st in self._streams.values():
            if st.connected and not st.inflight and now - st.last_seen > self.idle_timeout_s:
                st.connected = False
                out.append(self._session_event(st, "DISCONNECTED", now, "idle timeout"))
        return out
