"""A Faust worker running only the view agents; integration tests start it as a subprocess.

Usage: ``python -m tests.views_worker APP_ID READY_FILE`` (settings from ``CAMLOG_*``).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path


def main() -> None:
    """Build a Faust app with ``register`` from pipeline.agents.views and run it."""
    import faust

    from pipeline import telemetry
    from pipeline.agents.views import register
    from pipeline.config import load_settings

    app_id, ready = sys.argv[1], Path(sys.argv[2])
    settings = load_settings()
    telemetry.setup("camlog-views-test", settings)  # exporters only if CAMLOG_TELEMETRY says so
    app = faust.App(
        app_id, broker=f"kafka://{settings.kafka}", store="memory://",
        value_serializer="raw", web_enabled=False, consumer_auto_offset_reset="latest",
        topic_replication_factor=1, datadir=tempfile.mkdtemp(prefix="views-worker-"),
        broker_commit_interval=0.5,
        # a crashed worker's membership must expire quickly so the restarted one gets its partitions
        broker_session_timeout=10.0, broker_heartbeat_interval=1.0,
    )
    register(app, settings)

    @app.timer(interval=0.5)
    async def mark_ready() -> None:
        if app.tables.actives_ready and app.consumer.assignment():
            ready.write_text("ready")

    faust.Worker(app, loglevel="info", quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main()
