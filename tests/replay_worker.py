"""The full camlog worker (segmenter + views) reading only new events: the "live" system of the
replay tests. Usage: ``python -m tests.replay_worker APP_ID READY_FILE`` (settings: ``CAMLOG_*``).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path


def main() -> None:
    """Build the app with ``create_app`` (a private group, latest offsets) and run it."""
    import faust

    from pipeline.agents.app import create_app
    from pipeline.config import load_settings

    app_id, ready = sys.argv[1], Path(sys.argv[2])
    app = create_app(load_settings(), app_id=app_id, consumer_auto_offset_reset="latest",
                     datadir=tempfile.mkdtemp(prefix="replay-worker-"), topic_replication_factor=1)

    @app.timer(interval=0.5)
    async def mark_ready() -> None:
        if app.tables.actives_ready and app.consumer.assignment():
            ready.write_text("ready")

    faust.Worker(app, loglevel="info", quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main()
