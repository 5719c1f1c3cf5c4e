"""The Faust application of ``camlog worker``: one app, agents registered from their modules."""

from __future__ import annotations

import importlib
from typing import Any

from pipeline.config import Settings
from pipeline.kafka.config import faust_brokers
from pipeline.telemetry import get_logger

__all__ = ["AGENT_MODULES", "APP_ID", "create_app"]

#: Faust app id, hence the Kafka consumer group of every worker process.
APP_ID = "camlog-worker"
#: Modules exposing ``register(app, settings, stream_prefix=...)``; a missing one is skipped
#: with a warning.
AGENT_MODULES = ["pipeline.agents.segmenter", "pipeline.agents.views"]

_log = get_logger("camlog.worker")


def create_app(settings: Settings, modules: list[str] | None = None, app_id: str = APP_ID,
               stream_prefix: str = "", **overrides: Any) -> Any:
    """Build the Faust app (raw bytes in and out; our Avro codec decodes) and register agents.

    ``modules`` defaults to ``AGENT_MODULES``; ``app_id`` (the consumer group) is changed only by
    tests and benchmarks that need a private group; ``stream_prefix`` makes agents that honour it
    (the segmenter) handle only streams whose id starts with it (canaries, tests, benchmarks on a
    shared topic); ``overrides`` are extra Faust settings.

    Offsets are committed from manual acks (see ``pipeline.agents.acks``); ``stream_wait_empty``
    is off because unsealed frames are meant to stay unacked across a rebalance.
    """
    import faust

    conf: dict[str, Any] = {
        "broker": faust_brokers(settings.kafka),
        "key_serializer": "raw", "value_serializer": "raw",
        "store": "memory://", "web_enabled": False, "datadir": str(settings.state_dir / "faust"),
        "stream_wait_empty": False, "consumer_auto_offset_reset": "earliest",
        "producer_acks": -1, "broker_commit_interval": settings.worker_commit_interval_s,
        "topic_partitions": 6, "consumer_max_fetch_size": settings.worker_max_fetch_bytes,
        # Settings.worker_*: why these values (a dead worker's partitions move after 15 s).
        "broker_session_timeout": settings.worker_session_timeout_s,
        "broker_heartbeat_interval": settings.worker_heartbeat_s,
    }
    conf.update(overrides)
    app = faust.App(app_id, **conf)
    for name in AGENT_MODULES if modules is None else modules:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            _log.warning("agent module missing; skipped", extra={"module": name})
            continue
        module.register(app, settings, stream_prefix=stream_prefix)
    return app
