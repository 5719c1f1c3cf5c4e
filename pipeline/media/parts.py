"""Where CMAF parts and segments end, as a pure stateful object: frames in, boundaries out.

How it plugs in. The ``Cutter`` keeps what it does today (reordering, breaks, configurations,
the wall clock) and hands each placed frame to one ``PartPlanner`` it owns: ``feed`` per frame,
``end_chunk`` after a chunk's last frame, ``flush`` on a break, an idle seal or shutdown. Each
``PlannedPart`` is rendered (one moof+mdat) and stored as soon as it is out; ``SegmentClosed``
then says which stored parts form the segment, whose bytes are their concatenation (stored once,
read as parts). The Cutter's snapshot, written with each part, carries ``PlannedPart.resume``:
after a crash the frames after that part are fed again and give the same parts.

Rules, all decided from the frames' decode times and the chunk boundaries, never from a clock:

* a part never exceeds ``part_target`` and, except the last of a segment, is at least 85 % of it
  whenever frame intervals are at most 15 % of it (e.g. >= 14 fps at 0.5 s); slower streams get
  short parts rather than long ones, since a long part is the error players reject outright;
* a part closes (a) when a frame arrives that shows it full: with the new frame at its estimated
  length (the interval before it) it would exceed the target; a frame that already made it
  exceed is moved to the next part; or (b) at the end of a chunk, when the part with its last
  frame at the estimated length is at least 85 % of the target. (b) is what makes one-chunk-per-
  part cameras cost no extra latency: nobody waits for the next chunk to learn a duration;
* the estimated length given to the last frame of a part closed by (b) is the interval before
  it; the difference to the real interval (learned from the next frame) is a *lead* the next
  frame's duration works off, so the timeline never drifts by more than one estimate;
* a frame interval longer than the part target (a stall shorter than the Cutter's gap) is
  clamped to the target and the excess dropped from the timeline (``dropped_ticks``);
* a keyframe at or after ``target_s`` into the segment starts a new segment (so a new part,
  INDEPENDENT); a part that would start beyond ``max_s - part_target`` starts a new segment
  without a keyframe, so a segment never exceeds ``max_s`` and TARGETDURATION = ceil(max_s)
  holds for ever. A keyframe before ``target_s`` does not start a part (that would make parts
  short). Segment ends are decided when the next frame arrives (or at ``flush``).

Ids: a segment is named by its first frame (``segment_id``), a part by ``part_id(segment, n)``.

The SDK can cut chunks with the same object: ``feed`` each frame, and when ``full`` call
``end_chunk`` and send the part's frames as one chunk; the segmenter then closes the very same
part at that chunk's end.

Departures from gohlslib (``muxer_segmenter.go``/``muxer_stream.go``): it closes a part when
the next sample arrives and the part has *reached* the part duration, then derives PART-TARGET
from the longest part (so it may change, which it logs as an error for iOS) and adapts the part
duration to the sample durations. Here PART-TARGET is fixed by configuration and parts never
exceed it; parts may close at a chunk end on an estimate, which gohlslib, living in RAM with one
sample of look-ahead, never needs, but which a rebuild from the log reproduces exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from pipeline.media.segment import part_id, segment_id

__all__ = ["MIN_PART_RATIO", "PartPlanner", "Plan", "PlannedPart", "SegmentClosed", "part_id"]

#: Apple's rule: every part but the last of a segment is at least this share of PART-TARGET.
MIN_PART_RATIO = 0.85
_SNAPSHOT_VERSION = 1


class Timed(Protocol):
    """What the planner reads of a frame (``segment.Frame`` has it)."""

    @property
    def id(self) -> tuple[int, int]: ...
    dts: int
    keyframe: bool


@dataclass(frozen=True)
class PlannedPart:
    """A closed part: its frames and their durations (ticks), ready to render and store."""

    segment_id: str
    index: int
    frames: tuple[Any, ...]
    durations: tuple[int, ...]
    independent: bool  # starts with a keyframe
    estimated: bool  # the last duration is an estimate (closed at a chunk end or flush)
    dropped_ticks: int = 0  # stall time clamped out of the timeline
    resume: dict[str, Any] = field(repr=False, default_factory=dict, compare=False)

    @property
    def id(self) -> str:
        """The part's id (``part_id``)."""
        return part_id(self.segment_id, self.index)

    @property
    def ticks(self) -> int:
        """Duration in the stream's timescale."""
        return sum(self.durations)


@dataclass(frozen=True)
class SegmentClosed:
    """The segment made of the parts ``0..parts-1`` of ``segment_id`` is complete."""

    segment_id: str
    parts: int
    ticks: int
    independent: bool


@dataclass
class Plan:
    """What one call produced, in order: parts to store, then segments they complete."""

    events: list[PlannedPart | SegmentClosed] = field(default_factory=list)

    @property
    def parts(self) -> list[PlannedPart]:
        """The closed parts only."""
        return [e for e in self.events if isinstance(e, PlannedPart)]

    @property
    def segments(self) -> list[SegmentClosed]:
        """The closed segments only."""
        return [e for e in self.events if isinstance(e, SegmentClosed)]


class _Slot:
    """A frame of the open part: the timeline lead before it and its duration once known."""

    __slots__ = ("dropped", "frame", "lead", "out")

    def __init__(self, frame: Timed, lead: int) -> None:
        self.frame, self.lead, self.out, self.dropped = frame, lead, None, 0


class PartPlanner:
    """Part and segment boundaries of one continuous run of frames; no I/O, clock injected."""

    def __init__(self, *, timescale: int = 90000, part_target_s: float = 0.5,
                 target_s: float = 2.0, max_s: float = 6.0, idle_s: float = 10.0,
                 now: Callable[[], float] | None = None,
                 snapshot: Mapping[str, Any] | None = None) -> None:
        if not 0 < part_target_s <= target_s <= max_s - part_target_s:
            raise ValueError("need 0 < part_target_s <= target_s <= max_s - part_target_s")
        self.timescale = timescale
        self.part_ticks = round(part_target_s * timescale)
        self.target_ticks = round(target_s * timescale)
        self.max_ticks = round(max_s * timescale)
        self.idle_s, self._now = idle_s, now
        self.open: list[_Slot] = []
        self.segment: str | None = None  # open segment's id
        self.seg_independent = True
        self.part_index = 0  # index of the next part in the segment
        self.seg_ticks = 0  # closed parts of the open segment
        self.prev: tuple[int, int, int] | None = None  # last closed frame: dts, lead, duration
        self.last_feed = 0.0
        if snapshot:
            self._restore(snapshot)

    # -- public ----------------------------------------------------------------------------
    def feed(self, frame: Timed, now: float | None = None) -> Plan:
        """Place the next frame (decode order); returns parts and segments it completed."""
        self.last_feed = self._clock(now)
        plan = Plan()
        if self.open:
            self._settle(frame.dts)
            if self._span() > self.part_ticks and len(self.open) > 1:
                self._close(plan, keep=1)  # the last frame made it too long: it moves on
        span = self.seg_ticks + self._span()
        if self.segment is not None and frame.keyframe and span >= self.target_ticks:
            self._close(plan)
            self._end_segment(plan)
        elif self.open:
            last = self.open[-1].frame
            if self._span() + (frame.dts - last.dts) > self.part_ticks:
                self._close(plan)
        self._append(plan, frame)
        return plan

    def end_chunk(self) -> Plan:
        """The chunk's last frame was fed: close the part if it is long enough on an estimate."""
        plan = Plan()
        est = self._estimate()
        if est is None:
            return plan
        if self._span() + est > self.part_ticks and len(self.open) > 1:
            self._close(plan, keep=1)
        if (self._span() + est) * 100 >= self.part_ticks * round(MIN_PART_RATIO * 100):
            self.open[-1].out = est
            self._close(plan, estimated=True)
        return plan

    def full(self) -> bool:
        """True when the open part has no room for one more frame of the last interval."""
        est = self._estimate()
        if est is None:
            return False
        interval = self.open[-1].frame.dts - self._prev_dts(len(self.open) - 1)
        return self._span() + est + interval > self.part_ticks

    def tick(self, now: float | None = None) -> Plan:
        """Time passes: a run quiet for ``idle_s`` is flushed (the Cutter's idle seal)."""
        if self.open and self._clock(now) - self.last_feed >= self.idle_s:
            return self.flush()
        return Plan()

    def flush(self) -> Plan:
        """End the run: close the open part and segment; the next frame starts a new run."""
        plan = Plan()
        if self.open:
            est = self._estimate()
            if est is None:  # a run of one frame: guess a frame interval, as the Cutter does
                est = min(max(1, self.timescale // 30), self.part_ticks)
            if self._span() + est > self.part_ticks and len(self.open) > 1:
                self._close(plan, keep=1)
            self.open[-1].out = est
            self._close(plan, estimated=True)
        if self.segment is not None:
            self._end_segment(plan)
        self.prev = None
        return plan

    @property
    def buffered(self) -> int:
        """Frames in the open part."""
        return len(self.open)

    def snapshot(self) -> dict[str, Any]:
        """State after the last closed part (JSON-able); the open part's frames are not in it."""
        return {"v": _SNAPSHOT_VERSION, "segment": self.segment,
                "independent": self.seg_independent, "part": self.part_index,
                "seg_ticks": self.seg_ticks, "prev": list(self.prev) if self.prev else None}

    # -- internals -------------------------------------------------------------------------
    def _clock(self, now: float | None) -> float:
        if now is not None:
            return now
        return self._now() if self._now else 0.0

    def _restore(self, s: Mapping[str, Any]) -> None:
        if s.get("v") != _SNAPSHOT_VERSION:
            raise ValueError(f"unknown part planner snapshot version {s.get('v')!r}")
        self.segment, self.seg_independent = s["segment"], s["independent"]
        self.part_index, self.seg_ticks = s["part"], s["seg_ticks"]
        self.prev = tuple(s["prev"]) if s["prev"] else None  # type: ignore[assignment]

    def _span(self) -> int:
        return sum(s.out for s in self.open if s.out is not None)

    def _prev_dts(self, i: int) -> int:
        if i > 0:
            return self.open[i - 1].frame.dts
        return self.prev[0] if self.prev else self.open[0].frame.dts

    def _estimate(self) -> int | None:
        """Duration the open part's last frame would get now: its preceding interval, less lead."""
        if not self.open or (len(self.open) == 1 and self.prev is None):
            return None
        last = self.open[-1]
        interval = last.frame.dts - self._prev_dts(len(self.open) - 1)
        return min(max(interval - last.lead, 1), self.part_ticks)

    def _settle(self, dts: int) -> None:
        """The next frame's decode time is known: give the open part's last frame its duration."""
        last = self.open[-1]
        want = dts - last.frame.dts - last.lead
        last.out = min(max(want, 1), self.part_ticks)
        last.dropped = max(0, want - last.out)

    def _next_lead(self, dts: int) -> int:
        """Lead of a frame at ``dts`` after the last closed frame (its duration already fixed)."""
        if self.prev is None:
            return 0
        p_dts, p_lead, p_out = self.prev
        want = dts - p_dts - p_lead
        return 0 if want > self.part_ticks else p_out - want

    def _append(self, plan: Plan, frame: Timed) -> None:
        if self.open:
            last = self.open[-1]
            lead = last.out - (frame.dts - last.frame.dts - last.lead)  # type: ignore[operator]
            self.open.append(_Slot(frame, 0 if last.dropped else lead))
            return
        self._start_part(plan, frame)
        self.open.append(_Slot(frame, self._next_lead(frame.dts)))

    def _start_part(self, plan: Plan, frame: Timed) -> None:
        if self.segment is not None and self.seg_ticks + self.part_ticks > self.max_ticks:
            self._end_segment(plan)  # forced: the next part could pass max_s
        if self.segment is None:
            self.segment = segment_id(*frame.id)
            self.seg_independent = bool(frame.keyframe)
            self.part_index, self.seg_ticks = 0, 0

    def _close(self, plan: Plan, keep: int = 0, estimated: bool = False) -> None:
        """Close the open part without its last ``keep`` frames (they start the next part)."""
        slots = self.open[:len(self.open) - keep]
        if not slots:
            return
        kept = self.open[len(slots):]
        assert self.segment is not None
        durations: tuple[int, ...] = tuple(s.out for s in slots)  # type: ignore[misc]
        last = slots[-1]
        seg, index = self.segment, self.part_index
        self.prev = (last.frame.dts, last.lead, durations[-1])
        self.part_index += 1
        self.seg_ticks += sum(durations)
        self.open = []
        plan.events.append(PlannedPart(seg, index, tuple(s.frame for s in slots), durations,
                                       bool(slots[0].frame.keyframe), estimated,
                                       sum(s.dropped for s in slots), self.snapshot()))
        for s in kept:  # re-place them: the next part may belong to a new segment
            self._start_part(plan, s.frame)
            self.open.append(s)

    def _end_segment(self, plan: Plan) -> None:
        assert self.segment is not None
        plan.events.append(SegmentClosed(self.segment, self.part_index, self.seg_ticks,
                                         self.seg_independent))
        self.segment, self.part_index, self.seg_ticks = None, 0, 0
