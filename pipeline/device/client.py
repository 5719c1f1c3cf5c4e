"""The device SDK: uploads encoded packets as framed chunks, in order, with durable acks.

Policy, in short:
* a chunk is one LL-HLS part's worth of frames: the frames until the next one would take it past
  ``part_target_s`` (default 0.5 s), a keyframe always starting a new chunk, so one request and
  one Kafka event carry a part and grouping adds no latency beyond the part itself
  (``chunk_frames=N`` groups by count instead; N=1 is one frame per chunk);
* one chunk in flight per stream, so the bridge sees seqs in order;
* transient failures (connection errors, 5xx, 429) are retried forever with exponential
  backoff and jitter (``Retry-After`` honoured); the chunk keeps its seq, so a retry is safe;
* while the bridge is unreachable chunks wait in a bounded buffer; when it is full the **oldest
  whole GOP** is dropped (chunks up to the next keyframe chunk), so what remains still starts at a
  keyframe; ``stats.dropped_chunks``/``dropped_frames`` count it and the bridge records the gap;
* permanent refusals (400/401/403/413/415/422) drop that chunk and count it in ``stats.rejected``;
  a 409 (seq behind the bridge) means it was already persisted earlier and is dropped too;
* with several bridges (home region first) the device moves to the next one when the current
  one has failed every request for ``failover_s`` and goes back when home is ready again
  (``pipeline.device.failover``); the chunk keeps its seq across bridges, and every request after
  the first ack says ``Camlog-Resume: 1`` so another region's bridge takes the stream mid-GOP;
* on every move (to the next bridge, or back home after a ``/readyz`` probe) the device first
  re-sends the **open GOP** (``pipeline.device.opengop``: the chunks acked since the last keyframe
  chunk, at most ``max_buffer_chunks``; same seqs, same bytes) to the new bridge, then continues
  with the chunk that was in flight, so the new region's segmenter can decode from the keyframe
  instead of dead-lettering acked frames. Nothing is re-sent when that chunk starts with a
  keyframe. A re-sent chunk answered 409 (the bridge has it) is done, not ``rejected``; re-sends
  count in ``stats.resent``/``resent_frames``, not in ``acked``/``acked_frames`` again. ``on_ack``
  is still called for them, so it may fire twice for one seq, once per region (callers that
  record acks per bridge see both).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pipeline.device.failover import BridgeChooser, parse_bridges
from pipeline.device.opengop import OpenGop
from pipeline.ingest.framing import RESUME_HEADER, Chunk, Frame, encode_chunk
from pipeline.ingest.grouping import ChunkGrouper, Group

__all__ = ["ChunkUploader", "UploadStats", "packet_frame"]

AckCallback = Callable[[int, dict[str, Any]], None]
_PERMANENT = {400, 401, 403, 404, 409, 413, 415, 422}


@dataclass
class UploadStats:
    """Counters a device (and the camera progress line) reports."""

    sent: int = 0
    acked: int = 0
    acked_frames: int = 0
    retries: int = 0
    rejected: int = 0
    dropped_chunks: int = 0
    dropped_frames: int = 0
    #: Already-acked chunks (open GOP) sent again to a bridge the device moved to.
    resent: int = 0
    resent_frames: int = 0
    #: Non-200 answers by HTTP status, and how many of them carried Retry-After (back-pressure).
    statuses: dict[int, int] = field(default_factory=dict)
    retry_after: int = 0
    last_error: str = ""
    ack_ms: list[float] = field(default_factory=list)


def packet_frame(packet: Any, timescale: int = 90000) -> Frame:
    """A PyAV packet (Annex-B H.264/H.265) as a framing ``Frame`` in ``timescale`` units."""
    tb = packet.time_base
    pts = int(packet.pts * tb * timescale)
    dts = int((packet.dts if packet.dts is not None else packet.pts) * tb * timescale)
    return Frame(pts, min(dts, pts), bool(packet.is_keyframe), bytes(packet))


class ChunkUploader:
    """Uploads one stream's chunks through a shared ``aiohttp.ClientSession``."""

    def __init__(self, session: Any, bridge_url: str | Sequence[str], stream_id: str,
                 token: str | Callable[[], str], *,
                 codec: str = "H264", timescale: int = 90000, chunk_frames: int | None = None,
                 part_target_s: float = 0.5,
                 max_buffer_chunks: int = 2000, backoff_s: float = 0.1, backoff_max_s: float = 5.0,
                 on_ack: AckCallback | None = None, first_seq: int = 0,
                 now: Callable[[], float] = time.time, keep_latencies: bool = False,
                 failover_s: float = 2.0, request_timeout_s: float | None = None):
        self.session, self.stream_id, self.token = session, stream_id, token
        self.bridges = BridgeChooser(parse_bridges(bridge_url), detect_s=failover_s,
                                     probe_s=failover_s)
        # A hung bridge (not refusing, not answering) must not hold a failover forever.
        if request_timeout_s is None and len(self.bridges.urls) > 1:
            request_timeout_s = 5.0
        self.request_timeout_s = request_timeout_s
        self.codec, self.timescale, self.chunk_frames = codec, timescale, chunk_frames
        self.part_ticks = int(part_target_s * timescale)
        self._grouper = ChunkGrouper(self.part_ticks, chunk_frames)
        self.max_buffer_chunks = max_buffer_chunks
        self.backoff_s, self.backoff_max_s = backoff_s, backoff_max_s
        self.on_ack, self.now, self.keep_latencies = on_ack, now, keep_latencies
        self.stats = UploadStats()
        self._seq = first_seq
        self._buffer: deque[Chunk] = deque()
        self._wake = asyncio.Event()
        self._closing = False
        self._inflight: Chunk | None = None
        self._gop = OpenGop(max_buffer_chunks)
        self._resend: deque[Chunk] = deque()  # the open GOP, being re-sent after a move
        self._moved = False  # moved bridge since the last chunk was sent: re-send first

    @property
    def url(self) -> str:
        """The chunk endpoint on the bridge in use now."""
        return f"{self.bridges.current}/v1/streams/{self.stream_id}/chunks"

    def _token(self) -> str:
        """The bearer token; a callable is asked on every request so it can renew before expiry."""
        return self.token() if callable(self.token) else self.token

    # -- producer side -------------------------------------------------------------------------
    def add_frame(self, frame: Frame, producer_time_us: int | None = None) -> None:
        """Queue one access unit; a keyframe always starts a new chunk (``ChunkGrouper``)."""
        t = producer_time_us if producer_time_us is not None else int(self.now() * 1_000_000)
        for group in self._grouper.add(frame, t):
            self._flush(group)

    def add_packet(self, packet: Any) -> None:
        """Queue a PyAV packet."""
        self.add_frame(packet_frame(packet, self.timescale))

    def _flush(self, group: Group) -> None:
        chunk = Chunk(self._seq, self.codec, self.timescale, group.time_us, group.frames)
        self._seq += 1
        self._buffer.append(chunk)
        if len(self._buffer) > self.max_buffer_chunks:
            self._drop_oldest_gop()
        self._wake.set()

    def _drop_oldest_gop(self) -> None:
        """Drop from the head (never the chunk in flight) up to the next keyframe chunk."""
        start = 1 if self._buffer and self._buffer[0] is self._inflight else 0
        i = start
        while i < len(self._buffer) and (i == start or not self._buffer[i].frames[0].keyframe):
            i += 1
        if i == len(self._buffer):  # no later keyframe: drop just one chunk
            i = start + 1
        for _ in range(start, i):
            victim = self._buffer[start]
            del self._buffer[start]
            self._gop.settled(victim, stored=False)
            self.stats.dropped_chunks += 1
            self.stats.dropped_frames += len(victim.frames)

    @property
    def buffered(self) -> int:
        """Chunks waiting (including the one in flight)."""
        return len(self._buffer)

    async def close(self, timeout: float | None = None) -> None:
        """Flush the open chunk and wait (up to ``timeout``) until everything is acknowledged."""
        for group in self._grouper.flush():
            self._flush(group)
        self._closing = True
        self._wake.set()
        deadline = None if timeout is None else self.now() + timeout
        while self._buffer and (deadline is None or self.now() < deadline):
            await asyncio.sleep(0.02)

    # -- upload loop ---------------------------------------------------------------------------
    async def run(self) -> None:
        """Upload forever (cancel to stop); one chunk in flight, retried until settled.

        After a move to another bridge the open GOP goes first; a move during that re-send (or
        during any chunk) starts it over, against the bridge moved to.
        """
        while True:
            if not self._buffer:
                self._wake.clear()
                if self.bridges.index == 0:
                    await self._wake.wait()
                    continue
                with contextlib.suppress(TimeoutError):  # away from home: look while idle too
                    await asyncio.wait_for(self._wake.wait(), self.bridges.probe_s)
                if self.bridges.probe_due(self.now()):
                    await self._probe_home()
                continue
            if self._moved:
                self._moved = False
                self._resend = deque(self._gop.resend_for(self._buffer[0]))
            resend = bool(self._resend)
            chunk = self._resend[0] if resend else self._buffer[0]
            self._inflight = None if resend else chunk
            outcome = await self._settle(chunk, resend)
            self._inflight = None
            if outcome == "moved":  # start over at the new bridge: its re-send, then this chunk
                continue
            if resend:
                self._resend.popleft()
                continue
            self._gop.settled(chunk, stored=outcome == "ok")
            if self._buffer and self._buffer[0] is chunk:
                self._buffer.popleft()

    async def _settle(self, chunk: Chunk, resend: bool) -> str:
        """Send ``chunk`` until the bridge settles it ("ok"/"rejected") or the device moves."""
        body = encode_chunk(chunk)
        delay = self.backoff_s
        while True:
            if self.bridges.probe_due(self.now()) and await self._probe_home():
                return "moved"
            outcome, retry_after = await self._post(chunk, body, resend)
            if outcome == "moved":  # the chunk (after the open GOP) goes to the next bridge
                self.stats.retries += 1
                return "moved"
            if outcome != "retry":
                return outcome
            self.stats.retries += 1
            wait = retry_after if retry_after is not None else delay * (0.5 + random.random())
            await asyncio.sleep(min(wait, self.backoff_max_s))
            delay = min(delay * 2, self.backoff_max_s)

    async def _probe_home(self) -> bool:
        """Ask the home bridge's ``/readyz``; go back home when it answers ready (True)."""
        import aiohttp

        try:
            async with self.session.get(f"{self.bridges.home}/readyz",
                                        timeout=aiohttp.ClientTimeout(total=1.0)) as resp:
                ready = resp.status == 200
        except (TimeoutError, aiohttp.ClientError, OSError):
            ready = False
        if not self.bridges.probed(self.now(), ready):
            return False
        self._moved_bridge()
        return True

    def _bridge_failed(self) -> str:
        """Count a failed request against the bridge in use: "moved" when it was given up on."""
        if not self.bridges.failed(self.now()):
            return "retry"
        self._moved_bridge()
        return "moved"

    def _moved_bridge(self) -> None:
        """Now on another bridge: the open GOP goes to it before the next chunk."""
        self._moved = True
        self._resend.clear()

    async def _post(self, chunk: Chunk, body: bytes,
                    resend: bool = False) -> tuple[str, float | None]:
        import aiohttp

        t0 = self.now()
        self.stats.sent += 1
        headers = {"Authorization": f"Bearer {self._token()}",
                   "Content-Type": "application/vnd.camlog.chunk.v1"}
        if self.stats.acked:
            headers[RESUME_HEADER] = "1"
        timeout = (aiohttp.ClientTimeout(total=self.request_timeout_s)
                   if self.request_timeout_s else None)
        try:
            async with self.session.post(self.url, data=body, headers=headers,
                                         **({"timeout": timeout} if timeout else {})) as resp:
                status = resp.status
                try:
                    payload = await resp.json(content_type=None)
                except ValueError:
                    payload = {}
                retry_after = resp.headers.get("Retry-After")
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            self.stats.last_error = type(exc).__name__
            return self._bridge_failed(), None
        if status != 200:
            self.stats.statuses[status] = self.stats.statuses.get(status, 0) + 1
            self.stats.retry_after += retry_after is not None
        if status >= 500:  # a bridge whose Kafka is gone answers 503: that region is down too
            self.stats.last_error = f"{status} {payload.get('code') or payload.get('problem', '')}"
            wait = float(retry_after) if retry_after and retry_after.isdigit() else None
            return self._bridge_failed(), wait
        self.bridges.succeeded(self.now())
        if status == 200 and resend:
            self.stats.resent += 1
            self.stats.resent_frames += len(chunk.frames)
            if self.on_ack:
                self.on_ack(chunk.seq, payload)
            return "ok", None
        if status == 200:
            self.stats.acked += 1
            self.stats.acked_frames += len(chunk.frames)
            if self.keep_latencies:
                self.stats.ack_ms.append((self.now() - t0) * 1000)
            if self.on_ack:
                self.on_ack(chunk.seq, payload)
            return "ok", None
        if status == 409 and resend:  # this bridge already has it: nothing to re-send
            self.stats.resent += 1
            self.stats.resent_frames += len(chunk.frames)
            return "ok", None
        self.stats.last_error = f"{status} {payload.get('code') or payload.get('problem', '')}"
        if status in _PERMANENT:
            self.stats.rejected += 1
            return "rejected", None
        return "retry", float(retry_after) if retry_after and retry_after.isdigit() else None
