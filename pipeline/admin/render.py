"""Plain-text tables for the operator commands (pure)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from pipeline.admin.cluster import ClusterState, GroupLag
from pipeline.admin.plan import Plan, leader_counts, replica_counts

__all__ = ["describe_text", "human_bytes", "lag_text", "plan_text", "retention_text", "table"]


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Left-aligned columns separated by two spaces."""
    cells = [list(map(str, headers))] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                     for r in cells)


def human_bytes(n: float | None) -> str:
    """``1536`` -> ``1.5 KiB``; None -> ``?``."""
    if n is None:
        return "?"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def retention_text(config: Mapping[str, str]) -> str:
    """``retention.ms`` / ``retention.bytes`` in words."""
    ms = int(config.get("retention.ms", "-1") or -1)
    out = "forever" if ms < 0 else f"{ms / 86_400_000:g}d" if ms % 3_600_000 == 0 else f"{ms}ms"
    size = int(config.get("retention.bytes", "-1") or -1)
    return out if size < 0 else f"{out} or {human_bytes(size)}"


def _ids(xs: Sequence[int]) -> str:
    return ",".join(map(str, xs))


def describe_text(state: ClusterState, sizes: Mapping[tuple[str, int, int], int] | None,
                  lags: Sequence[GroupLag]) -> str:
    """Brokers, then each topic with its partitions, then consumer-group lag."""
    brokers = sorted(state.brokers)
    assign = state.assignment()
    reps, leads = replica_counts(assign, brokers), Counter(
        p.leader for t in state.topics.values() for p in t.partitions)
    on_disk = Counter()
    for (_, _, b), n in (sizes or {}).items():
        on_disk[b] += n
    out = ["brokers", table(["id", "rack", "replicas", "leaders", "on disk"], [
        [b, state.brokers[b] or "-", reps[b], leads[b], human_bytes(on_disk[b]) if sizes else "?"]
        for b in brokers])]
    for t in state.topics.values():
        under = sum(p.under_replicated for p in t.partitions)
        rf = max((len(p.replicas) for p in t.partitions), default=0)
        total = sum(n for (tt, _, _), n in (sizes or {}).items() if tt == t.name)
        out.append(f"\ntopic {t.name}  partitions={len(t.partitions)} rf={rf} "
                   f"retention={retention_text(t.config)} "
                   f"size={human_bytes(total if sizes else None)} "
                   f"under-replicated={under}")
        rows = []
        for p in t.partitions:
            size = (sizes or {}).get((t.name, p.partition, p.leader)) if sizes else None
            rows.append([p.partition, p.leader, _ids(p.replicas), _ids(p.isr), human_bytes(size),
                         "UNDER-REPLICATED" if p.under_replicated else
                         "" if p.leader == p.replicas[0] else "leader not preferred"])
        out.append(table(["partition", "leader", "replicas", "isr", "size", "status"], rows))
    out.append("\n" + lag_text(lags))
    return "\n".join(out)


def lag_text(lags: Sequence[GroupLag]) -> str:
    """Per group: lag per partition and the total."""
    if not lags:
        return "consumer groups: none with committed offsets"
    out = []
    for g in lags:
        out.append(f"group {g.group}  state={g.state}  total lag={g.total}")
        out.append(table(["topic", "partition", "committed", "end", "lag"], [
            [t, p, c if c >= 0 else "-", e, g.lag((t, p))]
            for (t, p), (c, e) in g.partitions.items()]))
    return "\n".join(out)


def plan_text(plan: Plan) -> str:
    """The moves, then replica and leader counts per broker before and after."""
    out = []
    if plan.moves:
        out.append(table(["topic", "partition", "from", "to", "copies", "leader"], [
            [m.topic, m.partition, _ids(m.before), _ids(m.after), len(m.added),
             f"{m.before[0]}->{m.after[0]}" if m.leader_changed else ""] for m in plan.moves]))
    else:
        out.append("already balanced: nothing to move")
    b = plan.brokers
    rb, ra = replica_counts(plan.current, b), replica_counts(plan.target, b)
    lb, la = leader_counts(plan.current, b), leader_counts(plan.target, b)
    out.append("\n" + table(["broker", "replicas", "leaders"],
                            [[x, f"{rb[x]} -> {ra[x]}", f"{lb[x]} -> {la[x]}"] for x in b]))
    out.append(f"\n{len(plan.moves)} partitions change, {plan.replica_moves} replica copies, "
               f"{plan.leader_moves} preferred-leader changes"
               + ("; rack-aware" if plan.rack_aware else ""))
    out += [f"note: {n}" for n in plan.notes]
    return "\n".join(out)
