"""The ``camlog`` command: a thin dispatcher; each subcommand lives beside the code it drives."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

from pipeline.config import ConfigError, Settings, load_settings
from pipeline.errors import CamlogError

__all__ = ["COMMANDS", "main"]

# name -> (module with `register(parser)`, one-line help). Modules are imported only when used,
# so `camlog token` does not pay for Faust or PyAV.
COMMANDS: dict[str, tuple[str, str]] = {
    "dev": ("pipeline.devstack.cli", "run Kafka and Cassandra locally (up, status, down)"),
    "topology": ("pipeline.topology.cli", "apply or diff topics and tables from topology/"),
    "schemas": ("pipeline.events.cli", "list event schemas and check compatibility"),
    "token": ("pipeline.auth.cli", "issue signed device or viewer tokens"),
    "bridge": ("pipeline.ingest.cli", "run the HTTP ingest bridge"),
    "camera": ("pipeline.device.cli", "run simulated cameras"),
    "pull": ("pipeline.ingest.pull_cli", "pull one RTSP camera in the foreground"),
    "cameras": ("pipeline.ingest.cameras_cli", "add, list or remove RTSP cameras to pull"),
    "puller": ("pipeline.ingest.puller_cli", "pull the cameras a consumer group assigns"),
    "worker": ("pipeline.agents.cli", "run the Faust worker (segmenter and views)"),
    "playback": ("pipeline.playback.cli", "run the playback service"),
    "edge": ("pipeline.edge.cli", "run the nginx edge cache in front of playback"),
    "replay": ("pipeline.replay.cli", "export, rebuild, verify or time-travel the event log"),
    "topics": ("pipeline.admin.cli", "describe topics, lag, add partitions, rebalance"),
    "capacity": ("pipeline.admin.capacity_cli",
                 "plan a deployment for a fleet from benchmark results"),
    "demo": ("pipeline.demo", "run the whole system with simulated cameras"),
    "drill": ("pipeline.devstack.drill_cli", "fault drills against a running demo (region-outage)"),
}

Handler = Callable[[argparse.Namespace, Settings], int]


def _parser(command: str | None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="camlog",
                                description="camlog: video streaming on an event log")
    p.add_argument("--kafka", help="bootstrap servers (CAMLOG_KAFKA)")
    p.add_argument("--cassandra", help="contact points host:port,... (CAMLOG_CASSANDRA)")
    p.add_argument("--keyspace", help="Cassandra keyspace (CAMLOG_KEYSPACE)")
    p.add_argument("--state-dir", help="state folder (CAMLOG_STATE_DIR, default .camlog)")
    p.add_argument("--telemetry", help="none|console|otlp|prometheus (CAMLOG_TELEMETRY)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_) in COMMANDS.items():
        sp = sub.add_parser(name, help=help_, description=help_)
        if name == command:
            importlib.import_module(module).register(sp)
    return p


def _command_of(argv: Sequence[str]) -> str | None:
    return next((a for a in argv if a in COMMANDS), None)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``camlog`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser(_command_of(argv)).parse_args(argv)
    handler: Handler | None = getattr(args, "func", None)
    if handler is None:
        _parser(None).print_help()
        return 2
    try:
        cassandra = tuple(args.cassandra.split(",")) if args.cassandra else None
        settings = load_settings(
            kafka=args.kafka, cassandra=cassandra, keyspace=args.keyspace,
            state_dir=args.state_dir, telemetry=args.telemetry,
        )
        return int(handler(args, settings) or 0)
    except (ConfigError, CamlogError) as exc:
        print(f"camlog {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
