"""Capacity search: the most cameras that pass a trial, found by doubling then bisection.

The search stops when the first failing count is within ``ratio`` of the capacity
(``upper / capacity <= ratio``, 1.10 = within 10 %, or the two are adjacent counts), and never
runs more than ``trial_bound(start, cap, ratio)`` trials, which is enough to get there for any
threshold that is monotone in cameras and in trial length (a longer trial is never easier).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["SearchResult", "capacity_search", "converged", "trial_bound"]

RATIO = 1.10  # stop when upper / capacity <= this


@dataclass
class SearchResult:
    """The largest count that passed a full-length trial and every trial made to find it."""

    capacity: int
    upper: int | None  # smallest count seen failing (None: never failed up to the cap)
    trials: list[dict] = field(default_factory=list)
    converged: bool = False  # the stopping rule held (False: the trial budget ran out first)


def converged(capacity: int, upper: int | None, ratio: float = RATIO,
              cap: int | None = None) -> bool:
    """Whether a bracket is narrow enough to stop: ``upper <= ratio * capacity``, or no count
    between them, or (``upper`` None) the search passed up to the cap."""
    if upper is None:
        return cap is not None and capacity * 2 > cap
    return upper - capacity <= 1 or upper <= ratio * capacity


def trial_bound(start: int, cap: int, ratio: float = RATIO, two_lengths: bool = True) -> int:
    """Trials enough for the search to converge on any monotone threshold.

    Doubling from ``start`` to ``cap``; confirming at full length, halving from at most ``cap``
    to 1; bisecting a bracket [lo, 2 lo] (or [0, start] when the first trial fails) until the
    rule holds: width 2^k/2^j <= (ratio - 1) lo, plus the steps down to lo = 1.
    """
    start = max(1, start)
    doubling = int(math.log2(max(1, cap // start))) + 1
    confirm = int(math.log2(max(1, cap))) + 1 if two_lengths else 0
    bisect = math.ceil(math.log2(1 / (ratio - 1))) + math.ceil(math.log2(start + 1)) + 1
    return doubling + confirm + bisect


def capacity_search(trial: Callable[[int, float], bool], start: int, short_s: float,
                    full_s: float, ratio: float = RATIO, cap: int = 4096,
                    max_trials: int | None = None) -> SearchResult:
    """Find the most cameras for which ``trial(n, seconds)`` passes.

    Doubling from ``start`` with short trials brackets the answer cheaply; then the bracket's
    low end is confirmed with a full-length trial (halving until one passes) and the bracket is
    bisected with full-length trials until ``converged``. Only a full-length pass counts toward
    the capacity, and every count tried above it failed or lies above ``upper``: whatever the
    trials answer, the reported capacity passed and no smaller count failed. A failing trial may
    abort early, so failures are cheap. ``max_trials`` defaults to ``trial_bound``.
    """
    if ratio <= 1:
        raise ValueError("ratio must be > 1")
    budget = trial_bound(start, cap, ratio, short_s != full_s) if max_trials is None else max_trials
    res = SearchResult(0, None)

    def run(n: int, seconds: float) -> bool:
        ok = trial(n, seconds)
        res.trials.append({"cameras": n, "seconds": seconds, "passed": ok})
        return ok

    lo, n = 0, max(1, start)
    # keep trials to confirm at full length (halving if needed) and to bisect once
    reserve = min(3, budget // 2) if short_s != full_s else 0
    while n <= cap and len(res.trials) < budget - reserve:
        if run(n, short_s):
            lo, n = n, n * 2
        else:
            res.upper = n
            break
    if res.upper is None and lo == 0:
        return res
    if short_s != full_s:  # even with no budget left: a short pass alone proves nothing
        confirmed = 0
        while lo > 0 and len(res.trials) < budget:
            if run(lo, full_s):
                confirmed = lo
                break
            res.upper, lo = lo, lo // 2
        lo = confirmed  # only a full-length pass proves anything
    res.capacity = lo
    while (res.upper is not None and not converged(res.capacity, res.upper, ratio)
           and len(res.trials) < budget):
        mid = (res.capacity + res.upper) // 2
        if run(mid, full_s):
            res.capacity = mid
        else:
            res.upper = mid
    res.converged = converged(res.capacity, res.upper, ratio, cap)
    return res
