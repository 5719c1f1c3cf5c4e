"""Hypothesis strategies that build valid records for any Avro schema of the catalog."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

_LONG = st.integers(-(2**63), 2**63 - 1)
_PRIM = {
    "null": st.none(),
    "boolean": st.booleans(),
    "int": st.integers(-(2**31), 2**31 - 1),
    "long": _LONG,
    "float": st.floats(width=32, allow_nan=False),
    "double": st.floats(allow_nan=False),
    "bytes": st.binary(max_size=64),
    "string": st.text(max_size=32),
}


def records(schema: Any, named: dict | None = None) -> st.SearchStrategy:
    """A strategy of values valid for ``schema`` (dict form, as in the .avsc)."""
    named = {} if named is None else named
    if isinstance(schema, str):
        return _PRIM[schema] if schema in _PRIM else records(named[schema], named)
    if isinstance(schema, list):
        return st.one_of([records(s, named) for s in schema])
    t = schema["type"]
    if t in _PRIM:
        return _PRIM[t]
    if isinstance(t, (dict, list)):
        return records(t, named)
    if t == "record":
        named[schema["name"]] = schema
        named[f"{schema.get('namespace', '')}.{schema['name']}"] = schema
        return st.fixed_dictionaries({f["name"]: records(f["type"], named)
                                      for f in schema["fields"]})
    if t == "enum":
        named[schema["name"]] = schema
        return st.sampled_from(schema["symbols"])
    if t == "array":
        return st.lists(records(schema["items"], named), max_size=4)
    if t == "map":
        return st.dictionaries(st.text(max_size=8), records(schema["values"], named), max_size=3)
    if t == "fixed":
        return st.binary(min_size=schema["size"], max_size=schema["size"])
    raise ValueError(f"unsupported schema {schema!r}")
