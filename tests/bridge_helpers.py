"""Helpers for the bridge integration tests: a bridge subprocess, Kafka read-back, media."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """An unused loopback TCP port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class BridgeProc:
    """``camlog bridge`` in a child process (so it can be SIGKILLed and restarted)."""

    def __init__(self, port: int | None = None, *, kafka: str = "127.0.0.1:9092",
                 idle_s: float = 10.0, extra: list[str] | None = None):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.kafka, self.idle_s, self.extra = kafka, idle_s, extra or []
        self.proc: subprocess.Popen | None = None
        self.log = Path(f"/tmp/camlog-bridge-{self.port}.log")

    def start(self, wait_ready: bool = True, timeout: float = 60.0) -> BridgeProc:
        """Spawn the bridge and wait for /readyz (or /healthz when Kafka is meant to be down)."""
        env = {**os.environ, "CAMLOG_IDLE_TIMEOUT_S": str(self.idle_s)}
        with self.log.open("ab") as log:  # the child has its own copy of the descriptor
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "pipeline", "--kafka", self.kafka, "bridge",
                 "--addr", f"127.0.0.1:{self.port}", *self.extra],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        path = "/readyz" if wait_ready else "/healthz"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"bridge exited: {self.log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(self.url + path, timeout=3) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("bridge did not become ready")

    def kill(self) -> None:
        """SIGKILL: no flush, no goodbye."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        """SIGTERM and wait."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


def marks(bootstrap: str, topic: str) -> dict[int, int]:
    """High watermark of every partition of ``topic`` (where new messages will start)."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"t-{uuid.uuid4().hex}"})
    try:
        parts = c.list_topics(topic, timeout=10).topics[topic].partitions
        return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts}
    finally:
        c.close()


def read_since(bootstrap: str, topic: str, since: dict[int, int], key: str) -> list:
    """Every message with ``key`` written after ``since`` up to now, in partition order."""
    from confluent_kafka import Consumer, TopicPartition

    now = marks(bootstrap, topic)
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"t-{uuid.uuid4().hex}",
                  "enable.auto.commit": False})
    todo = {p: end for p, end in now.items() if end > since.get(p, 0)}
    out = []
    try:
        c.assign([TopicPartition(topic, p, since.get(p, 0)) for p in todo])
        deadline = time.monotonic() + 60
        while todo and time.monotonic() < deadline:
            msg = c.poll(1.0)
            if msg is None or msg.error():
                continue
            if msg.key() == key.encode():
                out.append(msg)
            if msg.offset() + 1 >= todo.get(msg.partition(), 0):
                todo.pop(msg.partition(), None)
    finally:
        c.close()
    return out


def ffprobe_frames(path: str | Path, fmt: str | None = None) -> int:
    """Video frames ffprobe decodes from a file."""
    cmd = ["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
           "-show_entries", "stream=nb_read_frames", "-of", "csv=p=0"]
    if fmt:
        cmd += ["-f", fmt]
    out = subprocess.run([*cmd, str(path)], check=True, capture_output=True, text=True).stdout
    return int(out.strip().splitlines()[0].strip(","))
