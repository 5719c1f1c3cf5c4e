"""The derived stream state (pure): a table of the cases users meet and hypothesis properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.playback.liveness import STATES, BridgeView, classify, default_slack_us

S = 1_000_000
NOW = 1_764_072_000 * S
IDLE = 10 * S
SLACK = default_slack_us(2.0)


def row(last_seen_ago: float, segments: int = 5, online: bool = True) -> dict:
    t = NOW - int(last_seen_ago * S)
    return {"stream_id": "cam-1", "online": online, "last_seen": t, "last_frame_ingest": t,
            "segments": segments}


def heard(ago: float, connected: bool = True) -> BridgeView:
    return BridgeView(connected, NOW - int(ago * S), int(ago * S))


CASES = {
    # name: (row, bridge view, state, online, behind_s)
    "streaming, processed": (row(0.5), heard(0.2), "live", True, 0.3),
    "worker stopped 30 s ago": (row(30), heard(0.2), "behind", True, 29.8),
    "camera stopped, all processed": (row(40, online=False), heard(40, False), "offline",
                                      False, 0.0),
    "camera stopped, backlog left": (row(60), heard(20, False), "behind", False, 40.0),
    "connected, no segment yet": (row(0.5, segments=0), heard(0.1), "waiting", True, 0.4),
    "bridge heard, worker wrote nothing": (None, heard(0.1), "waiting", True, None),
    "bridge forgot it (restart)": (row(100), BridgeView(False, 0, 0), "offline", False, 0.0),
    "no bridge, device state fresh": (row(1), None, "live", True, None),
    "no bridge, device state old": (row(30), None, "offline", False, None),
}


@pytest.mark.parametrize("name", CASES)
def test_cases(name):
    r, b, state, online, behind = CASES[name]
    live = classify(r, b, NOW, IDLE, SLACK)
    assert (live.state, live.online, live.behind_s) == (state, online, behind), live
    assert (live.offline_since_us is not None) == (state == "offline")


ages = st.floats(0, 3600, allow_nan=False)
rows = st.none() | st.builds(row, ages, st.integers(0, 3), st.booleans())
views = st.none() | st.builds(heard, ages, st.booleans())


@given(rows, views)
def test_always_a_known_state(r, b):
    live = classify(r, b, NOW, IDLE, SLACK)
    assert live.state in STATES
    assert live.behind_s is None or live.behind_s >= 0
    assert (live.behind_s is None) == (b is None or r is None)


@given(rows, views)
def test_behind_exactly_when_the_bridge_heard_more_than_slack_past_processing(r, b):
    live = classify(r, b, NOW, IDLE, SLACK)
    lag = b.last_seen_us - max(r["last_seen"], r["last_frame_ingest"]) if r and b else 0
    assert (live.state == "behind") == (lag > SLACK)


@given(rows, ages)
def test_a_caught_up_worker_is_never_behind(r, ago):
    b = heard(ago)
    if r is not None:
        b = BridgeView(True, min(b.last_seen_us, r["last_seen"]), b.silent_us)
    assert classify(r, b, NOW, IDLE, SLACK).state != "behind"


@given(st.integers(0, 3), ages, ages)
def test_a_silent_bridge_means_offline_unless_backlog(segments, seen_ago, silent):
    r = row(seen_ago, segments)
    b = BridgeView(True, NOW - int(seen_ago * S), IDLE + int(silent * S))
    assert classify(r, b, NOW, IDLE, SLACK).state == "offline"


@given(rows, views)
def test_online_means_the_bridge_hears_it_when_it_answers(r, b):
    live = classify(r, b, NOW, IDLE, SLACK)
    if b is not None:
        assert live.online == (b.connected and b.silent_us < IDLE)
