"""``camlog cameras add|list|remove``: the camera registry on compacted ``camlog.cameras``.

``add`` writes a ``CameraConfig`` keyed by camera id (a later ``add`` replaces it), ``remove``
writes a tombstone, ``list`` reads the topic to its end. URLs are printed redacted.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import time
import uuid
from typing import Any

from pipeline.config import Settings
from pipeline.errors import CliError
from pipeline.ingest.checks import STREAM_ID_RE
from pipeline.kafka import topics

__all__ = ["add_camera", "list_cameras", "register", "remove_camera"]


def _check_id(camera_id: str) -> str:
    if not re.fullmatch(STREAM_ID_RE, camera_id):
        raise CliError(f"camera id {camera_id!r} must match {STREAM_ID_RE}")
    return camera_id


async def _send(settings: Settings, key: str, value: bytes | None) -> Any:
    from pipeline.kafka.producer import EventProducer, KafkaUnavailable

    producer = EventProducer(settings.kafka, extra={"client.id": "camlog-cameras"})
    await producer.start()
    try:
        return await producer.send(topics.CAMERAS, key.encode(), value)  # type: ignore[arg-type]
    except KafkaUnavailable as exc:
        raise CliError(f"Kafka did not take the change: {exc}") from None
    finally:
        await producer.close()


def add_camera(settings: Settings, camera_id: str, url: str, transport: str = "TCP",
               attributes: dict[str, str] | None = None) -> Any:
    """Write (or replace) a camera; returns Kafka's ack (partition, offset)."""
    from pipeline.events import encode
    from pipeline.ingest.pullrules import check_rtsp_url

    rec = {"camera_id": _check_id(camera_id), "url": check_rtsp_url(url),
           "transport": transport.upper(), "updated": int(time.time() * 1e6),
           "attributes": dict(attributes or {})}
    return asyncio.run(_send(settings, camera_id, encode("CameraConfig", rec)))


def remove_camera(settings: Settings, camera_id: str) -> Any:
    """Write the camera's tombstone; ``CliError`` if it is not registered."""
    if _check_id(camera_id) not in list_cameras(settings):
        raise CliError(f"no camera {camera_id!r} in {topics.CAMERAS}")
    return asyncio.run(_send(settings, camera_id, None))


def list_cameras(settings: Settings, timeout: float = 30.0) -> dict[str, dict[str, Any]]:
    """Every registered camera's latest ``CameraConfig``, read to the topic's end."""
    from confluent_kafka import OFFSET_BEGINNING, TopicPartition

    from pipeline.events import DecodeError, decode
    from pipeline.kafka.clients import consumer

    c = consumer(settings.kafka, f"cameras-{uuid.uuid4().hex}", **{"enable.auto.commit": False})
    out: dict[str, dict[str, Any]] = {}
    try:
        md = c.list_topics(topics.CAMERAS, timeout=10).topics[topics.CAMERAS]
        if md.error is not None:
            raise CliError(f"{topics.CAMERAS}: {md.error}; run `camlog topology apply`")
        ends = {p: c.get_watermark_offsets(TopicPartition(topics.CAMERAS, p), timeout=10)
                for p in md.partitions}
        todo = {p for p, (lo, hi) in ends.items() if hi > lo}
        c.assign([TopicPartition(topics.CAMERAS, p, OFFSET_BEGINNING) for p in todo])
        deadline = time.monotonic() + timeout
        while todo and time.monotonic() < deadline:
            msg = c.poll(0.5)
            if msg is None or msg.error():
                continue
            if msg.offset() >= ends[msg.partition()][1] - 1:
                todo.discard(msg.partition())
            key = (msg.key() or b"").decode(errors="replace")
            if msg.value() is None:
                out.pop(key, None)
                continue
            try:
                out[key] = decode("CameraConfig", msg.value())
            except DecodeError:
                continue  # the puller logs and counts unreadable entries
        if todo:
            raise CliError(f"{topics.CAMERAS} not read to its end within {timeout:.0f}s")
    finally:
        c.close()
    return out


def _add(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.ingest.pullrules import redact

    ack = add_camera(settings, args.id, args.url, args.transport)
    print(f"camera {args.id}: {redact(args.url)} ({args.transport.upper()}) "
          f"registered at {topics.CAMERAS}[{ack.partition}]@{ack.offset}")
    return 0


def _list(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.ingest.pullrules import redact

    cams = list_cameras(settings)
    for cid, rec in sorted(cams.items()):
        print(f"{cid:<24} {rec['transport']:<4} {redact(rec['url'])}")
    print(f"{len(cams)} camera(s)")
    return 0


def _remove(args: argparse.Namespace, settings: Settings) -> int:
    ack = remove_camera(settings, args.id)
    print(f"camera {args.id}: removed "
          f"(tombstone at {topics.CAMERAS}[{ack.partition}]@{ack.offset})")
    return 0


def register(parser: argparse.ArgumentParser) -> None:
    """Add ``add``, ``list`` and ``remove``."""
    sub = parser.add_subparsers(dest="action", required=True)
    p = sub.add_parser("add", help="register (or replace) a camera to pull")
    p.add_argument("id", help="camera id, also its stream id")
    p.add_argument("url", help="rtsp://[user:password@]HOST[:PORT]/PATH")
    p.add_argument("--transport", choices=("tcp", "udp"), default="tcp")
    p.set_defaults(func=_add)
    sub.add_parser("list", help="the registered cameras (URLs redacted)").set_defaults(func=_list)
    p = sub.add_parser("remove", help="stop pulling a camera (writes a tombstone)")
    p.add_argument("id")
    p.set_defaults(func=_remove)
