"""``POST /v1/streams/{id}/ingest``: a chunked MPEG-TS body demuxed on the fly by PyAV.

The request body feeds a bounded queue read by a demux thread through a file-like object (no
temp files); its video access units are grouped into part-sized chunks by the SDK's rule
(``grouping.ChunkGrouper``: a keyframe starts a chunk, a chunk closes as soon as one more frame
would pass the part target, and whatever is open when the body pauses for a tick or ends), then
submitted in order through the same path as SDK chunks. Frames before the first keyframe are
skipped and counted; the end of the body ends the session. Seqs start at the bridge clock in µs
(so they keep increasing across pushes and restarts); timestamps are rescaled to 90 kHz; a
pushing encoder has no device clock in the request, so ``producer_time`` is the bridge's arrival
time of the first keyframe plus the pts elapsed since it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import io
import queue
import threading
import time
from typing import Any

from aiohttp import web

from pipeline.ingest.bridge import Bridge
from pipeline.ingest.framing import Chunk, Frame
from pipeline.ingest.grouping import ChunkGrouper
from pipeline.ingest.problems import IngestError
from pipeline.ingest.pushwindow import PushWindow

__all__ = ["BodyFeed", "push_handler"]

_CODECS = {"h264": "H264", "hevc": "H265"}
_TICK_S = 0.25  # how often the bound is checked while nothing arrives


class BodyFeed(io.RawIOBase):
    """A read-only file whose bytes arrive from another thread; bounded, blocking, EOF on None."""

    def __init__(self, max_parts: int = 32):
        self._q: queue.Queue[bytes | None] = queue.Queue(max_parts)
        self._buf = b""
        self._eof = False
        self.stop = threading.Event()

    def readable(self) -> bool:
        """Yes: PyAV reads from it."""
        return True

    def feed(self, data: bytes | None, timeout: float | None = None) -> None:
        """Called by the producer side (blocks while the queue is full); None marks the end."""
        self._q.put(data, timeout=timeout)

    def readinto(self, b: Any) -> int:
        """Fill ``b`` with what is available, waiting for at least one byte or the end."""
        while not self._buf and not self._eof:
            if self.stop.is_set():
                return 0
            try:
                part = self._q.get(timeout=0.5)
            except queue.Empty:
                continue
            if part is None:
                self._eof = True
            else:
                self._buf = part
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n


def _demux(feed: BodyFeed, emit: Any) -> None:
    """Thread body: open the TS, emit ``(codec, pts, dts, key, data)`` per video packet."""
    import av

    try:
        with av.open(feed, mode="r", format="mpegts",
                     options={"probesize": "65536", "analyzeduration": "500000"}) as container:
            if not container.streams.video:
                raise IngestError(415, "unsupported_codec", "the MPEG-TS has no video stream")
            video = container.streams.video[0]
            codec = _CODECS.get(video.codec_context.name)
            if codec is None:
                raise IngestError(415, "unsupported_codec",
                                  f"codec {video.codec_context.name!r} is not H.264 or H.265")
            scale = video.time_base
            for pkt in container.demux(video):
                if pkt.size == 0 or pkt.pts is None:
                    continue
                dts = pkt.dts if pkt.dts is not None else pkt.pts
                pts90k, dts90k = int(pkt.pts * scale * 90000), int(dts * scale * 90000)
                if not emit((codec, pts90k, dts90k, pkt.is_keyframe, bytes(pkt))):
                    return
    except IngestError as exc:
        emit(exc)
    except Exception as exc:  # PyAV/FFmpeg errors on garbage input end the push
        if not feed.stop.is_set():
            emit(IngestError(400, "bad_stream", f"MPEG-TS could not be demuxed: {exc}"))
    emit(None)


async def push_handler(request: web.Request, bridge: Bridge, stream_id: str,
                       max_frame_bytes: int = 1 << 20, *, buffer_bytes: int = 32 << 20,
                       buffer_s: float = 30.0, part_target_s: float = 0.5) -> web.Response:
    """Run one push to its end; answer with counts once every chunk is persisted.

    Chunks go to Kafka as they are demuxed and wait in a ``PushWindow`` for their acks, so the
    body keeps being read while Kafka elects new leaders; past ``buffer_bytes`` or ``buffer_s``
    of unacknowledged media (or a chunk Kafka gave up on) the push ends with a 503 problem that
    says how much was accepted.
    """
    loop = asyncio.get_running_loop()
    feed = BodyFeed()
    items: asyncio.Queue = asyncio.Queue(64)
    window = PushWindow(buffer_bytes, buffer_s)

    def emit(item: Any) -> bool:
        fut = asyncio.run_coroutine_threadsafe(items.put(item), loop)
        while not feed.stop.is_set():
            try:
                fut.result(0.5)
                return True
            except concurrent.futures.TimeoutError:
                continue
        fut.cancel()
        return False

    async def pump() -> None:
        try:
            async for data in request.content.iter_chunked(65536):
                while True:  # wait for room without blocking the loop
                    try:
                        feed.feed(data, timeout=0)
                        break
                    except queue.Full:
                        await asyncio.sleep(0.005)
        finally:
            await asyncio.to_thread(feed.feed, None)

    def settle(seq: int, fut: asyncio.Future) -> None:
        if fut.cancelled() or fut.exception() is not None:
            window.failed(seq)
        else:
            window.persisted(seq)

    def check() -> None:
        over = window.exceeded(bridge.now())
        if window.failed_seq is not None:
            raise _ended(window, "kafka_unavailable",
                         f"Kafka gave up on seq {window.failed_seq}")
        if over is not None:
            raise _ended(window, "push_buffer_exceeded", over.detail, bound=over.bound)

    st = bridge.table.get(stream_id)
    seq = max((st.last_seq + 1) if st and st.last_seq is not None else 0,
              int(time.time() * 1_000_000))
    thread = threading.Thread(target=_demux, args=(feed, emit), name=f"demux-{stream_id}",
                              daemon=True)
    thread.start()
    pumper = asyncio.create_task(pump())
    skipped = 0
    started = False
    t0 = bridge.now()
    pts0: int | None = None
    grouper = ChunkGrouper(round(part_target_s * 90000))
    codec_of_group = ""

    def send(groups: list) -> None:
        nonlocal seq
        for g in groups:
            chunk = Chunk(seq, codec_of_group, 90000, g.time_us, g.frames)
            try:
                fut, _fresh = bridge.produce(stream_id, chunk, received=bridge.now(),
                                             source="PUSH")
            except IngestError as exc:  # the producer's queue is full: Kafka is far behind
                raise _ended(window, exc.problem, exc.detail) from None
            window.add(seq, sum(len(f.data) for f in g.frames), len(g.frames), bridge.now())
            fut.add_done_callback(functools.partial(settle, seq))
            seq += 1

    try:
        while True:
            try:
                item = await asyncio.wait_for(items.get(), _TICK_S)
            except TimeoutError:  # nothing demuxed: send what is open, still watch the bound
                send(grouper.flush())
                check()
                continue
            if item is None:
                break
            if isinstance(item, IngestError):
                raise item
            check()
            codec, pts, dts, key, data = item
            if not started and not key:
                skipped += 1
                continue
            started = True
            if len(data) > max_frame_bytes:
                raise IngestError(413, "too_large",
                                  f"an access unit of {len(data)} bytes exceeds {max_frame_bytes}")
            if codec != codec_of_group or grouper.open_bytes + len(data) > max_frame_bytes:
                send(grouper.reset() if codec != codec_of_group else grouper.flush())
                codec_of_group = codec
            pts0 = pts if pts0 is None else pts0
            producer_time = int((t0 + (pts - pts0) / 90000) * 1_000_000)
            send(grouper.add(Frame(pts, min(dts, pts), key, data), producer_time))
        send(grouper.flush())
        while len(window):  # the body ended: wait for the rest, still within the bound
            check()
            await asyncio.sleep(_TICK_S / 5)
        check()
    finally:
        feed.stop.set()
        pumper.cancel()
        await asyncio.to_thread(thread.join, 5)
        await bridge.end_session(stream_id, "push ended", wait_s=1.0,
                                 skipped_before_keyframe=str(skipped))
    return web.json_response({"status": "ended", "stream_id": stream_id,
                              "frames": window.accepted_frames,
                              "skipped_before_keyframe": skipped,
                              "last_seq": window.accepted_seq})


def _ended(window: PushWindow, problem: str, detail: str, **extra: Any) -> IngestError:
    """The 503 that ends a push Kafka could not keep up with, saying what was accepted."""
    return IngestError(503, problem, f"{detail}; the push ended", retry_after=1,
                       frames_accepted=window.accepted_frames,
                       last_accepted_seq=window.accepted_seq, **extra)
