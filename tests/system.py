"""What whole-system tests (end to end, chaos) read back: the log, the stored segments, views.

The log is the truth of what was acknowledged: the bridge answers 200 only after Kafka acked
the chunk, so the distinct (stream, seq) pairs on ``camlog.frames`` are a superset of the acked
ones, and every one of them must end up in exactly one stored segment.
"""

from __future__ import annotations

import asyncio
import socket
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from pipeline.events import decode

__all__ = ["FIGURES", "end_offsets", "free_port", "get", "log_frames", "stored", "view",
           "wait_stored"]


#: Figures whole-system tests measured, one line each; the root conftest prints them at the end.
FIGURES: list[str] = []


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str, timeout: float = 10) -> tuple[int, bytes]:
    """(status, body) of a GET; 0 and the error text when nothing answered."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except OSError as e:
        return 0, str(e).encode()


def end_offsets(settings: Any, topic: str) -> dict[int, int]:
    """The high watermark of every partition of ``topic``."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": settings.kafka, "group.id": f"sys-{uuid.uuid4().hex}"})
    try:
        md = c.list_topics(topic, timeout=10)
        return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                for p in md.topics[topic].partitions}
    finally:
        c.close()


def log_frames(settings: Any, since: dict[int, int], prefix: str) -> dict[str, dict[int, int]]:
    """Per stream of ``prefix``: seq → frames of every chunk on camlog.frames since ``since``."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": settings.kafka, "group.id": f"sys-{uuid.uuid4().hex}",
                  "enable.auto.commit": False})
    end = end_offsets(settings, "camlog.frames")
    c.assign([TopicPartition("camlog.frames", p, o) for p, o in since.items()])
    seen: dict[str, dict[int, int]] = {}
    remaining = {p for p in since if end[p] > since[p]}
    deadline = time.monotonic() + 120
    try:
        while remaining and time.monotonic() < deadline:
            msg = c.poll(1.0)
            if msg is None or msg.error():
                continue
            if msg.offset() >= end[msg.partition()] - 1:
                remaining.discard(msg.partition())
            if not (msg.key() or b"").decode().startswith(prefix):
                continue
            rec = decode("FrameChunk", msg.value())
            seen.setdefault(rec["stream_id"], {})[rec["seq"]] = len(rec["frames"])
    finally:
        c.close()
    assert not remaining, f"camlog.frames not read to its end: partitions {remaining}"
    return seen


def stored(settings: Any, stream: str, start_us: int, end_us: int, tmp: Path):
    """The stream's segments from Cassandra, and init + media segments concatenated to a file."""
    from pipeline.store.segments import SegmentStore

    async def go():
        store = SegmentStore(settings)
        await store.start()
        try:
            segs = await store.segments_between(stream, start_us, end_us)
            blobs, inits = [], set()
            for s in segs:
                if s.init_id not in inits:
                    inits.add(s.init_id)
                    blobs.append((await store.init_segment(stream, s.init_id)).data)
                data = await store.segment_bytes(stream, s.segment_id)
                # a row is written after its parts (seal_segment): bytes must be whole by now
                assert data is not None, f"{stream} segment {s.sequence} ({s.segment_id}): " \
                    "row stored but its parts incomplete or from another cut"
                blobs.append(data)
            return segs, blobs, inits
        finally:
            await store.close()

    segs, blobs, inits = asyncio.run(go())
    path = tmp / f"{stream}.mp4"
    path.write_bytes(b"".join(blobs))
    return segs, path, inits


def wait_stored(settings: Any, expected: dict[str, int], start_us: int, end_us: int, tmp: Path,
                timeout: float = 60.0) -> tuple[dict[str, int], dict[str, tuple]]:
    """Poll until every stream has ``expected`` frames stored (or time runs out)."""
    deadline = time.monotonic() + timeout
    while True:
        got = {s: stored(settings, s, start_us, end_us, tmp) for s in expected}
        counts = {s: sum(x.frame_count for x in segs) for s, (segs, _, _) in got.items()}
        if counts == expected or time.monotonic() > deadline:
            return counts, got
        time.sleep(2)


def view(settings: Any, fn: str, *args: Any) -> Any:
    """Call one ``ViewStore`` read with a fresh session."""
    from pipeline.store.views import ViewStore

    async def go():
        store = ViewStore(settings)
        await store.start()
        try:
            return await getattr(store, fn)(*args)
        finally:
            await store.close()

    return asyncio.run(go())
