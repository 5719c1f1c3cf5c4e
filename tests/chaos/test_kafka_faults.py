"""Kafka fails under load: one of three brokers SIGKILLed under cameras and an ffmpeg push (c),
the only broker down for 20 s under cameras (d).

(c) The cluster elects new leaders in a few seconds; SDK chunks wait or are retried, the push's
chunks wait in its bounded window, so every acknowledged camera frame and every frame of the
pushed file is stored exactly once. (d) While Kafka is gone the bridge is not ready and answers
503 with Retry-After, the SDK buffers; afterwards nothing is lost beyond what the SDK reports as
dropped, and what the log holds is stored exactly once.
"""

from __future__ import annotations

import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from pipeline.auth.tokens import issue
from pipeline.device.pattern import encode_loop
from pipeline.ingest.framing import Chunk, Frame, encode_chunk
from tests.chaos.cluster import AckProbe, KafkaCluster
from tests.chaos.conftest import ChaosSystem, DevStack, assert_exactly_once, report
from tests.clients import ffprobe_frames, require

pytestmark = [pytest.mark.services, pytest.mark.slow, pytest.mark.chaos]

CAMERAS = 4


def _source(tmp: Path, seconds: int = 12, fps: int = 15) -> Path:
    """An H.264 file of ``seconds * fps`` frames, made on the fly."""
    src = tmp / "push-src.mp4"
    subprocess.run([require("ffmpeg"), "-v", "error", "-f", "lavfi", "-i",
                    f"testsrc2=size=320x180:rate={fps}", "-t", str(seconds), "-c:v", "libx264",
                    "-g", str(fps), "-bf", "0", "-pix_fmt", "yuv420p", str(src)], check=True)
    return src


def _push(system: ChaosSystem, src: Path, stream: str) -> subprocess.Popen:
    """A real-time ffmpeg MPEG-TS push of ``src`` to the bridge."""
    tok = issue(system.settings.keys, None, "device", [stream], 3600, time.time())
    return subprocess.Popen(
        [require("ffmpeg"), "-v", "error", "-re", "-i", str(src), "-c", "copy", "-f", "mpegts",
         "-headers", f"Authorization: Bearer {tok}\r\n",
         f"http://{system.settings.bridge_addr}/v1/streams/{stream}/ingest"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _partition_of(bootstrap: str, topic: str, key: str) -> int:
    """The partition the bridge's partitioner (murmur2) puts ``key`` in, found by producing it."""
    from confluent_kafka import Producer

    got: dict[str, int] = {}
    p = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random"})
    p.produce(topic, b"", key=key.encode(),
              on_delivery=lambda _err, msg: got.setdefault("p", msg.partition()))
    p.flush(30)
    return got["p"]


def test_c_one_of_three_brokers_killed_under_cameras_and_a_push(
        chaos_system3: ChaosSystem, kafka_cluster: KafkaCluster, tmp_path: Path):
    system, cluster = chaos_system3, kafka_cluster
    src = _source(tmp_path)
    expected = len(ffprobe_frames(src))
    probe = AckProbe(cluster.bootstrap)
    probe.start()
    cam = system.start_cameras(CAMERAS, 40)
    time.sleep(5)
    push_stream = f"{system.prefix}-push"
    push = _push(system, src, push_stream)
    time.sleep(5)  # the push is 5 s in: kill the leader of its partition
    victim = cluster.leader("camlog.frames", _partition_of(cluster.bootstrap, probe.topic,
                                                          push_stream))
    was_controller = victim == cluster.quorum_leader()
    t_kill = cluster.kill(victim)
    out, _ = push.communicate(timeout=120)
    assert push.returncode == 0, out
    result = system.camera_result(cam, timeout=120)
    probe.stop()
    stall = probe.stall(t_kill)
    outcome = system.outcome()
    cams = {f"{system.prefix}-cam-{i}" for i in range(1, CAMERAS + 1)}
    logged_cam = sum(outcome[s].logged_frames for s in cams if s in outcome)
    report("c broker SIGKILL (1 of 3)", victim=f"kafka-{victim}",
           controller=was_controller, produce_stall_s=f"{stall:.1f}",
           cam_frames=result["frames"], cam_acked=result["acked_frames"],
           cam_retries=result["retries"], cam_stored=sum(outcome[s].stored_frames
                                                         for s in cams if s in outcome),
           push_source=expected, push_stored=outcome[push_stream].stored_frames
           if push_stream in outcome else 0,
           duplicates=sum(o.decoded_frames - o.logged_frames for o in outcome.values()))
    assert_exactly_once(outcome, cams | {push_stream})
    assert result["dropped_frames"] == 0 and result["acked_frames"] == result["frames"], result
    assert logged_cam >= result["acked_frames"]
    assert outcome[push_stream].stored_frames == expected, outcome[push_stream]
    assert probe.failed == 0 and stall < 10, (stall, probe.failed)


class ReadyWatch(threading.Thread):
    """Polls the bridge's /readyz every 250 ms and keeps (monotonic time, status)."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url, self.seen = url, []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                with urllib.request.urlopen(self.url, timeout=3) as r:
                    status = r.status
            except urllib.error.HTTPError as e:
                status = e.code
            except OSError:
                status = 0
            self.seen.append((time.monotonic(), status))
            self.stop.wait(0.25)

    def first(self, status: int, after: float) -> float | None:
        """Seconds after ``after`` until ``status`` was first seen."""
        return next((t - after for t, s in self.seen if t >= after and s == status), None)


def _direct_chunk(system: ChaosSystem) -> tuple[int, str | None, str]:
    """One keyframe chunk for a stream outside the test's prefix: (status, Retry-After, body)."""
    loop = encode_loop(0, fps=15, width=160, height=96, bitrate=100_000, gop_s=1, gops=1)
    stream = f"probe{uuid.uuid4().hex[:8]}"
    tok = issue(system.settings.keys, None, "device", [stream], 600, time.time())
    body = encode_chunk(Chunk(1, "H264", 90000, int(time.time() * 1e6),
                              (Frame(0, 0, True, loop.frames[0].data),)))
    req = urllib.request.Request(
        f"http://{system.settings.bridge_addr}/v1/streams/{stream}/chunks", data=body,
        headers={"Authorization": f"Bearer {tok}"}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.headers.get("Retry-After"), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Retry-After"), e.read().decode()


def test_d_kafka_down_20_s_under_cameras(chaos_system: ChaosSystem, devstack: DevStack):
    system = chaos_system
    watch = ReadyWatch(f"http://{system.settings.bridge_addr}/readyz")
    watch.start()
    cam = system.start_cameras(CAMERAS, 60)
    time.sleep(10)
    t_kill = time.monotonic()
    devstack.kill_kafka()
    time.sleep(2)
    status, retry_after, problem = _direct_chunk(system)
    time.sleep(max(0.0, 20 - (time.monotonic() - t_kill)))
    t_start = time.monotonic()
    restart_s = devstack.start_kafka()
    result = system.camera_result(cam, timeout=150)
    watch.stop.set()
    outcome = system.outcome()
    not_ready = watch.first(503, t_kill)
    ready_again = watch.first(200, t_start)
    report("d Kafka down 20 s", frames=result["frames"], acked=result["acked_frames"],
           dropped=result["dropped_frames"], retries=result["retries"],
           logged=sum(o.logged_frames for o in outcome.values()),
           stored=sum(o.stored_frames for o in outcome.values()),
           direct=f"{status} {retry_after}", kafka_restart_s=f"{restart_s:.1f}",
           not_ready_after_s=f"{not_ready:.1f}" if not_ready is not None else None,
           ready_after_restart_s=f"{ready_again:.1f}" if ready_again is not None else None)
    assert status == 503 and retry_after, (status, retry_after, problem)
    assert not_ready is not None and not_ready < 20, watch.seen
    assert ready_again is not None, watch.seen[-5:]
    assert result["frames"] - result["acked_frames"] == result["dropped_frames"], result
    assert sum(o.logged_frames for o in outcome.values()) >= result["acked_frames"]
    assert_exactly_once(outcome, {f"{system.prefix}-cam-{i}" for i in range(1, CAMERAS + 1)})
