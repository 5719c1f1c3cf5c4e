"""A reconnect never gets stuck: a camera that accepts and then says nothing, or refuses, is
retried with backoff (PyAV's timeouts and the watchdog end each attempt). No Kafka needed: no
frame is ever produced."""

from __future__ import annotations

import asyncio
import socket
import threading

from pipeline.ingest.bridge import Bridge
from pipeline.ingest.rtsp import CameraPull, PullOptions
from pipeline.kafka.producer import EventProducer

OPTS = PullOptions(read_timeout_s=0.5, backoff_base_s=0.05, backoff_cap_s=0.2)


def _black_hole() -> tuple[socket.socket, int]:
    """A TCP server that accepts connections and never answers."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                held.append(srv.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    return srv, srv.getsockname()[1]


async def _attempts(url: str, n: int) -> CameraPull:
    bridge = Bridge(EventProducer("127.0.0.1:1"), idle_timeout_s=10)  # never started: unused
    pull = CameraPull(bridge, "stuck-cam", url, OPTS)
    task = asyncio.create_task(pull.run())
    try:
        async with asyncio.timeout(60):
            while pull.stats.failures < n:
                await asyncio.sleep(0.05)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return pull


def test_a_silent_camera_is_retried():
    srv, port = _black_hole()
    try:
        pull = asyncio.run(_attempts(f"rtsp://admin:Secr3tpw@127.0.0.1:{port}/cam", 3))
    finally:
        srv.close()
    assert pull.stats.frames == 0 and pull.stats.connections == 0
    assert "Secr3tpw" not in pull.stats.last_error and pull.stats.last_error


def test_a_refusing_camera_is_retried():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: connections are refused
    pull = asyncio.run(_attempts(f"rtsp://127.0.0.1:{port}/cam", 3))
    assert "refused" in pull.stats.last_error.lower()
