"""``camlog dev up|status|down``: real Kafka (KRaft) and Cassandra on loopback, one command.

Ports (all overridable, so a second stack can run beside the default one):
Kafka node i (0-based) serves clients on ``--kafka-port + i`` (default: the port of
``CAMLOG_KAFKA``, 9092) and the KRaft quorum on ``--controller-port + i`` (default client port
+ 10000, i.e. 19092); Cassandra serves CQL on ``--cassandra-port`` (default: the port of
``CAMLOG_CASSANDRA``, 9042) and gossip on ``--storage-port`` (default CQL port - 2042, i.e. 7000).
"""

from __future__ import annotations

import argparse
import importlib.util
import os

from pipeline.config import Settings
from pipeline.errors import CliError

__all__ = ["register"]


def register(parser: argparse.ArgumentParser) -> None:
    """Add the ``up``, ``status`` and ``down`` sub-commands."""
    sub = parser.add_subparsers(dest="dev_command", metavar="ACTION", required=True)
    p = sub.add_parser("up", help="start Kafka and Cassandra, wait until ready, apply topology")
    p.add_argument("--kafka-brokers", type=int, default=1, choices=(1, 3),
                   help="number of combined KRaft controller+broker nodes (default 1)")
    p.add_argument("--no-kafka", action="store_true", help="do not start Kafka")
    p.add_argument("--no-cassandra", action="store_true", help="do not start Cassandra")
    p.add_argument("--no-topology", action="store_true", help="do not apply topology/")
    p.add_argument("--kafka-port", type=int, help="client port of the first broker")
    p.add_argument("--controller-port", type=int, help="KRaft port of the first node")
    p.add_argument("--cassandra-port", type=int, help="CQL port")
    p.add_argument("--storage-port", type=int, help="Cassandra internode port")
    p.add_argument("--regions", metavar="DC1,DC2",
                   help="instead: one Kafka cluster per region, one Cassandra DC per region on "
                        "127.0.0.N, and MirrorMaker 2 between them (pipeline/devstack/regions.py)")
    p.set_defaults(func=_up)
    p = sub.add_parser("fetch", help="download the Kafka and Cassandra jars into the cache only")
    p.set_defaults(func=_fetch)
    p = sub.add_parser("status", help="show each process, its pid, port and readiness")
    p.set_defaults(func=_status)
    p = sub.add_parser("down", help="stop what `up` started")
    p.add_argument("--purge", action="store_true", help="also delete their data")
    p.set_defaults(func=_down)


def _port_of(address: str, default: int) -> int:
    _, _, port = address.split(",")[0].strip().rpartition(":")
    return int(port) if port.isdigit() else default


def _up(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.auth.keys import ensure_dev_key
    from pipeline.config import ensure_dev_secret
    from pipeline.devstack.stack import CassandraSpec, KafkaSpec, Stack, up

    ensure_dev_secret(settings)  # device tokens' dev key (without CAMLOG_SECRET), once
    if made := ensure_dev_key(settings):  # the dev viewer-token key, like the dev secret
        print(f"made the development viewer key {made}")
    if args.regions:
        return _up_regions(args, settings)
    if args.no_kafka and args.no_cassandra:
        raise CliError("nothing to start (--no-kafka and --no-cassandra)")
    kafka = cassandra = None
    if not args.no_kafka:
        port = args.kafka_port or _port_of(settings.kafka, 9092)
        kafka = KafkaSpec(brokers=args.kafka_brokers, port=port,
                          controller_port=args.controller_port or port + 10000)
    if not args.no_cassandra:
        port = args.cassandra_port or _port_of(settings.cassandra[0], 9042)
        cassandra = CassandraSpec(port=port, storage_port=args.storage_port or port - 2042,
                                  region=settings.region)

    def apply(k: KafkaSpec | None, c: CassandraSpec | None) -> None:
        _apply_topology(settings, k, c)

    try:
        up(Stack(settings.state_dir), kafka, cassandra, None if args.no_topology else apply)
    except (RuntimeError, TimeoutError) as exc:
        raise CliError(f"{exc} (logs under {settings.state_dir / 'dev'})") from None
    return 0


def _up_regions(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.devstack.regions import Region, parse_regions, regions_up
    from pipeline.devstack.stack import Stack

    names = parse_regions(args.regions)
    # One replica per DC unless CAMLOG_REPLICATION says otherwise (e.g. dc1:3,dc2:3 in production).
    replication = (dict(settings.replication) if os.environ.get("CAMLOG_REPLICATION")
                   else {n: 1 for n in names})

    def apply(region: Region, keyspace: bool) -> None:
        target = settings.replace(kafka=region.bootstrap, cassandra=(f"{region.host}:9042",),
                                  region=region.name, replication=replication)
        from pipeline.topology.apply import apply_all

        try:
            changes = apply_all(target, kafka=True, cassandra=keyspace)
        except Exception as exc:  # the services stay up; say what failed and how to retry
            raise CliError(f"services are up, but applying topology/ in {region.name} failed: "
                           f"{exc}") from exc
        print(f"topology applied in {region.name}: {len(changes)} change(s)")

    try:
        regions_up(Stack(settings.state_dir), names, None if args.no_topology else apply)
    except (RuntimeError, TimeoutError) as exc:
        raise CliError(f"{exc} (logs under {settings.state_dir / 'dev'})") from None
    return 0


def _apply_topology(settings: Settings, k, c) -> None:  # type: ignore[no-untyped-def]
    """Apply topology/ to the stack just started (its ports, not necessarily the settings')."""
    if importlib.util.find_spec("pipeline.topology.apply") is None:
        print("topology not applied: pipeline.topology.apply is not available")
        return
    from pipeline.topology.apply import apply_all

    target = settings
    if k is not None:
        target = target.replace(kafka=",".join(
            f"127.0.0.1:{k.port + i}" for i in range(k.brokers)))
    if c is not None:
        target = target.replace(cassandra=(f"127.0.0.1:{c.port}",))
    try:
        changes = apply_all(target, brokers=k.brokers if k else None,
                            kafka=k is not None, cassandra=c is not None)
    except Exception as exc:  # the services stay up; say what failed and how to retry
        raise CliError(f"services are up, but applying topology/ failed: {exc}\n"
                       "fix it, then run `camlog topology apply`") from exc
    print(f"topology applied: {len(changes)} change(s)")
    for change in changes:
        print(f"  {change}")


def _fetch(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.devstack.cassandra import CASSANDRA_VERSION
    from pipeline.devstack.kafka import KAFKA_VERSION
    from pipeline.devstack.maven import fetch_libs
    from pipeline.devstack.mirror import MIRROR_VERSION
    from pipeline.devstack.stack import Stack

    cache = Stack(settings.state_dir).cache
    for component, version in (("kafka", KAFKA_VERSION), ("cassandra", CASSANDRA_VERSION),
                               ("mirror", MIRROR_VERSION)):
        print(f"{component} {version}: {fetch_libs(component, version, cache)}")
    return 0


def _status(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.devstack.regions import regions_status
    from pipeline.devstack.stack import Stack, status

    stack = Stack(settings.state_dir)
    rows = status(stack) + regions_status(stack)
    if not rows:
        print(f"camlog dev: nothing set up in {settings.state_dir}")
        return 1
    print(f"{'process':<16}{'region':<8}{'version':<10}{'pid':>8}{'port':>15}  state")
    for r in rows:
        state = "ready" if r["ready"] else ("starting/unready" if r["running"] else "stopped")
        region = r.get("region", settings.region)
        print(f"{r['name']:<16}{region:<8}{r['version']:<10}{r['pid'] or '-':>8}"
              f"{r['port']:>15}  {state}")
    return 0 if all(r["ready"] for r in rows) else 1


def _down(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.devstack.regions import regions_down
    from pipeline.devstack.stack import Stack, down

    stack = Stack(settings.state_dir)
    stopped = regions_down(stack)
    if not stopped or not (stack.root / "regions.json").exists() or args.purge:
        down(stack, purge=args.purge)
    return 0
