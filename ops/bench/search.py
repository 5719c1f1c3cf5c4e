"""Capacity search: the most cameras that pass a trial, found by doubling then bisection."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["SearchResult", "capacity_search"]


@dataclass
class SearchResult:
    """The largest count that passed a full-length trial and every trial made to find it."""

    capacity: int
    upper: int | None  # smallest count seen failing (None: never failed up to the cap)
    trials: list[dict] = field(default_factory=list)


def capacity_search(trial: Callable[[int, float], bool], start: int, short_s: float,
                    full_s: float, resolution: float = 0.25, cap: int = 4096,
                    max_trials: int = 12) -> SearchResult:
    """Find the most cameras for which ``trial(n, seconds)`` passes.

    Doubling from ``start`` with short trials brackets the answer cheaply; then the bracket's
    low end is confirmed with a full-length trial (halving until one passes; the doubling phase
    leaves up to three trials of the budget for this) and the bracket is
    bisected with full-length trials until ``hi - lo <= max(1, resolution * lo)``. Only a
    full-length pass counts toward the capacity; a failing trial may abort early, so failures
    are cheap.
    """
    res = SearchResult(0, None)

    def run(n: int, seconds: float) -> bool:
        ok = trial(n, seconds)
        res.trials.append({"cameras": n, "seconds": seconds, "passed": ok})
        return ok

    lo, n = 0, max(1, start)
    # keep trials to confirm at full length (halving if needed) and to bisect once
    reserve = min(3, max_trials // 2) if short_s != full_s else 0
    while n <= cap and len(res.trials) < max_trials - reserve:
        if run(n, short_s):
            lo, n = n, n * 2
        else:
            res.upper = n
            break
    if res.upper is None and lo == 0:
        return res
    if reserve:
        confirmed = 0
        while lo > 0 and len(res.trials) < max_trials:
            if run(lo, full_s):
                confirmed = lo
                break
            res.upper, lo = lo, lo // 2
        lo = confirmed  # only a full-length pass proves anything
    res.capacity = lo
    while (res.upper is not None and res.upper - res.capacity > max(1, resolution * res.capacity)
           and len(res.trials) < max_trials):
        mid = (res.capacity + res.upper) // 2
        if run(mid, full_s):
            res.capacity = mid
        else:
            res.upper = mid
    return res
