"""schemathesis against the live bridge and playback: each fuzzed with its own ``/openapi.json``.

The real services run as child processes on the dev stack. Every generated request (valid and
invalid input; a valid token, a token for the wrong service, a generated one, or none) must get
no 5xx, a documented status, a documented content type, and a body and headers that match the
response schema.
"""

from __future__ import annotations

import json
import time
import urllib.request
import uuid
from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from pipeline.auth.keys import viewer_keys
from pipeline.auth.tokens import issue
from pipeline.auth.viewer import issue as issue_viewer
from pipeline.device.pattern import encode_loop
from pipeline.ingest import openapi as ingest_doc
from pipeline.ingest.framing import Chunk, Frame, encode_chunk
from pipeline.ingest.openapi import CHUNK_MEDIA_TYPE
from pipeline.playback import openapi as playback_doc
from pipeline.runner import SystemRunner, http_ok
from tests.system import FIGURES, free_port

pytestmark = [pytest.mark.services, pytest.mark.slow]

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance, response_headers_conformance]
EXAMPLES = 50  # per operation and phase: the file stays under ~2 minutes on two cores
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))
#: How a generated request is authorized: the service's own token in the header, the same in
#: ``?token=`` (playback only), one for another stream only, the other kind of token, whatever
#: schemathesis generated, none.
AUTH = st.sampled_from(["header", "query", "narrow", "wrong_kind", "generated", "none"])
#: The bridge reads chunk bodies as raw bytes whatever their media type.
schemathesis.serializer.alias([CHUNK_MEDIA_TYPE, "video/mp2t"], "application/octet-stream")
SEEN: dict[str, Counter] = {"bridge": Counter(), "playback": Counter()}


@pytest.fixture(scope="module")
def live(services, tmp_path_factory):
    """Bridge and playback (no playback events) on free ports, with tokens for both kinds."""
    cfg = services.replace(bridge_addr=f"127.0.0.1:{free_port()}",
                           playback_addr=f"127.0.0.1:{free_port()}")
    runner = SystemRunner(cfg, tmp_path_factory.mktemp("fuzz-logs"), telemetry="none")
    try:
        bridge = runner.spawn("bridge", "bridge")
        playback = runner.spawn("playback", "playback", "--no-events")
        runner.wait("bridge", lambda: http_ok(f"http://{cfg.bridge_addr}/readyz"), child=bridge)
        runner.wait("playback", lambda: http_ok(f"http://{cfg.playback_addr}/readyz"),
                    child=playback)
        now = time.time()
        # Any stream: fuzzed ids reach the handlers, not only the scope check. Random bodies
        # never pass the chunk framing, so nothing is written for them.
        vkeys = viewer_keys(cfg)
        tokens = {"device": issue(cfg.keys, None, "device", ["*"], 3600, now),
                  "viewer": issue_viewer(vkeys, ["*"], 3600, now),
                  "narrow-device": issue(cfg.keys, None, "device", ["fuzz-elsewhere"], 3600, now),
                  "narrow-viewer": issue_viewer(vkeys, ["fuzz-elsewhere"], 3600, now)}
        yield cfg, tokens
        for name, seen in SEEN.items():
            FIGURES.append(f"api fuzz {name}: {sum(seen.values())} requests, statuses "
                           f"{dict(sorted(seen.items()))}")
    finally:
        runner.stop()


def _schema(doc: dict) -> schemathesis.BaseSchema:
    schema = schemathesis.openapi.from_dict(doc)
    schema.config.generation.update(max_examples=EXAMPLES, modes=list(schemathesis.GenerationMode))
    schema.config.phases.update(phases=["examples", "coverage", "fuzzing"])
    return schema


# Built at import so pytest gets one item per operation; test_served_documents checks that the
# services serve exactly these documents at /openapi.json.
bridge = _schema(ingest_doc.build_document())
playback = _schema(playback_doc.build_document())


def test_served_documents(live):
    cfg, _ = live
    for addr, schema in ((cfg.bridge_addr, bridge), (cfg.playback_addr, playback)):
        with urllib.request.urlopen(f"http://{addr}/openapi.json", timeout=10) as r:
            assert json.load(r) == schema.raw_schema


def _authorize(case, mode: str, tokens: dict[str, str], own: str, other: str) -> None:
    """Set the request's credentials for ``mode`` (the service's kind of token is ``own``)."""
    headers = dict(case.headers or {})
    query = dict(case.query or {})
    if mode != "generated":
        headers.pop("Authorization", None)
        query.pop("token", None)
    if mode == "header":
        headers["Authorization"] = f"Bearer {tokens[own]}"
    elif mode == "query":
        query["token"] = tokens[own]
    elif mode == "narrow":
        headers["Authorization"] = f"Bearer {tokens['narrow-' + own]}"
    elif mode == "wrong_kind":
        headers["Authorization"] = f"Bearer {tokens[other]}"
    case.headers, case.query = headers, query


@FUZZ
@bridge.parametrize()
@bridge.given(mode=AUTH)
def test_bridge_conforms(case, mode, live):
    cfg, tokens = live
    _authorize(case, "header" if mode == "query" else mode, tokens, "device", "viewer")
    resp = case.call_and_validate(base_url=f"http://{cfg.bridge_addr}", checks=CHECKS,
                                  timeout=15)
    SEEN["bridge"][resp.status_code] += 1


@FUZZ
@playback.parametrize()
@playback.given(mode=AUTH)
def test_playback_conforms(case, mode, live):
    cfg, tokens = live
    _authorize(case, mode, tokens, "viewer", "device")
    resp = case.call_and_validate(base_url=f"http://{cfg.playback_addr}", checks=CHECKS,
                                  timeout=15)
    SEEN["playback"][resp.status_code] += 1


def test_bridge_ack_conforms(live):
    """A real chunk's 200 ack (and its retry's) matches the documented Ack."""
    cfg, _ = live
    sid = f"fuzz-{uuid.uuid4().hex[:10]}"
    loop = encode_loop(0, fps=15, width=160, height=96, bitrate=100_000, gop_s=1, gops=1)
    frames = tuple(Frame(i * 6000, i * 6000, f.keyframe, f.data)
                   for i, f in enumerate(loop.frames[:3]))
    body = encode_chunk(Chunk(1, "H264", 90000, int(time.time() * 1e6), frames))
    token = issue(cfg.keys, None, "device", [sid], 600, time.time())
    op = bridge["/v1/streams/{stream_id}/chunks"]["POST"]
    for _ in range(2):
        case = op.Case(path_parameters={"stream_id": sid}, body=body,
                       media_type=CHUNK_MEDIA_TYPE,
                       headers={"Authorization": f"Bearer {token}"})
        resp = case.call_and_validate(base_url=f"http://{cfg.bridge_addr}", checks=CHECKS,
                                      timeout=15)
        assert resp.status_code == 200, resp.text
        assert resp.json()["seq"] == 1


def test_stream_cursors(live):
    """Pages follow with the cursors playback issued; a forged one is a 400 and harms nothing."""
    cfg, tokens = live
    base = f"http://{cfg.playback_addr}/v1/streams?token={tokens['viewer']}"
    op = playback["/v1/streams"]["GET"]
    for cursor in ("abcd", "AAAAAAAA", "AQID"):
        resp = op.Case(query={"cursor": cursor, "token": tokens["viewer"]}).call_and_validate(
            base_url=f"http://{cfg.playback_addr}", checks=CHECKS, timeout=15)
        assert resp.status_code == 400, resp.text
    with urllib.request.urlopen(f"{base}&limit=1", timeout=15) as r:
        page = json.load(r)
    if page["next_cursor"]:
        with urllib.request.urlopen(f"{base}&limit=1&cursor={page['next_cursor']}",
                                    timeout=15) as r:
            assert r.status == 200
