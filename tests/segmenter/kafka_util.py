"""Helpers for the segmenter's service tests: private consumer groups, worker processes, reads."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def fresh_group(bootstrap: str, topic: str = "camlog.frames") -> str:
    """A new consumer group whose committed offsets are the current ends of ``topic``."""
    from confluent_kafka import Consumer, TopicPartition

    group = f"camlog-test-{uuid.uuid4().hex[:10]}"
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        parts = c.list_topics(topic, timeout=10).topics[topic].partitions
        offsets = [TopicPartition(topic, p, c.get_watermark_offsets(TopicPartition(topic, p),
                                                                     timeout=10)[1])
                   for p in parts]
        c.commit(offsets=offsets, asynchronous=False)
    finally:
        c.close()
    return group


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """High watermark per partition."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "probe"})
    try:
        parts = c.list_topics(topic, timeout=10).topics[topic].partitions
        return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts}
    finally:
        c.close()


def read_from(bootstrap: str, topic: str, start: dict[int, int], want: Callable[[Any], bool],
              count: int, timeout: float = 60.0) -> list:
    """Messages of ``topic`` after ``start`` offsets for which ``want(msg)`` holds, up to count."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"read-{uuid.uuid4().hex}",
                  "enable.auto.commit": False})
    c.assign([TopicPartition(topic, p, o) for p, o in start.items()])
    out, deadline = [], time.monotonic() + timeout
    try:
        while len(out) < count and time.monotonic() < deadline:
            msg = c.poll(0.5)
            if msg is not None and not msg.error() and want(msg):
                out.append(msg)
    finally:
        c.close()
    return out


class WorkerProcess:
    """``camlog worker --only pipeline.agents.segmenter`` in a private group, as a subprocess."""

    def __init__(self, group: str, log: Path, prefix: str, **env: str):
        self.group, self.log, self.prefix, self.env = group, log, prefix, env
        self.proc: subprocess.Popen | None = None

    def start(self) -> WorkerProcess:
        env = dict(os.environ, **self.env)
        with open(self.log, "ab") as fh:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "pipeline", "worker", "--only",
                 "pipeline.agents.segmenter", "--app-id", self.group,
                 "--stream-prefix", self.prefix],
                cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, no final commit."""
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it lingers."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()
