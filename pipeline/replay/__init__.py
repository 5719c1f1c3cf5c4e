"""Replaying the event log: select, export, rebuild views, verify, time travel."""

from pipeline.replay.select import LogEvent, LogReader, PartitionRange, Selection

__all__ = ["LogEvent", "LogReader", "PartitionRange", "Selection"]
