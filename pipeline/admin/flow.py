"""A small min-cost max-flow solver: the exact core behind the rebalance planner (pure)."""

from __future__ import annotations

from collections import deque

__all__ = ["FlowGraph"]


class FlowGraph:
    """Directed graph with capacities and integer costs; solved by successive shortest paths.

    Graphs here have a few hundred nodes at most (partitions x brokers of one topic), so the
    simple Bellman-Ford (SPFA) variant is plenty and keeps the code obvious.
    """

    def __init__(self) -> None:
        self._ids: dict[object, int] = {}
        self._adj: list[list[int]] = []
        # edge arrays: head, capacity, cost; edge i ^ 1 is the reverse of edge i
        self._to: list[int] = []
        self._cap: list[int] = []
        self._cost: list[int] = []

    def _node(self, name: object) -> int:
        if name not in self._ids:
            self._ids[name] = len(self._adj)
            self._adj.append([])
        return self._ids[name]

    def add_edge(self, u: object, v: object, cap: int, cost: int = 0) -> int:
        """Add an edge ``u -> v``; returns its index for :meth:`flow_on`."""
        a, b = self._node(u), self._node(v)
        idx = len(self._to)
        for head, c, w, tail in ((b, cap, cost, a), (a, 0, -cost, b)):
            self._to.append(head)
            self._cap.append(c)
            self._cost.append(w)
            self._adj[tail].append(len(self._to) - 1)
        return idx

    def flow_on(self, edge: int) -> int:
        """Units of flow on an edge returned by :meth:`add_edge`."""
        return self._cap[edge ^ 1]

    def solve(self, source: object, sink: object) -> tuple[int, int]:
        """Push as much flow as possible at least cost; returns ``(flow, cost)``."""
        s, t = self._node(source), self._node(sink)
        n = len(self._adj)
        flow = cost = 0
        while True:
            dist = [None] * n
            prev_edge = [-1] * n
            in_queue = [False] * n
            dist[s] = 0
            queue = deque([s])
            while queue:
                u = queue.popleft()
                in_queue[u] = False
                for e in self._adj[u]:
                    if self._cap[e] <= 0:
                        continue
                    v, nd = self._to[e], dist[u] + self._cost[e]
                    if dist[v] is None or nd < dist[v]:
                        dist[v], prev_edge[v] = nd, e
                        if not in_queue[v]:
                            in_queue[v] = True
                            queue.append(v)
            if dist[t] is None:
                return flow, cost
            push, v = None, t
            while v != s:
                e = prev_edge[v]
                push = self._cap[e] if push is None else min(push, self._cap[e])
                v = self._to[e ^ 1]
            v = t
            while v != s:
                e = prev_edge[v]
                self._cap[e] -= push
                self._cap[e ^ 1] += push
                v = self._to[e ^ 1]
            flow += push
            cost += push * dist[t]
