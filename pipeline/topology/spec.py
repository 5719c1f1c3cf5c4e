"""Pure model of the declared topology and of the drift between it and what a cluster has."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pipeline import ROOT

__all__ = [
    "TOPOLOGY_DIR",
    "Change",
    "TableSpec",
    "TopicSpec",
    "diff_table",
    "diff_topic",
    "effective_topic",
    "load_tables",
    "load_topics",
    "resolve_options",
    "table_cql",
    "twcs_window_hours",
]

TOPOLOGY_DIR = ROOT / "topology"


@dataclass(frozen=True)
class TopicSpec:
    """A Kafka topic as declared."""

    name: str
    partitions: int
    replication_factor: int
    config: Mapping[str, str]
    doc: str = ""


@dataclass(frozen=True)
class TableSpec:
    """A Cassandra table as declared; ``columns`` maps name → CQL type (``"x static"`` = static)."""

    name: str
    columns: Mapping[str, str]
    partition_key: tuple[str, ...]
    clustering: tuple[str, ...] = ()
    options: Mapping[str, object] = field(default_factory=dict)
    doc: str = ""


@dataclass(frozen=True)
class Change:
    """One difference between declaration and cluster; ``applicable`` is False for what apply
    won't do."""

    target: str
    description: str
    applicable: bool = True

    def __str__(self) -> str:
        note = "" if self.applicable else "  (not applied: needs an operator)"
        return f"{self.target}: {self.description}{note}"


def load_topics(path: Path | None = None) -> list[TopicSpec]:
    """Read ``topology/kafka.toml``."""
    data = tomllib.loads((path or TOPOLOGY_DIR / "kafka.toml").read_text())
    defaults = data.get("defaults", {})
    out = []
    for name, t in data["topics"].items():
        config = {**defaults.get("config", {}), **t.get("config", {})}
        out.append(TopicSpec(
            name=name,
            partitions=int(t.get("partitions", defaults.get("partitions", 1))),
            replication_factor=int(t.get("replication_factor",
                                         defaults.get("replication_factor", 1))),
            config={k: str(v) for k, v in config.items()},
            doc=t.get("doc", ""),
        ))
    return out


def load_tables(path: Path | None = None) -> list[TableSpec]:
    """Read ``topology/cassandra.toml``."""
    data = tomllib.loads((path or TOPOLOGY_DIR / "cassandra.toml").read_text())
    return [
        TableSpec(
            name=name, columns=dict(t["columns"]), partition_key=tuple(t["partition_key"]),
            clustering=tuple(t.get("clustering", ())), options=dict(t.get("options", {})),
            doc=t.get("doc", ""),
        )
        for name, t in data["tables"].items()
    ]


def twcs_window_hours(retention_days: int, windows: int = 28) -> int:
    """Whole hours per TimeWindowCompactionStrategy window that split the retention into about
    ``windows`` windows (TWCS keeps one SSTable set per window and works best with 20-40)."""
    return max(1, round(retention_days * 24 / windows))


def _resolve(value: object, retention_days: int) -> object:
    if isinstance(value, Mapping):
        return {k: _resolve(v, retention_days) for k, v in value.items()}
    if value == "retention":
        return retention_days * 86_400
    if isinstance(value, str) and value.startswith("retention/"):
        return str(twcs_window_hours(retention_days, int(value.split("/", 1)[1])))
    return value


def resolve_options(spec: TableSpec, retention_days: int) -> TableSpec:
    """The table with its retention placeholders made concrete: ``"retention"`` → the retention
    in seconds (a TTL), ``"retention/N"`` → hours per window for N windows (a TWCS window size).
    Declared once, the options follow ``CAMLOG_RETENTION_DAYS`` and the TTL the store writes."""
    return TableSpec(spec.name, spec.columns, spec.partition_key, spec.clustering,
                     {k: _resolve(v, retention_days) for k, v in spec.options.items()}, spec.doc)


def effective_topic(spec: TopicSpec, brokers: int) -> TopicSpec:
    """Cap replication by the live broker count and min.insync.replicas by rf - 1 (at least 1)."""
    rf = max(1, min(spec.replication_factor, brokers))
    config = dict(spec.config)
    if "min.insync.replicas" in config:
        config["min.insync.replicas"] = str(max(1, min(int(config["min.insync.replicas"]), rf - 1)))
    return TopicSpec(spec.name, spec.partitions, rf, config, spec.doc)


def diff_topic(want: TopicSpec, partitions: int | None, config: Mapping[str, str]) -> list[Change]:
    """What must change for an existing topic (``partitions=None``: the topic is missing)."""
    t = f"topic {want.name}"
    if partitions is None:
        return [Change(t, f"create ({want.partitions} partitions, rf {want.replication_factor})")]
    out = []
    if partitions < want.partitions:
        out.append(Change(t, f"partitions {partitions} -> {want.partitions}"))
    elif partitions > want.partitions:
        out.append(Change(t, f"has {partitions} partitions, declared {want.partitions}", False))
    for key, value in sorted(want.config.items()):
        if config.get(key) != value:
            out.append(Change(t, f"{key} = {value} (was {config.get(key)})"))
    return out


def _col(name: str, cql_type: str) -> str:
    return f"{name} {cql_type}"


def table_cql(keyspace: str, spec: TableSpec) -> str:
    """``CREATE TABLE IF NOT EXISTS`` for a declared table."""
    cols = ", ".join(_col(n, t) for n, t in spec.columns.items())
    pk = "(" + ", ".join(spec.partition_key) + ")"
    key = ", ".join([pk, *spec.clustering])
    cql = f"CREATE TABLE IF NOT EXISTS {keyspace}.{spec.name} ({cols}, PRIMARY KEY ({key}))"
    opts = [f"{k} = {_cql_value(v)}" for k, v in spec.options.items()]
    if spec.doc:
        opts.append(f"comment = {_cql_value(spec.doc)}")
    return cql + (" WITH " + " AND ".join(opts) if opts else "")


def _cql_value(v: object) -> str:
    if isinstance(v, Mapping):
        return "{" + ", ".join(f"{_cql_value(str(k))}: {_cql_value(str(x))}"
                               for k, x in sorted(v.items())) + "}"
    if isinstance(v, str):
        return "'" + v.replace("'", "''") + "'"
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def option_matches(want: object, have: object) -> bool:
    """Whether a table's option as Cassandra reports it has the declared value.

    Map options (compaction, compression) match when every declared key does: Cassandra adds
    its defaults and reports classes by their full name (``...TimeWindowCompactionStrategy``).
    """
    if isinstance(want, Mapping):
        if not isinstance(have, Mapping):
            return False
        for k, v in want.items():
            got = have.get(k)
            if k == "class" and isinstance(got, str):
                got = got.rsplit(".", 1)[-1]
            if str(got).lower() != str(v).lower():
                return False
        return True
    return str(have) == str(want)


def _short(v: object) -> str:
    """An option as a plan line shows it: a map's class by its short name."""
    if isinstance(v, Mapping):
        return "{" + ", ".join(f"{k}: {str(x).rsplit('.', 1)[-1] if k == 'class' else x}"
                               for k, x in sorted(v.items())) + "}"
    return str(v)


def diff_table(
    keyspace: str, want: TableSpec, have_columns: Mapping[str, str] | None,
    have_options: Mapping[str, object],
) -> list[tuple[Change, str | None]]:
    """Changes for one table, each with the CQL that applies it (None when not applicable)."""
    t = f"table {keyspace}.{want.name}"
    if have_columns is None:
        return [(Change(t, "create"), table_cql(keyspace, want))]
    out: list[tuple[Change, str | None]] = []
    for name, cql_type in want.columns.items():
        base = cql_type.replace(" static", "")
        if name not in have_columns:
            out.append((Change(t, f"add column {name} {cql_type}"),
                        f"ALTER TABLE {keyspace}.{want.name} ADD {name} {cql_type}"))
        elif have_columns[name] != base:
            out.append((Change(t, f"column {name} is {have_columns[name]}, declared {base}",
                               False), None))
    for key, value in want.options.items():
        if not option_matches(value, have_options.get(key)):
            out.append((Change(t, f"{key} = {_short(value)} (was {_short(have_options.get(key))})"),
                        f"ALTER TABLE {keyspace}.{want.name} WITH {key} = {_cql_value(value)}"))
    return out
