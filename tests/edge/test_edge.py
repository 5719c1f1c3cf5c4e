"""The nginx edge in front of real playback origins reading the real Cassandra.

Bad tokens stop at the edge (the origins' request metrics do not move); objects are cached
(MISS, then HIT for any viewer's token) and served STALE while the origins are down; each
stream sticks to one origin (consistent hashing); 500 simulated viewers of 4 live streams get
every request answered while the origins see at most one request per object.
"""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter, defaultdict
from pathlib import Path

import jwt
import pytest

from pipeline.auth.keys import ephemeral_keys, viewer_keys
from pipeline.auth.tokens import issue as issue_device
from pipeline.auth.viewer import issue
from tests.edge.origin import LiveFeeds, origin_requests, start_edge, start_origin
from tests.edge.viewers import uris_of, watch
from tests.system import FIGURES

pytestmark = [pytest.mark.services, pytest.mark.slow]

STREAMS = 4
VIEWERS = 500
WATCH_S = 60
SEGMENTS = "/v1/streams/{stream_id}/segments/{segment_id}.m4s"
INITS = "/v1/streams/{stream_id}/init/{init_id}.mp4"
LIVE = "/v1/streams/{stream_id}/live.m3u8"


@pytest.fixture(scope="module")
def stack(services, tmp_path_factory):
    """Two origins, one edge, four live streams; all stopped at the end."""
    d = tmp_path_factory.mktemp("edge")
    sids = [f"edge-{uuid.uuid4().hex[:6]}-{i}" for i in range(STREAMS)]
    feeds = LiveFeeds(services, sids)
    feeds.start()
    assert feeds.ready.wait(120), "feeds did not start"
    if feeds.error:
        raise feeds.error
    # nginx runs as nobody when the tests run as root: its prefix must be reachable by it
    prefix = Path(tempfile.mkdtemp(prefix="camlog-edge-"))
    prefix.chmod(0o755)
    procs = []
    try:
        origins = [start_origin(d), start_origin(d)]
        procs += origins
        edge = start_edge(origins, prefix / "prefix")
        procs.append(edge)
        yield {"edge": edge, "origins": origins, "streams": sids, "keys": viewer_keys(services),
               "settings": services, "prefix": prefix / "prefix"}
    finally:  # also when a start failed: nothing this fixture started outlives it
        for p in reversed(procs):
            p.stop()
        feeds.stop()
        shutil.rmtree(prefix, ignore_errors=True)


def get(url: str, token: str | None = None, header: bool = True) -> tuple[int, dict, bytes]:
    req = urllib.request.Request(url)
    if token is not None and header:
        req.add_header("Authorization", f"Bearer {token}")
    elif token is not None:
        req = urllib.request.Request(f"{url}{'&' if '?' in url else '?'}token={token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def counts(stack) -> Counter:
    total: Counter = Counter()
    for o in stack["origins"]:
        total.update(origin_requests(o))
    return total


def _b64(obj: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def _bad_tokens(keys, sid: str) -> dict[str, tuple[str | None, int, str]]:
    now = time.time()
    good = issue(keys, [sid], 600, now)
    head, body, sig = good.split(".")
    forged = issue(ephemeral_keys(keys.signing_kid), [sid], 600, now).split(".")[2]
    return {
        "missing": (None, 401, "token_missing"),
        "garbage": ("not-a-token", 401, "token_invalid"),
        "expired": (issue(keys, [sid], 60, now - 3600), 401, "token_expired"),
        "forged": (f"{head}.{body}.{forged}", 401, "token_bad_signature"),
        "widened": (f"{head}.{_b64({'iat': int(now), 'exp': int(now) + 600, 'scp': ['*']})}.{sig}",
                    401, "token_bad_signature"),
        "alg none": (f"{_b64({'alg': 'none', 'kid': keys.signing_kid})}."
                     f"{_b64({'iat': int(now), 'exp': int(now) + 600, 'scp': ['*']})}.",
                     401, "token_invalid"),
        "hs256 with the public key": (jwt.encode(
            {"iat": int(now), "exp": int(now) + 600, "scp": ["*"]}, "k" * 32, algorithm="HS256",
            headers={"kid": keys.signing_kid}), 401, "token_invalid"),
        "wrong kid": (issue(ephemeral_keys("retired"), [sid], 600, now), 401, "token_unknown_key"),
        "other stream": (issue(keys, ["someone-else"], 600, now), 403, "token_scope"),
        "device token": (issue_device({"d": b"0123456789abcdef0"}, None, "device", [sid], 600, now),
                         401, "token_wrong_kind"),
    }


def test_bad_tokens_stop_at_the_edge(stack):
    edge, sid, keys = stack["edge"], stack["streams"][0], stack["keys"]
    good = issue(keys, [sid], 600, time.time())
    status, _, body = get(f"http://{edge.addr}{LIVE.format(stream_id=sid)}", good)
    assert status == 200 and body.startswith(b"#EXTM3U")
    seg = next(u for k, u in uris_of(body.decode()) if k == "segment").split("?")[0]
    urls = [f"http://{edge.addr}{LIVE.format(stream_id=sid)}",
            f"http://{edge.addr}/v1/streams/{sid}/{seg}",
            f"http://{edge.addr}/v1/streams"]
    before = counts(stack)
    for name, (token, status, code) in _bad_tokens(keys, sid).items():
        # a listing filters by scope instead: the origin answers it
        targets = urls[:2] if name == "other stream" else urls
        for url in targets:
            for header in (True, False):
                got, headers, body = get(url, token, header)
                problem = json.loads(body)
                assert ((name, got, problem["code"], problem["status"])
                        == (name, status, code, status))
                assert headers["Content-Type"] == "application/problem+json"
                assert headers["X-Cache-Status"] == "NONE"
                if status == 401:
                    assert headers["WWW-Authenticate"].startswith("Bearer")
    assert counts(stack) == before  # not one of them reached an origin
    # ...while a good token for a new object does reach one: the counter can move
    get(f"http://{edge.addr}/v1/streams/{sid}/{seg}", good)
    assert counts(stack) != before


def test_cache_miss_hit_for_any_viewer_and_token_per_viewer(stack):
    edge, sid, keys = stack["edge"], stack["streams"][1], stack["keys"]
    alice, bob = issue(keys, [sid], 600, time.time()), issue(keys, ["edge-*"], 600, time.time())
    _, _, body = get(f"http://{edge.addr}{LIVE.format(stream_id=sid)}", alice, header=False)
    text = body.decode()
    assert f"token={alice}" in text and "__CAMLOG_TOKEN__" not in text
    seg = next(u for k, u in uris_of(text) if k == "segment")
    before = counts(stack)
    s1, h1, b1 = get(f"http://{edge.addr}/v1/streams/{sid}/{seg}")  # alice's token, in the URI
    s2, h2, b2 = get(f"http://{edge.addr}/v1/streams/{sid}/{seg.split('?')[0]}", bob)
    assert (s1, s2) == (200, 200) and b1 == b2 and len(b1) > 1000
    assert (h1["X-Cache-Status"], h2["X-Cache-Status"]) == ("MISS", "HIT")
    assert "immutable" in h2["Cache-Control"]
    delta = counts(stack) - before
    assert delta == Counter({(SEGMENTS, "200"): 1})
    # bob's playlist (from the same cached object) carries bob's token, not alice's
    _, h, body = get(f"http://{edge.addr}{LIVE.format(stream_id=sid)}", bob)
    assert f"token={bob}" in body.decode() and alice not in body.decode()
    assert h["X-Cache-Status"] in ("HIT", "MISS", "REVALIDATED", "EXPIRED", "UPDATING")


def test_token_in_the_path_one_copy_for_every_viewer(stack):
    """``/v1/t/<token>/streams/…``: the playlist names no token (its relative URLs inherit the
    path), so every viewer gets the same cached bytes, and the media under it the same objects;
    a bad token in the path still stops at the edge."""
    edge, sid, keys = stack["edge"], stack["streams"][2], stack["keys"]
    alice, bob = issue(keys, [sid], 600, time.time()), issue(keys, ["edge-*"], 600, time.time())
    live = LIVE.format(stream_id=sid)[3:]  # /streams/<sid>/live.m3u8
    s1, _, b1 = get(f"http://{edge.addr}/v1/t/{alice}{live}")
    s2, h2, b2 = get(f"http://{edge.addr}/v1/t/{bob}{live}")
    assert (s1, s2) == (200, 200) and b1.startswith(b"#EXTM3U")
    assert b"token" not in b1 and alice.encode() not in b1 and b1 == b2
    assert h2["X-Cache-Status"] in ("HIT", "UPDATING", "EXPIRED", "REVALIDATED")
    seg = next(u for k, u in uris_of(b1.decode()) if k == "segment")
    assert "?" not in seg
    before = counts(stack)
    m1, hm1, d1 = get(f"http://{edge.addr}/v1/t/{alice}/streams/{sid}/{seg}")
    m2, hm2, d2 = get(f"http://{edge.addr}/v1/t/{bob}/streams/{sid}/{seg}")
    assert (m1, m2) == (200, 200) and d1 == d2 and len(d1) > 1000
    assert (hm1["X-Cache-Status"], hm2["X-Cache-Status"]) == ("MISS", "HIT")
    assert sum((counts(stack) - before).values()) == 1  # one origin request for both viewers
    before = counts(stack)
    for name, (token, status, code) in _bad_tokens(keys, sid).items():
        if token is None:
            continue
        got, _, body = get(f"http://{edge.addr}/v1/t/{token}/streams/{sid}/{seg}")
        assert (name, got, json.loads(body)["code"]) == (name, status, code)
    assert counts(stack) == before  # not one of them reached an origin


def test_blocking_playlist_key_is_the_delivery_directives_not_the_token(stack):
    edge, sid, keys = stack["edge"], stack["streams"][3], stack["keys"]
    alice, bob = issue(keys, [sid], 600, time.time()), issue(keys, [sid], 600, time.time() - 1)
    live = f"http://{edge.addr}{LIVE.format(stream_id=sid)}"
    before = counts(stack)
    statuses = [get(f"{live}?_HLS_msn=7&_HLS_part=1", alice)[1]["X-Cache-Status"],
                get(f"{live}?_HLS_part=1&_HLS_msn=7&token={bob}")[1]["X-Cache-Status"],
                get(f"{live}?_HLS_msn=7&_HLS_part=1&other=x", bob)[1]["X-Cache-Status"],
                get(f"{live}?_HLS_msn=7&_HLS_part=2", alice)[1]["X-Cache-Status"],
                get(f"{live}?_HLS_msn=7&_HLS_part=2&_HLS_skip=YES", alice)[1]["X-Cache-Status"]]
    assert statuses == ["MISS", "HIT", "HIT", "MISS", "MISS"]
    assert counts(stack) - before == Counter({(LIVE, "200"): 3})


def test_each_stream_sticks_to_one_origin(stack):
    edge, keys = stack["edge"], stack["keys"]
    token = issue(keys, ["edge-*"], 600, time.time())
    for sid in stack["streams"]:
        get(f"http://{edge.addr}{LIVE.format(stream_id=sid)}?_HLS_msn=1", token)
    time.sleep(1.5)  # the access log is flushed every second (buffer=64k flush=1s)
    upstreams = defaultdict(set)
    for line in (stack["prefix"] / "access.log").read_text().splitlines():
        parts = line.split()
        path, upstream = parts[2], parts[-1]
        if path.startswith("/v1/streams/edge-") and upstream != "-":
            upstreams[path.split("/")[3]].add(upstream)
    assert set(upstreams) == set(stack["streams"])
    assert all(len(u) == 1 for u in upstreams.values()), upstreams


def test_many_viewers_one_origin_request_per_object(stack):
    edge, keys, sids = stack["edge"], stack["keys"], stack["streams"]
    now = time.time()
    playlists = []
    for i in range(VIEWERS):  # every viewer its own token
        token = issue(keys, [sids[i % STREAMS]], 3600, now)
        playlists.append(f"http://{edge.addr}{LIVE.format(stream_id=sids[i % STREAMS])}"
                         f"?token={token}")
    before = counts(stack)
    tally = asyncio.run(watch(playlists, VIEWERS, WATCH_S))
    delta = counts(stack) - before
    FIGURES.append(
        f"edge many viewers: {VIEWERS} viewers x {STREAMS} streams x {WATCH_S} s: "
        f"{sum(tally.requests.values())} requests ({dict(tally.requests)}), "
        f"{len(tally.failures)} failed, X-Cache-Status {dict(tally.cache)}; origins got "
        f"{delta[(SEGMENTS, '200')]} segment requests for {len(tally.objects['segment'])} "
        f"segments, {delta[(INITS, '200')]} init, "
        f"{delta[(LIVE, '200')]}+{delta[(LIVE, '300')]} (200+304) live playlist requests")
    assert tally.failures == [], tally.failures[:20]
    assert tally.requests["segment"] > VIEWERS * WATCH_S // 2  # everyone kept up with the live edge
    new_segments = len(tally.objects["segment"])
    assert new_segments >= STREAMS * (WATCH_S - 5)
    # At most one origin request per object: each segment (and init) the viewers fetched made at
    # most one request to the origins, whatever the number of viewers and tokens.
    assert delta[(SEGMENTS, "200")] <= new_segments
    assert delta[(INITS, "200")] <= len(tally.objects["init"])
    # A live playlist is one object per max-age (1 s) per stream, revalidated at most once each.
    # (a revalidation is answered 304, counted as status 300).
    assert delta[(LIVE, "200")] + delta[(LIVE, "300")] <= STREAMS * (WATCH_S + 5), delta
    assert sum(v for (route, st), v in delta.items() if st not in ("200", "300")) == 0, delta
    served_by_edge = tally.cache["HIT"] + tally.cache["UPDATING"]
    assert served_by_edge > 0.9 * sum(tally.requests.values()), tally.cache


def test_stale_while_the_origins_are_down(stack):
    edge, sid, keys = stack["edge"], stack["streams"][2], stack["keys"]
    token = issue(keys, [sid], 600, time.time())
    url = f"http://{edge.addr}{LIVE.format(stream_id=sid)}"
    status, _, _ = get(url, token)
    assert status == 200
    for o in stack["origins"]:
        o.stop()
    try:
        seen = []
        for _ in range(100):  # until the 1 s max-age has passed; bounded, not timed
            status, headers, body = get(url, token)
            seen.append((status, headers.get("X-Cache-Status")))
            if headers.get("X-Cache-Status") == "STALE":
                break
            time.sleep(0.1)
        assert seen[-1] == (200, "STALE"), seen[-5:]
        assert body.startswith(b"#EXTM3U") and f"token={token}" in body.decode()
        # a token the edge refuses is still refused, origins or not
        status, headers, _ = get(url, issue(keys, ["someone-else"], 600, time.time()))
        assert status == 403
    finally:
        for o in stack["origins"]:
            o.start("/readyz")
