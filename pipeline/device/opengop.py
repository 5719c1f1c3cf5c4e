"""The open GOP: the chunks a bridge stored since the last keyframe chunk (pure, no I/O).

When a device moves to another region's bridge mid-GOP, that region's segmenter cannot decode
the frames before the next keyframe, so it would dead-letter frames the device already had
acknowledged. The uploader keeps the open GOP and re-sends it first on every move: the new
region then holds the GOP from its keyframe. A keyframe always starts a chunk, so "since the
last keyframe chunk" is exact.

* a stored keyframe chunk opens a new GOP; a lost one (refused, dropped from the buffer) closes
  it, since nothing after it decodes until the next keyframe anyway;
* a stored chunk after it joins it; chunks lost mid-GOP are simply absent (a hole the segmenter
  sees in any region alike);
* the GOP is bounded (``limit`` chunks): past that it is forgotten until the next keyframe, and a
  move then continues mid-GOP as before (a bounded memory beats an unbounded re-send);
* nothing is re-sent when the next chunk to send starts with a keyframe.
"""

from __future__ import annotations

from pipeline.ingest.framing import Chunk

__all__ = ["OpenGop"]


class OpenGop:
    """Stored chunks since the last stored keyframe chunk, at most ``limit`` of them."""

    def __init__(self, limit: int):
        if limit < 1:
            raise ValueError("an open GOP holds at least one chunk")
        self.limit = limit
        self._chunks: list[Chunk] = []

    def settled(self, chunk: Chunk, stored: bool) -> None:
        """``chunk`` is done with: ``stored`` by a bridge (acked), or lost (refused, dropped)."""
        if chunk.frames[0].keyframe:
            self._chunks = [chunk] if stored else []
        elif stored and self._chunks:
            self._chunks.append(chunk)
            if len(self._chunks) > self.limit:
                self._chunks = []

    def resend_for(self, next_chunk: Chunk) -> list[Chunk]:
        """What to re-send to a new bridge before ``next_chunk``, oldest first."""
        if next_chunk.frames[0].keyframe:
            return []
        return list(self._chunks)

    def __len__(self) -> int:
        return len(self._chunks)
