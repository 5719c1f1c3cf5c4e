"""The replay's tick schedule: the instants a 1 s timer fires at, in event time."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pipeline.agents.ticks import TickScheduler

STEPS = st.lists(st.floats(0, 5, allow_nan=False), min_size=1, max_size=40)


@given(start=st.floats(0, 1e6, allow_nan=False), steps=STEPS)
def test_ticks_are_the_grid_from_the_first_time(start, steps):
    ticks = TickScheduler(1.0)
    t, fired = start, ticks.due(start)
    assert fired == []
    for dt in steps:
        t += dt
        fired += ticks.due(t)
    expected, x = [], start
    while x + 1.0 <= t:
        x += 1.0
        expected.append(x)
    assert fired == expected


@given(steps=STEPS, catch_up=st.integers(0, 5))
def test_a_silence_fires_at_most_catch_up_plus_one(steps, catch_up):
    ticks, t = TickScheduler(1.0, catch_up=catch_up), 100.0
    ticks.due(t)
    for dt in steps:
        t += dt
        fired = ticks.due(t)
        assert len(fired) <= catch_up + 1
        assert fired == sorted(fired) and all(f <= t for f in fired)
    assert ticks.last is not None and t - 1.0 < ticks.last <= t  # skipped ticks are not owed
