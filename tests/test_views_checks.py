"""Event sanity checks: any schema-valid record is either usable by every reducer or rejected."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings

from pipeline.events import EVENTS
from pipeline.views import device_state as ds
from pipeline.views.checks import problem
from pipeline.views.manifest import ManifestState, apply_segment
from pipeline.views.stats import StatsBook, hit_of
from tests.avro_strategies import records


@pytest.mark.parametrize("name", sorted(EVENTS))
def test_random_records_are_rejected_or_reduce_cleanly(name):
    @hsettings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(records(EVENTS[name].schema))
    def one(record):
        reason = problem(name, record)
        if reason is not None:
            assert isinstance(reason, str) and reason
            return
        sid = record.get("stream_id") or "s"
        state = ds.DeviceState(sid)
        if name == "SealedSegment":
            m = apply_segment(ManifestState(sid), record)
            row = m.to_row()
            assert 1 <= row["target_duration"] <= 3600
            ds.on_segment(state, record)
        elif name == "FrameChunk":
            ds.on_chunk(state, ds.summarize_chunk(record))
        elif name == "SessionChange":
            ds.on_session(state, record)
        elif name == "DeadLetter":
            ds.on_dlq(state, record)
        elif name == "PlaybackEvent":
            book = StatsBook({}, 0)
            book.add(record["event_id"], hit_of(record))
            assert book.due(2**62)

    one()


def test_examples():
    assert problem("SessionChange", {"stream_id": "", "time": 1}) == "invalid stream_id ''"
    assert problem("DeadLetter", {"stream_id": None, "time": 1}) is None
    assert "duration_us" in problem("SealedSegment", {
        "stream_id": "a", "sequence": 1, "duration_us": 0, "segment_id": "x", "init_id": "i",
        "start_time": 0, "end_time": 0, "ingest_end": 0})
