"""``camlog worker``: the segmenter in this process, the view agents in a child process.

The two share nothing but the log. In one Faust app they would share one consumer, and a view
that falls behind (a device write per chunk, a manifest write per segment) fills its stream
buffer, stops Faust's delivery loop and so starves the segmenter: at 100 cameras the segmenter
saw chunks 2-8 s late while the process idled. Apart, each has its own consumer group (views:
``<app-id>-views``), its own core and its own pace; the child dies with its parent (SIGKILL
included) and the parent stops (exit 70, like any unrecoverable error) if the child dies.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
import subprocess
import sys
import threading

from pipeline.config import Settings

__all__ = ["SEGMENTER", "register", "split_modules"]

SEGMENTER = "pipeline.agents.segmenter"


def register(parser: argparse.ArgumentParser) -> None:
    """Add the worker's options."""
    parser.add_argument("--loglevel", default=None, help="Faust log level (default: settings)")
    parser.add_argument("--only", action="append", default=None, metavar="MODULE",
                        help="register only these agent modules (repeatable)")
    parser.add_argument("--app-id", default=None,
                        help="Faust app id / consumer group (default camlog-worker; for tests)")
    parser.add_argument("--stream-prefix", default="",
                        help="segment only streams whose id starts with this (canary/tests)")
    parser.add_argument("--one-process", action="store_true",
                        help="run segmenter and views in this process (one consumer group)")
    parser.set_defaults(func=_run)


def split_modules(modules: list[str], one_process: bool) -> tuple[list[str], list[str]]:
    """(modules for this process, modules for the view child): the segmenter stays here."""
    here = [m for m in modules if m == SEGMENTER]
    views = [m for m in modules if m != SEGMENTER]
    if one_process or not here or not views:
        return modules, []
    return here, views


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the parent dies (Linux PR_SET_PDEATHSIG)."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)


def _spawn_views(args: argparse.Namespace, settings: Settings, app_id: str,
                 modules: list[str]) -> subprocess.Popen:
    env = dict(os.environ)
    env.update({"CAMLOG_KAFKA": settings.kafka, "CAMLOG_CASSANDRA": ",".join(settings.cassandra),
                "CAMLOG_KEYSPACE": settings.keyspace, "CAMLOG_STATE_DIR": str(settings.state_dir),
                "CAMLOG_TELEMETRY": settings.telemetry,
                "CAMLOG_METRICS_PORT": str(settings.views_metrics_port)})
    argv = [sys.executable, "-m", "pipeline", "worker", "--one-process",
            "--app-id", f"{app_id}-views", "--stream-prefix", args.stream_prefix]
    for m in modules:
        argv += ["--only", m]
    if args.loglevel:
        argv += ["--loglevel", args.loglevel]
    return subprocess.Popen(argv, env=env, preexec_fn=_die_with_parent)


def _watch(child: subprocess.Popen, stopping: threading.Event) -> None:
    """A view child that exits while we run takes the worker down (it restarts both)."""
    from pipeline.agents.supervise import stop_worker

    code = child.wait()
    if not stopping.is_set():
        stop_worker(RuntimeError(f"view process exited with status {code}"), "worker.views")


def _run(args: argparse.Namespace, settings: Settings) -> int:
    import faust

    from pipeline import telemetry
    from pipeline.agents.app import AGENT_MODULES, APP_ID, create_app

    # The Cassandra driver and Kafka client hand results over from their I/O threads; with the
    # default 5 ms GIL switch interval a busy event loop adds up to 5 ms per hand-over.
    sys.setswitchinterval(0.0005)
    app_id = args.app_id or APP_ID
    here, views = split_modules(list(args.only or AGENT_MODULES), args.one_process)
    stopping, child = threading.Event(), None
    if views:
        child = _spawn_views(args, settings, app_id, views)
        threading.Thread(target=_watch, args=(child, stopping), daemon=True).start()
    telemetry.setup("camlog-worker" if SEGMENTER in here else "camlog-views", settings)
    app = create_app(settings, modules=here, stream_prefix=args.stream_prefix, app_id=app_id)
    worker = faust.Worker(app, loglevel=(args.loglevel or settings.log_level).lower(),
                          quiet=True, override_logging=False)
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        return int(exc.code or 0)
    finally:
        stopping.set()
        if child is not None and child.poll() is None:
            child.terminate()
            try:
                child.wait(20)
            except subprocess.TimeoutExpired:
                child.kill()
        telemetry.shutdown()
    return 0
