"""Worker agent module for benchmarks: camlog's view handlers, for the benchmark's streams only.

``camlog worker --only pipeline.agents.segmenter --only ops.bench.live_views --app-id A
--stream-prefix P`` segments and builds the live manifest and device state of streams starting
with ``P`` in a private consumer group, so a benchmark never rewrites other streams' views (the
full ``pipeline.agents.views`` cannot be limited to a prefix and writes playback stats).
"""

from __future__ import annotations

from typing import Any

from pipeline.config import Settings
from pipeline.kafka import topics

__all__ = ["register"]


def register(app: Any, settings: Settings, stream_prefix: str = "") -> Any:
    """Add segment, session and frame agents that feed ``ViewWorker`` for the prefix only."""
    from pipeline.agents.views import ViewWorker
    from pipeline.events import DecodeError, decode_any

    worker = ViewWorker(settings)
    prefix = stream_prefix
    pre = prefix.encode()

    def topic(name: str) -> Any:
        return app.topic(name, key_serializer="raw", value_serializer="raw")

    def mine(event: Any, kind: str) -> dict | None:
        if not (event.key or b"").startswith(pre):
            return None
        try:
            ev, record = decode_any(event.value)
        except DecodeError:
            return None
        return record if ev.name == kind else None  # e.g. SealedPart: no view folds it

    @app.agent(topic(topics.SEGMENTS), name="bench.views.segments")
    async def segments(stream: Any) -> None:
        # batches, as the real segments agent takes them: one window write per stream and batch
        async for events in stream.take_events(1000, within=0.005):
            records = [r for r in (mine(e, "SealedSegment") for e in events) if r is not None]
            if records:
                await worker.ready()
                await worker.handle_segments(records)

    @app.agent(topic(topics.SESSIONS), name="bench.views.sessions")
    async def sessions(stream: Any) -> None:
        async for event in stream.events():
            record = mine(event, "SessionChange")
            if record is not None and record["stream_id"].startswith(prefix):
                await worker.ready()
                await worker.handle_session(record)

    @app.agent(topic(topics.FRAMES), name="bench.views.frames")
    async def frames(stream: Any) -> None:
        async for events in stream.take_events(500, within=0.05):
            records = [r for r in (mine(e, "FrameChunk") for e in events) if r is not None]
            if records:
                await worker.ready()
                await worker.handle_chunks(records)

    return worker
