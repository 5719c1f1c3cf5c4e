"""The GStreamer RTSP test server (``ops/rtsp/testserver.py``) as a restartable child process.

It runs under Debian's ``/usr/bin/python3`` (python3-gi), never the venv.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from pathlib import Path

import pytest

from pipeline import ROOT

SYSTEM_PYTHON = "/usr/bin/python3"
SCRIPT = ROOT / "ops" / "rtsp" / "testserver.py"


def require_gst() -> None:
    """Fail in CI (``make install`` installs GStreamer), skip elsewhere, when it is missing."""
    probe = subprocess.run([SYSTEM_PYTHON, "-c", "import gi; gi.require_version('GstRtspServer',"
                            " '1.0'); from gi.repository import GstRtspServer"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail(f"GStreamer RTSP server missing (make install): {probe.stderr[-300:]}")
        pytest.skip("GStreamer RTSP server (python3-gi, gir1.2-gst-rtsp-server-1.0) not installed")


class RtspServer:
    """``start`` waits for ``ready``; ``stop`` returns how many frames it sent (``--frames``)."""

    def __init__(self, port: int, *args: str, log: Path | None = None):
        self.port, self.args, self.log = port, args, log
        self.proc: subprocess.Popen | None = None
        self.lines: list[str] = []

    def start(self, timeout: float = 20.0) -> RtspServer:
        """Start and wait until it listens."""
        self.lines = []
        ready = threading.Event()
        self.proc = subprocess.Popen([SYSTEM_PYTHON, str(SCRIPT), "--port", str(self.port),
                                      *self.args], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, start_new_session=True)

        def read(proc: subprocess.Popen) -> None:
            with proc.stdout:  # type: ignore[union-attr]  # closed at its end (EOF: it exited)
                for line in proc.stdout:  # type: ignore[union-attr]
                    self.lines.append(line.rstrip())
                    if line.startswith("ready"):
                        ready.set()
            ready.set()

        threading.Thread(target=read, args=(self.proc,), daemon=True).start()
        assert ready.wait(timeout) and self.proc.poll() is None, "\n".join(self.lines)
        return self

    @property
    def url(self) -> str:
        """Its URL without credentials."""
        return f"rtsp://127.0.0.1:{self.port}/cam"

    def wait_done(self, timeout: float) -> int:
        """With ``--frames``: wait for it to exit on its own; the frames it sent."""
        assert self.proc is not None
        self.proc.wait(timeout)
        return self.sent()

    def sent(self) -> int:
        """Frames reported by its ``sent N`` line (after it exited)."""
        assert self.proc is not None
        if self.proc.stdout:
            self.proc.wait(5)
        for line in self.lines:
            if line.startswith("sent "):
                return int(line.split()[1])
        raise AssertionError("\n".join(self.lines))

    def kill(self) -> None:
        """SIGKILL: the camera vanishes without a goodbye."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)

    def stop(self) -> None:
        """SIGTERM and wait."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(10)
