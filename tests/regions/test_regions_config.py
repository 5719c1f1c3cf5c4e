"""The two-region dev stack's generated configs (fast, no processes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.devstack import cassandra as cas
from pipeline.devstack import mirror as mm2
from pipeline.devstack.regions import parse_regions, plan_regions
from pipeline.devstack.stack import Stack
from pipeline.errors import CliError


def _props(text: str) -> dict[str, str]:
    return dict((k.strip(), v.strip()) for k, _, v in
                (line.partition("=") for line in text.splitlines() if line and line[0] != "#"))


def test_regions_get_own_kafka_ports_and_loopback_cassandra(tmp_path: Path):
    dc1, dc2 = plan_regions(Stack(tmp_path), ["dc1", "dc2"])
    assert (dc1.bootstrap, dc2.bootstrap) == ("127.0.0.1:9192", "127.0.0.1:9292")
    assert (dc1.kafka.controller_port, dc2.kafka.controller_port) == (19192, 19292)
    for r, host in ((dc1, "127.0.0.1"), (dc2, "127.0.0.2")):
        y = cas.render_yaml(r.cassandra)
        assert f"listen_address: {host}\n" in y and f"rpc_address: {host}\n" in y
        assert 'seeds: "127.0.0.1:7000,127.0.0.2:7000"' in y  # both nodes are seeds
        assert "auto_bootstrap: false" in y
        assert cas.render_rackdc(r.cassandra.region).startswith(f"dc={r.name}\n")


def test_single_node_yaml_is_unchanged_by_the_multi_dc_options(tmp_path: Path):
    y = cas.render_yaml(cas.CassandraNode(9042, 7000, tmp_path, "dc1"))
    assert 'seeds: "127.0.0.1:7000"' in y and "auto_bootstrap" not in y


def test_mirror_flows_only_into_its_own_region():
    p = _props(mm2.render_mm2_properties({"dc1": "127.0.0.1:9192", "dc2": "127.0.0.1:9292"},
                                         "dc2"))
    assert p["clusters"] == "dc1, dc2"
    assert p["dc1->dc2.enabled"] == "true" and "dc2->dc1.enabled" not in p
    assert p["dc1->dc2.topics"] == r"camlog\..*"
    assert p["dc2.bootstrap.servers"] == "127.0.0.1:9292"
    # a 1 MiB chunk plus framing must fit the mirror's producer requests
    assert int(p["dc2.producer.max.request.size"]) > 2 * 1024 * 1024
    assert mm2.mirrored_topic("dc1", "camlog.frames") == "dc1.camlog.frames"


@pytest.mark.parametrize("raw", ["dc1", "dc1,dc1", "dc1,2dc", "dc1,d-c", ""])
def test_bad_region_lists_are_refused(raw: str):
    with pytest.raises(CliError):
        parse_regions(raw)


def test_region_list_keeps_its_order():
    assert parse_regions(" dc2, dc1 ") == ["dc2", "dc1"]
