"""``camlog replay export`` on real Kafka: plain fastavro reads it back; reruns are identical."""

from __future__ import annotations

import datetime as dt
import json
import os
import time

import fastavro
import pytest

from pipeline.cli import main
from pipeline.events.codec import encode

pytestmark = pytest.mark.services

_UTC = dt.UTC


def _session(stream: str, i: int, t_us: int) -> dict:
    return {"stream_id": stream, "session_id": f"s{i // 4}", "kind": "CONNECTED", "time": t_us,
            "reason": f"r{i}", "codec": "H264" if i % 2 else None, "width": 640, "height": 360,
            "source": "SDK", "attributes": {"i": str(i)}}


def _chunk(stream: str, i: int, t_us: int) -> dict:
    return {"stream_id": stream, "seq": i, "session_id": "s", "source": "PUSH", "codec": "H264",
            "codec_config": os.urandom(12) if i == 0 else None, "width": 320, "height": 240,
            "timescale": 90000, "producer_time": t_us - 5000, "ingest_time": t_us,
            "frames": [{"pts": i * 6000 + k * 3000, "dts": i * 6000 + k * 3000,
                        "keyframe": k == 0, "data": os.urandom(300)} for k in range(2)],
            "gap_before": 0}


_MAKERS = {"camlog.sessions": ("SessionChange", _session), "camlog.frames": ("FrameChunk", _chunk)}


def _plain(v):
    """What plain fastavro gives back for timestamp-micros, as int µs again."""
    if isinstance(v, dt.datetime):
        return (v - dt.datetime(1970, 1, 1, tzinfo=_UTC)) // dt.timedelta(microseconds=1)
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_plain(x) for x in v]
    return v


@pytest.fixture
def window(services, stream_id):
    """Events of ``stream_id`` in a recent window, plus noise outside it and from another stream."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": services.kafka, "enable.idempotence": True})
    errors: list = []

    def produce(topic, value, key, timestamp):
        producer.produce(topic, value=value, key=key, timestamp=timestamp,
                         on_delivery=lambda err, _: err and errors.append(err))

    def make(topic: str, n: int = 40):
        name, maker = _MAKERS[topic]
        # near now: Kafka finds offsets by time assuming (nearly) ordered CreateTime, as the
        # bridge writes them; the slack absorbs seconds of disorder, not faked old events
        base_ms = int(time.time() * 1000) - 5_000
        other = f"other-{stream_id}"
        wanted = []
        for i in range(-3, n + 3):  # 3 before and 3 after the window
            ts = base_ms + i * 10
            rec = maker(stream_id, i + 3, ts * 1000)
            produce(topic, encode(name, rec), key=stream_id, timestamp=ts)
            produce(topic, encode(name, maker(other, i + 3, ts * 1000)), key=other, timestamp=ts)
            if 0 <= i < n:
                wanted.append(rec)
        assert producer.flush(30) == 0 and not errors
        return base_ms / 1000, (base_ms + n * 10) / 1000, wanted

    return make


def _export(services, tmp_path, *argv: str) -> int:
    return main(["--kafka", services.kafka, "--state-dir", str(services.state_dir),
                 "replay", "export", *argv])


@pytest.mark.parametrize("topic", sorted(_MAKERS))
def test_export_round_trips_and_is_byte_identical(services, tmp_path, window, stream_id, topic):
    start, end, wanted = window(topic)
    frm = dt.datetime.fromtimestamp(start, _UTC).isoformat().replace("+00:00", "Z")
    args = ["--topic", topic, "--from", frm, "--to", f"{end:.3f}", "--stream", stream_id]
    a, b = tmp_path / "a.avro", tmp_path / "b.avro"
    assert _export(services, tmp_path, *args, "--out", str(a)) == 0
    assert _export(services, tmp_path, *args, "--out", str(b), "--quiet") == 0
    with open(a, "rb") as fo:
        reader = fastavro.reader(fo)
        got = [_plain(r) for r in reader]
        schema = json.loads(reader.metadata["avro.schema"])
    assert got == sorted(wanted, key=lambda r: r.get("seq", 0)) or got == wanted
    assert len(got) == len(wanted) == 40
    assert "timestamp-micros" in json.dumps(schema)
    assert a.read_bytes() == b.read_bytes()


def test_export_jsonl_carries_log_positions(services, tmp_path, window, stream_id):
    start, end, wanted = window("camlog.sessions", n=10)
    out = tmp_path / "s.jsonl"
    assert _export(services, tmp_path, "--type", "SessionChange", "--from", str(start),
                   "--to", str(end), "--stream", stream_id, "--out", str(out), "--quiet") == 0
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [x["record"] for x in lines] == wanted
    assert {x["key"] for x in lines} == {stream_id}
    assert all(x["topic"] == "camlog.sessions" and x["type"] == "SessionChange" for x in lines)
    again = tmp_path / "t.jsonl"
    assert _export(services, tmp_path, "--type", "SessionChange", "--from", str(start),
                   "--to", str(end), "--stream", stream_id, "--out", str(again), "--quiet") == 0
    assert out.read_bytes() == again.read_bytes()


@pytest.mark.parametrize("argv,message", [
    (["--topic", "no.such.topic", "--out", "x.avro"], "unknown topic no.such.topic"),
    (["--topic", "camlog.sessions", "--from", "2026-01-02T00:00:00Z",
      "--to", "2026-01-01T00:00:00Z", "--out", "x.avro"], "empty time range"),
    (["--topic", "camlog.sessions", "--from", "soon", "--out", "x.avro"], "bad time 'soon'"),
    (["--topic", "camlog.sessions", "--topic", "camlog.frames", "--out", "x.avro"],
     "one event type"),
    (["--topic", "camlog.sessions", "--out", "x.csv"], "must end in .avro or .jsonl"),
    (["--type", "NoSuchEvent", "--out", "x.jsonl"], "unknown event type"),
])
def test_bad_input_is_a_clear_error(services, tmp_path, capsys, argv, message):
    argv = [str(tmp_path / a) if a.startswith("x.") else a for a in argv]
    assert _export(services, tmp_path, *argv) == 2
    assert message in capsys.readouterr().err
    assert not list(tmp_path.iterdir()), "nothing written on bad input"
