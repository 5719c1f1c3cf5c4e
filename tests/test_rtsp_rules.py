"""The puller's pure rules: backoff, URL redaction, timestamps, access units, grouping, registry."""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from pipeline.ingest.framing import Frame
from pipeline.ingest.grouping import ChunkGrouper
from pipeline.ingest.pullrules import (
    AccessUnits,
    BadCameraUrl,
    Timeline,
    backoff_delay,
    check_rtsp_url,
    producer_time_us,
    redact,
    with_credentials,
)
from pipeline.ingest.registry import CameraRegistry, CameraSpec
from pipeline.telemetry.logs import redact as redact_log

_SECRET = st.text(st.characters(codec="ascii", categories=("L", "N", "P", "S")), min_size=8,
                  max_size=24)


@given(st.integers(0, 200), st.floats(0, 1), st.floats(0.01, 5), st.floats(5, 60))
def test_backoff_is_positive_capped_and_jittered(attempt, rand, base, cap):
    d = backoff_delay(attempt, rand, base_s=base, cap_s=cap)
    step = min(cap, base * 2 ** attempt)
    assert step / 2 <= d <= step <= cap


def test_backoff_grows_to_the_cap():
    assert [backoff_delay(a, 1.0) for a in (0, 1, 2, 6, 7, 50)] == [0.5, 1.0, 2.0, 30.0, 30.0, 30.0]


@given(st.text(st.characters(codec="ascii", categories=("L", "N")), min_size=3, max_size=10),
       _SECRET, st.sampled_from(["", ":554", ":8554"]), st.sampled_from(["/cam", "/a/b?x=1", ""]))
def test_redacted_urls_hold_no_credentials(user, password, port, path):
    assume(password not in f"rtsp://10.1.2.3{port}{path} connect failed")
    url = with_credentials(f"rtsp://10.1.2.3{port}{path}", user, password)
    for text in (redact(url), redact_log(f"connect {url} failed"), redact_log(url)):
        assert password not in text and f"{user}:" not in text.split("://", 1)[1]
        assert "10.1.2.3" in text
    raw = f"rtsp://{user}:{password}@10.1.2.3{port}{path}"  # not percent-encoded at all
    assert password not in redact(raw)


@pytest.mark.parametrize("url", ["http://h/x", "rtsp:///x", "rtsp://h:port/x", "rtsp://h/ x",
                                 "rtsp://h/" + "x" * 3000, "file:///etc/passwd"])
def test_bad_camera_urls_are_refused_without_their_credentials(url):
    with pytest.raises(BadCameraUrl) as info:
        check_rtsp_url(url.replace("://", "://admin:s3cretpw@", 1))
    assert "s3cretpw" not in str(info.value)


def test_good_camera_urls_pass():
    for url in ("rtsp://cam.local/stream1", "rtsps://u:p@10.0.0.2:322/x?channel=1"):
        assert check_rtsp_url(url) == url


@given(st.integers(0, 10**9), st.integers(-10**9, 10**9), st.integers(1, 10**12))
def test_producer_time_follows_the_camera_clock_or_arrival(pts, first, arrival):
    assert producer_time_us(pts, 90000, sr_base_us=None, first_pts=first,
                            arrival_us=arrival) == arrival
    t = producer_time_us(pts, 90000, sr_base_us=10**15, first_pts=first, arrival_us=arrival)
    assert abs(t - (10**15 + (pts - first) / 0.09)) <= 1


@given(st.lists(st.integers(-10**6, 10**6), max_size=60))
def test_timeline_runs_only_move_forward_within_the_gap(steps):
    tl = Timeline(max_gap_ticks=450000)
    dts, runs, run = 0, [], []
    for s in steps:
        dts += s
        if not tl.place(dts):
            runs.append(run)
            run = []
        run.append(dts)
    runs.append(run)
    for r in runs:
        assert all(0 < b - a <= 450000 for a, b in pairwise(r))
    assert sum(map(len, runs)) == len(steps)


@st.composite
def _packets(draw):
    """Access units split into 1-3 packets; the very first packet may lack timestamps."""
    n = draw(st.integers(1, 30))
    units, packets = [], []
    for i in range(n):
        key = i == 0 or draw(st.booleans())
        parts = [bytes([i % 256]) * draw(st.integers(1, 5)) for _ in range(draw(st.integers(1, 3)))]
        units.append((i * 6000, key, b"".join(parts)))
        for j, p in enumerate(parts):
            untimed = i == 0 and j == 0 and len(parts) > 1 and draw(st.booleans())
            ts = None if untimed else i * 6000
            packets.append((ts, ts, key and j == len(parts) - 1, p))
    return units, packets


@given(_packets())
def test_access_units_join_packets_of_one_timestamp(case):
    units, packets = case
    au = AccessUnits()
    out = [f for p in packets for f in au.feed(*p)] + au.flush()
    assert [(f.dts, f.keyframe, f.data) for f in out] == units


@given(st.lists(st.tuples(st.integers(1, 9000), st.booleans()), min_size=1, max_size=200),
       st.sampled_from([22500, 45000, 90000]))
def test_groups_are_part_sized_and_start_at_keyframes(steps, part):
    g, dts, out, frames = ChunkGrouper(part), 0, [], []
    for step, key in steps:
        dts += step
        f = Frame(dts, dts, key, b"\x00\x00\x01\x65")
        frames.append(f)
        out += g.add(f, dts)
    out += g.flush()
    assert [f for grp in out for f in grp.frames] == frames  # nothing lost, order kept
    for grp in out:
        assert all(not f.keyframe for f in grp.frames[1:])  # a keyframe opens a group
        assert grp.time_us == grp.frames[0].dts
        if len(grp.frames) > 2:  # fits the part target at the interval seen while grouping
            assert grp.frames[-2].dts - grp.frames[0].dts <= part


_records = st.lists(st.tuples(st.integers(0, 3), st.sampled_from(["a", "b", "c"]),
                              st.one_of(st.none(), st.sampled_from(["rtsp://x/1", "rtsp://x/2"]))),
                    max_size=40)


@settings(max_examples=200)
@given(_records, st.sets(st.integers(0, 3)), st.integers(0, 40))
def test_registry_wants_latest_cameras_of_owned_fully_read_partitions(log, owned, read):
    """Kafka keeps a key in one partition: keys here are ``<partition>-<name>``."""
    by_part: dict[int, list] = {}
    for p, name, url in log:
        by_part.setdefault(p, []).append((f"{p}-{name}", url))
    reg = CameraRegistry()
    for p in owned:
        reg.assign(p, len(by_part.get(p, [])))
    expect: dict[str, CameraSpec] = {}
    for p, recs in by_part.items():
        for off, (key, url) in enumerate(recs[:read]):
            reg.apply(p, off, key, CameraSpec(key, url) if url else None)
            assert all(int(k.split("-")[0]) in owned for k in reg.wanted())
        if p in owned and read >= len(recs):
            for key, url in recs:
                if url:
                    expect[key] = CameraSpec(key, url)
                else:
                    expect.pop(key, None)
    assert reg.wanted() == expect  # partitions not read to their end start nothing yet
    for p in owned:
        reg.revoke(p)
    assert reg.wanted() == {}
