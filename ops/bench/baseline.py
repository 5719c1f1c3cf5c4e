"""The ingest baseline: raw confluent-kafka produce + consume of FrameChunk-sized payloads."""

from __future__ import annotations

import threading
import time
import uuid

__all__ = ["raw_kafka"]


def _payloads(loop, chunk_frames: int, count: int = 64) -> tuple[list[bytes], list[int]]:
    """FrameChunk events (and their media bytes) cut from a camera loop like the SDK cuts them."""
    from pipeline.events import encode

    values, media = [], []
    frames = loop.frames
    for k in range(count):
        fs = [frames[(k * chunk_frames + j) % len(frames)] for j in range(chunk_frames)]
        rec = {"stream_id": "bench-raw", "seq": k, "session_id": "x", "source": "SDK",
               "codec": "H264", "codec_config": None, "width": loop.width, "height": loop.height,
               "timescale": 90000, "producer_time": 0, "ingest_time": 0, "gap_before": 0,
               "frames": [{"pts": 0, "dts": 0, "keyframe": f.keyframe, "data": f.data}
                          for f in fs]}
        values.append(encode("FrameChunk", rec))
        media.append(sum(len(f.data) for f in fs))
    return values, media


def raw_kafka(bootstrap: str, loop, chunk_frames: int, seconds: float,
              partitions: int = 6, consume: bool = True) -> dict:
    """Produce (idempotent, acks=all, like the bridge) and consume at once on a private topic.

    The figure is media MB/s that made the whole trip producer -> broker -> consumer, so it is
    comparable with camlog's cameras -> bridge -> Kafka -> segments stored. With
    ``consume=False`` it is what the broker acknowledged (the ingest benchmark's baseline).
    """
    from confluent_kafka.admin import NewTopic

    from pipeline.kafka.clients import admin_client, producer
    from pipeline.kafka.clients import consumer as kafka_consumer

    values, media = _payloads(loop, chunk_frames)
    topic = f"camlog.bench-raw-{uuid.uuid4().hex[:8]}"
    admin = admin_client(bootstrap)
    admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(30)
    media_share = sum(media) / sum(len(v) for v in values)  # payloads cycle evenly
    got = {"msgs": 0, "bytes": 0}
    stop = threading.Event()

    def consume() -> None:
        c = kafka_consumer(bootstrap, topic, **{"auto.offset.reset": "earliest",
                                                "enable.auto.commit": True,
                                                "fetch.max.bytes": 8 << 20})
        c.subscribe([topic])
        try:
            while not stop.is_set():
                for m in c.consume(500, 0.2):
                    if m.error() is None:
                        got["msgs"] += 1
                        got["bytes"] += len(m.value())
        finally:
            c.close()

    acked = {"msgs": 0, "bytes": 0}

    def delivered(err, msg) -> None:
        if err is None:
            acked["msgs"] += 1
            acked["bytes"] += len(msg.value())

    consumer = threading.Thread(target=consume, daemon=True)
    if consume:
        consumer.start()
        time.sleep(3)  # let the consumer join before the clock starts
    else:
        got = acked
    p = producer(bootstrap, **{"enable.idempotence": True, "acks": "all", "linger.ms": 5,
                               "compression.type": "none"})
    sent = k = 0
    t0 = time.monotonic()
    try:
        while time.monotonic() - t0 < seconds:
            v = values[k % len(values)]
            try:
                p.produce(topic, v, key=f"cam-{k % 100}", on_delivery=delivered)
                sent += 1
                k += 1
            except BufferError:
                p.poll(0.005)
            p.poll(0)
        p.flush(60)
        deadline = time.monotonic() + 60
        while got["msgs"] < sent and time.monotonic() < deadline:
            time.sleep(0.01)
        elapsed = time.monotonic() - t0
    finally:
        stop.set()
        if consume:
            consumer.join(10)
        admin.delete_topics([topic])
    return {"topic_partitions": partitions, "chunk_frames": chunk_frames, "seconds": elapsed,
            "messages": got["msgs"], "sent": sent,
            "media_mb_per_s": got["bytes"] * media_share / elapsed / 1e6,
            "wire_mb_per_s": got["bytes"] / elapsed / 1e6,
            "avg_payload_bytes": sum(len(v) for v in values) / len(values)}
