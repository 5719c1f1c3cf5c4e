"""Simulated HLS viewers (asyncio): each polls a live playlist like hls.js and fetches every new
init and media segment once. Used by the many-viewers test and the edge benchmark."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

import aiohttp

__all__ = ["Tally", "uris_of", "viewer", "watch"]


@dataclass
class Tally:
    """What all viewers saw: requests and failures by kind, distinct objects by kind."""

    requests: Counter = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    objects: dict[str, set[str]] = field(default_factory=lambda: {"init": set(), "segment": set()})
    cache: Counter = field(default_factory=Counter)  # X-Cache-Status values seen


def uris_of(playlist: str) -> list[tuple[str, str]]:
    """``(kind, uri)`` of the init maps and segments of a media playlist, in order."""
    out = []
    for line in playlist.splitlines():
        if line.startswith("#EXT-X-MAP:"):
            out.append(("init", line.split('URI="', 1)[1].split('"', 1)[0]))
        elif line and not line.startswith("#"):
            out.append(("segment", line))
    return out


async def _get(session: aiohttp.ClientSession, url: str, kind: str, tally: Tally) -> bytes | None:
    tally.requests[kind] += 1
    try:
        async with session.get(url) as r:
            body = await r.read()
            tally.cache[r.headers.get("X-Cache-Status", "absent")] += 1
            if r.status != 200:
                tally.failures.append(f"{kind} {r.status} {urlsplit(url).path}")
                return None
            return body
    except (aiohttp.ClientError, TimeoutError) as exc:
        tally.failures.append(f"{kind} {type(exc).__name__} {urlsplit(url).path}")
        return None


async def viewer(session: aiohttp.ClientSession, playlist_url: str, until: float, tally: Tally,
                 poll_s: float = 1.0) -> None:
    """One viewer until ``until`` (monotonic): poll the playlist, fetch new objects once each."""
    seen: set[str] = set()
    while time.monotonic() < until:
        t0 = time.monotonic()
        body = await _get(session, playlist_url, "playlist", tally)
        if body is not None:
            for kind, uri in uris_of(body.decode()):
                path = urlsplit(uri).path
                if path in seen:
                    continue
                seen.add(path)
                tally.objects[kind].add(urljoin(playlist_url, path))
                await _get(session, urljoin(playlist_url, uri), kind, tally)
        await asyncio.sleep(max(0.0, poll_s - (time.monotonic() - t0)))


async def watch(playlists: list[str], viewers: int, seconds: float, ramp_s: float = 3.0,
                timeout_s: float = 20.0) -> Tally:
    """``viewers`` viewers spread over ``playlists`` (URLs carrying each viewer's token) for
    ``seconds``; starts are spread over ``ramp_s`` as real audiences arrive."""
    tally = Tally()
    until = time.monotonic() + seconds
    conn = aiohttp.TCPConnector(limit=0, limit_per_host=0)
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with aiohttp.ClientSession(connector=conn, timeout=timeout) as session:

        async def one(i: int) -> None:
            await asyncio.sleep(ramp_s * i / viewers)
            await viewer(session, playlists[i % len(playlists)], until, tally)

        async with asyncio.TaskGroup() as tg:
            for i in range(viewers):
                tg.create_task(one(i))
    return tally
