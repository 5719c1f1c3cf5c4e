"""camlog's topic names: every module names a topic through these constants, never a literal."""

from __future__ import annotations

__all__ = ["ALL", "CAMERAS", "DLQ", "FRAMES", "PLAYBACK", "SEGMENTS", "SESSIONS"]

FRAMES = "camlog.frames"  # FrameChunk: every media chunk a camera sent
SEGMENTS = "camlog.segments"  # SealedSegment, SealedPart: the segmenter's output
SESSIONS = "camlog.sessions"  # SessionChange: a stream started, stopped, changed
PLAYBACK = "camlog.playback"  # PlaybackEvent: viewers' requests
DLQ = "camlog.dlq"  # DeadLetter: records a stage could not handle
CAMERAS = "camlog.cameras"  # CameraConfig: the compacted RTSP pull list

#: Every camlog topic, in the order the event catalog declares them.
ALL = (FRAMES, SEGMENTS, SESSIONS, PLAYBACK, DLQ, CAMERAS)
