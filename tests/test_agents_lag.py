"""Consumer lag in seconds: the newest read event's age while its partition holds more."""

from __future__ import annotations

from types import SimpleNamespace

from pipeline.agents.lag import LagClock


def _event(tp: str, offset: int, ts: float | None) -> SimpleNamespace:
    return SimpleNamespace(message=SimpleNamespace(tp=tp, offset=offset, timestamp=ts))


def test_lag_grows_while_messages_wait_and_is_zero_when_caught_up() -> None:
    t, hw = [100.0], {"p0": 11, "p1": 6}
    clock = LagClock(lambda tp: hw[tp], now=lambda: t[0])
    # a batch in any order: the newest offset per partition counts
    clock.read("segmenter", [_event("p0", 9, 40.0), _event("p0", 7, 30.0),
                             _event("p1", 5, 90.0)])
    assert clock.lags() == {("segmenter", "p0"): 60.0, ("segmenter", "p1"): 0.0}
    t[0], hw["p1"] = 130.0, 8  # nothing read since; p1 had been caught up, then stalled
    assert clock.lags() == {("segmenter", "p0"): 90.0, ("segmenter", "p1"): 40.0}
    clock.read("segmenter", [_event("p0", 10, 125.0)])  # p0 caught up (next offset is 11)
    assert clock.lags()[("segmenter", "p0")] == 0.0


def test_consumers_are_apart_and_moved_partitions_are_dropped() -> None:
    owned = {"p0": 3}

    def highwater(tp: str) -> int | None:
        if tp not in owned:
            raise AssertionError("Partition is not assigned")  # what aiokafka raises
        return owned[tp]

    clock = LagClock(highwater, now=lambda: 50.0)
    clock.read("views.sessions", [_event("p0", 0, 20.0), _event("p9", 4, 10.0)])
    clock.read("segmenter", [_event("p0", 2, 45.0), _event("p0", 3, None)])  # no timestamp: skipped
    assert clock.lags() == {("views.sessions", "p0"): 30.0, ("segmenter", "p0"): 0.0}
    owned["p0"] = None  # watermark unknown right after assignment: not behind
    assert clock.lags() == {("views.sessions", "p0"): 0.0, ("segmenter", "p0"): 0.0}
