"""Segmenter benchmark: one worker process on a pre-filled backlog, vs ``ffmpeg -c copy -f hls``.

    .venv/bin/python -m ops.bench.segmenter.run --cameras 100 --seconds 20

Phase 1 (backlog): N cameras x S seconds of 640x360 15 fps H.264 (libx264, GOP 1 s, no B-frames,
made once with PyAV) are produced to camlog.frames as FrameChunk events (3 frames per chunk)
under a private stream prefix, as fast as possible, while one already running
``camlog worker --only pipeline.agents.segmenter`` in a fresh consumer group reads them.
Measured from the start of production until every event is committed: frames/s,
segments/s and the worker's CPU seconds per media second. Phase 2 (baseline): ffmpeg remuxes the
same amount of media (the same clip, repeated N times, as raw Annex-B) to fMP4 HLS; its CPU
seconds per media second give the ratio. Phase 3 (paced, ``--live K``): K cameras at real time
for S seconds; seal latency = segment sealed - arrival of the keyframe that cut it (p50/p99),
and whether lag grew. Results go to ops/bench/results/segmenter.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from itertools import pairwise
from pathlib import Path

import psutil

from pipeline.config import load_settings
from pipeline.events import encode
from pipeline.kafka import topics
from pipeline.kafka.clients import consumer, producer
from pipeline.views.timeindex import day_of
from tests.segmenter.kafka_util import WorkerProcess, fresh_group
from tests.segmenter.media import TIMESCALE, chunks
from tests.segmenter.media import encode as encode_media

ROOT = Path(__file__).resolve().parents[3]
FPS = 15


def _offsets(bootstrap: str, group: str, topic: str = topics.FRAMES
             ) -> tuple[dict[int, int], dict[int, int]]:
    """(committed offsets of ``group``, high watermarks) per partition."""
    from confluent_kafka import TopicPartition

    c = consumer(bootstrap, group, **{"enable.auto.commit": False})
    try:
        parts = c.list_topics(topic, timeout=10).topics[topic].partitions
        committed = c.committed([TopicPartition(topic, p) for p in parts], timeout=10)
        high = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts}
        return {tp.partition: max(tp.offset, 0) for tp in committed}, high
    finally:
        c.close()


def _lag(bootstrap: str, group: str) -> int:
    committed, high = _offsets(bootstrap, group)
    return sum(high[p] - committed[p] for p in high)


def _behind(bootstrap: str, group: str, target: dict[int, int]) -> int:
    """Messages of ``target`` (end offsets after our produce) not yet committed by ``group``."""
    committed, _ = _offsets(bootstrap, group)
    return sum(max(0, target[p] - committed[p]) for p in target)


def _produce(bootstrap: str, records: list[tuple[str, bytes]]) -> float:
    p = producer(bootstrap, **{"linger.ms": 20, "acks": "all", "enable.idempotence": True,
                               "queue.buffering.max.messages": 1_000_000})
    t = time.perf_counter()
    for key, value in records:
        while True:
            try:
                p.produce(topics.FRAMES, value=value, key=key)
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
    p.flush(120)
    return time.perf_counter() - t


def _records(prefix: str, cameras: int, frames: tuple, cfg: bytes, t0: int,
             live: bool = False) -> list[list[tuple[str, bytes]]]:
    """Per camera, its FrameChunk events (ingest_time = t0 + media time)."""
    out = []
    for i in range(cameras):
        sid = f"{prefix}{i}"
        recs = chunks(sid, frames, cfg, per_chunk=3, t0_us=t0)
        out.append([(sid, encode("FrameChunk", r)) for r in recs])
    return out


def backlog(settings, cameras: int, seconds: int, frames, cfg, prefix: str, log: Path) -> dict:
    group = fresh_group(settings.kafka)
    per_cam = _records(prefix, cameras, frames, cfg, int(time.time() * 1e6))
    interleaved = [r for group_ in zip(*per_cam, strict=True) for r in group_]
    worker = WorkerProcess(group, log, prefix, CAMLOG_IDLE_TIMEOUT_S="1",
                           CAMLOG_TELEMETRY="none").start()
    proc = psutil.Process(worker.proc.pid)
    try:
        # Warm up: one undecodable event (dead-lettered and acked at once) proves the worker
        # has joined and consumes; its start-up CPU stays out of the figures.
        _produce(settings.kafka, [(f"{prefix}warmup", b"warm-up")])
        target = _offsets(settings.kafka, group)[1]
        while _behind(settings.kafka, group, target) > 0:
            time.sleep(0.2)
        cpu0, t0 = sum(proc.cpu_times()[:2]), time.perf_counter()
        prod_s = _produce(settings.kafka, interleaved)
        target = _offsets(settings.kafka, group)[1]
        while _behind(settings.kafka, group, target) > 0:
            time.sleep(0.1)
        cpu1, t1 = sum(proc.cpu_times()[:2]), time.perf_counter()
        rss = proc.memory_info().rss
    finally:
        worker.stop()
    n_frames = cameras * len(frames)
    media_s = n_frames / FPS
    wall = t1 - t0
    segs = cameras * _segments_per_camera(len(frames))
    return {"cameras": cameras, "media_s": media_s, "frames": n_frames, "produce_s": prod_s,
            "wall_s": wall, "frames_per_s": n_frames / wall, "segments_per_s": segs / wall,
            "cpu_s": cpu1 - cpu0, "cpu_s_per_media_s": (cpu1 - cpu0) / media_s,
            "cameras_sustained_est": n_frames / wall / FPS, "rss_mb": rss / 2**20,
            "note": "from the start of production (worker already consuming) until every "
                    "event is committed; includes the final 1 s idle seal"}


def _segments_per_camera(n_frames: int) -> int:
    return max(1, -(-n_frames // (2 * FPS)))


def ffmpeg_baseline(cameras: int, frames, workdir: Path) -> dict:
    raw = workdir / "in.h264"
    with open(raw, "wb") as fh:
        for _ in range(cameras):
            fh.writelines(f["data"] for f in frames)
    out = workdir / "hls"
    out.mkdir()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-framerate", str(FPS), "-i", str(raw),
                    "-c", "copy", "-f", "hls", "-hls_segment_type", "fmp4", "-hls_time", "2",
                    "-hls_list_size", "0", str(out / "index.m3u8")], check=True)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    media_s = cameras * len(frames) / FPS
    return {"media_s": media_s, "wall_s": wall, "cpu_s": cpu, "cpu_s_per_media_s": cpu / media_s}


def live(settings, cameras: int, seconds: int, frames, cfg, prefix: str, log: Path) -> dict:
    """K cameras paced at real time; seal latency from the stored rows."""
    from pipeline.store.cluster import connect

    group = fresh_group(settings.kafka)
    worker = WorkerProcess(group, log, prefix, CAMLOG_IDLE_TIMEOUT_S="2",
                           CAMLOG_TELEMETRY="none").start()
    p = producer(settings.kafka, **{"linger.ms": 5, "acks": "all"})
    time.sleep(8)  # let the worker join its group
    start = time.time()
    per_cam = [chunks(f"{prefix}{i}", frames, cfg, per_chunk=3, t0_us=int(start * 1e6))
               for i in range(cameras)]
    lags = []
    try:
        for n in range(len(per_cam[0])):
            due = start + per_cam[0][n]["frames"][-1]["pts"] / TIMESCALE
            time.sleep(max(0.0, due - time.time()))
            now_us = int(time.time() * 1e6)
            for cam in per_cam:
                rec = dict(cam[n], ingest_time=now_us)
                p.produce(topics.FRAMES, value=encode("FrameChunk", rec),
                          key=rec["stream_id"])
            p.poll(0)
            if n % 20 == 0:
                p.flush(10)
                lags.append(_lag(settings.kafka, group))
        p.flush(30)
        time.sleep(5)
    finally:
        worker.stop()
    session = connect(settings, settings.keyspace)
    lat = []
    day = day_of(int(start * 1e6))
    for i in range(cameras):
        rows = sorted(session.execute("SELECT * FROM segments WHERE stream_id=%s AND day=%s",
                                      (f"{prefix}{i}", day)).all(), key=lambda r: r.sequence)
        for a, b in pairwise(rows):
            lat.append((a.sealed_time - b.ingest_start) / 1000)  # b's first chunk cut a
    session.cluster.shutdown()
    lat.sort()
    pick = (lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]) if lat else (lambda q: None)
    return {"cameras": cameras, "seconds": seconds, "seal_latency_ms_p50": pick(0.5),
            "seal_latency_ms_p99": pick(0.99), "samples": len(lat), "lag_samples": lags}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cameras", type=int, default=100)
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--live", type=int, default=0, help="cameras for the paced phase (0 = skip)")
    args = ap.parse_args()
    settings = load_settings()
    frames, cfg = encode_media("H264", n=args.seconds * FPS, width=640, height=360, fps=FPS,
                               gop=FPS)
    run = uuid.uuid4().hex[:6]
    results: dict = {"cpus": os.cpu_count(), "load_before": os.getloadavg()[0],
                     "bitrate_kbps": sum(len(f["data"]) for f in frames) * 8 / args.seconds / 1000}
    with tempfile.TemporaryDirectory() as tmp:
        results["segmenter"] = backlog(settings, args.cameras, args.seconds, frames, cfg,
                                       f"bench-seg-{run}-", Path(tmp) / "worker.log")
        print(json.dumps(results["segmenter"], indent=1), file=sys.stderr)
        results["ffmpeg"] = ffmpeg_baseline(args.cameras, frames, Path(tmp))
        if args.live:
            results["live"] = live(settings, args.live, args.seconds, frames, cfg,
                                   f"bench-live-{run}-", Path(tmp) / "live.log")
    seg, ff = results["segmenter"], results["ffmpeg"]
    results["cpu_ratio_vs_ffmpeg"] = seg["cpu_s_per_media_s"] / ff["cpu_s_per_media_s"]
    out = ROOT / "ops" / "bench" / "results" / "segmenter.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"segmenter: {seg['frames_per_s']:.0f} frames/s, {seg['segments_per_s']:.1f} "
          f"segments/s, {seg['cpu_s_per_media_s'] * 1000:.2f} ms CPU per media s "
          f"(~{seg['cameras_sustained_est']:.0f} cameras at {FPS} fps)")
    print(f"ffmpeg -c copy -f hls fmp4: {ff['cpu_s_per_media_s'] * 1000:.2f} ms CPU per media s")
    print(f"CPU ratio segmenter/ffmpeg: {results['cpu_ratio_vs_ffmpeg']:.1f}x")
    if "live" in results:
        lv = results["live"]
        print(f"live {lv['cameras']} cameras: seal latency p50 {lv['seal_latency_ms_p50']} ms, "
              f"p99 {lv['seal_latency_ms_p99']} ms; lag samples {lv['lag_samples']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
