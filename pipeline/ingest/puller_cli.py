"""``camlog puller``: join the pullers' consumer group and pull the cameras it assigns."""

from pipeline.ingest.pull_cli import register_puller as register

__all__ = ["register"]
