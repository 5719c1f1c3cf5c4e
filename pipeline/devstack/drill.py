"""``camlog drill region-outage``: lose a whole region under a streaming camera and a viewer.

Against a running two-region stack (``camlog demo --regions dc1,dc2``, or a test's): a probe
camera homed in the victim region (failing over to the survivor) and a probe viewer of the
survivor's playback run while every process of the victim is SIGKILLed: its Kafka, its Cassandra
node, its MirrorMaker 2 and its camlog services. After ``outage_s`` the victim's Kafka,
Cassandra and MirrorMaker 2 are started again (its services come back by their supervisor: the
demo restarts what died, a test restarts its own). The drill measures and checks:

* failover: the last ack from the victim → the first from the survivor;
* the longest time the survivor's viewer saw no new media, and the VOD of the time before the
  outage served by the survivor during it;
* RPO: frames the victim acknowledged that were not stored in the survivor's DC at the outage;
  they must all be stored once the victim is back;
* convergence: every acknowledged frame in exactly one stored, complete segment in both DCs,
  and the two DCs' rows equal (``replay verify --dcs``), and how long that took.

The checks are pure functions of what was read (``exactly_once``), so tests exercise them too.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from pipeline.config import Settings

__all__ = ["DrillResult", "exactly_once", "kill_region", "region_outage", "region_services",
           "until"]

Say = Callable[[str], None]


@dataclass
class DrillResult:
    """The drill's figures and what did not hold (empty ``problems``: it passed)."""

    stream_id: str
    figures: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def exactly_once(frames: Mapping[int, int], segments: Sequence[Any]) -> list[str]:
    """What is wrong with ``segments`` (rows with first/last_chunk_seq, frame_count,
    segment_id), given ``frames`` (chunk seq → frame count of every acknowledged chunk): every
    acknowledged chunk in exactly one segment, no two segments sharing a chunk, each segment
    holding exactly the frames of its chunks. Chunks are never split across segments here
    (a keyframe starts a chunk and segments start at keyframes)."""
    problems: list[str] = []
    owner: dict[int, str] = {}
    for s in segments:
        seqs = range(s.first_chunk_seq, s.last_chunk_seq + 1)
        for q in seqs:
            if q in owner:
                problems.append(f"chunk {q} in segments {owner[q]} and {s.segment_id}")
            owner[q] = s.segment_id
        want = sum(frames.get(q, 0) for q in seqs)
        if all(q in frames for q in seqs) and s.frame_count != want:
            problems.append(f"segment {s.segment_id} holds {s.frame_count} frames, its chunks "
                            f"{s.first_chunk_seq}..{s.last_chunk_seq} {want}")
    missing = sorted(set(frames) - set(owner))
    if missing:
        problems.append(f"{len(missing)} acknowledged chunk(s) in no segment: "
                        f"{_ranges(missing)}")
    return problems


def _ranges(seqs: Sequence[int]) -> str:
    out, start, prev = [], None, None
    for q in seqs:
        if start is None:
            start = prev = q
        elif q == prev + 1:
            prev = q
        else:
            out.append(f"{start}-{prev}" if start != prev else str(start))
            start = prev = q
    if start is not None:
        out.append(f"{start}-{prev}" if start != prev else str(start))
    return ",".join(out[:20]) + (" ..." if len(out) > 20 else "")


def region_services(state_dir: Path, region: str) -> list[psutil.Process]:
    """camlog service processes (bridge, worker and its view child, playback, puller, edge) of
    ``region`` in this state folder: found by their environment, devices excluded."""
    want = str(Path(state_dir).resolve())
    found = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        cmd = p.info["cmdline"] or []
        if p.pid == os.getpid() or "pipeline" not in cmd or "-m" not in cmd:
            continue
        verb = cmd[cmd.index("pipeline") + 1] if cmd.index("pipeline") + 1 < len(cmd) else ""
        if verb in ("camera", "drill", "demo", "dev"):
            continue
        try:
            env = p.environ()
        except psutil.Error:
            continue
        if env.get("CAMLOG_REGION") == region and \
                str(Path(env.get("CAMLOG_STATE_DIR", ".")).resolve()) == want:
            found.append(p)
    return found


def kill_region(state_dir: Path, region: str) -> list[str]:
    """SIGKILL everything of ``region``: Kafka, Cassandra node, MirrorMaker 2, camlog services."""
    from pipeline.devstack.regions import load_regions
    from pipeline.devstack.stack import Stack

    r = next((r for r in load_regions(Stack(state_dir)) if r.name == region), None)
    if r is None:
        raise ValueError(f"no region {region!r} in {state_dir}")
    victims = [(name, pf.process()) for name, pf in r.pidfiles()]
    victims += [(f"{region}/{p.info['cmdline'][3] if len(p.info['cmdline']) > 3 else p.pid}", p)
                for p in region_services(state_dir, region)]
    killed = []
    for name, proc in victims:
        if proc is None:
            continue
        try:
            proc.send_signal(signal.SIGKILL)
            killed.append(name)
        except psutil.Error:
            pass
    return killed


async def until(check: Callable[[], bool], what: str | Callable[[], str],
                limit: float = 120.0) -> float:
    """Wait (polling, 0.2 s) until ``check()``; seconds it took, or TimeoutError naming ``what``."""
    t0 = time.monotonic()
    while not check():
        if time.monotonic() - t0 > limit:
            raise TimeoutError(what() if callable(what) else what)
        await asyncio.sleep(0.2)
    return time.monotonic() - t0


class _Viewer:
    """Polls the survivor's live playlist like a player; records when new media appeared."""

    def __init__(self, session: Any, base: str, sid: str, token: str) -> None:
        self.url = f"{base}/v1/streams/{sid}/live.m3u8"
        self.headers = {"Authorization": f"Bearer {token}"}
        self.session, self.last, self.changes, self.statuses = session, "", [], {}

    async def run(self) -> None:
        import aiohttp

        while True:
            try:
                async with self.session.get(self.url, headers=self.headers,
                                            timeout=aiohttp.ClientTimeout(total=5)) as r:
                    self.statuses[r.status] = self.statuses.get(r.status, 0) + 1
                    text = await r.text() if r.status == 200 else ""
            except (TimeoutError, aiohttp.ClientError, OSError):
                self.statuses["error"] = self.statuses.get("error", 0) + 1
                text = ""
            newest = next((ln for ln in reversed(text.splitlines())
                           if (ln and not ln.startswith("#"))
                           or ln.startswith("#EXT-X-PART:")), "")
            if newest and newest != self.last:
                self.last = newest
                self.changes.append(time.monotonic())
            await asyncio.sleep(0.25)

    def longest_gap(self, since: float, until: float) -> float:
        ts = [t for t in self.changes if since <= t <= until]
        edges = [since, *ts, until]
        return max(b - a for a, b in itertools.pairwise(edges))


async def region_outage(per: Mapping[str, Settings], victim: str, state_dir: Path, *,
                        outage_s: float = 20.0, warm_s: float = 8.0,
                        restore_services: Callable[[], Awaitable[None]] | None = None,
                        converge_limit_s: float = 240.0, say: Say = print) -> DrillResult:
    """Run the drill (see the module docstring); ``per``: each region's settings."""
    import aiohttp

    from pipeline.auth.keys import viewer_keys
    from pipeline.auth.tokens import issue
    from pipeline.auth.viewer import issue as viewer_token
    from pipeline.device.client import ChunkUploader
    from pipeline.device.pattern import encode_loop
    from pipeline.devstack.regions import regions_up
    from pipeline.devstack.stack import Stack
    from pipeline.ingest.framing import Frame
    from pipeline.store.segments import SegmentStore

    survivor = next(n for n in per if n != victim)
    home, away = per[victim], per[survivor]
    sid = f"drill-{uuid.uuid4().hex[:8]}"
    res = DrillResult(sid)
    loop = encode_loop(7, fps=15, width=320, height=240, bitrate=200_000, gop_s=2, gops=1)
    token = issue(home.keys, None, "device", [sid], 3600, time.time())
    watch = viewer_token(viewer_keys(away), [sid], 3600, time.time())
    acks: dict[str, dict[int, float]] = {victim: {}, survivor: {}}
    frames: dict[int, int] = {}
    urls = {f"http://{home.bridge_addr}": victim, f"http://{away.bridge_addr}": survivor}
    counted = [0]

    def on_ack(seq: int, _payload: dict) -> None:
        # a first ack adds the chunk's frames to acked_frames; a re-sent chunk's were counted
        if up.stats.acked_frames > counted[0]:
            frames[seq], counted[0] = up.stats.acked_frames - counted[0], up.stats.acked_frames
        acks[urls[up.bridges.current]][seq] = time.monotonic()

    stores = {n: SegmentStore(s) for n, s in per.items()}
    try:
        await stores[survivor].start()
        async with aiohttp.ClientSession() as session:
            up = ChunkUploader(session, list(urls), sid, token, on_ack=on_ack)
            upload = asyncio.create_task(up.run())
            viewer = _Viewer(session, f"http://{away.playback_addr}", sid, watch)
            viewing = asyncio.create_task(viewer.run())

            async def camera() -> None:
                n = 0
                while True:
                    f = loop.frames[n % len(loop.frames)]
                    up.add_frame(Frame(n * 6000, n * 6000, f.keyframe, f.data))
                    n += 1
                    await asyncio.sleep(1 / 15)

            cam = asyncio.create_task(camera())
            t_start = time.time()
            try:
                say(f"drill {sid}: camera homed in {victim}, viewer in {survivor}")
                def seen() -> str:
                    return (f"the camera acked in {victim} ({len(acks[victim])} acks, "
                            f"{up.stats.statuses or 'no errors'}) and the viewer in {survivor} "
                            f"saw it ({viewer.statuses})")

                await until(lambda: len(acks[victim]) >= warm_s * 2
                            and len(viewer.changes) >= 2, seen)
                t_view = time.monotonic()
                killed = kill_region(state_dir, victim)
                t_kill, t_kill_wall = time.monotonic(), time.time()
                say(f"SIGKILLed {len(killed)} processes of {victim}: {', '.join(killed)}")
                stored = await stores[survivor].segments_between(sid, int(t_start * 1e6) - 10**7,
                                                                 int(time.time() * 1e6) + 10**7)
                in_victim = dict(acks[victim])
                seen = {q for s in stored for q in range(s.first_chunk_seq, s.last_chunk_seq + 1)}
                await until(lambda: bool(acks[survivor]), f"an ack from {survivor}", 60)
                last1 = max(in_victim.values())
                res.figures["failover_s"] = round(min(acks[survivor].values()) - last1, 2)
                res.figures["acked_in_victim_not_stored_at_outage"] = sum(
                    frames[q] for q in in_victim if q not in seen)
                say(f"failover {res.figures['failover_s']} s; "
                    f"{res.figures['acked_in_victim_not_stored_at_outage']} frames acked in "
                    f"{victim} were not stored in {survivor}'s DC at the outage")
                vod = (f"http://{away.playback_addr}/v1/streams/{sid}/vod.m3u8"
                       f"?start={t_start:.0f}&end={t_kill_wall:.0f}")
                async with session.get(vod, headers=viewer.headers) as r:
                    body = await r.text()
                    vod_segments = body.count("#EXTINF")
                res.figures["vod_before_outage"] = f"{r.status} {vod_segments} segments"
                if r.status != 200 or not vod_segments:
                    res.problems.append(f"{survivor} did not serve the VOD before the outage: "
                                        f"{r.status} {body[:200]}")
                await asyncio.sleep(max(0.0, outage_s - (time.monotonic() - t_kill)))
                res.figures["viewer_longest_gap_s"] = round(
                    viewer.longest_gap(t_view, time.monotonic()), 2)
                say(f"{survivor}'s viewer: longest gap {res.figures['viewer_longest_gap_s']} s "
                    f"(answers {viewer.statuses})")
                t_back = time.monotonic()
                await asyncio.to_thread(regions_up, Stack(state_dir), list(per), None,
                                        lambda _m: None)
                if restore_services is not None:
                    await restore_services()
                res.figures["victim_restart_s"] = round(time.monotonic() - t_back, 1)
                say(f"{victim}'s Kafka, Cassandra and MirrorMaker 2 back in "
                    f"{res.figures['victim_restart_s']} s")
                n_home = len(acks[victim])
                try:
                    took = await until(lambda: len(acks[victim]) > n_home + 4,
                                       f"the camera went home to {victim}")
                    res.figures["home_again_s"] = round(took, 1)
                except TimeoutError as exc:
                    res.problems.append(f"never happened: {exc}")
            finally:
                cam.cancel()
                await up.close(timeout=60)
                for t in (upload, viewing):
                    t.cancel()
                for name, outcome in zip(("camera", "uploader", "viewer"), await asyncio.gather(
                        cam, upload, viewing, return_exceptions=True), strict=True):
                    if isinstance(outcome, Exception):  # a probe that died measured nothing
                        res.problems.append(f"the drill's {name} failed: {outcome!r}")
            res.figures["acked_chunks"] = len(frames)
            res.figures["acked_frames"] = sum(frames.values())
            res.figures["resent_frames"] = up.stats.resent_frames
            if up.buffered or up.stats.dropped_frames or up.stats.rejected:
                res.problems.append(f"the camera did not get everything acked: {up.buffered} "
                                    f"buffered, {up.stats.dropped_frames} dropped, "
                                    f"{up.stats.rejected} rejected")
        await stores[victim].start()
        last: dict[str, list[str]] = {}

        async def converged() -> bool:
            for name, store in stores.items():
                rows = await store.segments_between(sid, int(t_start * 1e6) - 10**7,
                                                    int(time.time() * 1e6) + 10**7)
                last[name] = exactly_once(frames, rows)
                for r in rows:
                    if not last[name] and await store.segment_bytes(sid, r.segment_id) is None:
                        last[name] = [f"segment {r.segment_id} incomplete"]
            return not any(last.values())

        t0 = time.monotonic()
        while not await converged():
            if time.monotonic() - t0 > converge_limit_s:
                res.problems += [f"{n}: {p}" for n, ps in last.items() for p in ps[:5]]
                break
            await asyncio.sleep(2.0)
        res.figures["converged_s_after_restart"] = round(time.monotonic() - t_back, 1)
    finally:
        for store in stores.values():
            await store.close()
    if not res.problems:
        from pipeline.replay.verify import verify_dcs

        diffs: list = []
        for _ in range(30):  # hints from the outage may still be on their way
            diffs = (await asyncio.to_thread(verify_dcs, per[survivor], list(per),
                                             [sid])).differences
            if not diffs:
                break
            await asyncio.sleep(2.0)
        res.figures["dc_differences"] = len(diffs)
        res.problems += [str(d) for d in diffs[:10]]
    say(f"converged {res.figures['converged_s_after_restart']} s after the restart; "
        f"{'OK' if res.ok else 'FAILED: ' + '; '.join(res.problems[:5])}")
    return res
