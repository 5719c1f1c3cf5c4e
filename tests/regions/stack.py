"""One started two-region stack per test session (``camlog dev up --regions dc1,dc2``).

The ``two_regions`` fixture is made visible to every test by the root conftest (tests/regions
and the region-outage drill in tests/chaos share one stack).

Its Cassandra takes 127.0.0.1:9042, so the shared one-region stack is stopped first and started
again at the end when it was running. The stack lives in its own state folder
(``CAMLOG_REGIONS_STATE_DIR``, default ``<repo>/.camlog-regions``), purged afterwards.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipeline.config import Settings

ROOT = Path(__file__).resolve().parents[2]
REGIONS = ("dc1", "dc2")


@dataclass(frozen=True)
class TwoRegions:
    """The running regions: per-region settings (its Kafka, its DC) and the stack's folder."""

    state_dir: Path
    by_name: dict[str, Settings]

    def __getitem__(self, region: str) -> Settings:
        return self.by_name[region]

    def cassandra_pid(self, region: str) -> int:
        """Pid of the region's Cassandra node (to SIGSTOP/SIGKILL it)."""
        from pipeline.devstack.regions import load_regions
        from pipeline.devstack.stack import Stack

        r = next(r for r in load_regions(Stack(self.state_dir)) if r.name == region)
        proc = r.cassandra.pidfile.process()
        assert proc is not None, f"Cassandra of {region} is not running"
        return proc.pid


def _main_in(state_dir: Path, argv: list[str]) -> int:
    from pipeline.cli import main

    old = os.environ.get("CAMLOG_STATE_DIR")
    os.environ["CAMLOG_STATE_DIR"] = str(state_dir)
    try:
        return main(argv)
    finally:
        if old is None:
            os.environ.pop("CAMLOG_STATE_DIR", None)
        else:
            os.environ["CAMLOG_STATE_DIR"] = old


@pytest.fixture(scope="session")
def two_regions(settings: Settings) -> Iterator[TwoRegions]:
    """Start dc1 and dc2 (Kafka, Cassandra DC, MirrorMaker 2) once; restore the shared stack."""
    from pipeline.devstack.regions import plan_regions
    from pipeline.devstack.stack import Stack, status

    shared = Stack(settings.state_dir)
    shared_was_up = any(r["running"] for r in status(shared))
    if shared_was_up:
        assert _main_in(settings.state_dir, ["dev", "down"]) == 0
    state = Path(os.environ.get("CAMLOG_REGIONS_STATE_DIR", ROOT / ".camlog-regions")).resolve()
    cache = state / "cache"
    if not cache.exists() and shared.cache.exists():  # reuse the downloaded jars
        state.mkdir(parents=True, exist_ok=True)
        cache.symlink_to(shared.cache)
    try:
        assert _main_in(state, ["dev", "up", "--regions", ",".join(REGIONS)]) == 0
        replication = {r: 1 for r in REGIONS}
        by_name = {r.name: settings.replace(kafka=r.bootstrap, cassandra=(f"{r.host}:9042",),
                                            region=r.name, replication=replication,
                                            state_dir=state)
                   for r in plan_regions(Stack(state), REGIONS)}
        yield TwoRegions(state, by_name)
    finally:
        _main_in(state, ["dev", "down", "--purge"])
        if shared_was_up:
            _main_in(settings.state_dir, ["dev", "up"])
