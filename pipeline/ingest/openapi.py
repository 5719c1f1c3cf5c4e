"""The bridge's HTTP API as an OpenAPI 3.1 document, served at ``GET /openapi.json``.

Every refusal is an RFC 9457 problem body (``http.problems.problem_body``,
``application/problem+json``, the same format as playback's); 429 and the 503s of a route carry
``Retry-After``.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from pipeline.http.openapi import (
    binary,
    content,
    document,
    header,
    id_schema,
    param,
    problem_schema,
    ref,
    response,
)
from pipeline.http.problems import MEDIA_TYPE
from pipeline.ingest.checks import STREAM_ID_RE
from pipeline.ingest.framing import MAX_FRAMES, RESUME_HEADER

__all__ = ["CHUNK_MEDIA_TYPE", "build_document", "serve"]

CHUNK_MEDIA_TYPE = "application/vnd.camlog.chunk.v1"
_PROBLEM = content(ref("Problem"), MEDIA_TYPE)
_RETRY = {"Retry-After": header("seconds to wait before sending the same request again",
                                {"type": "integer", "minimum": 1}, required=True)}
_WORDS = {
    400: "`bad_stream_id`; `bad_framing` (with `reason`) or `bad_stream` for an unreadable body; "
         "`bad_json`, `bad_status_request`",
    401: "`token_missing`, `token_invalid`, `token_bad_signature`, `token_unknown_key`, "
         "`token_expired`, `token_wrong_kind`",
    403: "`token_scope`: the token does not cover this stream (every asked stream)",
    404: "`not_found`: no such route (e.g. an empty stream id)",
    409: "`seq_regression` (with `last_seq`): seq is behind the last persisted one",
    413: "`too_large` (with `limit`): the body or an access unit is over the limit",
    415: "`unsupported_codec`: not H.264 or H.265",
    422: "`needs_keyframe`, `not_annexb`, `bad_parameter_sets`, `codec_change_without_keyframe`",
    429: "`rate_limited`: over the per-stream rate",
    503: "`starting`, `kafka_unavailable`, `kafka_slow`, `in_flight`: not persisted (yet); "
         "send the same request again after `Retry-After`",
}


def _refusals(*statuses: int) -> dict[str, Any]:
    return {str(s): response(_WORDS[s], s, _PROBLEM, _RETRY if s in (429, 503) else None)
            for s in statuses}


def _ingest(op_id: str, summary: str, description: str, media_types: tuple[str, ...],
            body: str, ok: str, statuses: tuple[int, ...],
            extra: tuple[dict[str, Any], ...] = ()) -> dict[str, Any]:
    return {
        "operationId": op_id,
        "summary": summary,
        "description": description,
        "parameters": [param("path", "stream_id", id_schema(STREAM_ID_RE, 64),
                             "the stream the device token must cover"), *extra],
        "security": [{"deviceToken": []}],
        "requestBody": {"required": True, "description": body,
                        "content": content(binary(), *media_types)},
        "responses": {"200": response(ok, body=content(ref(ok))), **_refusals(*statuses)},
    }


def _probe(summary: str, schema: str, statuses: tuple[int, ...] = (200,)) -> dict[str, Any]:
    responses = {str(s): response(status=s, body=content(ref(schema))) for s in statuses}
    return {"get": {"summary": summary, "operationId": schema.lower(), "security": [],
                    "responses": responses}}


_SCHEMAS: dict[str, Any] = {
    "Problem": problem_schema({
        "problem": {"type": "string", "deprecated": True,
                    "description": "the same as `code`, for camera SDKs that read it here"},
        "reason": {"type": "string", "description": "the framing rule broken (`bad_framing`)"},
        "limit": {"type": "integer", "description": "the byte limit (`too_large`)"},
        "last_seq": {"type": "integer", "description": "the last persisted seq (409)"},
        "frames_accepted": {"type": "integer", "minimum": 0,
                            "description": "frames persisted before a push ended (503)"},
        "last_accepted_seq": {"type": ["integer", "null"],
                              "description": "the last seq a push persisted (503)"},
    }),
    "Ack": {
        "type": "object",
        "description": "Sent only after Kafka acknowledged the event; a retry gets the same.",
        "required": ["seq", "status", "partition", "offset"],
        "additionalProperties": False,
        "properties": {
            "seq": {"type": "integer", "minimum": 0},
            "status": {"const": "persisted"},
            "partition": {"type": "integer", "minimum": 0},
            "offset": {"type": "integer", "minimum": 0},
            "gap_before": {"type": "integer", "minimum": 1,
                           "description": "seqs skipped since the previous chunk"},
        },
    },
    "PushResult": {
        "type": "object",
        "description": "The push ended and every access unit was persisted.",
        "required": ["status", "stream_id", "frames", "skipped_before_keyframe", "last_seq"],
        "additionalProperties": False,
        "properties": {
            "status": {"const": "ended"},
            "stream_id": {"type": "string"},
            "frames": {"type": "integer", "minimum": 0},
            "skipped_before_keyframe": {"type": "integer", "minimum": 0},
            "last_seq": {"type": ["integer", "null"],
                         "description": "the last seq accepted; null when no frame was"},
        },
    },
    "Health": {"type": "object", "required": ["status"], "additionalProperties": False,
               "properties": {"status": {"const": "ok"}}},
    "Ready": {"type": "object", "required": ["ready", "kafka"], "additionalProperties": False,
              "properties": {"ready": {"type": "boolean"}, "kafka": {"type": "boolean"}}},
    "OpenAPI": {"type": "object", "required": ["openapi", "paths"]},
    "StatusRequest": {
        "type": "object", "required": ["stream_ids"],
        "properties": {"stream_ids": {"type": "array", "maxItems": 1000,
                                      "items": {"type": "string"}}},
    },
    "BridgeStatus": {
        "type": "object",
        "description": "What this bridge hears, by its own clock; unknown ids are left out.",
        "required": ["now_us", "streams"], "additionalProperties": False,
        "properties": {
            "now_us": {"type": "integer"},
            "streams": {"type": "object", "additionalProperties": {
                "type": "object", "additionalProperties": False,
                "required": ["connected", "last_seen_us", "last_seq", "inflight"],
                "properties": {
                    "connected": {"type": "boolean"},
                    "last_seen_us": {"type": "integer", "description": "last chunk or ack"},
                    "last_seq": {"type": ["integer", "null"]},
                    "inflight": {"type": "integer", "minimum": 0,
                                 "description": "chunks waiting on Kafka"},
                }}},
        },
    },
}


def build_document() -> dict[str, Any]:
    """The bridge's OpenAPI 3.1 document."""
    paths = {
        "/v1/streams/{stream_id}/chunks": {"post": _ingest(
            "submitChunk", "Submit one chunk",
            f"One `CLGC` framing-v1 chunk (at most {MAX_FRAMES} frames, the body at most "
            "`CAMLOG_CHUNK_MAX_BYTES`); see README 'Ingest: chunk framing'. The bridge does not "
            "check the Content-Type.",
            (CHUNK_MEDIA_TYPE, "application/octet-stream"), "one binary chunk", "Ack",
            (400, 401, 403, 404, 409, 413, 415, 422, 429, 503),
            extra=(param("header", RESUME_HEADER, {"type": "string", "enum": ["1"]},
                         "the stream was already acked by a bridge (maybe in another region): "
                         "a bridge that has not seen it accepts it mid-GOP"),))},
        "/v1/streams/{stream_id}/ingest": {"post": _ingest(
            "pushMpegTs", "Push MPEG-TS",
            "A chunked MPEG-TS body demuxed as it arrives; each access unit becomes a one-frame "
            "chunk. The answer comes when the body has ended.",
            ("video/mp2t",), "an MPEG-TS byte stream (H.264 or H.265 video)", "PushResult",
            (400, 401, 403, 404, 409, 413, 415, 422, 429, 503))},
        "/v1/status": {"post": {
            "operationId": "streamStatus", "summary": "Which of these streams the bridge hears",
            "description": "For the playback service's dashboard: offline (nothing reaches the "
                           "bridge) vs processing behind (acknowledged, not yet processed).",
            "security": [{"viewerToken": []}],
            "requestBody": {"required": True, "content": content(ref("StatusRequest"))},
            "responses": {"200": response("BridgeStatus", body=content(ref("BridgeStatus"))),
                          **_refusals(400, 401, 403)}}},
        "/healthz": _probe("Liveness", "Health"),
        "/readyz": _probe("Readiness: recovered and Kafka answers", "Ready", (200, 503)),
        "/openapi.json": _probe("This document", "OpenAPI"),
    }
    schemes = {"deviceToken": {"type": "http", "scheme": "bearer",
                               "description": "a device token (`camlog token device`)"},
               "viewerToken": {"type": "http", "scheme": "bearer",
                               "description": "a viewer token (`camlog token viewer`)"}}
    return document("camlog bridge", "Ingest: devices and encoders send video in.", paths,
                    _SCHEMAS, schemes)


async def serve(_request: web.Request) -> web.Response:
    """GET /openapi.json"""
    return web.json_response(_DOC)


_DOC = build_document()
