"""Reads the Cassandra side of the topology from a cluster and applies the keyspace and tables."""

from __future__ import annotations

from collections.abc import Mapping

from cassandra.cluster import Session

from pipeline.config import Settings
from pipeline.topology.spec import Change, TableSpec, diff_table, load_tables, resolve_options

__all__ = ["apply_cassandra", "keyspace_cql", "plan_cassandra"]

_TRACKED_OPTIONS = ("default_time_to_live", "gc_grace_seconds", "compaction", "compression")


def keyspace_cql(keyspace: str, replication: Mapping[str, int], verb: str = "CREATE") -> str:
    """CQL creating (or altering) the keyspace with NetworkTopologyStrategy."""
    rep = ", ".join(f"'{dc}': {rf}" for dc, rf in sorted(replication.items()))
    exists = " IF NOT EXISTS" if verb == "CREATE" else ""
    return (f"{verb} KEYSPACE{exists} {keyspace} WITH replication = "
            f"{{'class': 'NetworkTopologyStrategy', {rep}}}")


def _have_replication(session: Session, keyspace: str) -> dict[str, int] | None:
    row = session.execute(
        "SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = %s", (keyspace,)
    ).one()
    if row is None:
        return None
    return {k: int(v) for k, v in row.replication.items() if k != "class"}


def _have_tables(session: Session,
                 keyspace: str) -> tuple[dict[str, dict[str, str]], dict[str, dict]]:
    cols: dict[str, dict[str, str]] = {}
    for r in session.execute(
        "SELECT table_name, column_name, type FROM system_schema.columns WHERE keyspace_name = %s",
        (keyspace,),
    ):
        cols.setdefault(r.table_name, {})[r.column_name] = r.type
    opts: dict[str, dict] = {}
    for r in session.execute(
        f"SELECT table_name, {', '.join(_TRACKED_OPTIONS)} FROM system_schema.tables "
        "WHERE keyspace_name = %s", (keyspace,),
    ):
        opts[r.table_name] = {k: getattr(r, k) for k in _TRACKED_OPTIONS}
    return cols, opts


def plan_cassandra(
    session: Session, settings: Settings, keyspace: str | None = None,
    specs: list[TableSpec] | None = None,
) -> list[tuple[Change, str | None]]:
    """Changes (with their CQL) that bring the keyspace and tables to the declaration, with the
    retention-derived options (TTL, TWCS window) resolved from ``settings.retention_days``."""
    ks = keyspace or settings.keyspace
    plan: list[tuple[Change, str | None]] = []
    have_rep = _have_replication(session, ks)
    if have_rep is None:
        plan.append((Change(f"keyspace {ks}", f"create {dict(settings.replication)}"),
                     keyspace_cql(ks, settings.replication)))
    elif have_rep != dict(settings.replication):
        plan.append((Change(f"keyspace {ks}",
                            f"replication {have_rep} -> {dict(settings.replication)}"),
                     keyspace_cql(ks, settings.replication, "ALTER")))
    cols, opts = _have_tables(session, ks) if have_rep is not None else ({}, {})
    for spec in specs or load_tables():
        spec = resolve_options(spec, settings.retention_days)
        have_opts = {k: v for k, v in opts.get(spec.name, {}).items() if k in _TRACKED_OPTIONS}
        plan += diff_table(ks, spec, cols.get(spec.name), have_opts)
    return plan


def apply_cassandra(session: Session, plan: list[tuple[Change, str | None]]) -> list[Change]:
    """Run the CQL of a plan in order (schema changes wait for agreement); returns what changed."""
    done = []
    for change, cql in plan:
        if cql is None:
            continue
        session.execute(cql, timeout=60)
        done.append(change)
    if done:
        session.cluster.control_connection.wait_for_schema_agreement(wait_time=30)
    return done
