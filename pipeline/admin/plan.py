"""The rebalance planner: balanced, rack-aware replicas and leaders, fewest moves (pure)."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from pipeline.admin.flow import FlowGraph
from pipeline.errors import CamlogError

__all__ = [
    "Assignment",
    "Move",
    "Plan",
    "PlanError",
    "leader_counts",
    "plan_rebalance",
    "replica_counts",
]

Assignment = Mapping[tuple[str, int], Sequence[int]]
"""``(topic, partition) -> replicas``, preferred leader first (Kafka's convention)."""

_NEW_REPLICA = 1  # cost of placing a replica on a broker that does not hold it yet
_NEW_LEADER = 1


class PlanError(CamlogError):
    """The requested rebalance cannot be planned (e.g. more replicas than brokers)."""


@dataclass(frozen=True)
class Move:
    """One partition whose replica list changes."""

    topic: str
    partition: int
    before: tuple[int, ...]
    after: tuple[int, ...]

    @property
    def added(self) -> tuple[int, ...]:
        """Brokers that must copy the partition (data movement)."""
        return tuple(b for b in self.after if b not in self.before)

    @property
    def removed(self) -> tuple[int, ...]:
        """Brokers that drop their replica."""
        return tuple(b for b in self.before if b not in self.after)

    @property
    def leader_changed(self) -> bool:
        """Whether the preferred leader changes."""
        return self.before[:1] != self.after[:1]


@dataclass(frozen=True)
class Plan:
    """A target assignment and the moves that reach it from the current one."""

    brokers: tuple[int, ...]
    current: dict[tuple[str, int], tuple[int, ...]]
    target: dict[tuple[str, int], tuple[int, ...]]
    rack_aware: bool
    notes: tuple[str, ...] = field(default=())

    @property
    def moves(self) -> tuple[Move, ...]:
        """Partitions whose replica list (set or order) changes, sorted."""
        return tuple(Move(t, p, self.current[(t, p)], self.target[(t, p)])
                     for (t, p) in sorted(self.target)
                     if self.current[(t, p)] != self.target[(t, p)])

    @property
    def replica_moves(self) -> int:
        """Replicas that must be copied to a new broker."""
        return sum(len(m.added) for m in self.moves)

    @property
    def leader_moves(self) -> int:
        """Partitions whose preferred leader changes."""
        return sum(m.leader_changed for m in self.moves)

    def reassignment_json(self) -> str:
        """The plan in ``kafka-reassign-partitions`` JSON (only partitions that change)."""
        parts = [{"topic": m.topic, "partition": m.partition, "replicas": list(m.after)}
                 for m in self.moves]
        return json.dumps({"version": 1, "partitions": parts}, indent=1)


def replica_counts(assignment: Assignment, brokers: Sequence[int],
                   topic: str | None = None) -> Counter:
    """Replicas per broker (all brokers listed, zero included), optionally for one topic."""
    c = Counter({b: 0 for b in brokers})
    for (t, _), reps in assignment.items():
        if topic is None or t == topic:
            c.update(reps)
    return c


def leader_counts(assignment: Assignment, brokers: Sequence[int],
                  topic: str | None = None) -> Counter:
    """Preferred leaders per broker (all brokers listed), optionally for one topic."""
    c = Counter({b: 0 for b in brokers})
    for (t, _), reps in assignment.items():
        if reps and (topic is None or t == topic):
            c[reps[0]] += 1
    return c


def _extras(load: Counter, brokers: Sequence[int], r: int) -> tuple[set[int], set[int]]:
    """Which brokers must (forced) or may (eligible) take one of ``r`` surplus items.

    Surplus goes to the globally least-loaded brokers, so totals across topics stay within one.
    """
    low = min(load[b] for b in brokers)
    at_min = {b for b in brokers if load[b] == low}
    if r <= len(at_min):
        return set(), at_min if r else set()
    return at_min, {b for b in brokers if load[b] == low + 1}


def _place_replicas(parts: list[tuple[int, tuple[int, ...]]], brokers: Sequence[int],
                    racks: Mapping[int, str] | None, load: Counter) -> dict[int, set[int]] | None:
    """Replica sets for one topic's partitions via min-cost flow; None when infeasible."""
    total = sum(len(reps) for _, reps in parts)
    q, r = divmod(total, len(brokers))
    forced, eligible = _extras(load, brokers, r)
    big = total * _NEW_REPLICA + 1  # using an optional surplus slot costs more than any move
    g = FlowGraph()
    edges: dict[tuple[int, int], int] = {}
    rack_names = sorted(set(racks.values())) if racks else []
    for p, reps in parts:
        g.add_edge("S", ("p", p), len(reps))
        if racks:
            per_rack = -(-len(reps) // len(rack_names))
            for rack in rack_names:
                g.add_edge(("p", p), ("pr", p, rack), per_rack)
        for b in brokers:
            src = ("pr", p, racks[b]) if racks else ("p", p)
            edges[(p, b)] = g.add_edge(src, ("b", b), 1, 0 if b in reps else _NEW_REPLICA)
    for b in brokers:
        g.add_edge(("b", b), "T", q + (b in forced))
        if b in eligible:
            g.add_edge(("b", b), "T", 1, big)
    flow, _ = g.solve("S", "T")
    sets = {p: {b for b in brokers if g.flow_on(edges[(p, b)])} for p, _ in parts}
    counts = Counter(b for members in sets.values() for b in members)
    # surplus slots beyond r mean some broker fell below q: the constraints could not all hold
    if flow < total or any(counts[b] < q + (b in forced) for b in brokers):
        return None
    return sets


def _place_leaders(sets: dict[int, set[int]], current: dict[int, tuple[int, ...]],
                   brokers: Sequence[int], load: Counter) -> tuple[dict[int, int], bool]:
    """One leader per partition from its replica set, balanced; returns (leaders, balanced)."""
    q, r = divmod(len(sets), len(brokers))
    forced, eligible = _extras(load, brokers, r)
    big = len(sets) * _NEW_LEADER + 1
    g = FlowGraph()
    edges: dict[tuple[int, int], int] = {}
    for p in sorted(sets):
        g.add_edge("S", ("p", p), 1)
        for b in sorted(sets[p]):
            cost = 0 if current[p][:1] == (b,) else _NEW_LEADER
            edges[(p, b)] = g.add_edge(("p", p), ("b", b), 1, cost)
    for b in brokers:
        g.add_edge(("b", b), "T", q + (b in forced))
        if b in eligible:
            g.add_edge(("b", b), "T", 1, big)
        g.add_edge(("b", b), "T", len(sets), big * big)  # last resort: imbalance over failure
    g.solve("S", "T")
    leaders = {p: next(b for b in sorted(sets[p]) if g.flow_on(edges[(p, b)])) for p in sets}
    counts = Counter(leaders.values())
    balanced = max(counts[b] for b in brokers) - min(counts[b] for b in brokers) <= 1
    return leaders, balanced


def _order(leader: int, members: set[int], before: tuple[int, ...]) -> tuple[int, ...]:
    """Leader first, then kept replicas in their old order, then new ones ascending."""
    rest = [b for b in before if b in members and b != leader]
    rest += sorted(b for b in members if b not in before and b != leader)
    return (leader, *rest)


def plan_rebalance(current: Assignment, brokers: Sequence[int],
                   racks: Mapping[int, str | None] | None = None) -> Plan:
    """Plan a balanced assignment over ``brokers`` with the fewest replica moves.

    Per topic and overall, replica counts per broker differ by at most one, and so do
    preferred-leader counts per topic (when the replica sets allow it; else a note says so).
    When every broker has a rack, no rack holds more than ceil(rf / racks) replicas of a
    partition. Among such assignments, the fewest replicas are copied, then the fewest leaders
    change.
    """
    brokers = tuple(sorted(set(brokers)))
    if not brokers:
        raise PlanError("no brokers to place replicas on")
    cur = {tp: tuple(dict.fromkeys(reps)) for tp, reps in current.items()}
    for (t, p), reps in sorted(cur.items()):
        if not reps:
            raise PlanError(f"{t}[{p}] has no replicas")
        if len(reps) > len(brokers):
            raise PlanError(f"{t}[{p}] has {len(reps)} replicas but only {len(brokers)} brokers "
                            f"were given ({','.join(map(str, brokers))})")
    rack_map = None
    notes: list[str] = []
    if racks and all(racks.get(b) for b in brokers):
        rack_map = {b: str(racks[b]) for b in brokers}
        if len(set(rack_map.values())) < 2:
            rack_map = None
    elif racks and any(racks.get(b) for b in brokers):
        notes.append("some brokers have no rack: planning without rack awareness")
    by_topic: dict[str, list[tuple[int, tuple[int, ...]]]] = defaultdict(list)
    for (t, p), reps in sorted(cur.items()):
        by_topic[t].append((p, reps))
    rep_load: Counter = Counter({b: 0 for b in brokers})
    lead_load: Counter = Counter({b: 0 for b in brokers})
    target: dict[tuple[str, int], tuple[int, ...]] = {}
    for topic in sorted(by_topic):
        parts = by_topic[topic]
        sets = _place_replicas(parts, brokers, rack_map, rep_load)
        if sets is None:  # racks too uneven for an even spread: balance wins, say so
            notes.append(f"{topic}: racks too uneven for balanced rack-aware placement")
            sets = _place_replicas(parts, brokers, None, rep_load)
        assert sets is not None  # balanced placement always exists when rf <= brokers
        before = dict(parts)
        leaders, balanced = _place_leaders(sets, before, brokers, lead_load)
        if not balanced:
            notes.append(f"{topic}: leaders cannot be spread within one per broker")
        for p, members in sets.items():
            target[(topic, p)] = _order(leaders[p], members, before[p])
            rep_load.update(members)
            lead_load[leaders[p]] += 1
    return Plan(brokers, cur, target, rack_map is not None, tuple(notes))
