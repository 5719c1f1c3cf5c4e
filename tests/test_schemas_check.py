"""``camlog schemas check`` accepts compatible evolution and refuses incompatible changes."""

from __future__ import annotations

import json
import shutil

import pytest

from pipeline.cli import main
from pipeline.events import EVENTS, decode_any
from pipeline.events.catalog import SCHEMA_DIR
from pipeline.events.cli import check_dir


@pytest.fixture
def schema_copy(tmp_path):
    dst = tmp_path / "schemas"
    shutil.copytree(SCHEMA_DIR, dst)
    return dst


def _edit(path, fn):
    schema = json.loads(path.read_text())
    fn(schema)
    path.write_text(json.dumps(schema))


def test_shipped_schemas_pass(capsys):
    assert main(["schemas", "check"]) == 0
    assert "every schema reads" in capsys.readouterr().out


def test_new_field_with_default_is_compatible(schema_copy):
    _edit(schema_copy / "session_change.avsc",
          lambda s: s["fields"].append({"name": "firmware", "type": "string", "default": ""}))
    assert check_dir(schema_copy) == []


@pytest.mark.parametrize("change,expect", [
    (lambda s: s["fields"].append({"name": "firmware", "type": "string"}),
     "new field without a default"),
    (lambda s: s["fields"].__setitem__(0, {"name": "stream_id", "type": "int"}),
     "reader int cannot read writer string"),
    (lambda s: s["fields"][2]["type"].__setitem__("symbols", ["CONNECTED"]), "enum symbols"),
])
def test_incompatible_change_fails_with_reason(schema_copy, change, expect, capsys):
    _edit(schema_copy / "session_change.avsc", change)
    problems = check_dir(schema_copy)
    assert any(expect in p for p in problems), problems
    assert main(["schemas", "check", "--dir", str(schema_copy)]) == 1
    assert "session_change.avsc cannot read" in capsys.readouterr().out


def test_data_written_with_an_older_version_still_decodes(schema_copy):
    """A released version's fingerprint is resolved against the current schema."""
    import io

    from fastavro import parse_schema, schemaless_writer
    from fastavro.schema import fingerprint, to_parsing_canonical_form

    old = json.loads((SCHEMA_DIR / "history" / "SessionChange" / "v1.avsc").read_text())
    old["fields"] = [f for f in old["fields"] if f["name"] != "attributes"]
    parsed = parse_schema(old)
    fp = bytes.fromhex(fingerprint(to_parsing_canonical_form(parsed), "CRC-64-AVRO"))
    assert fp != EVENTS["SessionChange"].fingerprint
    # register this "older release" the way the catalog does, then decode with it
    from pipeline.events import catalog

    catalog.BY_FINGERPRINT[fp] = catalog.WriterSchema(EVENTS["SessionChange"], parsed, False)
    try:
        buf = io.BytesIO()
        schemaless_writer(buf, parsed, {"stream_id": "c", "session_id": "s", "kind": "CONNECTED",
                                        "time": 1, "reason": "", "codec": None, "width": 0,
                                        "height": 0, "source": "SDK"})
        ev, rec = decode_any(b"\xc3\x01" + fp + buf.getvalue())
    finally:
        del catalog.BY_FINGERPRINT[fp]
    assert ev.name == "SessionChange" and rec["attributes"] == {}
