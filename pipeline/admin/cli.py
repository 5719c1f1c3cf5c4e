"""``camlog topics``: describe, lag, add-partitions, rebalance."""

from __future__ import annotations

import argparse
import json
import math
import sys
import time

from pipeline.config import Settings
from pipeline.errors import CliError

__all__ = ["moved_key_fraction", "register"]


def _admin(settings: Settings):
    from pipeline.topology.kafka import admin_client

    return admin_client(settings)


def _describe(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.admin.cluster import read_cluster, read_lag
    from pipeline.admin.render import describe_text
    from pipeline.admin.wire import log_dir_sizes

    admin = _admin(settings)
    state = read_cluster(admin, args.topic or None, internal=args.internal)
    try:
        sizes = log_dir_sizes(settings.kafka, sorted(state.brokers))
    except Exception as exc:  # sizes are a nicety: describe still works without them
        print(f"warning: log dir sizes unavailable: {exc}", file=sys.stderr)
        sizes = None
    lags = read_lag(admin)
    if args.json:
        doc = {
            "brokers": {str(b): {"rack": r} for b, r in sorted(state.brokers.items())},
            "topics": {t.name: {
                "config": t.config,
                "partitions": [{"partition": p.partition, "leader": p.leader,
                                "replicas": list(p.replicas), "isr": list(p.isr),
                                "under_replicated": p.under_replicated,
                                "size": None if sizes is None else
                                sizes.get((t.name, p.partition, p.leader))}
                               for p in t.partitions]} for t in state.topics.values()},
            "groups": {g.group: {"state": g.state, "total_lag": g.total} for g in lags},
        }
        print(json.dumps(doc, indent=1, sort_keys=True))
    else:
        print(describe_text(state, sizes, lags))
    return 0


def _lag(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.admin.cluster import read_lag
    from pipeline.admin.render import lag_text

    admin = _admin(settings)
    n = 0
    while True:
        lags = read_lag(admin, args.group or None)
        if args.json:
            print(json.dumps({g.group: {"state": g.state, "total": g.total,
                                        "partitions": {f"{t}[{p}]": g.lag((t, p))
                                                       for t, p in g.partitions}}
                              for g in lags}, sort_keys=True), flush=True)
        else:
            if args.watch and sys.stdout.isatty():
                print("\x1b[H\x1b[2J", end="")
            stamp = time.strftime("%H:%M:%S") if args.watch else ""
            print((f"{stamp}\n" if stamp else "") + lag_text(lags), flush=True)
        n += 1
        if not args.watch or (args.count and n >= args.count):
            return 0
        time.sleep(args.interval)


def _add_partitions(args: argparse.Namespace, settings: Settings) -> int:
    from confluent_kafka.admin import NewPartitions

    from pipeline.admin.cluster import read_cluster, wait_all

    admin = _admin(settings)
    state = read_cluster(admin, [args.topic_name], configs=False)
    have = len(state.topics[args.topic_name].partitions)
    if args.count <= have:
        raise CliError(f"{args.topic_name} has {have} partitions; the count can only grow "
                       f"(asked for {args.count})")
    moved = moved_key_fraction(have, args.count)
    print(f"warning: keys are hashed over the partition count, so about {moved:.0%} of stream ids "
          f"now map to a different partition. For those streams, events written before and after "
          f"this change are no longer in one ordered partition: let consumers drain the topic "
          f"first if per-stream order across the change matters.", file=sys.stderr)
    wait_all(admin.create_partitions([NewPartitions(args.topic_name, args.count)]),
             "add partitions")
    deadline = time.monotonic() + 30  # return once every broker's metadata shows them
    while (len(read_cluster(admin, [args.topic_name], configs=False)
               .topics[args.topic_name].partitions) < args.count and time.monotonic() < deadline):
        time.sleep(0.2)
    print(f"{args.topic_name}: {have} -> {args.count} partitions")
    return 0


def moved_key_fraction(old: int, new: int) -> float:
    """Share of uniformly hashed keys whose partition (hash mod count) changes."""
    span = math.lcm(old, new)
    return sum(h % old != h % new for h in range(span)) / span


def _broker_list(text: str | None, known: dict[int, str | None]) -> list[int]:
    if not text:
        return sorted(known)
    try:
        ids = sorted({int(x) for x in text.split(",") if x.strip()})
    except ValueError:
        raise CliError(f"--brokers wants comma-separated broker ids, got {text!r}") from None
    missing = [b for b in ids if b not in known]
    if missing:
        raise CliError(f"broker {', '.join(map(str, missing))} does not exist "
                       f"(brokers: {', '.join(map(str, sorted(known)))})")
    return ids


def _rebalance(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.admin.cluster import read_cluster
    from pipeline.admin.plan import plan_rebalance
    from pipeline.admin.reassign import execute_plan
    from pipeline.admin.render import plan_text

    if args.throttle is not None and args.throttle <= 0:
        raise CliError("--throttle must be a positive number of bytes per second")
    admin = _admin(settings)
    state = read_cluster(admin, args.topic or None, configs=False, internal=args.internal)
    brokers = _broker_list(args.brokers, state.brokers)
    plan = plan_rebalance(state.assignment(), brokers, state.brokers)
    if args.json:
        print(plan.reassignment_json())
    else:
        print(plan_text(plan))
    if not args.execute:
        if plan.moves:
            print("\ndry run: add --execute to apply", file=sys.stderr)
        return 0
    res = execute_plan(admin, settings.kafka, plan, args.throttle,
                       report=lambda s: print(s, file=sys.stderr, flush=True),
                       timeout=args.timeout)
    print(f"done: {res.moved_partitions} partitions, {res.replica_moves} replica copies, "
          f"{res.elected} leader elections in {res.seconds:.1f}s; replicas in sync")
    return 0


def register(parser: argparse.ArgumentParser) -> None:
    """Add ``describe``, ``lag``, ``add-partitions`` and ``rebalance``."""
    sub = parser.add_subparsers(dest="topics_command", metavar="ACTION", required=True)
    p = sub.add_parser("describe", help="partitions, leaders, ISR, sizes, retention, group lag")
    p.add_argument("topic", nargs="*", help="topics (default: all but internal ones)")
    p.add_argument("--internal", action="store_true", help="include __consumer_offsets etc.")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_describe)

    p = sub.add_parser("lag", help="consumer-group lag per partition and in total")
    p.add_argument("--group", action="append", default=[], help="only this group (repeatable)")
    p.add_argument("--watch", action="store_true", help="refresh until interrupted")
    p.add_argument("--interval", type=float, default=2.0, help="seconds between refreshes")
    p.add_argument("--count", type=int, default=0, help="with --watch: stop after N refreshes")
    p.add_argument("--json", action="store_true", help="one JSON object per refresh")
    p.set_defaults(func=_lag)

    p = sub.add_parser("add-partitions", help="grow a topic's partition count (never shrinks)")
    p.add_argument("topic_name", metavar="TOPIC")
    p.add_argument("count", metavar="N", type=int, help="the new total partition count")
    p.set_defaults(func=_add_partitions)

    p = sub.add_parser("rebalance", help="spread replicas and leaders evenly over brokers")
    p.add_argument("topic", nargs="*", help="topics (default: all but internal ones)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--execute", action="store_true", help="apply the plan")
    mode.add_argument("--dry-run", action="store_true", help="only print the plan (default)")
    p.add_argument("--brokers", help="target broker ids, e.g. 1,2,3 (default: all live brokers)")
    p.add_argument("--throttle", type=int, metavar="BYTES",
                   help="replication throttle in bytes/s while moving (removed afterwards)")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds to wait for completion")
    p.add_argument("--internal", action="store_true", help="include internal topics")
    p.add_argument("--json", action="store_true", help="print the plan as reassignment JSON")
    p.set_defaults(func=_rebalance)
