"""After a restart, rebuild recent per-stream state from the tail of ``camlog.frames``.

Reads only keys and the ``camlog-seq``/``camlog-session`` headers of the last ``window_s``
seconds, so a device retrying a chunk that was persisted just before a crash gets its original
ack (no second event) and a stream resuming mid-GOP is not refused as new.
"""

from __future__ import annotations

from typing import Any

from pipeline.ingest.streams import StreamState
from pipeline.kafka import topics
from pipeline.kafka.clients import consumer as kafka_consumer

__all__ = ["recover"]


def _header(headers: Any, name: str) -> bytes | None:
    for k, v in headers or ():
        if k == name:
            return v
    return None


def recover(bootstrap: str, window_s: float, now: float, topic: str = topics.FRAMES,
            timeout: float = 10.0) -> list[StreamState]:
    """Blocking: scan every partition's last ``window_s`` seconds and return stream states."""
    from confluent_kafka import TopicPartition

    from pipeline.events import DecodeError, decode

    consumer = kafka_consumer(bootstrap, "camlog-bridge-recovery", **{
        "enable.auto.commit": False, "enable.partition.eof": True, "auto.offset.reset": "latest"})
    states: dict[str, StreamState] = {}
    try:
        md = consumer.list_topics(topic, timeout=timeout).topics.get(topic)
        if md is None or md.error is not None:
            return []
        since = int((now - window_s) * 1000)
        wanted = [TopicPartition(topic, p, since) for p in md.partitions]
        starts = consumer.offsets_for_times(wanted, timeout=timeout)
        assign, ends = [], {}
        for tp in starts:
            _low, high = consumer.get_watermark_offsets(TopicPartition(topic, tp.partition),
                                                        timeout=timeout)
            start = tp.offset if tp.offset >= 0 else high
            if start < high:
                assign.append(TopicPartition(topic, tp.partition, start))
                ends[tp.partition] = high
        if not assign:
            return []
        consumer.assign(assign)
        last: dict[str, Any] = {}
        # Read each partition up to its end as of now, not until an end-of-partition event:
        # the scan is bounded by what was there when it began, however fast others write.
        remaining = set(ends)
        while remaining:
            msg = consumer.poll(timeout)
            if msg is None:
                break
            if msg.error():
                remaining.discard(msg.partition())
                continue
            if msg.offset() >= ends[msg.partition()] - 1:
                remaining.discard(msg.partition())
            if msg.offset() >= ends[msg.partition()]:
                continue  # written after the scan began: the bridge sees it live
            seq = _header(msg.headers(), "camlog-seq")
            if msg.key() is None or seq is None:
                continue
            sid = msg.key().decode()
            st = states.setdefault(sid, StreamState(sid))
            s = int(seq)
            if st.last_seq is None or s > st.last_seq:
                st.last_seq = s
                st.session_id = (_header(msg.headers(), "camlog-session") or b"").decode()
                st.last_seen = msg.timestamp()[1] / 1000.0
                last[sid] = msg
            st.acks[s] = {"seq": s, "status": "persisted", "partition": msg.partition(),
                          "offset": msg.offset()}
        for sid, msg in last.items():  # decode only each stream's newest chunk, for its config
            try:
                rec = decode("FrameChunk", msg.value())
            except DecodeError:  # not a chunk (the segmenter dead-letters it): seqs only
                continue
            st = states[sid]
            st.codec, st.width, st.height = rec["codec"], rec["width"], rec["height"]
            st.source, st.connected = rec["source"], True
            st.config = b""  # known to exist, content unknown: the stream may resume mid-GOP
            while len(st.acks) > 64:
                st.acks.pop(min(st.acks))
    finally:
        consumer.close()
    return list(states.values())
