"""Values the cutter hands out: a stream configuration, placed frames, and segments to seal."""

from __future__ import annotations

import base64
import functools
import hashlib
from dataclasses import dataclass, field
from typing import Any

from pipeline.media.annexb import parse_config

__all__ = ["Cut", "Frame", "PartCut", "Step", "StreamConfig", "part_id", "segment_id"]


def segment_id(chunk_seq: int, index: int) -> str:
    """Deterministic segment id from its first frame: chunk seq and frame index within the chunk."""
    return f"{chunk_seq:012d}-{index:04d}"


def part_id(seg_id: str, index: int) -> str:
    """Deterministic part id: the segment's id and the part's index within it."""
    return f"{seg_id}.{index:03d}"


@dataclass(frozen=True)
class StreamConfig:
    """One distinct decoder configuration; everything an init segment depends on."""

    codec: str  # "H264" | "H265"
    config: bytes  # Annex-B parameter sets (VPS/SPS/PPS)
    width: int
    height: int
    timescale: int
    codec_string: str  # RFC 6381

    @classmethod
    def parse(cls, codec: str, config: bytes, timescale: int) -> StreamConfig:
        """Build from parameter sets; raises ``MediaError`` when the SPS cannot be read."""
        info = parse_config(codec, config)
        return cls(codec, config, info.width, info.height, timescale, info.codec_string)

    @functools.cached_property
    def init_id(self) -> str:
        """Content address of the init segment: a hash of the codec parameters, not of bytes."""
        h = hashlib.sha256(f"{self.codec}|{self.timescale}|{self.width}x{self.height}|".encode())
        h.update(self.config)
        return h.hexdigest()[:24]

    def to_json(self) -> dict[str, Any]:
        """JSON-able form for snapshots."""
        return {"codec": self.codec, "config": base64.b64encode(self.config).decode(),
                "width": self.width, "height": self.height, "timescale": self.timescale,
                "codec_string": self.codec_string}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> StreamConfig:
        """Inverse of ``to_json``."""
        return cls(d["codec"], base64.b64decode(d["config"]), d["width"], d["height"],
                   d["timescale"], d["codec_string"])


@dataclass(frozen=True)
class Frame:
    """An access unit placed on a stream's timeline, identified by (chunk seq, index)."""

    chunk_seq: int
    index: int
    last_in_chunk: bool
    pts: int
    dts: int
    keyframe: bool
    data: bytes  # the mp4 sample: length-prefixed NAL units, parameter sets and AUDs left out
    wall_us: int  # bridge clock estimate of capture: chunk ingest time minus what follows in it
    producer_us: int
    ingest_us: int

    @property
    def id(self) -> tuple[int, int]:
        """Position in the stream: (chunk seq, frame index)."""
        return (self.chunk_seq, self.index)


@dataclass(frozen=True)
class PartCut:
    """A CMAF part (one moof+mdat) the cutter closed: stored and announced before its segment."""

    stream_id: str
    segment_id: str
    sequence: int  # the segment's media sequence number
    index: int  # within the segment
    config: StreamConfig
    frames: tuple[Frame, ...]
    durations: tuple[int, ...]  # per frame, in config.timescale
    decode_time: int  # tfdt in config.timescale
    start_time: int  # µs on the stream's wall timeline
    end_time: int
    independent: bool  # starts with a keyframe
    discontinuity: bool  # first part of a segment after a break
    discontinuity_count: int = 0  # as its segment's (``Cut.discontinuity_count``)

    @property
    def id(self) -> str:
        """``part_id(segment_id, index)``."""
        return part_id(self.segment_id, self.index)

    @property
    def ticks(self) -> int:
        """Duration in the configuration's timescale."""
        return sum(self.durations)


@dataclass(frozen=True)
class Cut:
    """A segment the cutter decided to seal: its frames, their durations and all its metadata."""

    stream_id: str
    segment_id: str
    sequence: int
    config: StreamConfig
    frames: tuple[Frame, ...]
    durations: tuple[int, ...]  # per frame, in config.timescale
    decode_time: int  # tfdt in config.timescale; equals the previous segment's decode_time + ticks
    start_time: int  # µs on the stream's wall timeline
    end_time: int
    producer_start: int
    producer_end: int
    ingest_start: int
    ingest_end: int
    independent: bool
    discontinuity: bool
    resume: dict[str, Any] = field(repr=False, default_factory=dict)  # cutter snapshot after it
    parts: tuple[PartCut, ...] = ()  # its frames, in the parts already handed out
    discontinuity_count: int = 0  # discontinuities in the stream up to and including this one
    ends_run: bool = False  # sealed because its run ended (idle, flush or a break), not at a cut

    @property
    def ticks(self) -> int:
        """Duration in the configuration's timescale."""
        return sum(self.durations)

    @property
    def duration_us(self) -> int:
        """Duration in microseconds on the wall timeline."""
        return self.end_time - self.start_time

    @property
    def first_chunk_seq(self) -> int:
        """Chunk seq of the first frame."""
        return self.frames[0].chunk_seq

    @property
    def last_chunk_seq(self) -> int:
        """Chunk seq of the last frame."""
        return self.frames[-1].chunk_seq


@dataclass
class Step:
    """What one call into the cutter produced.

    ``parts`` are to be stored and announced in order, before ``segments`` (which they compose,
    possibly with parts of earlier steps) are sealed in order; ``rejected`` are
    ``(chunk seq, reason)`` pairs for the dead-letter queue; once the segments are stored, every
    chunk with seq ``<= settled_through`` is fully handled and its Kafka offset may be released.
    """

    parts: list[PartCut] = field(default_factory=list)
    segments: list[Cut] = field(default_factory=list)
    rejected: list[tuple[int, str]] = field(default_factory=list)
    settled_through: int | None = None

    def extend(self, later: Step) -> None:
        """Append a later step of the same stream (one batch of chunks, one seal chain)."""
        self.parts += later.parts
        self.segments += later.segments
        self.rejected += later.rejected
        if later.settled_through is not None:
            self.settled_through = later.settled_through
