"""SDK and ffmpeg → bridge → real Kafka: durable acks, ordering, crash recovery, bad input,
sessions."""

from __future__ import annotations

import asyncio
import io
import subprocess
import time

import aiohttp
import pytest

from pipeline.auth.keys import viewer_keys
from pipeline.auth.tokens import issue
from pipeline.auth.viewer import issue as issue_viewer
from pipeline.device.client import ChunkUploader
from pipeline.device.pattern import encode_loop
from pipeline.events import decode
from pipeline.ingest.framing import Chunk, Frame, encode_chunk
from tests.bridge_helpers import BridgeProc, ffprobe_frames, marks, read_since

pytestmark = [pytest.mark.services]
FRAMES, SESSIONS = "camlog.frames", "camlog.sessions"


@pytest.fixture(scope="module")
def bridge(services):
    b = BridgeProc(kafka=services.kafka, idle_s=2.0, extra=["--rate", "50", "--burst", "100"])
    b.start()
    yield b
    b.stop()


@pytest.fixture(scope="module")
def gop_loop():
    return encode_loop(0, fps=15, width=320, height=240, bitrate=200_000, gop_s=2, gops=1)


def token(settings, stream, ttl=600, now=None, kind="device"):
    if kind == "viewer":
        return issue_viewer(viewer_keys(settings), [stream], ttl, now or time.time())
    return issue(settings.keys, None, kind, [stream], ttl, now or time.time())


def frames_of(loop, n, step=6000):
    return [Frame(i * step, i * step, loop.frames[i % len(loop.frames)].keyframe,
                  loop.frames[i % len(loop.frames)].data) for i in range(n)]


async def upload(url, stream, tok, frames, chunk_frames=3, first_seq=0, timeout=120):
    acks = {}
    async with aiohttp.ClientSession() as s:
        up = ChunkUploader(s, url, stream, tok, chunk_frames=chunk_frames, first_seq=first_seq,
                           on_ack=lambda seq, ack: acks.__setitem__(seq, ack), backoff_max_s=0.5)
        task = asyncio.create_task(up.run())
        for f in frames:
            up.add_frame(f, producer_time_us=int(time.time() * 1e6))
        await up.close(timeout=timeout)
        task.cancel()
    return up, acks


async def test_sdk_stream_every_frame_once_in_order(services, bridge, stream_id, tmp_path):
    loop = encode_loop(1, fps=15, width=320, height=240, bitrate=200_000, gop_s=2, gops=15)
    assert len(loop.frames) == 450  # 30 s at 15 fps
    src = [Frame(i * 6000, i * 6000, f.keyframe, f.data) for i, f in enumerate(loop.frames)]
    since = marks(services.kafka, FRAMES)
    up, acks = await upload(bridge.url, stream_id, token(services, stream_id), src)
    assert up.stats.rejected == 0 and up.stats.dropped_frames == 0
    msgs = read_since(services.kafka, FRAMES, since, stream_id)
    recs = [decode("FrameChunk", m.value()) for m in msgs]
    assert [r["seq"] for r in recs] == sorted(acks) == list(range(len(recs)))  # once, in order
    for m, r in zip(msgs, recs, strict=True):  # each ack names where the event is
        assert acks[r["seq"]] == {"seq": r["seq"], "status": "persisted",
                                  "partition": m.partition(), "offset": m.offset()}
        assert any(k == "traceparent" for k, _ in m.headers())
    got = [f for r in recs for f in r["frames"]]
    assert [(f["pts"], f["keyframe"], f["data"]) for f in got] == \
        [(f.pts, f.keyframe, f.data) for f in src]
    assert recs[0]["codec_config"] and (recs[0]["width"], recs[0]["height"]) == (320, 240)
    assert all(r["ingest_time"] >= r["producer_time"] - 5_000_000 for r in recs)
    es = tmp_path / "out.h264"
    es.write_bytes(b"".join(f["data"] for f in got))
    assert ffprobe_frames(es, "h264") == 450


async def test_sigkill_mid_upload_every_seq_persisted(services, stream_id, gop_loop):
    b = BridgeProc(kafka=services.kafka).start()
    since = marks(services.kafka, FRAMES)
    frames = frames_of(gop_loop, 300)
    async with aiohttp.ClientSession() as s:
        up = ChunkUploader(s, b.url, stream_id, token(services, stream_id), chunk_frames=1,
                           backoff_s=0.05, backoff_max_s=0.3)
        task = asyncio.create_task(up.run())
        for f in frames:
            up.add_frame(f)
        while up.stats.acked < 100:
            await asyncio.sleep(0.005)
        b.kill()  # mid-upload
        retries_before = up.stats.retries
        await asyncio.sleep(0.5)
        b.start()  # same port
        await up.close(timeout=120)
        task.cancel()
    b.stop()
    assert up.stats.retries > retries_before and up.stats.rejected == 0
    recs = [(decode("FrameChunk", m.value())["seq"], m.value())
            for m in read_since(services.kafka, FRAMES, since, stream_id)]
    assert {seq for seq, _ in recs} == set(range(300))
    first: dict[int, bytes] = {}
    for seq, raw in recs:  # a duplicate (crash between persist and ack) is byte-identical
        assert first.setdefault(seq, raw) == raw


async def test_retry_with_bridge_alive_adds_no_event(services, bridge, stream_id, gop_loop):
    since = marks(services.kafka, FRAMES)
    tok = token(services, stream_id)
    body = encode_chunk(Chunk(7, "H264", 90000, 1, tuple(frames_of(gop_loop, 2))))
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {tok}"}) as s:
        url = f"{bridge.url}/v1/streams/{stream_id}/chunks"
        answers = await asyncio.gather(*(s.post(url, data=body) for _ in range(3)))
        again = await s.post(url, data=body)
        bodies = [await r.json() for r in [*answers, again]]
    assert [r.status for r in [*answers, again]] == [200] * 4
    assert all(b == bodies[0] for b in bodies) and bodies[0]["status"] == "persisted"
    assert len(read_since(services.kafka, FRAMES, since, stream_id)) == 1


def test_ffmpeg_push_frame_count(services, bridge, stream_id, tmp_path):
    src = tmp_path / "cam.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=15",
                    "-t", "6", "-c:v", "libx264", "-g", "30", "-bf", "0", "-pix_fmt", "yuv420p",
                    str(src)], check=True)
    expected = ffprobe_frames(src)
    since = marks(services.kafka, FRAMES)
    ssince = marks(services.kafka, SESSIONS)
    proc = subprocess.run(
        ["ffmpeg", "-v", "error", "-re", "-i", str(src), "-c", "copy", "-f", "mpegts",
         "-headers", f"Authorization: Bearer {token(services, stream_id)}\r\n",
         f"{bridge.url}/v1/streams/{stream_id}/ingest"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    # the bridge writes the body's last chunk and the DISCONNECTED event as the request ends:
    # read until they are there (or 15 s passed), then judge
    deadline = time.monotonic() + 15
    while True:
        recs = [decode("FrameChunk", m.value())
                for m in read_since(services.kafka, FRAMES, since, stream_id)]
        kinds = [decode("SessionChange", m.value())["kind"]
                 for m in read_since(services.kafka, SESSIONS, ssince, stream_id)]
        if (sum(len(r["frames"]) for r in recs) >= expected and "DISCONNECTED" in kinds) \
                or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert sum(len(r["frames"]) for r in recs) == expected
    assert all(r["source"] == "PUSH" for r in recs) and recs[0]["frames"][0]["keyframe"]
    # access units are grouped into part-sized chunks: a keyframe starts one, none passes the
    # part target (15 fps: 7 frames of 6000 ticks in 0.5 s), so ~2 chunks a second, not 15
    for r in recs:
        fr = r["frames"]
        assert not any(f["keyframe"] for f in fr[1:])
        assert fr[-1]["dts"] - fr[0]["dts"] + 6000 <= services.part_target_s * 90000
    assert len(recs) <= expected / 5, [len(r["frames"]) for r in recs]
    assert kinds == ["CONNECTED", "DISCONNECTED"]


def _bad_cases(settings, gop_loop, sid):
    key = frames_of(gop_loop, 2)
    delta = [frames_of(gop_loop, 3)[2]]
    good = encode_chunk(Chunk(10, "H264", 90000, 1, tuple(key)))
    ok_tok = token(settings, sid)
    tampered = ok_tok[:-3] + ("AAA" if not ok_tok.endswith("AAA") else "BBB")
    unknown_codec = bytearray(good)
    unknown_codec[5] = 9
    return [  # (name, stream, token, body, status, problem)
        ("no token", sid, None, good, 401, "token_missing"),
        ("expired", sid, token(settings, sid, ttl=60, now=time.time() - 120), good, 401,
         "token_expired"),
        ("other stream", sid, token(settings, sid + "x"), good, 403, "token_scope"),
        ("viewer token", sid, token(settings, sid, kind="viewer"), good, 401, "token_wrong_kind"),
        ("tampered", sid, tampered, good, 401, "token_bad_signature"),
        ("oversized", sid, ok_tok, b"\0" * ((1 << 20) + 1), 413, "too_large"),
        ("garbage", sid, ok_tok, b"hello, world, not a chunk at all", 400, "bad_framing"),
        ("truncated", sid, ok_tok, good[:-5], 400, "bad_framing"),
        ("unknown codec", sid, ok_tok, bytes(unknown_codec), 415, "unsupported_codec"),
        ("no keyframe", sid, ok_tok, encode_chunk(Chunk(10, "H264", 90000, 1, tuple(delta))), 422,
         "needs_keyframe"),
        ("not annex-b", sid, ok_tok, encode_chunk(Chunk(10, "H264", 90000, 1,
                                                        (Frame(0, 0, True, b"\x65abc"),))),
         422, "not_annexb"),
    ]


async def test_bad_input_is_refused_with_json_and_no_event(services, bridge, gop_loop, stream_id):
    since = marks(services.kafka, FRAMES)
    async with aiohttp.ClientSession() as s:
        for name, sid, tok, body, status, problem in _bad_cases(services, gop_loop, stream_id):
            headers = {"Authorization": f"Bearer {tok}"} if tok else {}
            # a file-like body: aiohttp warns that a raw bytes body over 1 MiB blocks the loop
            async with s.post(f"{bridge.url}/v1/streams/{sid}/chunks", data=io.BytesIO(body),
                              headers=headers) as r:
                js = await r.json()
                assert (r.status, js["problem"]) == (status, problem), name
                assert js["status"] == status and js["detail"], name
                assert tok is None or tok not in str(js), name
        # then a real chunk, and a regression behind it
        tok = token(services, stream_id)
        good = encode_chunk(Chunk(10, "H264", 90000, 1, tuple(frames_of(gop_loop, 2))))
        async with s.post(f"{bridge.url}/v1/streams/{stream_id}/chunks", data=good,
                          headers={"Authorization": f"Bearer {tok}"}) as r:
            assert r.status == 200
        older = encode_chunk(Chunk(3, "H264", 90000, 1, tuple(frames_of(gop_loop, 2))))
        async with s.post(f"{bridge.url}/v1/streams/{stream_id}/chunks", data=older,
                          headers={"Authorization": f"Bearer {tok}"}) as r:
            assert (r.status, (await r.json())["problem"]) == (409, "seq_regression")
        for hostile in ("..", ".hidden", "-x", "a" * 65, "a%2Fb", "a%20b", "%2e%2e", "a%00b",
                        "caf%C3%A9"):
            async with s.post(f"{bridge.url}/v1/streams/{hostile}/chunks", data=good,
                              headers={"Authorization": f"Bearer {tok}"}) as r:
                js = await r.json()
                assert r.status in (400, 404) and js["problem"], hostile
    msgs = read_since(services.kafka, FRAMES, since, stream_id)
    assert [decode("FrameChunk", m.value())["seq"] for m in msgs] == [10]


async def test_rate_limit_answers_429_with_retry_after(services, bridge, stream_id):
    tok = token(services, stream_id)
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {tok}"}) as s:
        url = f"{bridge.url}/v1/streams/{stream_id}/chunks"
        rs = await asyncio.gather(*(s.post(url, data=b"x") for _ in range(150)))
        limited = [r for r in rs if r.status == 429]
        assert limited and all(int(r.headers["Retry-After"]) >= 1 for r in limited)
        assert (await limited[0].json())["problem"] == "rate_limited"
        for r in rs:
            r.release()


async def test_kafka_down_means_503_never_an_ack(gop_loop, settings, stream_id):
    b = BridgeProc(kafka="127.0.0.1:1", extra=["--ack-timeout", "2"]).start(wait_ready=False)
    try:
        async with aiohttp.ClientSession() as s:
            async with s.get(f"{b.url}/readyz") as r:
                assert r.status == 503
            body = encode_chunk(Chunk(0, "H264", 90000, 1, tuple(frames_of(gop_loop, 2))))
            for _ in range(100):
                async with s.post(f"{b.url}/v1/streams/{stream_id}/chunks", data=body,
                                  headers={"Authorization": f"Bearer {token(settings, stream_id)}"}
                                  ) as r:
                    js = await r.json()
                    assert r.status == 503 and "Retry-After" in r.headers, js
                    if js["problem"] != "starting":
                        break
                await asyncio.sleep(0.5)
            assert js["problem"] in ("kafka_slow", "kafka_unavailable")
    finally:
        b.kill()


async def test_session_connect_config_change_idle_disconnect(services, bridge, stream_id):
    small = encode_loop(2, fps=15, width=320, height=240, bitrate=200_000, gop_s=1, gops=1)
    big = encode_loop(2, fps=15, width=640, height=360, bitrate=300_000, gop_s=1, gops=1)
    since = marks(services.kafka, SESSIONS)
    frames = frames_of(small, 15) + [Frame(f.pts + 90000, f.dts + 90000, f.keyframe, f.data)
                                     for f in frames_of(big, 15)]
    await upload(bridge.url, stream_id, token(services, stream_id), frames, chunk_frames=5)
    deadline = time.monotonic() + 60
    while True:  # the idle timeout is 2 s; wait for the bridge to notice
        recs = [decode("SessionChange", m.value())
                for m in read_since(services.kafka, SESSIONS, since, stream_id)]
        if any(r["kind"] == "DISCONNECTED" for r in recs) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    assert [r["kind"] for r in recs] == ["CONNECTED", "CONFIG_CHANGED", "DISCONNECTED"]
    assert (recs[0]["width"], recs[0]["height"]) == (320, 240)
    assert (recs[1]["width"], recs[1]["height"]) == (640, 360)
    assert recs[2]["reason"] == "idle timeout"
    assert len({r["session_id"] for r in recs}) == 1


async def test_sdk_uploads_packets_of_an_mp4_file(services, bridge, stream_id, tmp_path):
    from pipeline.device.source import read_frames

    src = tmp_path / "clip.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=15",
                    "-t", "3", "-c:v", "libx264", "-g", "15", "-bf", "0", str(src)], check=True)
    frames = [f for _codec, f in read_frames(str(src))]
    since = marks(services.kafka, FRAMES)
    up, _acks = await upload(bridge.url, stream_id, token(services, stream_id), frames)
    assert up.stats.rejected == 0 and len(frames) == ffprobe_frames(src)
    recs = [decode("FrameChunk", m.value()) for m in read_since(services.kafka, FRAMES, since,
                                                                stream_id)]
    assert sum(len(r["frames"]) for r in recs) == len(frames)
    es = tmp_path / "out.h264"
    es.write_bytes(b"".join(f["data"] for r in recs for f in r["frames"]))
    assert ffprobe_frames(es, "h264") == len(frames)


async def test_push_of_garbage_or_without_token_is_refused(services, bridge, stream_id):
    since = marks(services.kafka, FRAMES)
    url = f"{bridge.url}/v1/streams/{stream_id}/ingest"
    async with aiohttp.ClientSession() as s:
        async with s.post(url, data=b"\x47" + b"garbage" * 5000) as r:
            assert (r.status, (await r.json())["problem"]) == (401, "token_missing")
        async with s.post(url, data=b"not a transport stream" * 5000,
                          headers={"Authorization": f"Bearer {token(services, stream_id)}"}) as r:
            js = await r.json()
            assert r.status in (400, 415) and js["problem"] in ("bad_stream", "unsupported_codec")
    assert read_since(services.kafka, FRAMES, since, stream_id) == []


def test_recovery_survives_an_undecodable_event_while_cameras_keep_writing(services, stream_id):
    """The recovery scan of a starting bridge skips an event that is not a chunk (it used to
    abort, leaving every stream unrecovered) and ends while other bridges keep writing: it
    reads each partition to its end as of the scan's start."""
    import threading

    from confluent_kafka import Producer

    from pipeline.events import encode
    from pipeline.ingest.recovery import recover

    producer = Producer({"bootstrap.servers": services.kafka})
    junk = f"{stream_id}-junk"
    producer.produce("camlog.frames", key=junk.encode(), value=b"\x00",
                     headers=[("camlog-seq", b"7"), ("camlog-session", b"s")])
    stop, written = threading.Event(), [0]
    now_us = int(time.time() * 1e6)
    value = encode("FrameChunk", {
        "stream_id": stream_id, "seq": 0, "session_id": "s", "source": "SDK", "codec": "H264",
        "codec_config": None, "width": 16, "height": 16, "timescale": 90000,
        "producer_time": now_us, "ingest_time": now_us, "gap_before": 0,
        "frames": [{"pts": 0, "dts": 0, "keyframe": True, "data": b"\x00\x00\x01\x65"}]})

    def write() -> None:  # a message every few ms, for up to a minute
        deadline = time.monotonic() + 60
        while not stop.is_set() and time.monotonic() < deadline:
            seq = written[0]
            producer.produce("camlog.frames", key=f"{stream_id}-{seq % 12}".encode(),
                             value=value, headers=[("camlog-seq", str(seq).encode()),
                                                   ("camlog-session", b"s")])
            producer.poll(0)
            written[0] += 1
            time.sleep(0.002)
        producer.flush(10)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    try:
        time.sleep(1.0)
        states = {s.stream_id: s for s in recover(services.kafka, 60.0, time.time(),
                                                  timeout=5.0)}
        still_writing = writer.is_alive()
    finally:
        stop.set()
        writer.join(30)
    assert still_writing, "the scan only ended once the writes stopped"
    assert states[junk].last_seq == 7 and states[junk].codec is None  # seqs kept, no config
    assert sum(sid.startswith(f"{stream_id}-") for sid in states) == 13
    assert all(states[f"{stream_id}-{n}"].codec == "H264" for n in range(12))
