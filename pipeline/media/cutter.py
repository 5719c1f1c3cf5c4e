"""Per-stream segment cutting as a pure stateful object (bytewax style): chunks in, cuts out.

Rules, in order of precedence:

* chunks are placed in ``seq`` order: a duplicate (seq already seen) is dropped; a chunk that
  arrives early is held until the missing seq arrives, or the bridge's ``gap_before`` vouches for
  the hole, or ``reorder_window`` chunks are waiting, or it waited ``reorder_wait_s`` (``tick``);
  a chunk older than a hole we already skipped cannot be placed and is rejected;
* a *break* (session, codec or parameter-set change, missing chunks, a time jump or a backwards
  decode time) seals what is pending, marks the next segment ``discontinuity`` and waits for a
  keyframe; frames before it cannot be decoded and are rejected;
* where parts and segments end is the ``parts.PartPlanner``'s decision (one per run): parts of
  at most ``part_target_s`` are handed out (``Step.parts``) as soon as they close, so they can be
  stored and served before their segment; a segment starts at the first keyframe at or after
  ``target_s`` (or is forced so it never passes ``max_s``, then ``independent=False``) and is
  exactly its parts, in order;
* ``tick`` seals a stream that has been quiet for ``idle_s`` (the last frame gets the previous
  frame's duration).

Within a run decode times never have holes: each segment's tfdt is the previous one's plus its
duration, so the init plus all media segments of one configuration form one valid file. At a
discontinuity the next run's decode time moves on by the silence before it, so runs never
overlap in decode time, even when another region cut a run in between (a device that moved).
The silence is measured on the device's clock (``producer_time``), which stamps a re-sent chunk
as it stamped the original: the bridge clock would count a re-send's delay as media time, and
two regions, delayed differently, would overlap by the difference. Wall-clock start times
follow the bridge clock at every discontinuity and the media clock in between.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pipeline.media.annexb import MediaError, parameter_sets, to_length_prefixed
from pipeline.media.parts import PartPlanner, Plan, PlannedPart
from pipeline.media.segment import Cut, Frame, PartCut, Step, StreamConfig

__all__ = ["Cutter"]

_US = 1_000_000
_SNAPSHOT_VERSION = 1


class Cutter:
    """Cuts one stream's frame chunks into segments; no I/O, clock injected."""

    def __init__(self, stream_id: str, *, target_s: float = 2.0, max_s: float = 6.0,
                 part_target_s: float = 0.5, gap_s: float = 2.0, idle_s: float = 10.0,
                 reorder_window: int = 8,
                 reorder_wait_s: float = 2.0, now: Callable[[], float] | None = None,
                 snapshot: Mapping[str, Any] | None = None):
        self.stream_id = stream_id
        self.target_s, self.max_s, self.gap_s, self.idle_s = target_s, max_s, gap_s, idle_s
        self.part_target_s = part_target_s
        self.planner: PartPlanner | None = None  # of the current run (one timescale)
        self.parts: list[PartCut] = []  # parts of the open segment, handed out already
        self.discontinuities = 0  # in the stream so far (EXT-X-DISCONTINUITY-SEQUENCE source)
        self._resume_planner: dict[str, Any] | None = None  # the planner's state at the last seal
        self._last_plan: dict[str, Any] | None = None  # what it would be, were the segment to end
        self.reorder_window, self.reorder_wait_s = reorder_window, reorder_wait_s
        self._now = now
        self.sequence = 0  # next segment's sequence number
        self.decode_end = 0  # tfdt of the next segment
        self.dts_offset: int | None = None  # output dts = dts - offset; None until a run starts
        self.anchor_us = self.anchor_tfdt = self.last_end_us = 0
        self.last_producer_end_us = 0  # device clock at the end of the last sealed segment
        self.done: tuple[int, int] = (-1, -1)  # last frame sealed or dropped
        self.last_seq: int | None = None  # last chunk seq placed (or deemed placed)
        self.last_dts: int | None = None
        self.last_delta = 0
        self.session: str | None = None
        self.config: StreamConfig | None = None
        self.discontinuity = False
        self.need_key = True
        self.pending: list[Frame] = []
        self.held: dict[int, tuple[Mapping[str, Any], float]] = {}
        self.skipped: list[int] = []  # seqs given up on (bounded), to tell late from duplicate
        self.last_feed = 0.0
        self._done_complete = True
        if snapshot:
            self._restore(snapshot)

    # -- public ----------------------------------------------------------------------------
    def feed(self, chunk: Mapping[str, Any], now: float | None = None) -> Step:
        """Take one decoded FrameChunk; return the segments to seal and chunks to reject."""
        now = self._clock(now)
        self.last_feed = now
        step = Step()
        seq = chunk["seq"]
        if (self.last_seq is not None and seq <= self.last_seq) or seq in self.held:
            if seq in self.skipped:
                step.rejected.append((seq, (f"late chunk: seq {seq} arrived after the segmenter "
                                            f"moved past it (now at {self.last_seq})")))
            return self._settle(step)
        if self.last_seq is None or seq == self.last_seq + 1 \
                or seq == self.last_seq + 1 + chunk.get("gap_before", 0):
            self._place(chunk, step)
        else:
            self.held[seq] = (chunk, now)
        self._release(step, now, force=len(self.held) > self.reorder_window)
        return self._settle(step)

    def tick(self, now: float | None = None) -> Step:
        """Time passes: release long-held chunks, seal the segment of a stream gone quiet."""
        now = self._clock(now)
        step = Step()
        if self.held and now - min(t for _, t in self.held.values()) >= self.reorder_wait_s:
            self._release(step, now, force=True)
        if self.pending and now - self.last_feed >= self.idle_s:
            self._flush_run(step)
        return self._settle(step)

    def flush(self) -> Step:
        """Seal everything now (stream disconnected, or shutting down cleanly)."""
        step = Step()
        self._release(step, 0.0, force=True, drain=True)
        self._flush_run(step)
        return self._settle(step)

    @property
    def buffered_frames(self) -> int:
        """Frames held in memory (pending segment plus reorder buffer)."""
        return len(self.pending) + sum(len(c["frames"]) for c, _ in self.held.values())

    def snapshot(self) -> dict[str, Any]:
        """The small state that must survive a crash, valid at the last seal (JSON-able)."""
        return {
            "v": _SNAPSHOT_VERSION, "sequence": self.sequence, "decode_end": self.decode_end,
            "dts_offset": self.dts_offset, "anchor_us": self.anchor_us,
            "anchor_tfdt": self.anchor_tfdt, "last_end_us": self.last_end_us,
            "last_producer_end_us": self.last_producer_end_us,
            "done": list(self.done), "done_complete": self._done_complete,
            "last_dts": self.last_dts, "last_delta": self.last_delta, "session": self.session,
            "config": self.config.to_json() if self.config else None,
            "discontinuity": self.discontinuity, "need_key": self.need_key,
            "planner": self._resume_planner, "discontinuities": self.discontinuities,
        }

    # -- internals -------------------------------------------------------------------------
    def _clock(self, now: float | None) -> float:
        if now is not None:
            return now
        return self._now() if self._now else 0.0

    def _restore(self, s: Mapping[str, Any]) -> None:
        if s.get("v") != _SNAPSHOT_VERSION:
            raise ValueError(f"unknown cutter snapshot version {s.get('v')!r}")
        self.sequence, self.decode_end = s["sequence"], s["decode_end"]
        self.dts_offset, self.anchor_us = s["dts_offset"], s["anchor_us"]
        self.anchor_tfdt, self.last_end_us = s["anchor_tfdt"], s["last_end_us"]
        self.last_producer_end_us = s.get("last_producer_end_us", 0)  # absent before 2026-12
        self.done = (s["done"][0], s["done"][1])
        self._done_complete = s["done_complete"]
        # A chunk split by the last seal comes again after a crash: it must look contiguous.
        self.last_seq = self.done[0] if self._done_complete else self.done[0] - 1
        self.last_dts, self.last_delta, self.session = s["last_dts"], s["last_delta"], s["session"]
        self.config = StreamConfig.from_json(s["config"]) if s["config"] else None
        self.discontinuity, self.need_key = s["discontinuity"], s["need_key"]
        self._resume_planner = s.get("planner")
        self.discontinuities = s.get("discontinuities", 0)

    def _settle(self, step: Step) -> Step:
        if self.pending:
            step.settled_through = self.pending[0].chunk_seq - 1
        else:
            step.settled_through = self.last_seq
        return step

    def _release(self, step: Step, now: float, force: bool, drain: bool = False) -> None:
        while self.held:
            nxt = self.last_seq + 1 if self.last_seq is not None else min(self.held)
            if nxt not in self.held:
                if not (force or drain):
                    return
                nxt = min(self.held)
                force = drain or len(self.held) > self.reorder_window
            chunk, _ = self.held.pop(nxt)
            self._place(chunk, step)

    def _chunk_config(self, chunk: Mapping[str, Any]) -> StreamConfig | None:
        codec, ts = chunk["codec"], chunk.get("timescale") or 90000
        raw = chunk.get("codec_config")
        if raw is None:
            key = next((f["data"] for f in chunk["frames"] if f["keyframe"]), None)
            raw = parameter_sets(codec, key) if key is not None else None
        if raw is None:
            cur = self.config
            if cur is not None and cur.codec == codec and cur.timescale == ts:
                return cur
            return None
        if self.config is not None and (codec, raw, ts) == (
                self.config.codec, self.config.config, self.config.timescale):
            return self.config
        return StreamConfig.parse(codec, raw, ts)

    def _place(self, chunk: Mapping[str, Any], step: Step) -> None:
        seq, frames = chunk["seq"], chunk["frames"]
        gap = self.last_seq is not None and seq != self.last_seq + 1
        if gap:
            lost = range(max(self.last_seq + 1, seq - 256), seq)
            self.skipped = (self.skipped + list(lost))[-256:]
        self.last_seq = seq
        try:
            cfg = self._chunk_config(chunk)
        except MediaError as exc:
            step.rejected.append((seq, f"unreadable parameter sets: {exc}"))
            return self._drop_chunk(seq, len(frames))
        if cfg is None:
            step.rejected.append((seq, "no codec configuration (parameter sets) known yet"))
            return self._drop_chunk(seq, len(frames))
        changed = self.config is not None and cfg.init_id != self.config.init_id
        new_session = self.session is not None and chunk.get("session_id") != self.session
        if gap or changed or new_session:
            self._break(step)  # seals with the old config and session, so snapshots stay exact
        if self.config is None or changed:
            self.need_key = True
        self.config, self.session = cfg, chunk.get("session_id")
        ts = cfg.timescale
        gap_ticks = int(self.gap_s * ts)
        last_pts = frames[-1]["pts"] if frames else 0
        dropped = 0
        for i, f in enumerate(frames):
            if (seq, i) <= self.done:
                continue
            if self.last_dts is not None and not 0 < f["dts"] - self.last_dts <= gap_ticks:
                self._break(step)
            if self.need_key and not f["keyframe"]:
                dropped += 1
                self.done = (seq, i)
                self._done_complete = i == len(frames) - 1
                continue
            # muxed into its mp4 sample form now, so sealing (a burst at keyframes) has less to do
            frame = Frame(seq, i, i == len(frames) - 1, f["pts"], f["dts"], f["keyframe"],
                          to_length_prefixed(cfg.codec, f["data"]),
                          chunk["ingest_time"] - (last_pts - f["pts"]) * _US // ts,
                          chunk["producer_time"] + (f["pts"] - frames[0]["pts"]) * _US // ts,
                          chunk["ingest_time"])
            self._add(frame, step)
        if self.planner is not None:
            self._apply(self.planner.end_chunk(), step)
        if dropped:
            step.rejected.append((seq, (f"{dropped} frame(s) before the first keyframe after a "
                                        "start or discontinuity cannot be decoded; dropped")))

    def _drop_chunk(self, seq: int, n: int) -> None:
        if not self.pending and n:
            self.done, self._done_complete = (seq, n - 1), True

    def _break(self, step: Step) -> None:
        self._flush_run(step)
        self.planner = None
        self.discontinuity, self.need_key = True, True
        self.dts_offset, self.last_dts = None, None

    def _flush_run(self, step: Step) -> None:
        if self.planner is not None and self.pending:
            self._apply(self.planner.flush(), step, run_ended=True)

    def _add(self, f: Frame, step: Step) -> None:
        cfg = self.config
        assert cfg is not None
        if self.planner is None:
            self.planner = PartPlanner(
                timescale=cfg.timescale, part_target_s=self.part_target_s,
                target_s=self.target_s, max_s=self.max_s, idle_s=self.idle_s,
                snapshot=self._resume_planner if self.dts_offset is not None else None)
        if self.last_dts is not None:
            self.last_delta = f.dts - self.last_dts
        self.last_dts = f.dts
        self.need_key = False
        self.pending.append(f)
        self._apply(self.planner.feed(f), step)

    def _apply(self, plan: Plan, step: Step, run_ended: bool = False) -> None:
        for event in plan.events:
            if isinstance(event, PlannedPart):
                self._part(event, step)
            else:
                self._seal(step, run_ended)

    def _wall(self, tfdt: int) -> int:
        ts = self.config.timescale  # type: ignore[union-attr]
        return self.anchor_us + (tfdt - self.anchor_tfdt) * _US // ts

    def _part(self, p: PlannedPart, step: Step) -> None:
        cfg = self.config
        assert cfg is not None
        first = p.frames[0]
        if self.parts:
            prev = self.parts[-1]
            tfdt = prev.decode_time + prev.ticks
        else:
            if self.dts_offset is None:  # a new run: anchor the wall clock on the bridge clock
                # and its decode time moves on by the silence before it, so runs never
                # overlap in decode time (a run another region cut meanwhile, from the same
                # stored point, fits in between); on the device clock when known
                if self.last_producer_end_us:
                    silence = first.producer_us - self.last_producer_end_us
                else:
                    silence = first.wall_us - self.last_end_us if self.last_end_us else 0
                if silence > 0:
                    self.decode_end += silence * cfg.timescale // _US
                self.anchor_tfdt = self.decode_end
                self.anchor_us = max(first.wall_us, self.last_end_us)
            # Decode times never have holes; a drift (e.g. after an idle seal guessed the last
            # frame's duration) moves the offset instead of the timeline.
            self.dts_offset = first.dts - self.decode_end
            tfdt = self.decode_end
        # what the planner would resume from, were the segment to end with this part
        self._last_plan = {**p.resume, "segment": None, "independent": True, "part": 0,
                           "seg_ticks": 0}
        part = PartCut(self.stream_id, p.segment_id, self.sequence, p.index, cfg, p.frames,
                       p.durations, tfdt, self._wall(tfdt), self._wall(tfdt + p.ticks),
                       p.independent, self.discontinuity and not self.parts,
                       self.discontinuities + self.discontinuity)
        self.parts.append(part)
        step.parts.append(part)

    def _seal(self, step: Step, run_ended: bool) -> None:
        parts, self.parts = tuple(self.parts), []
        frames = tuple(f for p in parts for f in p.frames)
        assert tuple(f.id for f in self.pending[:len(frames)]) == tuple(f.id for f in frames)
        self.pending = self.pending[len(frames):]
        cfg = self.config
        assert cfg is not None
        ts = cfg.timescale
        durations = tuple(d for p in parts for d in p.durations)
        first, last = frames[0], frames[-1]
        tfdt, ticks = parts[0].decode_time, sum(durations)
        start, end = self._wall(tfdt), self._wall(tfdt + ticks)
        self.decode_end = tfdt + ticks
        self.last_end_us = end
        self.last_producer_end_us = last.producer_us + durations[-1] * _US // ts
        self.done, self._done_complete = last.id, last.last_in_chunk
        self._resume_planner = None if run_ended else self._last_plan
        seq_no, disc = self.sequence, self.discontinuity
        self.discontinuities += disc
        self.sequence += 1
        self.discontinuity = False
        resume = self.snapshot()
        resume["last_dts"] = last.dts  # frames after it may be fed already; they come again
        step.segments.append(Cut(
            self.stream_id, parts[0].segment_id, seq_no, cfg, frames, durations, tfdt,
            start, end, first.producer_us, last.producer_us + durations[-1] * _US // ts,
            first.ingest_us, last.ingest_us, first.keyframe, disc, resume, parts,
            self.discontinuities, run_ended))
