"""The OpenAPI documents against the code: the routes each app registers, valid OpenAPI 3.1,
and real answers of the in-memory playback app conforming to what the document promises."""

from __future__ import annotations

import json
import re
from typing import Any

import jsonschema_rs
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer, make_mocked_request

from pipeline.auth.keys import ephemeral_keys
from pipeline.auth.viewer import issue as issue_viewer
from pipeline.config import load_settings
from pipeline.http.openapi import operations
from pipeline.ingest import openapi as ingest_doc
from pipeline.ingest.app import build_app as build_bridge
from pipeline.ingest.problems import IngestError, problem_body
from pipeline.playback import openapi as playback_doc
from pipeline.playback.api import stream_json
from pipeline.playback.app import build_app as build_playback
from pipeline.playback.context import Context
from pipeline.playback.errors import Problem
from pipeline.playback.errors import problem_body as playback_problem
from tests.playback.memsource import MemorySource, add_stream

KEYS = {"k1": b"0123456789abcdef-openapi-test"}
VKEYS = ephemeral_keys("k1")
T0 = 1_764_072_000_000_000
NOW = T0 / 1e6 + 60
DOCS = {"bridge": ingest_doc.build_document(), "playback": playback_doc.build_document()}


def _playback_app(source: MemorySource | None = None) -> web.Application:
    return build_playback(Context(keys=VKEYS, source=source or MemorySource(), now=lambda: NOW))


def registered(app: web.Application) -> set[tuple[str, str]]:
    """(METHOD, path template) of the app's own routes: no HEAD twins, preflight or static."""
    return {(r.method, r.resource.canonical) for r in app.router.routes()
            if r.method not in ("HEAD", "OPTIONS") and r.resource is not None
            and not isinstance(r.resource, web.StaticResource)}


def validator(doc: dict[str, Any], schema: dict[str, Any]) -> jsonschema_rs.Validator:
    """A JSON Schema 2020-12 validator for ``schema`` whose $refs resolve inside ``doc``."""
    return jsonschema_rs.Draft202012Validator({**schema, "components": doc["components"]})


def test_bridge_document_lists_every_route():
    assert operations(DOCS["bridge"]) == registered(build_bridge(load_settings()))


def test_playback_document_lists_every_route():
    assert operations(DOCS["playback"]) == registered(_playback_app())


@pytest.mark.parametrize("name", sorted(DOCS))
def test_document_is_valid_openapi_31(name):
    from schemathesis.specs.openapi.definitions import OPENAPI_31_VALIDATOR

    doc = DOCS[name]
    OPENAPI_31_VALIDATOR.validate(doc)  # the structure (the 3.1 meta-schema skips Schema objects)
    for key, schema in doc["components"]["schemas"].items():
        assert jsonschema_rs.meta.is_valid(schema), key
    json.dumps(doc, allow_nan=False)  # served as strict JSON


@pytest.mark.parametrize("name", sorted(DOCS))
def test_operations_are_complete(name):
    doc = DOCS[name]
    ids = []
    for path, item in doc["paths"].items():
        for method, op in item.items():
            ids.append(op["operationId"])
            declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert declared == set(re.findall(r"{(\w+)}", path)), (method, path)
            for p in op.get("parameters", []):
                assert jsonschema_rs.meta.is_valid(p["schema"]), (path, p["name"])
            codes = set(op["responses"])
            if op["security"]:  # a token is checked: its refusals are documented
                assert {"401", "403"} <= codes or path == "/v1/streams", (method, path)
            if "/{stream_id}" in path:  # the store is read: an outage is a documented 503
                assert "503" in codes and "404" in codes, (method, path)
                assert op["responses"]["503"]["headers"]["Retry-After"]["required"]
    assert len(ids) == len(set(ids))


def test_bridge_problems_match_the_schema():
    check = validator(DOCS["bridge"], {"$ref": "#/components/schemas/Problem"})
    for err in (IngestError(400, "bad_framing", "x", reason="truncated"),
                IngestError(429, "rate_limited", "slow down", retry_after=0.25),
                IngestError(409, "seq_regression", "behind", last_seq=7),
                IngestError(413, "too_large", "big", limit=1 << 20)):
        check.validate(problem_body(err))


def test_playback_bodies_match_the_schema():
    doc = DOCS["playback"]
    check = validator(doc, {"$ref": "#/components/schemas/Problem"})
    for p in (Problem(404, "unknown_stream", "no such stream"), Problem(405, "method_not_allowed"),
              Problem(416, "range_not_satisfiable", "past the end", size=10),
              Problem(503, "store_unavailable", "down", retry_after=2)):
        check.validate(playback_problem(p, "/v1/streams/x"))
    row = {"stream_id": "cam-1", "online": True, "last_seen": T0, "codec": "avc1.42c01e",
           "width": 320, "height": 240, "fps": 30.0, "bitrate": 1, "segments": 3}
    stream = validator(doc, {"$ref": "#/components/schemas/Stream"})
    stream.validate(stream_json(row, T0, 10_000_000))
    stream.validate(stream_json({"stream_id": "cam-2"}, T0, 10_000_000))


async def test_bridge_serves_its_document():
    resp = await ingest_doc.serve(make_mocked_request("GET", "/openapi.json"))
    assert json.loads(resp.body) == DOCS["bridge"]


def _operation(doc: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    """The documented operation whose path template matches ``path``."""
    for template, item in doc["paths"].items():
        if re.fullmatch(re.sub(r"\\{\w+\\}", "[^/]+", re.escape(template)), path):
            return item[method.lower()]
    raise AssertionError(f"{method} {path} is not documented")


@pytest.fixture
async def playback():
    src = MemorySource()
    add_stream(src, "cam-1", T0)
    app = _playback_app(src)
    client = TestClient(TestServer(app))
    await client.start_server()
    yield client
    await client.close()


async def test_playback_answers_conform(playback):
    """A tour of real answers (no token, wrong token, 200/206/304/404/416) held to the document."""
    client = playback
    doc = DOCS["playback"]
    good = issue_viewer(VKEYS, ["cam-*"], 3600, NOW)
    other = issue_viewer(VKEYS, ["elsewhere"], 3600, NOW)
    seg = "/v1/streams/cam-1/segments/cam-1-0001.m4s"
    cases = [
        ("/openapi.json", {}), ("/healthz", {}), ("/readyz", {}), ("/", {}),
        ("/watch/cam-1", {}), ("/watch/bad%20id", {}),
        ("/v1/streams", {}), (f"/v1/streams?token={good}", {}), ("/v1/streams?limit=0", {}),
        ("/v1/streams/cam-1", {"Authorization": f"Bearer {good}"}),
        ("/v1/streams/cam-1", {"Authorization": f"Bearer {other}"}),
        ("/v1/streams/nope", {"Authorization": f"Bearer {good}"}),
        (f"/v1/streams/cam-1/live.m3u8?token={good}", {}),
        (f"/v1/streams/cam-1/vod.m3u8?token={good}&start={T0}&end={T0 + 3_000_000}", {}),
        (f"/v1/streams/cam-1/vod.m3u8?token={good}&start=soon", {}),
        (f"{seg}?token={good}", {}), (f"{seg}?token={good}", {"Range": "bytes=0-9"}),
        (f"{seg}?token={good}", {"Range": "bytes=99999999-"}),
        (f"/v1/streams/cam-1/segments/missing.m4s?token={good}", {}),
        (f"/v1/streams/cam-1/init/icam-1.mp4?token={good}", {}),
    ]
    for url, headers in cases:
        resp = await client.get(url, headers=headers)
        op = _operation(doc, "GET", url.split("?")[0])
        assert str(resp.status) in op["responses"], (url, resp.status)
        documented = op["responses"][str(resp.status)]
        media = resp.headers.get("Content-Type", "").split(";")[0]
        if "content" in documented:
            assert media in documented["content"], (url, media)
            if "json" in media:
                schema = documented["content"][media]["schema"]
                validator(doc, schema).validate(await resp.json(content_type=None))
        for name, h in documented.get("headers", {}).items():
            assert not h["required"] or name in resp.headers, (url, name)
        if resp.status == 200 and resp.headers.get("ETag"):  # and its 304
            inm = {**headers, "If-None-Match": resp.headers["ETag"]}
            again = await client.get(url, headers=inm)
            assert str(again.status) in op["responses"], (url, again.status)


@pytest.mark.parametrize("body", [
    '{"stream_id": "cam-1", "startup_ms": 120.5, "rebuffers": 0, "error": null}',
    '{"stream_id": "cam-1", "rebuffers": 1e400}', '{"stream_id": "cam-1", "startup_ms": 1e400}',
    '{"stream_id": "cam-1", "rebuffers": "many"}', '[1]', 'not json', '{"stream_id": "x y"}',
])
async def test_beacon_answers_conform(playback, body):
    """Beacons (infinite numbers included: JSON parsers read 1e400 as inf) answer as documented."""
    good = issue_viewer(VKEYS, ["cam-*"], 3600, NOW)
    resp = await playback.post("/v1/beacons", data=body, headers={
        "Authorization": f"Bearer {good}", "Content-Type": "application/json"})
    responses = DOCS["playback"]["paths"]["/v1/beacons"]["post"]["responses"]
    assert str(resp.status) in responses, (body, resp.status, await resp.text())
    schema = next(iter(responses[str(resp.status)]["content"].values()))["schema"]
    validator(DOCS["playback"], schema).validate(await resp.json(content_type=None))


def test_cursors_are_only_those_issued():
    """A forged paging state never reaches Cassandra (it answers with a protocol error)."""
    from pipeline.playback.source import _cursor_in, _cursor_out

    cursor = _cursor_out(b"\x00\x01state", KEYS["k1"])
    assert _cursor_in(cursor, KEYS) == b"\x00\x01state"
    assert _cursor_in(cursor, {"old": b"x", **KEYS}) == b"\x00\x01state"  # any key of the ring
    for forged in ("abcd", "AAAAAAAA", cursor[:-2] + "AA", _cursor_out(b"\x00\x01state", b"k")):
        with pytest.raises(ValueError):
            _cursor_in(forged, KEYS)


def test_push_result_matches_the_schema():
    check = validator(DOCS["bridge"], {"$ref": "#/components/schemas/PushResult"})
    for last in (None, 41):
        check.validate({"status": "ended", "stream_id": "cam-1", "frames": 0,
                        "skipped_before_keyframe": 3, "last_seq": last})
    validator(DOCS["bridge"], {"$ref": "#/components/schemas/Problem"}).validate(problem_body(
        IngestError(503, "kafka_unavailable", "x", retry_after=1, frames_accepted=0,
                    last_accepted_seq=None)))
