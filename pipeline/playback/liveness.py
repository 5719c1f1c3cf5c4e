"""What a viewer is told about a stream: live, processing behind, offline or waiting (pure).

``device_state`` is written by the worker, so a worker that is behind makes a streaming camera
look silent. The bridge acknowledged the frames and its view (connected, last heard, by its own
clock) does not depend on the worker. Both clocks are the bridge's (a chunk's ``ingest_time`` is
stamped there), so ``bridge last heard - newest frame in device state`` is how far processing
is behind, with no cross-host skew. More than ``slack`` of it is "behind", whether or not the
camera still sends (a backlog of a stopped camera is still unprocessed). Without an answer from
the bridge, device state alone decides, as before: live or offline.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.views.device_state import effective_online

__all__ = ["STATES", "BridgeView", "Liveness", "classify", "default_slack_us"]

STATES = ("live", "behind", "offline", "waiting")


@dataclass(frozen=True)
class BridgeView:
    """The bridge's view of one stream; ``silent_us`` is its now minus its last heard."""

    connected: bool
    last_seen_us: int
    silent_us: int


@dataclass(frozen=True)
class Liveness:
    """The derived state; ``online``: frames reach the bridge now; ``behind_s`` is None when
    the bridge did not answer."""

    state: str
    online: bool
    behind_s: float | None
    offline_since_us: int | None


def default_slack_us(segment_target_s: float) -> int:
    """Normal bridge-to-device-state delay plus one refresh of either side: not "behind" yet."""
    return int((2 * segment_target_s + 1) * 1_000_000)


def _processed_us(row: Mapping[str, Any] | None) -> int:
    if not row:
        return 0
    return max(int(row.get("last_frame_ingest") or 0), int(row.get("last_seen") or 0))


def classify(row: Mapping[str, Any] | None, bridge: BridgeView | None, now_us: int,
             idle_us: int, slack_us: int) -> Liveness:
    """Derive the state from a ``device_state`` row (None: none yet) and the bridge's view
    (None: the bridge did not answer; ``connected=False, last_seen_us=0``: it does not know)."""
    has_video = bool(row) and int(row.get("segments") or 0) > 0  # type: ignore[union-attr]
    processed = _processed_us(row)
    if bridge is None:
        if row and effective_online(row, now_us, idle_us):
            return Liveness("live" if has_video else "waiting", True, None, None)
        return Liveness("offline" if row else "waiting", False, None, processed or None)
    heard = bridge.connected and bridge.silent_us < idle_us
    lag_us = max(0, bridge.last_seen_us - processed) if bridge.last_seen_us else 0
    behind_s = round(lag_us / 1e6, 1) if row else None
    if row and lag_us > slack_us:
        return Liveness("behind", heard, behind_s, None)
    if heard:
        return Liveness("live" if has_video else "waiting", True, behind_s, None)
    if not row:
        return Liveness("waiting", False, None, None)
    return Liveness("offline", False, behind_s, max(processed, bridge.last_seen_us) or None)
