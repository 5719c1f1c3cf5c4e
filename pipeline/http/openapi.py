"""OpenAPI 3.1 building blocks shared by the bridge and playback documents: plain dicts, no I/O.

Each service writes its own document from these helpers (``pipeline.ingest.openapi``,
``pipeline.playback.openapi``); a test checks every document against the routes the service
really registers, and the fuzz test holds the handlers to what the document promises.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "OPENAPI_VERSION",
    "REASONS",
    "binary",
    "content",
    "document",
    "header",
    "id_schema",
    "operations",
    "param",
    "problem_schema",
    "ref",
    "response",
]

OPENAPI_VERSION = "3.1.0"
Schema = dict[str, Any]

#: Standard words for every status the services answer.
REASONS = {
    200: "OK", 202: "Accepted", 206: "Partial Content", 304: "Not Modified",
    400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
    409: "Conflict", 413: "Content Too Large", 415: "Unsupported Media Type",
    416: "Range Not Satisfiable", 422: "Unprocessable Content", 429: "Too Many Requests",
    503: "Service Unavailable",
}
_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def ref(name: str) -> Schema:
    """A reference to ``#/components/schemas/<name>``."""
    return {"$ref": f"#/components/schemas/{name}"}


def id_schema(pattern: str, max_length: int) -> Schema:
    """A string id; JSON Schema patterns are unanchored, so the regex is anchored here."""
    return {"type": "string", "pattern": f"^{pattern}$", "maxLength": max_length}


def binary() -> Schema:
    """Raw bytes of a body (the 3.1 way: a string of octets)."""
    return {"type": "string", "format": "binary"}


def content(schema: Schema, *media_types: str) -> dict[str, Any]:
    """A ``content`` map giving the same schema under each media type."""
    return {m: {"schema": schema} for m in media_types or ("application/json",)}


def header(description: str, schema: Schema | None = None, required: bool = False) -> Schema:
    """A response header object."""
    return {"description": description, "required": required,
            "schema": schema or {"type": "string"}}


def param(where: str, name: str, schema: Schema, description: str,
          required: bool = False) -> Schema:
    """A parameter object (``path`` parameters are always required)."""
    return {"name": name, "in": where, "required": required or where == "path",
            "description": description, "schema": schema}


def response(description: str | None = None, status: int = 200, body: dict | None = None,
             headers: dict[str, Schema] | None = None) -> Schema:
    """A response object; ``description`` defaults to the status reason."""
    out: Schema = {"description": description or REASONS[status]}
    if body:
        out["content"] = body
    if headers:
        out["headers"] = headers
    return out


def problem_schema(extensions: dict[str, Schema]) -> Schema:
    """The RFC 9457 body every refusal has (``http.problems.problem_body``), plus a service's
    extension members."""
    return {
        "type": "object",
        "description": "RFC 9457 problem details (`application/problem+json`); `type` is "
                       "about:blank (the status says what kind it is); extension members "
                       "depend on the problem.",
        "required": ["type", "title", "status", "code"],
        "properties": {
            "type": {"type": "string", "format": "uri-reference"},
            "title": {"type": "string", "description": "the short code (same as `code`)"},
            "status": {"type": "integer", "minimum": 400, "maximum": 599},
            "code": {"type": "string", "description": "short machine-readable code"},
            "detail": {"type": "string"},
            "instance": {"type": "string", "description": "the request path"},
            "retry_after": {"type": "number", "minimum": 0,
                            "description": "seconds (429, 503; also the Retry-After header)"},
            **extensions,
        },
    }


def document(title: str, description: str, paths: dict[str, Any], schemas: dict[str, Schema],
             security_schemes: dict[str, Schema], version: str = "1") -> dict[str, Any]:
    """A whole OpenAPI 3.1 document."""
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": title, "version": version, "description": description,
                 "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"}},
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": security_schemes},
    }


def operations(doc: dict[str, Any]) -> set[tuple[str, str]]:
    """``(METHOD, path template)`` of every operation the document describes."""
    return {(m.upper(), path) for path, item in doc["paths"].items() for m in item if m in _METHODS}
