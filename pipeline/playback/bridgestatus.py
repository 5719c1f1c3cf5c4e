"""The playback service's client of the bridge's ``POST /v1/status`` (see ``ingest.status``).

One request per listing page, answers kept ``ttl_s`` per stream, a short timeout, and after a
failure no request for ``backoff_s``: a missing or slow bridge costs the listing nothing but
the "behind" signal (``liveness.classify`` then decides from device state alone).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from pipeline.auth.keys import ViewerKeys
from pipeline.auth.viewer import issue
from pipeline.playback.liveness import BridgeView

__all__ = ["BridgeStatus"]

log = logging.getLogger("camlog.playback.bridge")
_TOKEN_TTL_S = 600


class BridgeStatus:
    """Asks the bridge at ``addr`` which streams it hears; connects on first use."""

    def __init__(self, addr: str, keys: ViewerKeys, now: Callable[[], float] = time.time,
                 timeout_s: float = 0.5, ttl_s: float = 1.0, backoff_s: float = 5.0) -> None:
        self.url = f"http://{addr}/v1/status"
        self._keys, self.now = keys, now
        self.timeout_s, self.ttl_s, self.backoff_s = timeout_s, ttl_s, backoff_s
        self._session: Any = None
        self._token, self._token_exp = "", 0.0
        self._seen: dict[str, tuple[float, BridgeView | None]] = {}
        self._down_until = 0.0

    def _bearer(self, t: float) -> str:
        if t > self._token_exp - 60:  # a service token for "*", never logged or handed out
            self._token = issue(self._keys, ["*"], _TOKEN_TTL_S, t)
            self._token_exp = t + _TOKEN_TTL_S
        return self._token

    async def lookup(self, ids: list[str]) -> dict[str, BridgeView | None] | None:
        """Each id's view (None: the bridge does not know it), or None if the bridge is down."""
        t = self.now()
        if t < self._down_until:
            return None
        out: dict[str, BridgeView | None] = {}
        for sid in ids:
            hit = self._seen.get(sid)
            if hit is not None and t - hit[0] < self.ttl_s:
                out[sid] = hit[1]
        missing = [i for i in ids if i not in out]
        if missing:
            got = await self._fetch(missing, t)
            if got is None:
                return None
            out.update(got)
        return out

    async def _fetch(self, ids: list[str], t: float) -> dict[str, BridgeView | None] | None:
        import aiohttp

        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout_s))
        try:
            async with self._session.post(self.url, json={"stream_ids": ids}, headers={
                    "Authorization": f"Bearer {self._bearer(t)}"}) as resp:
                if resp.status != 200:
                    raise ValueError(f"status {resp.status}")
                body = await resp.json()
            now_us, streams = int(body["now_us"]), body["streams"]
        except (aiohttp.ClientError, TimeoutError, ValueError, KeyError, TypeError) as exc:
            if t >= self._down_until:
                log.info("bridge status unavailable (%s); retrying in %.0f s", exc,
                         self.backoff_s)
            self._down_until = t + self.backoff_s
            return None
        got: dict[str, BridgeView | None] = {}
        for sid in ids:
            s = streams.get(sid)
            got[sid] = None if s is None else BridgeView(
                bool(s["connected"]), int(s["last_seen_us"]), now_us - int(s["last_seen_us"]))
            self._seen[sid] = (t, got[sid])
        if len(self._seen) > 100_000:  # bounded: forget everything stale
            self._seen = {k: v for k, v in self._seen.items() if t - v[0] < self.ttl_s}
        return got

    async def close(self) -> None:
        """Close the HTTP client."""
        if self._session is not None:
            await self._session.close()
            self._session = None
