"""Chunk content checks before anything is produced (pure): Annex-B, keyframe, parameter sets."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.ingest.framing import Chunk
from pipeline.ingest.problems import IngestError
from pipeline.media.annexb import MediaError, is_keyframe, parameter_sets, parse_config

__all__ = ["STREAM_ID_RE", "ChunkInfo", "inspect_chunk"]

#: Stream ids: letters, digits, dot, dash, underscore; 1..64 characters; no leading dot/dash.
STREAM_ID_RE = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
_STARTS = (b"\x00\x00\x01", b"\x00\x00\x00\x01")


@dataclass(frozen=True)
class ChunkInfo:
    """What the first frame of a chunk tells the session logic."""

    keyframe_first: bool
    config: bytes | None  # parameter sets carried by the first frame (Annex-B), if all present
    width: int
    height: int


def inspect_chunk(chunk: Chunk) -> ChunkInfo:
    """Check every frame is Annex-B and read the first frame's keyframe/parameter sets (422)."""
    for i, f in enumerate(chunk.frames):
        if not f.data.startswith(_STARTS):
            raise IngestError(422, "not_annexb",
                              f"frame {i} does not start with an Annex-B start code")
    first = chunk.frames[0]
    rap = first.keyframe and is_keyframe(chunk.codec, first.data)
    config = parameter_sets(chunk.codec, first.data)
    width = height = 0
    if config is not None:
        try:
            info = parse_config(chunk.codec, config)
        except MediaError as exc:
            raise IngestError(422, "bad_parameter_sets",
                              f"{chunk.codec} parameter sets are unreadable: {exc}") from None
        width, height = info.width, info.height
    return ChunkInfo(rap, config, width, height)
