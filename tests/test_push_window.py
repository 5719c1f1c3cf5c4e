"""The push buffer: the window's accepted prefix (hypothesis), and a push through a Kafka that
stalls, fails or never answers (an in-process bridge over a fake producer; no services)."""

from __future__ import annotations

import asyncio
import io
from fractions import Fraction
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import given
from hypothesis import strategies as st

from pipeline.events import decode
from pipeline.ingest.bridge import Bridge
from pipeline.ingest.problems import IngestError, problem_body
from pipeline.ingest.push import push_handler
from pipeline.ingest.pushwindow import PushWindow
from pipeline.kafka.producer import Ack, KafkaUnavailable
from pipeline.kafka.topics import FRAMES as FRAMES_TOPIC


@st.composite
def _histories(draw: Any) -> tuple[list[int], list[tuple[str, int]]]:
    n = draw(st.integers(1, 30))
    seqs = sorted(draw(st.sets(st.integers(0, 10_000), min_size=n, max_size=n)))
    events = draw(st.permutations(seqs))
    fails = draw(st.sets(st.sampled_from(seqs), max_size=2))
    return seqs, [("fail" if s in fails else "ack", s) for s in events]


@given(_histories())
def test_accepted_is_the_persisted_prefix_before_any_failure(history):
    seqs, events = history
    w = PushWindow(max_bytes=1 << 30, max_s=1e9)
    for s in seqs:
        w.add(s, 10, 1, 0.0)
    settled: set[int] = set()
    failed: set[int] = set()
    for kind, s in events:
        (w.failed if kind == "fail" else w.persisted)(s)
        (failed if kind == "fail" else settled).add(s)
        prefix = []
        for x in seqs:
            if x in failed or x not in settled:
                break
            prefix.append(x)
        assert w.accepted_seq == (prefix[-1] if prefix else None)
        assert w.accepted_frames == len(prefix)
        assert w.pending_bytes == 10 * (len(seqs) - len(prefix)) == 10 * len(w)
        assert w.failed_seq == (min(failed) if failed else None)


def test_window_bounds_bytes_and_age_of_the_oldest():
    w = PushWindow(max_bytes=100, max_s=2.0)
    w.add(1, 60, 1, now=10.0)
    w.add(2, 40, 1, now=11.0)
    assert w.exceeded(11.5) is None
    w.add(3, 1, 1, now=11.5)
    assert w.exceeded(11.5).bound == "bytes"
    w.persisted(1)
    assert w.exceeded(12.9) is None and w.oldest_age(12.9) == pytest.approx(1.9)
    assert w.exceeded(13.1).bound == "seconds" and "seq 2" in w.exceeded(13.1).detail
    with pytest.raises(ValueError):
        w.add(3, 1, 1, now=14.0)


class _StallingProducer:
    """Keeps every message until ``release()`` (in order, like a partition), or fails them."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self._held: list[tuple[asyncio.Future, int]] = []
        self.stalled = True

    queue_depth = 0

    def enqueue(self, topic: str, key: bytes, value: bytes, headers: Any = None) -> asyncio.Future:
        fut = asyncio.get_running_loop().create_future()
        self.messages.append((topic, value))
        self._held.append((fut, len(self.messages) - 1))
        if not self.stalled:
            self.release()
        return fut

    def release(self, fail: bool = False) -> None:
        self.stalled = False
        for fut, offset in self._held:
            if not fut.done():
                fut.set_exception(KafkaUnavailable("timed out")) if fail else \
                    fut.set_result(Ack(0, offset))
        self._held.clear()

    def chunks(self) -> list[dict]:
        return [decode("FrameChunk", v) for t, v in self.messages if t == FRAMES_TOPIC]

    def frames(self) -> int:
        return sum(len(c["frames"]) for c in self.chunks())


def _mpegts(frames: int = 45, fps: int = 15) -> bytes:
    import av

    out = io.BytesIO()
    with av.open(out, "w", format="mpegts") as c:
        s = c.add_stream("libx264", rate=fps, options={"g": "15", "bf": "0"})
        s.width, s.height, s.pix_fmt = 160, 96, "yuv420p"
        s.time_base = Fraction(1, fps)
        for i in range(frames):
            img = av.VideoFrame(160, 96, "yuv420p")
            for p in img.planes:
                p.update(bytes([(i * 7) % 256]) * p.buffer_size)
            img.pts = i
            for pkt in s.encode(img):
                c.mux(pkt)
        for pkt in s.encode(None):
            c.mux(pkt)
    return out.getvalue()


async def _client(producer: _StallingProducer, **bounds: Any) -> tuple[TestClient, Bridge]:
    bridge = Bridge(producer, idle_timeout_s=10)  # type: ignore[arg-type]

    async def push(request: web.Request) -> web.Response:
        try:
            return await push_handler(request, bridge, "s", **bounds)
        except IngestError as err:
            return web.json_response(problem_body(err), status=err.status)

    app = web.Application()
    app.router.add_post("/push", push)
    client = TestClient(TestServer(app))
    await client.start_server()
    return client, bridge


async def _body(data: bytes, parts: int = 20, pause: float = 0.02):
    step = len(data) // parts + 1
    for i in range(0, len(data), step):
        yield data[i:i + step]
        await asyncio.sleep(pause)


async def test_push_survives_a_stall_within_the_bound_and_keeps_order():
    ts = _mpegts()
    producer = _StallingProducer()
    client, _bridge = await _client(producer, buffer_bytes=1 << 20, buffer_s=5.0)
    try:
        req = asyncio.ensure_future(client.post("/push", data=_body(ts)))
        await asyncio.sleep(1.5)  # Kafka elects leaders; the body is read on meanwhile
        assert producer.frames() == 45 and not req.done()
        producer.release()
        resp = await req
        body = await resp.json()
    finally:
        await client.close()
    assert resp.status == 200 and body["frames"] == 45, body
    chunks = producer.chunks()
    seqs = [r["seq"] for r in chunks]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))) and body["last_seq"] == seqs[-1]
    # part-sized: 45 frames at 15 fps in 0.5 s parts, keyframes (every 15) starting chunks
    assert [len(c["frames"]) for c in chunks] == [7, 7, 1] * 3


@pytest.mark.parametrize("fail, problem", [(False, "push_buffer_exceeded"),
                                           (True, "kafka_unavailable")])
async def test_push_past_its_bound_ends_with_a_problem_saying_what_was_accepted(fail, problem):
    ts = _mpegts()
    producer = _StallingProducer()
    producer.stalled = False  # the first chunks are acked at once, then Kafka goes away
    client, _bridge = await _client(producer, buffer_bytes=1 << 20, buffer_s=1.0)
    acked_before = acked_chunks = 0

    async def body():
        nonlocal acked_before, acked_chunks
        chunks = _body(ts)
        async for part in chunks:
            yield part
            if not producer.stalled and producer.frames() >= 10:
                acked_before, acked_chunks = producer.frames(), len(producer.chunks())
                producer.stalled = True
                if fail:
                    asyncio.get_running_loop().call_later(0.3, producer.release, True)

    try:
        resp = await client.post("/push", data=body())
        problem_json = await resp.json()
    finally:
        await client.close()
    assert resp.status == 503 and problem_json["retry_after"] == 1
    assert problem_json["problem"] == problem, problem_json
    assert problem_json["frames_accepted"] == acked_before > 0
    accepted = [r["seq"] for r in producer.chunks()][:acked_chunks]
    assert problem_json["last_accepted_seq"] == accepted[-1]



def test_push_bounds_are_settings(tmp_path):
    from pipeline.config import ConfigError, load_settings

    env = {"CAMLOG_SECRET": "k1=" + "x" * 20, "CAMLOG_STATE_DIR": str(tmp_path)}
    s = load_settings({**env, "CAMLOG_PUSH_BUFFER_BYTES": "4194304", "CAMLOG_PUSH_BUFFER_S": "12"})
    assert (s.push_buffer_bytes, s.push_buffer_s) == (4 << 20, 12.0)
    for name, bad in (("CAMLOG_PUSH_BUFFER_S", "0.5"), ("CAMLOG_PUSH_BUFFER_BYTES", "1000")):
        with pytest.raises(ConfigError, match=name):
            load_settings({**env, name: bad})
