"""The segmenter's consumer lag in seconds: the newest read event's age while messages wait."""

from __future__ import annotations

from pipeline.agents.segmenter import Segmenter
from pipeline.store.segments import SegmentStore


async def _publish(*_args: object) -> None:
    raise AssertionError("nothing is published")


async def test_lag_seconds_only_while_messages_wait(settings) -> None:
    t = [100.0]
    seg = Segmenter(settings, SegmentStore(settings), _publish, ack=lambda e: None,
                    now=lambda: t[0])
    await seg.handle_batch([], {"p0": 5, "p1": 0}, {"p0": 40.0, "p1": 90.0})
    got = {o.attributes["partition"]: o.value for o in seg._observe_lag_seconds(None)}
    assert got == {"p0": 60.0, "p1": 0.0}
    t[0] = 130.0  # nothing read since: the waiting partition falls further behind
    got = {o.attributes["partition"]: o.value for o in seg._observe_lag_seconds(None)}
    assert got == {"p0": 90.0, "p1": 0.0}
    seg.revoke({"p0"})
    assert [o.attributes["partition"] for o in seg._observe_lag_seconds(None)] == ["p1"]
