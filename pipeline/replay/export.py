"""``replay export``: a selection of the log to an Avro container file or JSON lines."""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.config import Settings
from pipeline.errors import CliError
from pipeline.events.catalog import TOPIC_EVENTS, EventType
from pipeline.replay.container import BackgroundFile, ContainerWriter, sync_marker
from pipeline.replay.progress import Progress
from pipeline.replay.select import LogEvent, LogReader, Selection

__all__ = ["ExportResult", "export", "json_line", "output_format"]


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote."""

    path: Path
    events: int
    bytes: int
    skipped: int
    summary: str


def output_format(path: Path) -> str:
    """``avro`` or ``jsonl`` from the file name."""
    suffix = path.suffix.lower()
    if suffix == ".avro":
        return "avro"
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    raise CliError(f"--out must end in .avro or .jsonl, got {path.name!r}")


def _jsonable(v: Any) -> Any:
    if isinstance(v, bytes):
        return base64.b64encode(v).decode()
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_jsonable(x) for x in v]
    return v


def json_line(e: LogEvent) -> str:
    """One event as a JSON line: its place in the log and the record (bytes as base64)."""
    doc = {"topic": e.topic, "partition": e.partition, "offset": e.offset,
           "timestamp_ms": e.timestamp_ms, "type": e.event.name,
           "key": e.key.decode("utf-8", "replace") if e.key is not None else None,
           "record": _jsonable(e.record())}
    return json.dumps(doc, sort_keys=True, separators=(",", ":"))


def _single_type(selection: Selection) -> EventType:
    """An Avro file holds one schema: the selection must name exactly one event type."""
    from pipeline.replay.select import event_type_named

    types = {event_type_named(n).name for n in selection.types} or {
        n for t in selection.topics for n in TOPIC_EVENTS.get(t, ())}
    if len(types) != 1 or (any(t not in TOPIC_EVENTS for t in selection.topics)
                           and not selection.types):
        names = ", ".join(sorted(types)) or "none"
        raise CliError(f"an .avro export holds one event type, this selection has: {names} "
                       "(export one topic, or use .jsonl)")
    return event_type_named(types.pop())


def _seed(selection: Selection, fmt: str) -> bytes:
    """The selection in canonical JSON: file metadata and the source of the sync marker.

    Resolved offsets are left out on purpose: appends after the range move the high watermark
    (and so the scanned range) without changing what the selection contains.
    """
    return json.dumps({**selection.describe(), "format": fmt}, sort_keys=True).encode()


class _LineBuffer:
    """JSON lines gathered into ~1 MiB writes."""

    def __init__(self, fo: BackgroundFile):
        self._fo, self._buf, self._size = fo, [], 0

    def append(self, line: bytes) -> None:
        self._buf.append(line)
        self._size += len(line) + 1
        if self._size >= 1 << 20:
            self.close()

    def close(self) -> None:
        if self._buf:
            self._fo.write(b"\n".join(self._buf) + b"\n")
            self._buf, self._size = [], 0


def export(settings: Settings, selection: Selection, out: Path, codec: str = "null",
           progress: bool = True) -> ExportResult:
    """Write the selection to ``out`` (written to a temporary name, then renamed)."""
    fmt = output_format(out)
    tmp = out.with_name(out.name + ".part")
    with LogReader(settings, selection) as reader:  # unknown topics fail here, first
        ev_type = _single_type(selection) if fmt == "avro" else None
        ranges = reader.ranges()
        seed = _seed(selection, fmt)
        prog = Progress(sum(r.size for r in ranges), enabled=progress)
        events = nbytes = 0
        try:
            with open(tmp, "wb") as raw:
                fo = BackgroundFile(raw)
                try:
                    if ev_type is not None:
                        writer = ContainerWriter(fo, ev_type.file.read_text(), sync_marker(seed),
                                                 {"camlog.selection": seed}, codec)
                        append = writer.append
                    else:
                        lines = _LineBuffer(fo)
                        append = lines.append
                    for e in reader.events(ranges):
                        append(e.body if ev_type is not None else json_line(e).encode())
                        events += 1
                        nbytes += len(e.value)
                        if events % 1000 == 0:
                            prog.update(events, nbytes, reader.scanned)
                    (writer if ev_type is not None else lines).close()
                finally:
                    fo.close()
            os.replace(tmp, out)
        finally:
            if tmp.exists():
                tmp.unlink()
        prog.update(events, nbytes, reader.scanned)
        summary = prog.finish()
        return ExportResult(out, events, nbytes, reader.skipped, summary)
