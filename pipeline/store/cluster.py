"""One place that turns Settings into a cassandra-driver Session (DC-aware, LOCAL_QUORUM), and
the store boundary's one error type for "Cassandra did not answer": ``StoreUnavailable``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from cassandra import (
    ConsistencyLevel,
    CoordinationFailure,
    OperationTimedOut,
    Timeout,
    Unavailable,
)
from cassandra.cluster import (
    EXEC_PROFILE_DEFAULT,
    Cluster,
    ExecutionProfile,
    NoHostAvailable,
    Session,
)
from cassandra.connection import ConnectionException
from cassandra.policies import (
    DCAwareRoundRobinPolicy,
    ExponentialReconnectionPolicy,
    TokenAwarePolicy,
)
from cassandra.protocol import IsBootstrappingErrorMessage, OverloadedErrorMessage

from pipeline.config import Settings

__all__ = ["LOCAL_ONE_PROFILE", "Store", "StoreUnavailable", "UnknownDatacenter", "aexecute",
           "connect", "connect_dc", "prepare", "unavailable"]

#: Execution profile name for reads that may be served by any one local replica (playback hot path).
LOCAL_ONE_PROFILE = "local_one"

#: How often a lost node is tried again: from 0.25 s doubling to 2 s. The driver's default cap
#: is 10 minutes, which kept readers failing for ~2 minutes after a restarted node was back.
RECONNECT_BASE_S, RECONNECT_MAX_S = 0.25, 2.0

#: Driver errors that mean "not now" (no replica reachable, timed out, overloaded, restarting),
#: as opposed to a wrong query or schema, which no retry fixes.
_TRANSIENT = (NoHostAvailable, OperationTimedOut, Unavailable, Timeout, CoordinationFailure,
              ConnectionException, OverloadedErrorMessage, IsBootstrappingErrorMessage)


class StoreUnavailable(Exception):
    """Cassandra did not answer in time (node down, too few replicas, timeout): retry later."""


class UnknownDatacenter(LookupError):
    """The cluster has no data centre of that name (``datacenters``: the ones it has)."""

    def __init__(self, dc: str, datacenters: set[str]):
        super().__init__(f"no data centre {dc!r} in the Cassandra cluster "
                         f"(it has: {', '.join(sorted(datacenters)) or 'none seen'})")
        self.dc, self.datacenters = dc, datacenters


def unavailable(exc: BaseException) -> BaseException:
    """``StoreUnavailable`` for a transient driver error; any other error unchanged."""
    if isinstance(exc, _TRANSIENT):
        return StoreUnavailable(f"{type(exc).__name__}: {exc}")
    return exc


def connect(settings: Settings, keyspace: str | None = None, timeout: float = 10.0) -> Session:
    """Connect to the local DC; default consistency LOCAL_QUORUM, profile ``local_one`` for cheap
    reads."""
    policy = TokenAwarePolicy(DCAwareRoundRobinPolicy(local_dc=settings.region))
    profiles = {
        EXEC_PROFILE_DEFAULT: ExecutionProfile(
            load_balancing_policy=policy, consistency_level=ConsistencyLevel.LOCAL_QUORUM,
            request_timeout=timeout,
        ),
        LOCAL_ONE_PROFILE: ExecutionProfile(
            load_balancing_policy=policy, consistency_level=ConsistencyLevel.LOCAL_ONE,
            request_timeout=timeout,
        ),
    }
    hosts = settings.cassandra_hosts
    cluster = Cluster(
        contact_points=[h for h, _ in hosts], port=hosts[0][1], execution_profiles=profiles,
        protocol_version=5, connect_timeout=timeout,
        reconnection_policy=ExponentialReconnectionPolicy(RECONNECT_BASE_S, RECONNECT_MAX_S),
    )
    try:
        return cluster.connect(keyspace)
    except Exception as exc:
        cluster.shutdown()
        raise unavailable(exc) from exc


def connect_dc(settings: Settings, dc: str, keyspace: str | None = None,
               timeout: float = 10.0) -> Session:
    """A session that reads one data centre's replicas only: ``dc``'s hosts alone coordinate
    (no remote hosts, ``used_hosts_per_remote_dc=0``) at LOCAL_ONE, so each read is what that DC
    holds now, not a quorum across regions. For comparing DCs (``replay verify --dcs``); the
    contact points can be any of the cluster's nodes, the policy picks the DC.
    """
    policy = TokenAwarePolicy(DCAwareRoundRobinPolicy(local_dc=dc, used_hosts_per_remote_dc=0))
    profile = ExecutionProfile(load_balancing_policy=policy,
                               consistency_level=ConsistencyLevel.LOCAL_ONE,
                               request_timeout=timeout)
    hosts = settings.cassandra_hosts
    cluster = Cluster(
        contact_points=[h for h, _ in hosts], port=hosts[0][1],
        execution_profiles={EXEC_PROFILE_DEFAULT: profile}, protocol_version=5,
        connect_timeout=timeout,
        reconnection_policy=ExponentialReconnectionPolicy(RECONNECT_BASE_S, RECONNECT_MAX_S),
    )
    try:
        session = cluster.connect(keyspace)
    except Exception as exc:
        seen = {h.datacenter for h in cluster.metadata.all_hosts() if h.datacenter}
        cluster.shutdown()
        if seen and dc not in seen:
            raise UnknownDatacenter(dc, seen) from exc
        raise unavailable(exc) from exc
    seen = {h.datacenter for h in cluster.metadata.all_hosts() if h.datacenter}
    if dc not in seen:
        cluster.shutdown()
        raise UnknownDatacenter(dc, seen)
    return session


async def aexecute(session: Session, statement: Any, params: Any = None, **kwargs: Any) -> Any:
    """Run a statement with the driver's async API and await it without blocking the loop."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future = loop.create_future()
    rf = session.execute_async(statement, params, **kwargs)

    def ok(rows: Any) -> None:
        loop.call_soon_threadsafe(lambda: fut.done() or fut.set_result(rf))

    def err(exc: BaseException) -> None:
        loop.call_soon_threadsafe(lambda: fut.done() or fut.set_exception(exc))

    rf.add_callbacks(ok, err)
    try:
        await fut
    except Exception as exc:
        raise unavailable(exc) from exc
    return rf.result()


async def prepare(session: Session, cql: str) -> Any:
    """Prepare a statement in a thread (the driver call blocks)."""
    try:
        return await asyncio.to_thread(session.prepare, cql)
    except Exception as exc:
        raise unavailable(exc) from exc


class Store:
    """Base of the table stores: connects in ``start()``, prepares ``queries()``, ends in
    ``close()``."""

    def __init__(self, settings: Settings, session: Session | None = None) -> None:
        self._settings = settings
        self._session = session
        self._own_session = session is None
        self._ps: dict[str, Any] = {}

    def queries(self) -> dict[str, str]:
        """Name → CQL of the statements to prepare."""
        raise NotImplementedError

    async def start(self) -> None:
        """Connect (a blocking driver call, run in a thread) and prepare the statements."""
        if self._session is None:
            self._session = await asyncio.to_thread(connect, self._settings,
                                                    self._settings.keyspace)
        for name, cql in self.queries().items():
            self._ps[name] = await prepare(self._session, cql)

    async def close(self) -> None:
        """Shut the driver down if this store made the session."""
        if self._session is not None and self._own_session:
            await asyncio.to_thread(self._session.cluster.shutdown)
        self._session = None
