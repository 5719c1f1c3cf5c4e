"""Zero-downtime schema migration drill: FrameChunk gains a field with a default while two
workers of one consumer group are upgraded one at a time under live traffic.

Phase 1: both workers and the bridge run the old release (which already knows the next version
as a writer schema). Phase 2: one worker restarted on the new release, and a second bridge of
the new release takes cameras, so old and new bytes share the log and each worker reads both.
Phase 3: the other worker upgraded too. Nothing may reach the dead-letter topic, and every frame
in the log must end up stored exactly once and decodable, whichever release wrote or read it.
The ``same`` case runs the same rolling restart with no schema change, so a failure of the
``next`` case alone points at the schema change, and of both at the restart itself.
"""

from __future__ import annotations

import re
import signal
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator

import pytest

from pipeline.events import EVENTS, catalog, decode
from pipeline.runner import Child, http_ok
from tests.chaos.conftest import ChaosSystem, assert_exactly_once, report, system_on
from tests.schemas.releases import next_fingerprint, releases
from tests.system import end_offsets, free_port

pytestmark = [pytest.mark.services, pytest.mark.slow]

CAMS = 3  # per bridge; 15 fps 320x180, as the chaos cases


def _messages(settings, topic: str, since: dict[int, int], prefix: str) -> Iterator:
    """Every message of ``topic`` from ``since`` to today's end whose key starts with ``prefix``."""
    from confluent_kafka import Consumer, TopicPartition

    end = end_offsets(settings, topic)
    todo = {p for p in end if end[p] > since.get(p, 0)}
    c = Consumer({"bootstrap.servers": settings.kafka, "group.id": f"drill-{uuid.uuid4().hex}",
                  "enable.auto.commit": False})
    c.assign([TopicPartition(topic, p, since.get(p, 0)) for p in todo])
    deadline = time.monotonic() + 120
    try:
        while todo and time.monotonic() < deadline:
            msg = c.poll(1.0)
            if msg is None or msg.error() or msg.partition() not in todo:
                continue
            if msg.offset() >= end[msg.partition()] - 1:
                todo.discard(msg.partition())
            if (msg.key() or b"").decode().startswith(prefix):
                yield msg
    finally:
        c.close()
    assert not todo, f"{topic} not read to its end: partitions {todo}"


def _members(settings, group: str) -> int:
    """Members of a STABLE consumer group (0 while it rebalances)."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": settings.kafka})  # alive until the answer
    try:
        desc = admin.describe_consumer_groups([group])[group].result(timeout=5)
    except Exception:  # the coordinator moves during a rebalance; asked again shortly
        return 0
    return len(desc.members) if str(desc.state).upper().endswith("STABLE") else 0


def _wait_group(system: ChaosSystem, count: int) -> None:
    system.runner.wait(f"{count} workers in {system.group}",
                       lambda: _members(system.settings, system.group) == count, timeout=180)


def _bridge(system: ChaosSystem, env: dict[str, str]) -> tuple[Child, str]:
    """A second bridge (another release) on a free port, ready."""
    addr = f"127.0.0.1:{free_port()}"
    base = system.child("bridge")
    child = Child("bridge-new", [sys.executable, "-m", "pipeline", "bridge"],
                  {**base.env, **env, "CAMLOG_BRIDGE_ADDR": addr},
                  base.log.with_name("bridge-new.log"))
    child.start()
    system.runner.children.append(child)
    system.runner.wait("bridge-new", lambda: http_ok(f"http://{addr}/readyz"), child=child)
    return child, addr


@pytest.mark.parametrize("release", ["next", "same"])
def test_rolling_schema_upgrade_of_two_workers(services, produce, cassandra_session, tmp_path,
                                              monkeypatch, capsys, release):
    """``same`` is the control: the same rolling restart with no schema change."""
    old, new = releases(tmp_path)
    upgrade = {"CAMLOG_SCHEMA_DIR": str(new if release == "next" else old)}
    monkeypatch.setenv("CAMLOG_SCHEMA_DIR", str(old))  # children start on the old release
    fp_next, parsed_next = next_fingerprint()
    # this process reads the log back as the new release does (both versions known)
    monkeypatch.setitem(catalog.BY_FINGERPRINT, fp_next,
                        catalog.WriterSchema(EVENTS["FrameChunk"], parsed_next, False))
    dlq_since = end_offsets(services, "camlog.dlq")
    with system_on(services, tmp_path) as system:
        system.runner.spawn("worker2", "worker", *system.worker_args)
        _wait_group(system, 2)
        # phase 1: old workers, old bridge; cameras run through every phase (stopped at the end)
        cams = [system.start_cameras(CAMS, 3600, "old")]
        time.sleep(10)
        # phase 2: one worker new; a new-release bridge writes the next version beside the old
        system.restart("worker", signal.SIGTERM, env=upgrade)
        _, addr = _bridge(system, upgrade)
        cams.append(system.start_cameras(CAMS, 3600, "new", bridge=addr))
        _wait_group(system, 2)
        time.sleep(15)
        # phase 3: both workers new; both bridges still write
        system.restart("worker2", signal.SIGTERM, env=upgrade)
        _wait_group(system, 2)
        time.sleep(10)
        for cam in cams:
            assert cam.alive, cam.tail()  # traffic flowed until now
            cam.stop()
        outcome = system.outcome(timeout=240)
        versions = Counter((m.key().decode().split("-")[1], bytes(m.value()[2:10]))
                           for m in _messages(services, "camlog.frames", system.since,
                                              system.prefix))
        # a control dead letter proves the DLQ read-back below can see one
        ctl = f"{system.prefix}-ctl".encode()
        produce("camlog.frames", b"\xc3\x01" + b"\x00" * 8 + b"junk", key=ctl)
        system.runner.wait("control dead letter", lambda: any(
            m.key() == ctl for m in _messages(services, "camlog.dlq", dlq_since, system.prefix)),
            timeout=120)
        dead = [decode("DeadLetter", m.value())
                for m in _messages(services, "camlog.dlq", dlq_since, system.prefix)]
    fp_now = EVENTS["FrameChunk"].fingerprint
    fp_new = fp_next if release == "next" else fp_now
    report(f"schema-migration-drill[{release}]", chunks_old=versions[("old", fp_now)],
           chunks_new=versions[("new", fp_new)], dead_letters=len(dead) - 1)
    assert set(versions) == {("old", fp_now), ("new", fp_new)}, versions  # both writers wrote
    assert [d["stream_id"] for d in dead] == [ctl.decode()], [
        (d["stream_id"], d["stage"], d["partition"], d["offset"], d["time"], d["reason"])
        for d in dead]
    assert_exactly_once(outcome, {f"{system.prefix}-{g}-{i}" for g in ("old", "new")
                                  for i in range(1, CAMS + 1)})
    _assert_views_equal_a_rebuild(services, cassandra_session, sorted(outcome), system.t0_us,
                                  capsys)


def _assert_views_equal_a_rebuild(services, session, streams: list[str], t0_us: int,
                                  capsys) -> None:
    """The views the mixed releases built live (segments, manifests, device state) equal what
    one release rebuilds from the same log (``replay rebuild``, then ``replay verify``).

    One tolerance: a device's bitrate may differ by 0.01 %: a restarted view worker has lost its
    previous chunk (volatile state), so its first rate sample is the in-chunk estimate where a
    rebuild's is the chunk-to-chunk one, and the moving average carries the difference on,
    decaying (noticed, not fixed: it needs the last chunk's summary stored with the row)."""
    from pipeline.cli import main
    from pipeline.replay.verify import verify

    into = f"drill_{uuid.uuid4().hex[:10]}"
    base = ["--kafka", services.kafka, "--state-dir", str(services.state_dir)]
    sel = [a for sid in streams for a in ("--stream", sid)]
    try:
        assert main([*base, "replay", "rebuild", "--into", into, *sel, "--from",
                     f"{t0_us / 1e6 - 10:.3f}", "--to", f"{time.time() + 2:.3f}"]) == 0
        capsys.readouterr()
        diffs = [d for d in verify(services, into, streams) if not _restart_drift(d)]
        assert diffs == [], "\n".join(map(str, diffs[:40]))
    finally:
        session.execute(f"DROP KEYSPACE IF EXISTS {into}", timeout=120)


def _restart_drift(d) -> bool:
    m = re.fullmatch(r"bitrate: live (\d+) != rebuilt (\d+)", d.what)
    if d.table != "device_state" or m is None:
        return False
    live, rebuilt = int(m[1]), int(m[2])
    return abs(live - rebuilt) <= max(1, max(live, rebuilt) // 10_000)
