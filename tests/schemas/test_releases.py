"""The drill's two schema releases: `camlog schemas check` passes both and refuses a breaking
next version; bytes cross between releases only once the reader knows the writer's version."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.events import encode
from pipeline.events.catalog import SCHEMA_DIR
from tests.schemas.releases import NEW_FIELD, encode_next, next_frame_chunk, releases

CHUNK = {"stream_id": "cam-1", "seq": 7, "session_id": "s", "source": "SDK", "codec": "H264",
         "producer_time": 1, "ingest_time": 2,
         "frames": [{"pts": 0, "dts": 0, "keyframe": True, "data": b"\x00\x00\x00\x01\x65"}]}

_DECODE = ("import sys; from pipeline.events import DecodeError, decode\n"
           "try:\n"
           "    r = decode('FrameChunk', sys.stdin.buffer.read())\n"
           "    print(r['seq'], repr(r.get('drill_tag')))\n"
           "except DecodeError as e:\n"
           "    print('DecodeError', e.reason)\n")


def _camlog(schema_dir: Path, *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess:
    """Run a camlog process of the release whose schemas are ``schema_dir``."""
    env = {**os.environ, "CAMLOG_SCHEMA_DIR": str(schema_dir)}
    return subprocess.run([sys.executable, *args], input=stdin, env=env, capture_output=True,
                          timeout=60)


def _decode(schema_dir: Path, data: bytes) -> str:
    out = _camlog(schema_dir, "-c", _DECODE, stdin=data)
    assert out.returncode == 0, out.stderr.decode()
    return out.stdout.decode().strip()


def test_both_releases_pass_schemas_check(tmp_path):
    for d in releases(tmp_path):
        out = _camlog(d, "-m", "pipeline", "schemas", "check")  # the folder from CAMLOG_SCHEMA_DIR
        assert out.returncode == 0, out.stdout.decode() + out.stderr.decode()
        assert b"every schema reads" in out.stdout


def _width_as_string() -> dict:
    schema = next_frame_chunk()
    width = next(f for f in schema["fields"] if f["name"] == "width")
    width.update(type="string", default="")
    return schema


@pytest.mark.parametrize("schema,reason", [
    (lambda: next_frame_chunk({"name": "drill_tag", "type": "string"}),
     "drill_tag: new field without a default"),
    (_width_as_string, "width: reader string cannot read writer int"),
])
def test_breaking_next_version_is_refused(tmp_path, schema, reason):
    _old, new = releases(tmp_path, schema())
    out = _camlog(SCHEMA_DIR, "-m", "pipeline", "schemas", "check", "--dir", str(new))
    assert out.returncode == 1
    assert reason in out.stdout.decode(), out.stdout.decode()
    assert b"schemas check failed" in out.stdout


def test_bytes_cross_releases_once_the_reader_knows_the_writer(tmp_path):
    old, new = releases(tmp_path)
    v_next = encode_next({**CHUNK, "drill_tag": "from-new"})
    v_now = encode("FrameChunk", CHUNK)  # the running release's writer (this process)
    assert _decode(old, v_next) == "7 None"  # old reader: the new field is skipped
    assert _decode(new, v_next) == "7 'from-new'"
    assert _decode(new, v_now) == f"7 {NEW_FIELD['default']!r}"  # old writer: the default
    # a reader that never received the next version dead-letters its bytes: why the writer
    # schema ships to every reader (``old``) before any writer uses it (``new``)
    assert _decode(SCHEMA_DIR, v_next).startswith("DecodeError unknown schema fingerprint")
