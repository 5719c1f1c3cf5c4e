"""Device failover policy and a bridge taking a stream that another region's bridge acked."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.device.failover import BridgeChooser, parse_bridges
from pipeline.ingest.problems import IngestError
from pipeline.ingest.streams import StreamTable

CFG = b"\0\0\0\1\x67cfg\0\0\0\1\x68p"
URLS = ("http://dc1:8080", "http://dc2:8080")


def test_bridge_lists_parse_in_order():
    assert parse_bridges(" http://a/ ,http://b") == ("http://a", "http://b")
    for bad in ("", " , ", "http://a,http://a/"):
        with pytest.raises(ValueError):
            parse_bridges(bad)


@given(st.lists(st.tuples(st.floats(0, 5), st.booleans()), min_size=1, max_size=60))
def test_moves_only_after_failing_for_the_detection_time(events):
    """A move happens exactly when the current bridge has failed without a success for detect_s."""
    c = BridgeChooser(URLS, detect_s=2.0)
    now, since = 0.0, None
    for dt, ok in events:
        now += dt
        before = c.index
        if ok:
            c.succeeded(now)
            since = None
            assert c.index == before
            continue
        since = now if since is None else since
        moved = c.failed(now)
        assert moved == (now - since >= 2.0)
        assert c.index == ((before + 1) % 2 if moved else before)
        if moved:
            since = None


def test_goes_home_when_home_is_ready_again():
    c = BridgeChooser(URLS, detect_s=1.0, probe_s=2.0)
    assert not c.failed(0.0) and c.failed(1.0) and c.current == URLS[1]
    assert not c.probe_due(2.5)  # the move itself counts as the last look at home
    assert c.probe_due(3.0)
    assert not c.probed(3.0, home_ready=False) and c.current == URLS[1]
    assert not c.probe_due(4.0) and c.probe_due(5.0)
    assert c.probed(5.0, home_ready=True) and c.current == URLS[0]
    assert not c.probe_due(100.0)  # at home: nothing to probe
    assert c.switches == [(1.0, URLS[1]), (5.0, URLS[0])]


def test_one_bridge_never_moves():
    c = BridgeChooser(URLS[:1], detect_s=0.1)
    assert not any(c.failed(t) for t in (0.0, 1.0, 100.0)) and c.current == URLS[0]


def _admit(t: StreamTable, seq: int, key: bool, resumed: bool = False):
    return t.admit("s", seq, "H264", keyframe_first=key, config=CFG if key else None,
                   width=640, height=360, now=float(seq), resumed=resumed)


def test_a_stream_failing_over_mid_gop_is_taken_when_resumed():
    fresh = StreamTable(10)
    with pytest.raises(IngestError) as ei:  # an unknown stream mid-GOP: refused as before
        _admit(fresh, 1234, key=False)
    assert (ei.value.status, ei.value.problem) == (422, "needs_keyframe")
    other = StreamTable(10)  # the other region's bridge: never saw the stream
    a = _admit(other, 1234, key=False, resumed=True)
    assert a.ack is None and a.session_id and [e["kind"] for e in a.sessions] == ["CONNECTED"]
    assert a.codec_config is None  # parameter sets unknown here; the next keyframe brings them
    k = _admit(other, 1240, key=True, resumed=True)
    assert k.codec_config is None and not k.sessions  # learnt silently, like after recovery
    assert other.get("s").config == CFG


def test_a_stream_coming_back_continues_its_seqs_without_409():
    """dc1 saw seqs up to 10, dc2 took 11..20: back in dc1 at 21 is a gap, not a regression."""
    home = StreamTable(10)
    _admit(home, 0, key=True)
    for seq in range(1, 11):
        _admit(home, seq, key=False)
        home.persisted("s", seq, {"seq": seq}, now=float(seq))
    back = _admit(home, 21, key=False, resumed=True)
    assert back.ack is None and back.gap_before == 10


def test_a_resumed_stream_keeps_its_codec_and_learns_the_size_at_the_keyframe():
    t = StreamTable(10)
    for seq in (1, 2):  # two mid-GOP chunks in a row: the codec is the chunk's own
        assert _admit(t, seq, key=False, resumed=True).ack is None
    _admit(t, 3, key=True, resumed=True)
    assert (t.get("s").codec, t.get("s").width, t.get("s").height) == ("H264", 640, 360)
