"""Kafka admin requests confluent-kafka 2.16 does not expose: partition reassignments, log dirs.

Sent with aiokafka's protocol layer (already installed with Faust); each call opens a client,
sends, and closes, so callers stay synchronous.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

from aiokafka.protocol.admin import (
    AlterPartitionReassignmentsRequest,
    ListPartitionReassignmentsRequest,
)
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import Array, Boolean, Int16, Int32, Int64, Schema, String

from pipeline.errors import CamlogError

__all__ = ["WireError", "alter_reassignments", "list_reassignments", "log_dir_sizes"]

T = TypeVar("T")


class WireError(CamlogError):
    """A broker refused or failed an admin request."""


class _DescribeLogDirsResponse_v1(Response):
    API_KEY = 35
    API_VERSION = 1
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        ("results", Array(
            ("error_code", Int16),
            ("log_dir", String("utf-8")),
            ("topics", Array(
                ("name", String("utf-8")),
                ("partitions", Array(
                    ("partition_index", Int32),
                    ("partition_size", Int64),
                    ("offset_lag", Int64),
                    ("is_future_key", Boolean),
                )),
            )),
        )),
    )


class _DescribeLogDirsRequest_v1(RequestStruct):
    API_KEY = 35
    API_VERSION = 1
    RESPONSE_TYPE = _DescribeLogDirsResponse_v1
    SCHEMA = Schema(("topics", Array(("topic", String("utf-8")), ("partitions", Array(Int32)))))


class _DescribeLogDirs(Request[_DescribeLogDirsRequest_v1]):
    API_KEY = 35

    def __init__(self, topics: list[tuple[str, list[int]]] | None):
        self._topics = topics

    def build(self, request_struct_class: type[_DescribeLogDirsRequest_v1]
              ) -> _DescribeLogDirsRequest_v1:
        return request_struct_class(self._topics)


async def _with_client(bootstrap: str, fn: Callable[[Any], Awaitable[T]]) -> T:
    from pipeline.kafka.clients import aio_client

    client = aio_client(bootstrap, request_timeout_ms=30000)
    try:
        await client.bootstrap()
        return await fn(client)
    finally:
        await client.close()


async def _send(client: Any, node_id: int | None, request: Request) -> Any:
    if node_id is None:
        node_id = client.get_random_node()
    for _ in range(100):
        if await client.ready(node_id):
            return await client.send(node_id, request)
        await asyncio.sleep(0.1)
    raise WireError(f"broker {node_id} not reachable")


def alter_reassignments(bootstrap: str, target: Mapping[tuple[str, int], Sequence[int] | None]
                        ) -> dict[tuple[str, int], str]:
    """Start reassignments (``None`` cancels one); returns errors per partition (empty = all ok)."""
    by_topic: dict[str, list] = {}
    for (t, p), reps in sorted(target.items()):
        by_topic.setdefault(t, []).append((p, None if reps is None else list(reps), {}))
    req = AlterPartitionReassignmentsRequest(30000, [(t, ps, {}) for t, ps in by_topic.items()], {})
    resp = asyncio.run(_with_client(bootstrap, lambda c: _send(c, None, req))).to_object()
    if resp["error_code"]:
        raise WireError(f"reassignment refused: {resp['error_message'] or resp['error_code']}")
    errors = {}
    for topic in resp["responses"]:
        for part in topic["partitions"]:
            if part["error_code"]:
                errors[(topic["name"], part["partition_index"])] = (
                    part["error_message"] or f"error {part['error_code']}")
    return errors


def list_reassignments(bootstrap: str) -> dict[tuple[str, int], dict[str, list[int]]]:
    """Reassignments in progress: ``(topic, partition) -> {replicas, adding, removing}``."""
    req = ListPartitionReassignmentsRequest(30000, None, {})
    resp = asyncio.run(_with_client(bootstrap, lambda c: _send(c, None, req))).to_object()
    if resp["error_code"]:
        why = resp["error_message"] or resp["error_code"]
        raise WireError(f"listing reassignments failed: {why}")
    return {(t["name"], p["partition_index"]): {"replicas": p["replicas"],
                                                 "adding": p["adding_replicas"],
                                                 "removing": p["removing_replicas"]}
            for t in resp["topics"] or [] for p in t["partitions"]}


def log_dir_sizes(bootstrap: str, brokers: Sequence[int]) -> dict[tuple[str, int, int], int]:
    """Bytes on disk per ``(topic, partition, broker)`` from every broker's log dirs."""

    async def run(client: Any) -> dict[tuple[str, int, int], int]:
        out: dict[tuple[str, int, int], int] = {}
        for b in brokers:
            resp = (await _send(client, b, _DescribeLogDirs(None))).to_object()
            for d in resp["results"]:
                for t in d["topics"]:
                    for p in t["partitions"]:
                        if not p["is_future_key"]:
                            key = (t["name"], p["partition_index"], b)
                            out[key] = out.get(key, 0) + p["partition_size"]
        return out

    return asyncio.run(_with_client(bootstrap, run))
