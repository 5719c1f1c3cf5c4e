"""Avro schema resolution rules (spec §"Schema Resolution"): can a reader read a writer's data?"""

from __future__ import annotations

from typing import Any

__all__ = ["incompatibilities"]

_PROMOTIONS = {
    "int": {"int", "long", "float", "double"},
    "long": {"long", "float", "double"},
    "float": {"float", "double"},
    "string": {"string", "bytes"},
    "bytes": {"bytes", "string"},
}
_PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}


def _kind(s: Any) -> str:
    if isinstance(s, list):
        return "union"
    if isinstance(s, dict):
        t = s["type"]
        return t if t in ("record", "enum", "array", "map", "fixed") else _kind(t)
    return s


def _name(s: Any) -> str | None:
    return s.get("name") if isinstance(s, dict) else None


def _inner(s: Any) -> Any:
    """Unwrap ``{"type": "long", "logicalType": ...}`` to ``"long"``."""
    while isinstance(s, dict) and s["type"] in _PRIMITIVES:
        s = s["type"]
    return s


def incompatibilities(reader: Any, writer: Any, path: str = "") -> list[str]:
    """Every reason data written with ``writer`` cannot be read with ``reader``
    (empty = compatible)."""
    reader, writer = _inner(reader), _inner(writer)
    rk, wk = _kind(reader), _kind(writer)
    where = path or "<root>"
    if wk == "union":
        return [p for branch in writer for p in incompatibilities(reader, branch, path)]
    if rk == "union":
        if any(not incompatibilities(branch, writer, path) for branch in reader):
            return []
        return [f"{where}: writer type {wk} matches no branch of the reader's union"]
    if rk != wk and wk not in _PRIMITIVES:
        return [f"{where}: reader {rk} cannot read writer {wk}"]
    if wk in _PRIMITIVES:
        ok = rk in _PROMOTIONS.get(wk, {wk})
        return [] if ok else [f"{where}: reader {rk} cannot read writer {wk}"]
    if rk == "record":
        out = []
        if _name(reader) != _name(writer):
            out.append(f"{where}: record name {_name(writer)} -> {_name(reader)}")
        wfields = {f["name"]: f for f in writer["fields"]}
        for f in reader["fields"]:
            sub = f"{path}.{f['name']}" if path else f["name"]
            if f["name"] in wfields:
                out += incompatibilities(f["type"], wfields[f["name"]]["type"], sub)
            elif "default" not in f:
                out.append(f"{sub}: new field without a default")
        return out
    if rk == "enum":
        missing = set(writer["symbols"]) - set(reader["symbols"])
        if missing and "default" not in reader:
            return [f"{where}: enum symbols {sorted(missing)} removed and no enum default"]
        return []
    if rk == "array":
        return incompatibilities(reader["items"], writer["items"], f"{path}[]")
    if rk == "map":
        return incompatibilities(reader["values"], writer["values"], f"{path}{{}}")
    if rk == "fixed":
        if reader.get("size") != writer.get("size"):
            return [f"{where}: fixed size {writer.get('size')} -> {reader.get('size')}"]
        return []
    return []
