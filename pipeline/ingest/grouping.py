"""The part-sized chunk rule shared by the device SDK and the RTSP puller (pure, no clock).

Frames are grouped until the next one would take the group past the part target (judged with
the last frame interval), and a keyframe always starts a new group, so one chunk is one LL-HLS
part and grouping adds no latency beyond the part itself. ``chunk_frames=N`` groups by count.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.ingest.framing import Frame

__all__ = ["ChunkGrouper", "Group"]


@dataclass(frozen=True)
class Group:
    """A closed group: the time stamped when it opened (µs) and its frames in decode order."""

    time_us: int
    frames: tuple[Frame, ...]


class ChunkGrouper:
    """Frames in, closed groups out."""

    def __init__(self, part_ticks: int, chunk_frames: int | None = None):
        self.part_ticks, self.chunk_frames = part_ticks, chunk_frames
        self._last_dts: int | None = None
        self._step = 0
        self._open: list[Frame] = []
        self._open_time = 0

    def add(self, frame: Frame, time_us: int) -> list[Group]:
        """Place one frame (``time_us`` is kept if it opens a group); the groups it closed."""
        out: list[Group] = []
        if self._last_dts is not None and frame.dts > self._last_dts:
            self._step = frame.dts - self._last_dts  # the frame interval, for the part rule
        self._last_dts = frame.dts
        if self._open and (frame.keyframe or (
                self.chunk_frames is None
                and frame.dts + self._step - self._open[0].dts > self.part_ticks)):
            out += self.flush()  # a keyframe starts a group; so does a frame that would not fit
        if not self._open:
            self._open_time = time_us
        self._open.append(frame)
        if self._full():
            out += self.flush()
        return out

    def _full(self) -> bool:
        """By count, or: one more frame (at the last frame interval) would pass the part target."""
        if self.chunk_frames is not None:
            return len(self._open) >= self.chunk_frames
        if not self._step:
            return False
        return self._open[-1].dts + 2 * self._step - self._open[0].dts > self.part_ticks

    def flush(self) -> list[Group]:
        """Close the open group (if any)."""
        if not self._open:
            return []
        group = Group(self._open_time, tuple(self._open))
        self._open = []
        return [group]

    def reset(self) -> list[Group]:
        """Close the open group and forget the frame interval (a new session starts)."""
        out = self.flush()
        self._last_dts, self._step = None, 0
        return out

    @property
    def open_frames(self) -> int:
        """Frames in the open group."""
        return len(self._open)
