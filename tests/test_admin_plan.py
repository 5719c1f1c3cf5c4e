"""The rebalance planner: balanced, rack-aware, distinct replicas, fewest moves (pure, no Kafka)."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.admin.plan import PlanError, leader_counts, plan_rebalance, replica_counts


@st.composite
def clusters(draw, max_topics=3, max_partitions=8, racks=True):
    brokers = sorted(draw(st.sets(st.integers(0, 9), min_size=1, max_size=6)))
    # current replicas may sit on brokers outside the target list (removed/added brokers)
    pool = sorted(set(brokers) | draw(st.sets(st.integers(0, 9), max_size=3)))
    current = {}
    for t in range(draw(st.integers(1, max_topics))):
        rf = draw(st.integers(1, min(3, len(brokers), len(pool))))
        for p in range(draw(st.integers(1, max_partitions))):
            reps = draw(st.permutations(pool))[:rf]
            current[(f"t{t}", p)] = reps
    rack_map = None
    if racks and draw(st.booleans()):
        names = draw(st.lists(st.sampled_from("abc"), min_size=len(brokers), max_size=len(brokers)))
        rack_map = dict(zip(brokers, names, strict=True))
    return current, brokers, rack_map


def _spread(counter: Counter) -> int:
    return max(counter.values()) - min(counter.values())


@settings(max_examples=300, deadline=None)
@given(clusters())
def test_plan_is_balanced_distinct_and_rack_aware(case):
    current, brokers, racks = case
    plan = plan_rebalance(current, brokers, racks)
    assert set(plan.target) == set(current)
    for tp, reps in plan.target.items():
        assert len(reps) == len(set(reps)) == len(current[tp]), "replicas distinct, rf kept"
        assert set(reps) <= set(brokers)
    topics = {t for t, _ in current}
    for t in topics:
        assert _spread(replica_counts(plan.target, brokers, t)) <= 1
    assert _spread(replica_counts(plan.target, brokers)) <= 1
    if not any("leaders" in n for n in plan.notes):
        for t in topics:
            assert _spread(leader_counts(plan.target, brokers, t)) <= 1
    if plan.rack_aware:
        n_racks = len(set(racks.values()))
        uneven = {n.split(":")[0] for n in plan.notes if "racks too uneven" in n}
        for (t, _), reps in plan.target.items():
            if t in uneven:
                continue
            per_rack = Counter(racks[b] for b in reps)
            assert max(per_rack.values()) <= -(-len(reps) // n_racks)


@settings(max_examples=200, deadline=None)
@given(clusters())
def test_replanning_a_plan_moves_nothing(case):
    current, brokers, racks = case
    plan = plan_rebalance(current, brokers, racks)
    again = plan_rebalance(plan.target, brokers, racks)
    assert again.replica_moves == 0
    assert again.moves == ()


@settings(max_examples=150, deadline=None)
@given(clusters(max_topics=1, max_partitions=3, racks=False))
def test_replica_moves_are_the_minimum_among_balanced_assignments(case):
    current, brokers, _ = case
    plan = plan_rebalance(current, brokers)
    parts = sorted(current)
    best = None
    choices = [itertools.combinations(brokers, len(current[tp])) for tp in parts]
    for combo in itertools.product(*choices):
        counts = Counter({b: 0 for b in brokers})
        for s in combo:
            counts.update(s)
        if _spread(counts) > 1:
            continue
        moves = sum(len(set(s) - set(current[tp])) for tp, s in zip(parts, combo, strict=True))
        best = moves if best is None else min(best, moves)
    assert plan.replica_moves == best


def test_skewed_three_brokers_spreads_onto_the_third():
    current = {("t", p): (p % 2, (p + 1) % 2) for p in range(6)}  # all on brokers 0 and 1
    plan = plan_rebalance(current, [0, 1, 2])
    assert replica_counts(plan.target, [0, 1, 2]) == Counter({0: 4, 1: 4, 2: 4})
    assert leader_counts(plan.target, [0, 1, 2]) == Counter({0: 2, 1: 2, 2: 2})
    assert plan.replica_moves == 4  # exactly the surplus of brokers 0 and 1


def test_new_broker_receives_replicas():
    current = {("t", p): tuple((p + i) % 3 for i in range(3)) for p in range(6)}
    plan = plan_rebalance(current, [0, 1, 2, 3])
    assert replica_counts(plan.target, [0, 1, 2, 3])[3] in (4, 5)
    assert "t" in plan.reassignment_json()


def test_racks_spread_each_partition():
    current = {("t", p): (0, 1) for p in range(4)}  # both replicas in rack a
    racks = {0: "a", 1: "a", 2: "b", 3: "b"}
    plan = plan_rebalance(current, [0, 1, 2, 3], racks)
    assert plan.rack_aware
    for reps in plan.target.values():
        assert {racks[b] for b in reps} == {"a", "b"}


def test_too_few_brokers_is_an_error():
    with pytest.raises(PlanError, match="3 replicas but only 2 brokers"):
        plan_rebalance({("t", 0): (0, 1, 2)}, [0, 1])
