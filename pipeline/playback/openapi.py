"""The playback HTTP API as an OpenAPI 3.1 document, served at ``GET /openapi.json``.

Refusals are RFC 9457 problem bodies (``http.problems.problem_body``, the bridge's format too);
a 503 (a dependency is down) carries ``Retry-After``. Viewer tokens go in ``Authorization:
Bearer`` or, for players that cannot send headers, in ``?token=``.
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
from pipeline.playback.context import Context, in_path
from pipeline.playback.params import _ID_RE, MAX_TIME_CHARS

__all__ = ["build_document", "routes", "serve"]

_ID = id_schema(_ID_RE.pattern, 128)
_PROBLEM = content(ref("Problem"), MEDIA_TYPE)
_VIEWER = [{"bearer": []}, {"queryToken": []}]
_WORDS = {
    400: "malformed input: `bad_id`, `bad_time`, `bad_range`, `range_too_long`, `bad_gaps`, "
         "`bad_limit`, `bad_cursor`, `bad_json`, `bad_beacon`",
    401: "`token_missing`, `token_invalid`, `token_bad_signature`, `token_unknown_key`, "
         "`token_expired`, `token_wrong_kind`",
    403: "`token_scope`: the viewer token does not cover this stream",
    404: "`unknown_stream`, `no_recording`, `segment_not_found`, `init_not_found`, or no such "
         "route",
    413: "the request body is over 64 KiB",
    416: "`range_not_satisfiable` (with `size`); `Content-Range: bytes */size`",
    422: "`undecodable`: the keyframe could not be decoded",
    503: "`store_unavailable`: Cassandra does not answer (and nothing cached can stand in); "
         "try again after `Retry-After`",
}
_HEADERS = {
    401: {"WWW-Authenticate": header("`Bearer realm=\"camlog\"`", required=True)},
    416: {"Content-Range": header("`bytes */<size>`")},
    503: {"Retry-After": header("seconds to wait before trying again",
                                {"type": "integer", "minimum": 0}, required=True)},
}
_ETAG = {"ETag": header("strong validator for If-None-Match / If-Range", required=True)}


def _refusals(*statuses: int) -> dict[str, Any]:
    return {str(s): response(_WORDS[s], s, _PROBLEM, _HEADERS.get(s)) for s in statuses}


def _sid() -> dict[str, Any]:
    return param("path", "stream_id", _ID, "the stream the viewer token must cover")


def _query(name: str, description: str, schema: dict | None = None,
           required: bool = False) -> dict[str, Any]:
    return param("query", name, schema or {"type": "string", "maxLength": MAX_TIME_CHARS},
                 description, required)


_TIME = "ISO-8601 (`2026-11-25T12:00:00Z`, naive = UTC) or epoch s / ms / µs"
_INM = param("header", "If-None-Match", {"type": "string"}, "ETags the client holds")
_RANGE = [param("header", "Range", {"type": "string"}, "one byte range, e.g. `bytes=0-1023`"),
          param("header", "If-Range", {"type": "string"}, "the Range applies only to this ETag")]


def _op(op_id: str, summary: str, ok: dict[str, Any], refusals: tuple[int, ...],
        parameters: list | None = None, security: list | None = None,
        extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"operationId": op_id, "summary": summary, "security": _VIEWER if security is None
            else security, "parameters": parameters or [],
            "responses": {**ok, **_refusals(*refusals)}, **(extra or {})}


def _bytes(media_type: str, partial: bool = True) -> dict[str, Any]:
    """200 (and 206, 304) for immutable bytes served with ETag and Range."""
    out = {"200": response(body=content(binary(), media_type), headers=_ETAG),
           "304": response(status=304, headers=_ETAG)}
    if partial:
        ranged = {**_ETAG, "Content-Range": header("`bytes first-last/size`", required=True)}
        out["206"] = response(status=206, body=content(binary(), media_type), headers=ranged)
    return out


def _playlist() -> dict[str, Any]:
    return {"200": response("an HLS media playlist (RFC 8216 v7, or rfc8216bis v9 LL-HLS)",
                            body=content({"type": "string"}, "application/vnd.apple.mpegurl"),
                            headers=_ETAG),
            "304": response(status=304, headers=_ETAG)}


def _json(schema: str, status: int = 200) -> dict[str, Any]:
    return {str(status): response(status=status, body=content(ref(schema)))}


def _paths() -> dict[str, Any]:
    stream = "/v1/streams/{stream_id}"
    media = (400, 401, 403, 404, 416, 503)
    range_q = [_query("start", f"range start: {_TIME}", required=True),
               _query("end", f"range end (default now): {_TIME}")]
    return {
        "/v1/streams": {"get": _op(
            "listStreams", "The streams this token may see, with device state",
            _json("StreamList"), (400, 401, 503),
            [_query("limit", "page size", {"type": "integer", "minimum": 1, "maximum": 500}),
             _query("cursor", "`next_cursor` of the previous page",
                    {"type": "string", "maxLength": 512})])},
        stream: {"get": _op("getStream", "One stream's device state (also a stream the bridge "
                            "hears before the worker reduced it)", _json("Stream"),
                            (400, 401, 403, 404, 503), [_sid()])},
        "/v1/beacons": {"post": _op(
            "postBeacon", "A player's report; it becomes a playback event",
            _json("Accepted", 202), (400, 401, 403, 413), extra={"requestBody": {
                "required": True, "content": content(ref("Beacon"))}})},
        f"{stream}/live.m3u8": {"get": _op(
            "livePlaylist", "Live playlist: LL-HLS (parts, preload hint, blocking reload) while "
            "the stream is live, whole segments otherwise; URLs carry `?token=`", _playlist(),
            (400, 401, 403, 404, 503),
            [_sid(), _INM,
             _query("_HLS_msn", "block until segment M exists (or part N of it, with _HLS_part)",
                    {"type": "string", "pattern": "^[0-9]{1,18}$"}),
             _query("_HLS_part", "part index within _HLS_msn (needs _HLS_msn)",
                    {"type": "string", "pattern": "^[0-9]{1,18}$"}),
             _query("_HLS_skip", "delta update: EXT-X-SKIP replaces old segments",
                    {"type": "string", "enum": ["YES", "v2"]})])},
        f"{stream}/vod.m3u8": {"get": _op(
            "recordingPlaylist", "HLS playlist of a time range", _playlist(),
            (400, 401, 403, 404, 503),
            [_sid(), *range_q, _INM,
             _query("gaps", "how holes are shown",
                    {"type": "string", "enum": ["discontinuity", "gap"]})])},
        f"{stream}/segments/{{segment_id}}.m4s": {"get": _op(
            "mediaSegment", "An fMP4 media segment (moof+mdat), immutable",
            _bytes("video/iso.segment"), media,
            [_sid(), param("path", "segment_id", _ID, "segment id"), _INM, *_RANGE])},
        f"{stream}/parts/{{msn}}.{{index}}.m4s": {"get": _op(
            "llPart", "An LL-HLS part (one moof+mdat) by media sequence and index, immutable; "
            "a part named by a preload hint is held until it exists", _bytes("video/iso.segment"),
            media, [_sid(), param("path", "msn", {"type": "string", "pattern": "^[0-9]{1,12}$"},
                                  "media sequence number of its segment"),
                    param("path", "index", {"type": "string", "pattern": "^[0-9]{1,12}$"},
                          "index of the part in its segment"), _INM, *_RANGE])},
        f"{stream}/init/{{init_id}}.mp4": {"get": _op(
            "initSegment", "An fMP4 init segment (ftyp+moov), immutable", _bytes("video/mp4"),
            media, [_sid(), param("path", "init_id", _ID, "init segment id"), _INM, *_RANGE])},
        f"{stream}/clip.mp4": {"get": _op(
            "clip", "A progressive MP4 of a time range (at most `max_clip_s`)",
            _bytes("video/mp4"), media, [_sid(), *range_q, _INM, *_RANGE])},
        f"{stream}/thumbnail.jpg": {"get": _op(
            "thumbnail", "JPEG of the keyframe at or before `at` (default: now)",
            _bytes("image/jpeg"), (*media, 422),
            [_sid(), _query("at", f"when: {_TIME}"), _INM, *_RANGE])},
        "/": {"get": _op("dashboard", "The stream dashboard (HTML)", _page(), (), [_INM],
                       security=[])},
        "/watch/{id}": {"get": _op(
            "watch", "The player page (HTML; its API calls carry the token)", _page(), (400, 404),
            [param("path", "id", _ID, "stream id"), _INM], security=[])},
        "/healthz": {"get": _op("healthz", "Liveness", _json("Health"), (), security=[])},
        "/readyz": {"get": _op("readyz", "Readiness: started (503 until then)",
                               {**_json("Ready"), **_json("Ready", 503)}, (), security=[])},
        "/openapi.json": {"get": _op("openapi", "This document", _json("OpenAPI"), (),
                                     security=[])},
        "/.well-known/jwks.json": {"get": _op(
            "jwks", "Public ES256 keys that verify viewer JWTs (RFC 7517; max-age 300)",
            {"200": response(body=content(ref("JWKS"), "application/jwk-set+json"),
                             headers=_ETAG),
             "304": response(status=304, headers=_ETAG)}, (), [_INM], security=[])},
    }


def _page() -> dict[str, Any]:
    return {"200": response(body=content({"type": "string"}, "text/html"), headers=_ETAG),
            "304": response(status=304, headers=_ETAG)}


_NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}
_SCHEMAS: dict[str, Any] = {
    "Problem": problem_schema({
        "size": {"type": "integer", "minimum": 0, "description": "body size (416)"},
    }),
    "Stream": {
        "type": "object",
        "additionalProperties": False,
        "required": ["stream_id", "online", "state", "behind_s", "offline_since", "codec",
                     "width", "height", "fps", "bitrate", "last_seen", "last_seen_us",
                     "connected_since", "segments", "gaps", "links"],
        "properties": {
            "stream_id": {"type": "string"},
            "online": {"type": "boolean", "description": "frames reach the bridge now"},
            "state": {"enum": ["live", "behind", "offline", "waiting"],
                      "description": "live; behind: frames acknowledged by the bridge but not "
                                     "yet processed; offline: no frames reach the bridge; "
                                     "waiting: connected, no segment yet"},
            "behind_s": {"type": ["number", "null"], "minimum": 0,
                         "description": "bridge's last frame minus the newest processed one; "
                                        "null when the bridge did not answer"},
            "offline_since": _NULLABLE_TIME,
            "codec": {"type": "string", "description": "RFC 6381 codec string, or empty"},
            "width": {"type": "integer", "minimum": 0},
            "height": {"type": "integer", "minimum": 0},
            "fps": {"type": "number", "minimum": 0},
            "bitrate": {"type": "integer", "minimum": 0},
            "last_seen": _NULLABLE_TIME,
            "last_seen_us": {"type": "integer", "minimum": 0},
            "connected_since": _NULLABLE_TIME,
            "segments": {"type": "integer", "minimum": 0},
            "gaps": {"type": "integer", "minimum": 0},
            "links": {
                "type": "object", "additionalProperties": False,
                "required": ["live", "thumbnail", "watch"],
                "properties": {k: {"type": "string"} for k in ("live", "thumbnail", "watch")},
            },
        },
    },
    "StreamList": {
        "type": "object", "additionalProperties": False, "required": ["streams", "next_cursor"],
        "properties": {"streams": {"type": "array", "items": ref("Stream")},
                       "next_cursor": {"type": ["string", "null"]}},
    },
    "Beacon": {
        "type": "object",
        "description": "Unknown members are ignored; `error` is cut to 500 characters.",
        "required": ["stream_id"],
        "properties": {
            "stream_id": _ID,
            "startup_ms": {"type": ["number", "null"], "minimum": 0, "exclusiveMaximum": 1e9},
            "rebuffers": {"type": ["integer", "null"], "minimum": 0, "exclusiveMaximum": 1e9},
            "error": {"type": ["string", "null"]},
        },
    },
    "Accepted": {"type": "object", "additionalProperties": False, "required": ["accepted"],
                 "properties": {"accepted": {"const": True}}},
    "Health": {"type": "object", "additionalProperties": False, "required": ["status"],
               "properties": {"status": {"const": "ok"}}},
    "Ready": {
        "type": "object", "additionalProperties": False, "required": ["status", "store"],
        "properties": {
            "status": {"enum": ["ready", "degraded", "not_ready"],
                       "description": "degraded: Cassandra is down, what is known is served"},
            "store": {"enum": ["ok", "unavailable"]},
            "events": {"type": "object", "required": ["sent", "dropped"],
                       "properties": {"sent": {"type": "integer", "minimum": 0},
                                      "dropped": {"type": "integer", "minimum": 0}}},
        },
    },
    "OpenAPI": {"type": "object", "required": ["openapi", "paths"]},
    "JWKS": {"type": "object", "required": ["keys"], "properties": {"keys": {
        "type": "array", "items": {"type": "object", "required": ["kty", "kid", "crv", "x", "y"],
                                   "properties": {"kty": {"const": "EC"}, "crv": {"const": "P-256"},
                                                  "alg": {"const": "ES256"}}}}}},
}


def build_document() -> dict[str, Any]:
    """The playback service's OpenAPI 3.1 document."""
    schemes = {
        "bearer": {"type": "http", "scheme": "bearer",
                   "description": "a viewer token (`camlog token viewer`)"},
        "queryToken": {"type": "apiKey", "in": "query", "name": "token",
                       "description": "the same viewer token, for players that send no headers"},
    }
    return document("camlog playback", "Playback: HLS, media segments, clips and thumbnails.",
                    _in_path(_paths()), _SCHEMAS, schemes)


_TOKEN_IN_PATH = param("path", "token", {"type": "string", "pattern": "^[A-Za-z0-9._~-]+$"},
                       "the viewer token; the playlists under it name none (the same bytes for "
                       "every viewer, their relative URLs carry it)")


def _in_path(paths: dict[str, Any]) -> dict[str, Any]:
    """Each ``/v1/streams/{stream_id}…`` operation again under ``/v1/t/{token}/``."""
    out = dict(paths)
    for path, ops in paths.items():
        if (alias := in_path(path)) is not None:
            out[alias] = {
                method: {**op, "operationId": op["operationId"] + "InPath", "security": [],
                         "parameters": [_TOKEN_IN_PATH, *op["parameters"]]}
                for method, op in ops.items()}
    return out


async def serve(_request: web.Request) -> web.Response:
    """GET /openapi.json"""
    return web.json_response(_DOC)


_DOC = build_document()


def routes(_ctx: Context) -> list[web.RouteDef]:
    """``GET /openapi.json`` (no token: the document is public)."""
    return [web.get("/openapi.json", serve)]
