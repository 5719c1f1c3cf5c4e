"""Two releases of the schema folder for a migration drill, built from the shipped schemas.

FrameChunk's next version adds one field with a default. A rolling upgrade needs two folders:

* ``old``: the running release's schemas plus the next version as a known *writer* in
  ``history/FrameChunk/`` (readers learn it before any writer uses it);
* ``new``: the next version current, every earlier version in ``history/`` as before.

Only ``frame_chunk.avsc`` differs between them. Nothing here is committed as a real schema.
"""

from __future__ import annotations

import copy
import io
import json
import shutil
from pathlib import Path
from typing import Any

from fastavro import schemaless_writer

from pipeline.events.catalog import EVENTS, SCHEMA_DIR, _parse
from pipeline.events.codec import MAGIC

__all__ = ["NEW_FIELD", "encode_next", "next_fingerprint", "next_frame_chunk", "releases"]

NEW_FIELD = {"name": "drill_tag", "type": "string", "default": "",
             "doc": "Added by the migration drill: a field with a default, readable both ways."}


def next_frame_chunk(field: dict[str, Any] = NEW_FIELD) -> dict[str, Any]:
    """The current FrameChunk schema with ``field`` appended."""
    schema = copy.deepcopy(EVENTS["FrameChunk"].schema)
    schema["fields"].append(field)
    return schema


def _version(hist: Path) -> str:
    return f"v{len(list(hist.glob('v*.avsc'))) + 1}.avsc"


def releases(root: Path, schema: dict[str, Any] | None = None) -> tuple[Path, Path]:
    """``(old, new)`` schema folders under ``root`` for moving FrameChunk to ``schema``."""
    schema = schema or next_frame_chunk()
    text = json.dumps(schema, indent=1)
    old, new = root / "schemas-old", root / "schemas-new"
    for d in (old, new):
        shutil.copytree(SCHEMA_DIR, d)
        hist = d / "history" / "FrameChunk"
        (hist / _version(hist)).write_text(text)
    (new / EVENTS["FrameChunk"].file.name).write_text(text)
    return old, new


def next_fingerprint(schema: dict[str, Any] | None = None) -> tuple[bytes, Any]:
    """The next version's wire fingerprint and parsed schema, computed as the catalog does."""
    parsed, fp = _parse(schema or next_frame_chunk())
    return fp, parsed


def encode_next(record: dict[str, Any]) -> bytes:
    """``record`` as the next release's writer encodes it (single-object encoding)."""
    fp, parsed = next_fingerprint()
    buf = io.BytesIO()
    schemaless_writer(buf, parsed, record, strict_allow_default=True)
    return MAGIC + fp + buf.getvalue()
