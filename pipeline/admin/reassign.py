"""Applies a rebalance plan: throttle, reassign, wait, verify, unthrottle, elect leaders."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pipeline.admin.cluster import read_cluster, wait_all
from pipeline.admin.plan import Move, Plan
from pipeline.admin.wire import alter_reassignments, list_reassignments
from pipeline.errors import CliError

__all__ = ["ExecuteResult", "execute_plan", "throttle_configs"]

_RATE_KEYS = ("leader.replication.throttled.rate", "follower.replication.throttled.rate")
_REPLICA_KEYS = ("leader.replication.throttled.replicas", "follower.replication.throttled.replicas")


@dataclass(frozen=True)
class ExecuteResult:
    """What an executed plan did and how long it took."""

    moved_partitions: int
    replica_moves: int
    elected: int
    seconds: float


def throttle_configs(moves: tuple[Move, ...]) -> dict[str, dict[str, str]]:
    """Per-topic throttled replica lists, as Kafka's reassignment tool sets them.

    Leaders sending data are the current replicas; followers fetching are the new ones.
    """
    out: dict[str, dict[str, list[str]]] = {}
    for m in moves:
        if not m.added:
            continue
        cfg = out.setdefault(m.topic, {k: [] for k in _REPLICA_KEYS})
        cfg[_REPLICA_KEYS[0]] += [f"{m.partition}:{b}" for b in m.before]
        cfg[_REPLICA_KEYS[1]] += [f"{m.partition}:{b}" for b in m.added]
    return {t: {k: ",".join(v) for k, v in cfg.items()} for t, cfg in out.items()}


def _alter(admin: Any, kind: str, name: str, values: dict[str, str | None]) -> None:
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource

    entries = [ConfigEntry(k, v if v is not None else "",
                           incremental_operation=AlterConfigOpType.SET if v is not None
                           else AlterConfigOpType.DELETE) for k, v in values.items()]
    resource = ConfigResource(kind, name, incremental_configs=entries)
    wait_all(admin.incremental_alter_configs([resource]), f"alter {kind} config")


def _set_throttles(admin: Any, plan: Plan, rate: int) -> list[tuple[str, str, tuple[str, ...]]]:
    undo = []
    for topic, cfg in throttle_configs(plan.moves).items():
        _alter(admin, "topic", topic, cfg)
        undo.append(("topic", topic, _REPLICA_KEYS))
    involved = sorted({b for m in plan.moves if m.added for b in (*m.before, *m.after)})
    for b in involved:
        _alter(admin, "broker", str(b), {k: str(rate) for k in _RATE_KEYS})
        undo.append(("broker", str(b), _RATE_KEYS))
    return undo


def execute_plan(admin: Any, bootstrap: str, plan: Plan, throttle: int | None,
                 report: Callable[[str], None] = print, timeout: float = 1800.0,
                 poll: float = 1.0, now: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> ExecuteResult:
    """Apply ``plan`` and return once replicas are in sync and preferred leaders elected."""
    from confluent_kafka import ElectionType, TopicPartition

    t0 = now()
    moves = plan.moves
    if not moves:
        return ExecuteResult(0, 0, 0, 0.0)
    busy = set(list_reassignments(bootstrap)) & {(m.topic, m.partition) for m in moves}
    if busy:
        raise CliError(f"{len(busy)} partitions are already being reassigned "
                       f"(e.g. {sorted(busy)[0]}); wait for that to finish")
    undo = _set_throttles(admin, plan, throttle) if throttle else []
    if undo:
        report(f"throttle {throttle} B/s set on {sum(k == 'broker' for k, _, _ in undo)} brokers")
    try:
        errors = alter_reassignments(bootstrap, {(m.topic, m.partition): m.after for m in moves})
        if errors:
            tp, why = next(iter(sorted(errors.items())))
            raise CliError(f"{len(errors)} reassignments refused, e.g. {tp[0]}[{tp[1]}]: {why}")
        report(f"reassigning {len(moves)} partitions ({plan.replica_moves} replica copies)")
        _wait_in_sync(admin, bootstrap, plan, report, t0 + timeout, poll, now, sleep)
    finally:
        for kind, name, keys in undo:
            _alter(admin, kind, name, dict.fromkeys(keys))
        if undo:
            report("throttles removed")
    stale = [m for m in moves if _leaders(admin, plan).get((m.topic, m.partition)) != m.after[0]]
    if stale:
        tps = [TopicPartition(m.topic, m.partition) for m in stale]
        res = admin.elect_leaders(ElectionType.PREFERRED, tps).result(timeout=60)
        bad = {f"{tp.topic}[{tp.partition}]": err for tp, err in res.items()
               if err is not None and "ELECTION_NOT_NEEDED" not in str(err)}
        if bad:
            raise CliError(f"preferred leader election failed: {bad}")
        _wait(lambda: all(_leaders(admin, plan).get((m.topic, m.partition)) == m.after[0]
                          for m in stale), "preferred leaders", t0 + timeout, poll, now, sleep)
        report(f"elected preferred leaders on {len(stale)} partitions")
    return ExecuteResult(len(moves), plan.replica_moves, len(stale), now() - t0)


def _leaders(admin: Any, plan: Plan) -> dict[tuple[str, int], int]:
    topics = sorted({t for t, _ in plan.target})
    state = read_cluster(admin, topics, configs=False)
    return {(t, p.partition): p.leader for t in topics for p in state.topics[t].partitions}


def _wait(done: Callable[[], bool], what: str, deadline: float, poll: float,
          now: Callable[[], float], sleep: Callable[[float], None]) -> None:
    while not done():
        if now() > deadline:
            raise CliError(f"timed out waiting for {what}")
        sleep(poll)


def _wait_in_sync(admin: Any, bootstrap: str, plan: Plan, report: Callable[[str], None],
                  deadline: float, poll: float, now: Callable[[], float],
                  sleep: Callable[[float], None]) -> None:
    """Until no move is pending and every target replica is in sync, in the planned order."""
    ours = {(m.topic, m.partition) for m in plan.moves}
    last = None
    while True:
        pending = ours & set(list_reassignments(bootstrap))
        if not pending:
            state = read_cluster(admin, sorted({t for t, _ in ours}), configs=False)
            parts = {(p.topic, p.partition): p
                     for ts in state.topics.values() for p in ts.partitions}
            wrong = [tp for tp in ours if parts[tp].replicas != plan.target[tp]
                     or set(parts[tp].isr) != set(plan.target[tp])]
            if not wrong:
                return
            pending = set(wrong)
        if len(pending) != last:
            report(f"  {len(pending)} partitions still moving")
            last = len(pending)
        if now() > deadline:
            raise CliError(f"timed out with {len(pending)} partitions still moving "
                           f"(e.g. {sorted(pending)[0]}); the reassignment continues in Kafka")
        sleep(poll)
