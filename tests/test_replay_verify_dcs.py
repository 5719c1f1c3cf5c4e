"""``camlog replay verify --dcs`` against the shared one-DC Cassandra: the DC read through its
own hosts at LOCAL_ONE equals itself, every table of the stream is read, and an unknown DC name
is a clear error. (dc1 against dc2 runs in the region-outage drill on the two-region stack.)"""

from __future__ import annotations

import time
import uuid

import pytest

from pipeline.cli import main
from pipeline.views.timeindex import day_of

pytestmark = [pytest.mark.services]


def _camlog(services, *argv: str) -> int:
    return main(["--kafka", services.kafka, "--state-dir", str(services.state_dir), *argv])


@pytest.fixture
def stream(services, cassandra_session):
    """One stream's rows in every table ``--dcs`` compares; deleted afterwards."""
    s, sid = cassandra_session, f"vdc-{uuid.uuid4().hex[:10]}"
    now = int(time.time() * 1_000_000)
    s.execute("INSERT INTO segments (stream_id, day, start_time, segment_id, sequence, duration_us,"
              " sealed_time) VALUES (%s, %s, %s, 'g1', 0, 2000000, %s)",
              (sid, day_of(now), now, now))
    for part in (0, 1):
        s.execute("INSERT INTO segment_data (stream_id, segment_id, part, data, parts)"
                  " VALUES (%s, 'g1', %s, %s, 2)", (sid, part, b"moof+mdat %d" % part))
    s.execute("INSERT INTO init_segments (stream_id, init_id, data) VALUES (%s, 'i1', %s)",
              (sid, b"ftyp+moov"))
    s.execute("INSERT INTO device_state (stream_id, online, segments) VALUES (%s, true, 1)", (sid,))
    s.execute("INSERT INTO live_manifest (stream_id, media_sequence, window_entries)"
              " VALUES (%s, 0, '[]')", (sid,))
    yield sid
    for table in ("init_segments", "device_state", "live_manifest"):
        s.execute(f"DELETE FROM {table} WHERE stream_id = %s", (sid,))
    s.execute("DELETE FROM segments WHERE stream_id = %s AND day = %s", (sid, day_of(now)))
    s.execute("DELETE FROM segment_data WHERE stream_id = %s AND segment_id = 'g1'", (sid,))


def test_a_dc_has_no_differences_with_itself(services, stream, capsys):
    dc = services.region
    assert _camlog(services, "replay", "verify", "--dcs", f"{dc},{dc}", "--stream", stream) == 0
    out = capsys.readouterr().out.strip()
    # both sides read every table: 1 row each of the per-stream tables, 1 segment, 2 parts
    assert out == (f"no differences between {dc} and {dc} ({services.keyspace}; rows read: "
                   "device_state 2, init_segments 2, live_manifest 2, segment_data 4, "
                   "segments 2)")


def test_an_unknown_dc_is_a_clear_error(services, stream, capsys):
    code = _camlog(services, "replay", "verify", "--dcs", f"{services.region},nodc",
                   "--stream", stream)
    err = capsys.readouterr().err
    assert code == 2
    assert (f"--dcs: no data centre 'nodc' in the Cassandra cluster (it has: {services.region})"
            in err)
