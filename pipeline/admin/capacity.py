"""Capacity planner: a deployment plan for a fleet, computed from the committed benchmark results.

Pure: ``figures_from(latest, llhls)`` reads the measured figures out of the two result documents
(``ops/bench/results/latest.json`` and ``llhls.json``) and ``plan(figures, fleet)`` turns them
into instance counts, QPS and bytes. Every number that is not measured is a named constant below
with the place it comes from; every line of a plan says where its inputs came from.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pipeline.config import Settings
from pipeline.errors import CliError
from pipeline.topology.spec import twcs_window_hours

__all__ = ["Figures", "Fleet", "Line", "Plan", "Resolution", "figures_from", "parse_mix", "plan"]

# --- Assumptions that are not in the results files ------------------------------------------
# Run every measured capacity at half: `make soak` runs at half the measured capacity and the
# 10x-spike case (issue #17) starts from half, so half is the load we know holds for 30 minutes.
HEADROOM = 0.5
# Kafka topic replication: topology/kafka.toml [defaults] replication_factor (checked by a test).
KAFKA_RF = 3
# Default partitions per topic: topology/kafka.toml [defaults] partitions (checked by a test).
KAFKA_PARTITIONS = 6
# camlog.frames retention: topology/kafka.toml retention.ms 604800000 (checked by a test).
FRAMES_RETENTION_DAYS = 7
# Cassandra replicas per DC in production: README "Multi-region" (`dc1:3,dc2:3`).
CASSANDRA_RF = 3
# gc_grace of the media tables: topology/cassandra.toml (checked by a test). Their TWCS window
# follows the retention (twcs_window_hours: 6 h at 7 days). Disk headroom for TWCS = the window
# being compacted + an expired window not yet dropped (window + gc_grace), as a share of the
# retained data.
GC_GRACE_H = 3
# Not measured: usable data disk per Cassandra node. An operator's hardware choice; set yours.
NODE_DISK_TB = 4.0
# Not measured: viewer behaviour. Set yours with the flags of the same names.
SESSION_S = 300.0             # a viewer session lasts 5 minutes
PEAK_TO_MEAN = 2.0            # busiest hour carries twice the day's mean concurrency
VOD_SHARE = 0.2               # one session in five watches a recording, the rest live (LL-HLS)
VIEWERS_PER_STREAM = 1.0      # IoT: a camera usually has one watcher, so the edge collapses nothing
DUTY_CYCLE = 1.0              # cameras stream all day, as in every benchmark
# Edge ÷ nginx from disk, session 3 closing note (issue #16, probes on a busy box); used only
# when the results carry no `playback.<kind>.edge` figure.
EDGE_TO_NGINX = {"playlist": 0.27, "segment": 0.72}
# Following camlog.segments costs ~1 % of a core per 1,250 events/s (session 3 closing note).
FOLLOWER_CORES_PER_EVENT_S = 0.01 / 1250
# Reference fleet (issue #17) and its resolution mix (an example in the brief).
REFERENCE_CAMERAS = 1_000_000
REFERENCE_VIEWERS_PER_DAY = 100_000_000
REFERENCE_MIX = {"360p": 0.7, "720p": 0.3}
REFERENCE_REGIONS = 2         # the two-region design of `camlog dev up --regions dc1,dc2`
DAY_S = 86_400


@dataclass(frozen=True)
class Resolution:
    """One resolution's passing capacity trial: cores per camera by process and bytes per second."""

    name: str
    size: str
    cameras: int
    core_per_camera: Mapping[str, float]
    bytes_per_camera_s: float
    segments_per_camera_s: float


@dataclass(frozen=True)
class Figures:
    """The measured inputs of a plan, each with the JSON path it was read from."""

    stamp: str
    machine_cores: int
    resolutions: Mapping[str, Resolution]
    kafka_mb_s: float
    kafka_partitions: int
    chunks_per_camera_s: float
    parts_per_camera_s: float
    ll_playlists_per_viewer_s: float
    origin_rps: Mapping[str, float]
    edge_rps: Mapping[str, float]
    sources: Mapping[str, str]


@dataclass(frozen=True)
class Fleet:
    """What to plan for."""

    cameras: int = REFERENCE_CAMERAS
    mix: Mapping[str, float] = field(default_factory=lambda: dict(REFERENCE_MIX))
    viewers_per_day: int = REFERENCE_VIEWERS_PER_DAY
    retention_days: int = Settings.retention_days
    regions: int = REFERENCE_REGIONS
    session_s: float = SESSION_S
    vod_share: float = VOD_SHARE
    viewers_per_stream: float = VIEWERS_PER_STREAM
    duty_cycle: float = DUTY_CYCLE
    node_disk_tb: float = NODE_DISK_TB


@dataclass(frozen=True)
class Line:
    """One figure of a plan."""

    section: str
    key: str
    value: float
    unit: str
    source: str


@dataclass(frozen=True)
class Plan:
    """A plan: its lines in order, the fleet and the results it was made from."""

    fleet: Fleet
    stamp: str
    lines: tuple[Line, ...]

    def value(self, key: str) -> float:
        """The value of the line named ``key``."""
        for line in self.lines:
            if line.key == key:
                return line.value
        raise KeyError(key)


def _get(doc: Mapping[str, Any], path: str, name: str) -> Any:
    node: Any = doc
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise CliError(f"{name} has no {path}: rerun `make bench` or pass --results")
        node = node[part]
    return node


def _resolution(latest: Mapping[str, Any], size: str) -> Resolution:
    cap = _get(latest, f"system.capacity.{size}", "latest.json")
    full = [t for t in cap["trials"] if t["passed"] and t["cameras"] == cap["capacity"]
            and t["seconds"] == cap["full_s"]]
    if not full:
        raise CliError(f"latest.json has no passing full trial at the {size} capacity")
    t = full[-1]
    n, secs = t["cameras"], t["seconds"]
    return Resolution(
        name=f"{size.split('x')[1]}p", size=size, cameras=n,
        core_per_camera={k: v / 100 / n for k, v in t["cpu_pct"].items()},
        bytes_per_camera_s=t["stored_bytes"] / (n * secs),
        segments_per_camera_s=t["segments"] / (n * secs))


def figures_from(latest: Mapping[str, Any], llhls: Mapping[str, Any]) -> Figures:
    """The figures a plan needs, read from ``latest.json`` and ``llhls.json`` (pure)."""
    sizes = _get(latest, "parameters.sizes", "latest.json")
    res = {r.name: r for r in (_resolution(latest, s) for s in sizes)}
    raw = _get(latest, f"system.raw_kafka.{sizes[0]}", "latest.json")
    pb = _get(latest, "playback", "latest.json")
    workers = pb.get("workers", 1)
    cores = _get(latest, "machine.cores_logical", "latest.json")
    edge, edge_src = {}, {}
    for kind in ("playlist", "segment"):
        measured = pb[kind].get("edge")
        if measured:
            edge[kind], edge_src[kind] = measured["rps"], f"latest.json playback.{kind}.edge.rps"
        else:
            edge[kind] = pb[kind]["nginx"]["rps"] * EDGE_TO_NGINX[kind]
            edge_src[kind] = (f"latest.json playback.{kind}.nginx.rps x EDGE_TO_NGINX "
                              f"{EDGE_TO_NGINX[kind]}")
    ll = _get(llhls, "system.llhls", "llhls.json")
    p8 = ll["part_latency_8"]
    player = ll["player"]
    player_s = _get(llhls, "parameters.player_seconds", "llhls.json")
    return Figures(
        stamp=str(latest.get("stamp", "?")),
        machine_cores=int(cores),
        resolutions=res,
        kafka_mb_s=raw["media_mb_per_s"],
        kafka_partitions=raw["topic_partitions"],
        chunks_per_camera_s=ll["events"]["part_chunks"]["per_camera_second"],
        parts_per_camera_s=p8["parts_seen"] / (p8["cameras"] * p8["seconds"]),
        ll_playlists_per_viewer_s=player["blocking_requests"] / player_s,
        origin_rps={k: pb[k]["camlog"]["rps"] / workers for k in ("playlist", "segment")},
        edge_rps=edge,
        sources={
            "capacity": "latest.json capacity trial",
            "kafka": f"latest.json system.raw_kafka.{sizes[0]}.media_mb_per_s",
            "chunks": "llhls.json events.part_chunks.per_camera_second",
            "parts": "llhls.json part_latency_8 parts per camera-second",
            "ll_playlists": "llhls.json player blocking_requests / player_seconds",
            "origin": "latest.json playback.<kind>.camlog.rps / playback.workers",
            "edge_playlist": edge_src["playlist"],
            "edge_segment": edge_src["segment"],
            "machine": "latest.json machine.cores_logical",
        })


def parse_mix(text: str) -> dict[str, float]:
    """``360p=0.7,720p=0.3`` -> shares; they must be positive and sum to 1."""
    mix: dict[str, float] = {}
    for item in text.split(","):
        name, sep, share = item.strip().partition("=")
        try:
            value = float(share)
        except ValueError:
            value = math.nan
        if not sep or not name or not math.isfinite(value) or value <= 0 or name in mix:
            raise CliError(f"--resolution-mix: {item!r} is not NAME=SHARE (e.g. 360p=0.7)")
        mix[name] = value
    if abs(sum(mix.values()) - 1) > 1e-6:
        raise CliError(f"--resolution-mix: shares add up to {sum(mix.values()):g}, not 1")
    return mix


def _check(fig: Figures, fleet: Fleet) -> None:
    unknown = sorted(set(fleet.mix) - set(fig.resolutions))
    if unknown:
        raise CliError(f"--resolution-mix: no measured capacity for {', '.join(unknown)} "
                       f"(measured: {', '.join(sorted(fig.resolutions))})")
    if fleet.cameras < 0 or fleet.viewers_per_day < 0:
        raise CliError("--cameras and --viewers must not be negative")
    if fleet.regions < 1 or fleet.retention_days < 1:
        raise CliError("--regions and --retention-days must be at least 1")
    if fleet.session_s <= 0 or fleet.viewers_per_stream < 1 or fleet.node_disk_tb <= 0:
        raise CliError("--session-s and --node-disk-tb must be > 0, --viewers-per-stream >= 1")
    if not 0 <= fleet.vod_share <= 1 or not 0 < fleet.duty_cycle <= 1:
        raise CliError("--vod-share must be within 0..1 and --duty-cycle within (0, 1]")


def _n(load: float, per_unit: float, floor: int = 1, headroom: float = HEADROOM) -> int:
    """Units for ``load`` at ``headroom`` of ``per_unit`` each; at least ``floor`` for any load."""
    if load <= 0:
        return 0
    return max(math.ceil(load / (per_unit * headroom) - 1e-9), floor, 1)


def plan(fig: Figures, fleet: Fleet) -> Plan:
    """The deployment plan for ``fleet`` from the measured ``fig`` (pure)."""
    _check(fig, fleet)
    lines: list[Line] = []

    def add(section: str, key: str, value: float, unit: str, source: str) -> float:
        lines.append(Line(section, key, value, unit, source))
        return value

    cams = fleet.cameras * fleet.duty_cycle          # cameras streaming at any moment
    # Each region is sized to carry the fleet's share once one region is lost (N+1 regions).
    share = 1.0 if fleet.regions == 1 else 1 / (fleet.regions - 1)
    mix = [(fig.resolutions[k], v) for k, v in fleet.mix.items()]

    def per_cam(f) -> float:
        return sum(s * f(r) for r, s in mix)

    bps = per_cam(lambda r: r.bytes_per_camera_s)
    segs = per_cam(lambda r: r.segments_per_camera_s)
    cap = fig.sources["capacity"]

    s = "Ingest (whole fleet)"
    mb_s = add(s, "ingest_mb_s", cams * bps / 1e6, "MB/s", cap + ": stored_bytes / camera-seconds")
    add(s, "ingest_http_rps", cams * fig.chunks_per_camera_s, "req/s",
        fig.sources["chunks"] + " (one POST per chunk)")
    frames_eps = add(s, "kafka_frames_eps", cams * fig.chunks_per_camera_s, "events/s",
                     fig.sources["chunks"])
    seg_eps = add(s, "kafka_segments_eps", cams * (fig.parts_per_camera_s + segs), "events/s",
                  fig.sources["parts"] + " + segments")
    add(s, "kafka_eps", frames_eps + seg_eps, "events/s", "sum of the two above")
    add(s, "segment_kb", per_cam(lambda r: r.bytes_per_camera_s / r.segments_per_camera_s) / 1e3,
        "KB", cap + ": stored_bytes / segments")
    add(s, "part_kb", bps / fig.parts_per_camera_s / 1e3, "KB", "ingest bytes / parts")

    s = "Storage"
    day = add(s, "media_tb_day", cams * bps * DAY_S / 1e12, "TB/day", "ingest x 86,400 s, one copy")
    add(s, "cassandra_tb_day_per_dc", day * CASSANDRA_RF, "TB/day", "x CASSANDRA_RF")
    window_h = twcs_window_hours(fleet.retention_days)
    twcs = 1 + (2 * window_h + GC_GRACE_H) / (fleet.retention_days * 24)
    disk = add(s, "cassandra_disk_tb_per_dc", day * CASSANDRA_RF * fleet.retention_days * twcs,
               "TB", f"x retention x TWCS headroom {twcs:.3f} (2 windows + gc_grace)")
    add(s, "cassandra_disk_tb_all_dcs", disk * fleet.regions, "TB", "x regions")
    add(s, "kafka_disk_tb_per_region", day * FRAMES_RETENTION_DAYS * KAFKA_RF, "TB",
        "camlog.frames: whole fleet (local + mirrored) x 7 days x KAFKA_RF")

    s = f"Per region (of {fleet.regions}; sized to carry {share:.0%} of the fleet)"
    rcams = cams * share
    region_mb = mb_s * share
    core = {p: per_cam(lambda r, p=p: r.core_per_camera.get(p, 0.0))
            for p in ("bridge", "worker", "cassandra")}
    add(s, "bridge_processes", _n(rcams * core["bridge"], 1), "1-core processes",
        cap + ": cpu_pct.bridge / cameras")
    workers = add(s, "worker_processes", _n(rcams * core["worker"], 1), "1-core processes",
                  cap + ": cpu_pct.worker / cameras")
    # Every region's brokers store the whole fleet (local + mirrored topics) at KAFKA_RF; they
    # serve the worker, MirrorMaker 2 (if several regions) and follower fetches (KAFKA_RF - 1).
    consumers = 1 + (1 if fleet.regions > 1 else 0)
    write = mb_s * KAFKA_RF
    read = region_mb * consumers + mb_s * (KAFKA_RF - 1)
    add(s, "kafka_brokers", _n(max(write, read), fig.kafka_mb_s, floor=KAFKA_RF),
        f"brokers of {fig.machine_cores} cores",
        f"{fig.sources['kafka']} ({fig.kafka_mb_s:.0f} MB/s in and out of one broker)")
    per_partition = fig.kafka_mb_s / fig.kafka_partitions
    add(s, "frames_partitions",
        max(workers, math.ceil(region_mb / per_partition - 1e-9), KAFKA_PARTITIONS)
        if region_mb else 0,
        "partitions", f"max(workers, region MB/s / {per_partition:.1f} MB/s: the raw figure "
        f"over its {fig.kafka_partitions} partitions, topology default {KAFKA_PARTITIONS})")
    # Every DC receives every write: the whole fleet, CASSANDRA_RF copies.
    ccores = cams * core["cassandra"] * CASSANDRA_RF
    add(s, "cassandra_nodes_per_dc",
        max(_n(ccores, fig.machine_cores, floor=CASSANDRA_RF),
            _n(disk, fleet.node_disk_tb, floor=CASSANDRA_RF, headroom=1.0)),
        f"nodes of {fig.machine_cores} cores, {fleet.node_disk_tb:g} TB",
        cap + ": cpu_pct.cassandra (RF 1) x CASSANDRA_RF; disk / node disk")

    s = "Playback (whole fleet, busiest hour)"
    conc = add(s, "concurrent_viewers",
               fleet.viewers_per_day * fleet.session_s / DAY_S * PEAK_TO_MEAN, "viewers",
               "viewers/day x SESSION_S / 86,400 x PEAK_TO_MEAN")
    live, vod = conc * (1 - fleet.vod_share), conc * fleet.vod_share
    qps = {
        "playlist": live * fig.ll_playlists_per_viewer_s + vod / fleet.session_s,
        "part": live * fig.parts_per_camera_s,
        "segment": vod * segs,
        "init": conc / fleet.session_s,
    }
    src = {"playlist": fig.sources["ll_playlists"] + " (live) + 1 per VOD session",
           "part": fig.sources["parts"] + " (live viewers)",
           "segment": "segments per camera-second (VOD viewers play in real time)",
           "init": "one per session"}
    for kind, v in qps.items():
        add(s, f"viewer_{kind}_rps", v, "req/s", src[kind])
    add(s, "egress_gb_s", conc * bps / 1e9, "GB/s", "concurrent viewers x ingest bytes/s")
    origin = {k: v / fleet.viewers_per_stream for k, v in qps.items()}
    add(s, "origin_rps", sum(origin.values()), "req/s",
        "viewer req/s / viewers per stream (one origin request per object per edge)")
    # Parts and init are smaller than the benchmark's 540 KB segment: its rate is a floor.
    media = ("part", "segment", "init")
    r = share
    add(s, "edge_boxes_per_region",
        _n(qps["playlist"] * r, fig.edge_rps["playlist"])
        + _n(sum(qps[k] for k in media) * r, fig.edge_rps["segment"]),
        f"boxes of {fig.machine_cores} cores",
        f"{fig.sources['edge_playlist']}; {fig.sources['edge_segment']}")
    add(s, "playback_processes_per_region",
        _n(origin["playlist"] * r, fig.origin_rps["playlist"])
        + _n(sum(origin[k] for k in media) * r, fig.origin_rps["segment"]),
        "1-core processes", fig.sources["origin"])
    add(s, "follower_cores_per_playback", seg_eps * share * FOLLOWER_CORES_PER_EVENT_S,
        "cores", "region's camlog.segments events/s x FOLLOWER_CORES_PER_EVENT_S")
    return Plan(fleet=fleet, stamp=fig.stamp, lines=tuple(lines))
