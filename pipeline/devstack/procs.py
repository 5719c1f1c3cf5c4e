"""Process control for the dev stack: pid files, start, stop, and waiting on real readiness."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

__all__ = ["PidFile", "port_open", "spawn", "stop", "wait_until"]

# The detached services this process started and has not seen end, by pid. They are meant to
# outlive spawn(): holding their Popen keeps Python from warning "subprocess ... is still
# running" when it would be dropped, and _reap() collects the exit status of those that ended.
_running: dict[int, subprocess.Popen] = {}


def _reap() -> None:
    for pid, proc in list(_running.items()):
        if proc.poll() is not None:  # also when psutil already waited for it
            del _running[pid]


@dataclass(frozen=True)
class PidFile:
    """A pid file that also records the process start time, so a recycled pid is never killed."""

    path: Path

    def write(self, pid: int) -> None:
        """Record ``pid`` (and its start time) as started by us."""
        created = psutil.Process(pid).create_time()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps({"pid": pid, "created": created}))

    def read(self) -> tuple[int, float] | None:
        """``(pid, start time)`` recorded in the file, or None."""
        try:
            data = json.loads(self.path.read_text())
            return int(data["pid"]), float(data["created"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def process(self) -> psutil.Process | None:
        """The live process this file names, or None when it is gone (or the pid was reused)."""
        rec = self.read()
        if rec is None:
            return None
        pid, created = rec
        try:
            proc = psutil.Process(pid)
            if abs(proc.create_time() - created) > 1.0 or proc.status() == psutil.STATUS_ZOMBIE:
                return None
            return proc
        except psutil.Error:
            return None

    def remove(self) -> None:
        """Forget the process."""
        self.path.unlink(missing_ok=True)


def spawn(argv: Sequence[str], *, cwd: Path, log: Path, pidfile: PidFile,
          env: dict[str, str] | None = None) -> int:
    """Start ``argv`` detached (own session, output to ``log``) and record it in ``pidfile``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    _reap()
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            list(argv), cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True, env={**os.environ, **(env or {})},
        )
    _running[proc.pid] = proc
    pidfile.write(proc.pid)
    return proc.pid


def stop(pidfiles: Sequence[PidFile], timeout: float = 30.0) -> list[int]:
    """SIGTERM all recorded processes at once, SIGKILL any left after ``timeout``; returns pids.

    All at once, because a KRaft node shutting down alone waits for a quorum that its
    already-stopped peers can no longer form.
    """
    procs = []
    for pf in pidfiles:
        proc = pf.process()
        if proc is not None:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.send_signal(signal.SIGTERM)
                procs.append(proc)
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    for proc in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    psutil.wait_procs(alive, timeout=10)
    _reap()
    for pf in pidfiles:
        pf.remove()
    return [p.pid for p in procs]


def wait_until(check: Callable[[], bool], *, what: str, timeout: float,
               alive: Callable[[], bool] = lambda: True, interval: float = 1.0,
               say: Callable[[str], None] = print) -> float:
    """Poll ``check`` until it holds, printing progress; fail fast once ``alive`` turns False."""
    start = time.monotonic()
    last_note = start
    while True:
        if check():
            return time.monotonic() - start
        if not alive():
            raise RuntimeError(f"{what}: the process exited before it was ready")
        now = time.monotonic()
        if now - start > timeout:
            raise TimeoutError(f"{what}: not ready after {timeout:.0f}s")
        if now - last_note >= 10:
            say(f"  ... still waiting for {what} ({now - start:.0f}s)")
            last_note = now
        time.sleep(interval)


def port_open(host: str, port: int) -> bool:
    """Whether something accepts TCP connections on ``host:port`` (to refuse clashing ports)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0
