"""Where a benchmark ran: the machine, the software versions and the commit, for the result file."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

__all__ = ["PACKAGES", "describe"]

#: Python packages whose versions shape the figures.
PACKAGES = ("camlog", "faust-streaming", "aiokafka", "confluent-kafka", "cassandra-driver", "av",
            "fastavro", "aiohttp", "matplotlib", "psutil")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _tool(argv: list[str]) -> str | None:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (out.stdout or out.stderr).strip().splitlines()
    return text[0] if text else None


def _services(settings) -> dict:
    from pipeline.devstack.cassandra import CASSANDRA_VERSION, cql_ready
    from pipeline.devstack.kafka import KAFKA_VERSION

    out = {"kafka_pinned": KAFKA_VERSION, "cassandra_pinned": CASSANDRA_VERSION}
    try:
        from pipeline.devstack.stack import Stack, status

        out["dev_stack"] = [{k: r[k] for k in ("name", "version", "ready")}
                            for r in status(Stack(settings.state_dir))]
    except Exception as exc:  # a stack not started by `camlog dev up` is still measurable
        out["dev_stack_error"] = str(exc)
    port = int(settings.cassandra[0].rpartition(":")[2] or 9042)
    out["cassandra_release"] = cql_ready(port, timeout=5)
    return out


def describe(settings) -> dict:
    """CPU, memory, kernel, Python, package, tool and service versions, and the git commit."""
    import psutil

    root = Path(__file__).resolve().parents[2]
    commit = _tool(["git", "-C", str(root), "rev-parse", "HEAD"])
    dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain"], capture_output=True,
                           text=True).stdout.strip() != ""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "cpu_model": _cpu_model(),
        "cores_logical": os.cpu_count(),
        "cores_physical": psutil.cpu_count(logical=False),
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "kernel": platform.release(),
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "packages": versions,
        "tools": {"nginx": _tool(["nginx", "-v"]), "wrk": _tool(["wrk", "--version"]),
                  "ffmpeg": _tool(["ffmpeg", "-version"]), "java": _tool(["java", "-version"])},
        "services": _services(settings),
        "git_commit": commit, "git_dirty": dirty,
        "load_avg": os.getloadavg(),
    }
