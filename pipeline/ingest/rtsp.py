"""Pull one RTSP camera forever: PyAV reads, the bridge's durable path produces, reconnects back
off.

One connection is a blocking PyAV reader in a thread (FFmpeg's RTSP client, TCP interleaved or
UDP) that hands packets to the event loop through a bounded hand-off. PyAV's own read timeout
ends a connection that stalls, and an asyncio watchdog abandons a reader that still delivers
nothing (so a reconnect can never hang). Each connection is one ingest session: CONNECTED with
its first chunk, DISCONNECTED when it ends, CONFIG_CHANGED through the bridge's stream table, and
a new session at a camera timestamp that goes backwards or jumps (a discontinuity, never a
refusal). Audio tracks are counted and skipped.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from pipeline.ingest.bridge import Bridge
from pipeline.ingest.framing import Chunk, Frame
from pipeline.ingest.grouping import ChunkGrouper
from pipeline.ingest.problems import IngestError
from pipeline.ingest.pullrules import (
    AccessUnits,
    Timeline,
    backoff_delay,
    check_rtsp_url,
    producer_time_us,
    redact,
)
from pipeline.media.annexb import parameter_sets
from pipeline.telemetry import get_logger, get_meter

__all__ = ["CameraPull", "PullOptions", "PullStats"]

_CODECS = {"h264": "H264", "hevc": "H265"}
_TIMESCALE = 90000
_HANDOFF = 256  # packets between the reader thread and the loop
_INFLIGHT = 128  # chunks produced and not yet acknowledged (~1 min of parts)
_MAX_FRAME = 1 << 20  # largest access unit, as the bridge's chunk body limit
_STARTS = (b"\x00\x00\x01", b"\x00\x00\x00\x01")
_log = get_logger("camlog.pull")
_meter = get_meter("camlog.pull")
_connects = _meter.create_counter("camlog.pull.connections",
                                  description="RTSP connections by outcome")
_frames = _meter.create_counter("camlog.pull.frames", description="video frames produced")
_audio = _meter.create_counter("camlog.pull.audio_packets", description="audio packets skipped")
_breaks = _meter.create_counter("camlog.pull.discontinuities",
                                description="camera timestamps that went back or jumped")
_lost = _meter.create_counter("camlog.pull.lost_chunks", description="chunks Kafka did not take")
_skew_ms = _meter.create_histogram("camlog.pull.clock_skew", unit="ms",
                                   description="arrival minus camera (RTCP) time")


@dataclass(frozen=True)
class PullOptions:
    """How to pull: transport, timeouts, backoff, grouping (from ``Settings``)."""

    transport: str = "TCP"
    read_timeout_s: float = 5.0
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 30.0
    part_target_s: float = 0.5
    max_gap_s: float = 5.0  # a forward jump of camera time larger than this is a discontinuity

    @classmethod
    def from_settings(cls, settings: Any, transport: str = "TCP") -> PullOptions:
        """The options ``settings`` asks for."""
        return cls(transport.upper(), settings.pull_read_timeout_s, settings.pull_backoff_base_s,
                   settings.pull_backoff_cap_s, settings.part_target_s)


@dataclass
class PullStats:
    """What one camera's pull did (also reported in DISCONNECTED attributes)."""

    connections: int = 0
    failures: int = 0
    frames: int = 0
    audio_packets: int = 0
    skipped_before_keyframe: int = 0
    discontinuities: int = 0
    lost_chunks: int = 0
    last_error: str = ""


class _Reader:
    """One RTSP connection read in a thread; items reach the loop's queue, bounded."""

    def __init__(self, url: str, opts: PullOptions, loop: asyncio.AbstractEventLoop,
                 items: asyncio.Queue):
        self.url, self.opts, self.loop, self.items = url, opts, loop, items
        self.room = threading.Semaphore(_HANDOFF)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="rtsp-reader", daemon=True)

    def _emit(self, item: Any) -> bool:
        while not self.room.acquire(timeout=0.5):
            if self.stop.is_set():
                return False
        if self.stop.is_set():
            return False
        self.loop.call_soon_threadsafe(self.items.put_nowait, item)
        return True

    def _run(self) -> None:
        import av

        t = self.opts.read_timeout_s
        options = {"rtsp_transport": self.opts.transport.lower(), "timeout": str(int(t * 1e6)),
                   "max_delay": "500000", "analyzeduration": "1000000"}
        try:
            with av.open(self.url, options=options, timeout=(2 * t, t)) as container:
                if not container.streams.video:
                    raise _Ended("no video track")
                video = container.streams.video[0]
                codec = _CODECS.get(video.codec_context.name)
                if codec is None:
                    raise _Ended(f"unsupported codec {video.codec_context.name!r}")
                extradata = bytes(video.codec_context.extradata or b"")
                if not extradata.startswith(_STARTS):  # only Annex-B can be prepended in-band
                    extradata = b""
                if not self._emit(("open", codec, extradata)):
                    return
                for pkt in container.demux():
                    if pkt.stream.type != "video":
                        if pkt.stream.type == "audio" and not self._emit(("audio",)):
                            return
                        continue
                    if pkt.stream.index != video.index or not pkt.size:
                        continue
                    tb = pkt.time_base or Fraction(1, _TIMESCALE)
                    pts = None if pkt.pts is None else int(pkt.pts * tb * _TIMESCALE)
                    dts = None if pkt.dts is None else int(pkt.dts * tb * _TIMESCALE)
                    # FFmpeg sets this once an RTCP sender report arrived (µs; None before)
                    sr = container.start_time_realtime
                    if not self._emit(("packet", pts, dts, pkt.is_keyframe, bytes(pkt),
                                       int(time.time() * 1e6), sr if sr and sr > 0 else None)):
                        return
                self._emit(("end", "end of stream"))
        except _Ended as exc:
            self._emit(("end", str(exc)))
        except Exception as exc:  # every FFmpeg/OS failure ends this connection
            self._emit(("end", _describe(exc, self.url)))


class _Ended(Exception):
    """The connection cannot go on (no video, unsupported codec)."""


def _describe(exc: BaseException, url: str) -> str:
    """An exception as one line without the URL's credentials (FFmpeg errors quote the URL)."""
    text = f"{type(exc).__name__}: {exc}".replace(url, redact(url))
    return redact(text)[:300]


class CameraPull:
    """One camera's pull loop; ``run`` until cancelled, reconnecting with backoff forever."""

    def __init__(self, bridge: Bridge, stream_id: str, url: str, opts: PullOptions, *,
                 now: Callable[[], float] = time.time, rand: Callable[[], float] = random.random):
        self.bridge, self.stream_id, self.url = bridge, stream_id, check_rtsp_url(url)
        self.opts, self.now, self.rand = opts, now, rand
        self.safe_url = redact(url)
        self.stats = PullStats()
        self._inflight: deque[tuple[int, asyncio.Future]] = deque()

    async def run(self) -> None:
        """Connect, pull, and on any end back off (jittered, capped) and connect again."""
        attempt = 0
        try:
            while True:
                frames_before = self.stats.frames
                reason = await self._connection()
                if self.stats.frames > frames_before:
                    attempt = 0  # it worked for a while: the first retry is quick
                delay = backoff_delay(attempt, self.rand(), base_s=self.opts.backoff_base_s,
                                      cap_s=self.opts.backoff_cap_s)
                attempt += 1
                self.stats.last_error = reason
                _log.warning("camera %s (%s): %s; reconnecting in %.1fs", self.stream_id,
                             self.safe_url, reason, delay)
                await asyncio.sleep(delay)
        finally:
            await self._drain(5.0)

    async def _connection(self) -> str:
        """One connection, from open to its end; returns why it ended."""
        loop = asyncio.get_running_loop()
        items: asyncio.Queue = asyncio.Queue()
        reader = _Reader(self.url, self.opts, loop, items)
        reader.thread.start()
        units, timeline = AccessUnits(_MAX_FRAME), Timeline(int(self.opts.max_gap_s * _TIMESCALE))
        grouper = ChunkGrouper(int(self.opts.part_target_s * _TIMESCALE))
        watchdog = 2 * self.opts.read_timeout_s + 2.0  # beyond PyAV's open and read timeouts
        state = _Conn()
        reason = "ended"
        try:
            while True:
                try:
                    item = await asyncio.wait_for(items.get(), watchdog)
                except TimeoutError:
                    reason = f"watchdog: nothing read for {watchdog:.0f}s"
                    break
                reader.room.release()
                kind = item[0]
                if kind == "end":
                    reason = item[1]
                    break
                if kind == "audio":
                    self.stats.audio_packets += 1
                    _audio.add(1, {"camera": self.stream_id})
                elif kind == "open":
                    state.codec, state.extradata = item[1], item[2]
                    self.stats.connections += 1
                    _connects.add(1, {"camera": self.stream_id, "outcome": "opened"})
                    _log.info("camera %s: connected to %s (%s, %s)", self.stream_id,
                              self.safe_url, self.opts.transport, state.codec)
                else:
                    _, pts, dts, key, data, arrival, sr = item
                    if sr is not None and state.sr_base is None and pts is not None:
                        # the report is about now: its wall time goes with the latest pts
                        state.sr_base, state.sr_pts = sr, pts
                        _log.info("camera %s: producer time from RTCP sender reports",
                                  self.stream_id)
                    for frame in units.feed(pts, dts, key, data):
                        await self._frame(frame, arrival, state, timeline, grouper)
        except asyncio.CancelledError:
            reason = "pull stopped"
            raise
        finally:
            reader.stop.set()  # the thread ends at its next packet or PyAV timeout; not joined
            if reason == "end of stream":
                for frame in units.flush():
                    await self._frame(frame, int(self.now() * 1e6), state, timeline, grouper)
            for group in grouper.flush():
                await self._produce(group.time_us, group.frames, state)
            if not state.opened_session:
                self.stats.failures += 1
                _connects.add(1, {"camera": self.stream_id, "outcome": "failed"})
            await self.bridge.end_session(
                self.stream_id, f"rtsp: {reason}", wait_s=1.0,
                audio_packets=str(self.stats.audio_packets),
                skipped_before_keyframe=str(self.stats.skipped_before_keyframe))
        return reason

    async def _frame(self, frame: Frame, arrival_us: int, state: _Conn, timeline: Timeline,
                     grouper: ChunkGrouper) -> None:
        if not state.started and not frame.keyframe:
            self.stats.skipped_before_keyframe += 1
            return
        if frame.keyframe and state.extradata and parameter_sets(state.codec, frame.data) is None:
            frame = Frame(frame.pts, frame.dts, True, state.extradata + frame.data)
        if not timeline.place(frame.dts) and state.started:
            self.stats.discontinuities += 1
            _breaks.add(1, {"camera": self.stream_id})
            for group in grouper.reset():
                await self._produce(group.time_us, group.frames, state)
            await self.bridge.end_session(self.stream_id, "rtsp: camera timestamp discontinuity",
                                          wait_s=1.0)
        state.started = True
        t = producer_time_us(frame.pts, _TIMESCALE, sr_base_us=state.sr_base,
                             first_pts=state.sr_pts, arrival_us=arrival_us)
        if state.sr_base is not None:
            _skew_ms.record((arrival_us - t) / 1000.0, {"camera": self.stream_id})
        for group in grouper.add(frame, t):
            await self._produce(group.time_us, group.frames, state)

    async def _produce(self, time_us: int, frames: tuple[Frame, ...], state: _Conn) -> None:
        """Hand one chunk to the bridge's durable path; bounded acks in flight."""
        st = self.bridge.table.get(self.stream_id)
        # consecutive within this process (a seq gap is a loss the segmenter cuts at); a new
        # process (restart, another puller) starts at its clock, above any earlier seq
        seq = st.last_seq + 1 if st and st.last_seq is not None else int(self.now() * 1_000_000)
        chunk = Chunk(seq, state.codec, _TIMESCALE, time_us, frames)
        try:
            fut, _fresh = self.bridge.produce(self.stream_id, chunk, received=self.now(),
                                              source="PULL")
        except IngestError as exc:  # Kafka's queue is full or the chunk is unusable
            self._lose(seq, len(frames), f"{exc.problem}: {exc.detail}")
            return
        state.opened_session = True
        self.stats.frames += len(frames)
        _frames.add(len(frames), {"camera": self.stream_id})
        self._inflight.append((seq, fut))
        self._settle()
        if len(self._inflight) > _INFLIGHT:
            await asyncio.wait([self._inflight[0][1]])
            self._settle()

    def _settle(self) -> None:
        while self._inflight and self._inflight[0][1].done():
            seq, fut = self._inflight.popleft()
            exc = None if fut.cancelled() else fut.exception()
            if fut.cancelled() or exc is not None:
                self._lose(seq, 0, str(exc or "cancelled"))

    def _lose(self, seq: int, frames: int, why: str) -> None:
        """Kafka did not take a chunk: counted, logged; the next chunk records the gap."""
        self.stats.lost_chunks += 1
        _lost.add(1, {"camera": self.stream_id})
        _log.error("camera %s: chunk seq %d (%d frames) not persisted: %s", self.stream_id, seq,
                   frames, why)

    async def _drain(self, timeout: float) -> None:
        """Wait (bounded) for the acks still in flight when the pull stops."""
        if self._inflight:
            await asyncio.wait([f for _, f in self._inflight], timeout=timeout)
            self._settle()


@dataclass
class _Conn:
    """What one connection learned: codec, out-of-band parameter sets, camera clock."""

    codec: str = "H264"
    extradata: bytes = b""
    sr_base: int | None = None  # wall time (µs) of ``sr_pts`` from the first RTCP sender report
    sr_pts: int = 0
    started: bool = False
    opened_session: bool = False
