"""The one problem format (RFC 9457) the bridge and playback share: the body, the headers, and
both services answering it, including for an unhandled error."""

from __future__ import annotations

import json
from typing import Any

import jsonschema_rs
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import given
from hypothesis import strategies as st

from pipeline.http.openapi import problem_schema
from pipeline.http.problems import (
    MEDIA_TYPE,
    STANDARD,
    Problem,
    problem_body,
    problem_response,
)
from pipeline.ingest import openapi as ingest_doc
from pipeline.ingest.problems import IngestError
from pipeline.playback import openapi as playback_doc
from pipeline.playback.errors import Problem as PlaybackProblem

codes = st.from_regex(r"[a-z][a-z_]{0,30}", fullmatch=True)
statuses = st.integers(400, 599)
details = st.text(max_size=200)
paths = st.one_of(st.just(""), st.from_regex(r"/[a-z0-9/_.-]{0,60}", fullmatch=True))
waits = st.none() | st.floats(0, 3600, allow_nan=False)
# extension members: any JSON-able values, under names that may collide with the standard ones
extras = st.dictionaries(st.sampled_from(["limit", "last_seq", "size", "reason", "type",
                                          "title", "instance"]),
                         st.integers(0, 1 << 40) | st.text(max_size=20), max_size=4)


@given(statuses, codes, details, paths, waits, extras)
def test_body_has_the_standard_members_whatever_the_extensions(status, code, detail, path,
                                                               wait, extra):
    p = Problem(status, code, detail, retry_after=wait, **extra)
    body = problem_body(p, path)
    assert (body["type"], body["title"], body["status"], body["code"]) == (
        "about:blank", code, status, code)
    assert body.get("detail") == (detail or None) and body.get("instance") == (path or None)
    assert body.get("retry_after") == wait
    for key, value in extra.items():
        if key not in STANDARD:
            assert body[key] == value
    assert set(body) - STANDARD == {k for k in extra if k not in STANDARD} | (
        {"retry_after"} if wait is not None else set())
    assert json.loads(json.dumps(body)) == body


@given(statuses, codes, details, waits)
def test_bridge_and_playback_bodies_differ_only_by_the_bridge_alias(status, code, detail, wait):
    bridge = problem_body(IngestError(status, code, detail, retry_after=wait), "/p")
    playback = problem_body(PlaybackProblem(status, code, detail, retry_after=wait), "/p")
    assert bridge.pop("problem") == code
    assert bridge == playback
    assert IngestError(status, code, detail).problem == PlaybackProblem(status, code).title == code


@given(st.floats(0, 1e6, allow_nan=False))
def test_retry_after_header_is_whole_seconds_rounded_up(wait):
    resp = problem_response(Problem(503, "x", retry_after=wait))
    header = int(resp.headers["Retry-After"])
    assert header >= max(1.0, wait)  # never asks a client to come back too early
    assert header < max(1.0, wait) + 1  # nor more than a second late


def test_response_headers_follow_the_status():
    r401 = problem_response(Problem(401, "token_missing", "no token"), "/v1/x")
    assert r401.headers["WWW-Authenticate"].startswith("Bearer")
    assert r401.content_type == MEDIA_TYPE and r401.headers["Cache-Control"] == "no-store"
    r416 = problem_response(Problem(416, "range_not_satisfiable", size=10))
    assert r416.headers["Content-Range"] == "bytes */10"
    assert "Retry-After" not in r416.headers and "WWW-Authenticate" not in r416.headers


@given(statuses, codes, details, paths, waits)
def test_both_documents_describe_the_shared_body(status, code, detail, path, wait):
    for doc, p in ((ingest_doc.build_document(), IngestError(status, code, detail,
                                                             retry_after=wait, limit=1)),
                   (playback_doc.build_document(), PlaybackProblem(status, code, detail,
                                                                   retry_after=wait, size=3))):
        schema = {"$ref": "#/components/schemas/Problem", "components": doc["components"]}
        jsonschema_rs.Draft202012Validator(schema).validate(problem_body(p, path))


def test_problem_schema_keeps_standard_members_required():
    schema = problem_schema({"limit": {"type": "integer"}})
    assert {"type", "title", "status", "code"} <= set(schema["required"])
    assert "limit" in schema["properties"]


async def _answer(app: web.Application, path: str) -> tuple[int, str, dict[str, Any]]:
    async with TestClient(TestServer(app)) as client:
        resp = await client.get(path)
        return resp.status, resp.content_type, await resp.json()


async def test_the_bridge_answers_an_unhandled_error_with_a_problem():
    from pipeline.config import load_settings
    from pipeline.ingest.app import build_app

    app = build_app(load_settings())

    async def broken(_request: web.Request) -> web.Response:
        raise RuntimeError("a bug")

    app.router.add_get("/broken", broken)
    status, ctype, body = await _answer(app, "/broken")
    assert (status, ctype, body["code"], body["title"]) == (500, MEDIA_TYPE, "internal_error",
                                                            "internal_error")
    assert body["instance"] == "/broken" and "a bug" not in json.dumps(body)
    status, ctype, body = await _answer(app, "/no/such/route")
    assert (status, ctype, body["code"], body["problem"]) == (404, MEDIA_TYPE, "not_found",
                                                              "not_found")
