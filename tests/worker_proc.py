"""A camlog Faust worker in a private consumer group reading only new events; integration
tests start it as a subprocess, restart it, and wait for READY_FILE.

Usage: ``python -m tests.worker_proc APP_ID READY_FILE [AGENT_MODULE ...]`` (settings from
``CAMLOG_*``; no modules means all of ``pipeline.agents.app.AGENT_MODULES``).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path


def main() -> None:
    """Build the app with ``create_app`` (as ``camlog worker`` does) and run it."""
    import faust

    from pipeline import telemetry
    from pipeline.agents.app import create_app
    from pipeline.config import load_settings

    app_id, ready, modules = sys.argv[1], Path(sys.argv[2]), sys.argv[3:] or None
    settings = load_settings()
    telemetry.setup("camlog-test-worker", settings)  # exporters only if CAMLOG_TELEMETRY says so
    app = create_app(
        settings, modules=modules, app_id=app_id, consumer_auto_offset_reset="latest",
        topic_replication_factor=1, datadir=tempfile.mkdtemp(prefix="test-worker-"),
        broker_commit_interval=0.5,
        # a crashed worker's membership must expire quickly so the restarted one gets its partitions
        broker_session_timeout=10.0, broker_heartbeat_interval=1.0,
    )

    @app.timer(interval=0.5)
    async def mark_ready() -> None:
        if app.tables.actives_ready and app.consumer.assignment():
            ready.write_text("ready")

    faust.Worker(app, loglevel="info", quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main()
