"""Every manifest under ops/k8s is valid, and its wiring matches the code it deploys.

Offline: schemas (tests/k8s/manifests.py), camlog's own argument parser, Settings loader,
OpenAPI documents, edge template and OpenTelemetry's Prometheus naming stand in for a cluster.
"""

from __future__ import annotations

import copy
import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline import ROOT
from pipeline.cli import COMMANDS, _parser
from pipeline.config import Settings, load_settings
from pipeline.topology.spec import load_topics
from tests.k8s.manifests import K8S, InvalidManifest, all_documents, validate

DOCS = all_documents()
SERVICES = ("camlog-bridge", "camlog-worker", "camlog-playback", "camlog-edge")


def _id(item: tuple[Path, dict[str, Any]]) -> str:
    path, doc = item
    return f"{path.relative_to(K8S)}:{doc['kind']}/{doc['metadata']['name']}"


def _find(kind: str, name: str) -> dict[str, Any]:
    return next(d for _, d in DOCS if d["kind"] == kind and d["metadata"]["name"] == name)


def _kinds(*kinds: str) -> list[dict[str, Any]]:
    return [d for _, d in DOCS if d["kind"] in kinds]


def _pod_specs() -> list[tuple[str, dict[str, Any]]]:
    return [(d["metadata"]["name"], d["spec"]["template"]) for d in _kinds("Deployment", "Job")]


def _containers() -> list[tuple[str, dict[str, Any]]]:
    return [(name, c) for name, t in _pod_specs() for c in t["spec"]["containers"]]


@pytest.mark.parametrize("item", DOCS, ids=_id)
def test_manifest_is_valid(item: tuple[Path, dict[str, Any]]) -> None:
    validate(item[1])


_BREAKAGES = [
    ("Deployment", "camlog-bridge", "unknown field",
     lambda d: d["spec"]["template"]["spec"]["containers"][0].update(livenessprobe={})),
    ("Deployment", "camlog-worker", "wrong type", lambda d: d["spec"].update(replicas="three")),
    ("HorizontalPodAutoscaler", "camlog-worker", "missing target",
     lambda d: d["spec"]["metrics"][0]["external"].pop("target")),
    ("PodDisruptionBudget", "camlog-edge", "unknown field",
     lambda d: d["spec"].update(maxUnavail=1)),
    ("KafkaTopic", "camlog-frames", "wrong type", lambda d: d["spec"].update(partitions="six")),
    ("Kafka", "camlog", "unknown listener type",
     lambda d: d["spec"]["kafka"]["listeners"][0].update(type="public")),
    ("KafkaNodePool", "broker", "unknown role", lambda d: d["spec"].update(roles=["leader"])),
    ("K8ssandraCluster", "camlog", "a DC without size",
     lambda d: d["spec"]["cassandra"]["datacenters"][1].pop("size")),
    ("Kafka", "camlog", "an API version we have no schema for",
     lambda d: d.update(apiVersion="kafka.strimzi.io/v1beta2")),
]


@pytest.mark.parametrize("kind,name,what,breakage", _BREAKAGES,
                         ids=[f"{b[0]}-{b[2]}" for b in _BREAKAGES])
def test_an_invalid_manifest_is_refused(kind: str, name: str, what: str, breakage: Any) -> None:
    doc = copy.deepcopy(_find(kind, name))
    validate(doc)
    breakage(doc)
    with pytest.raises(InvalidManifest):
        validate(doc)


def test_every_service_has_deployment_service_hpa_pdb() -> None:
    for name in SERVICES:
        dep = _find("Deployment", name)
        labels = dep["spec"]["template"]["metadata"]["labels"]
        assert dep["spec"]["selector"]["matchLabels"].items() <= labels.items()
        hpa = _find("HorizontalPodAutoscaler", name)
        assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                                 "name": name}
        assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
        pdb = _find("PodDisruptionBudget", name)
        assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
        # A PDB that allows no disruption would block node drains forever.
        assert pdb["spec"].get("maxUnavailable", 0) >= 1 or pdb["spec"]["minAvailable"] < (
            hpa["spec"]["minReplicas"])
    for svc in _kinds("Service"):
        dep = _find("Deployment", svc["metadata"]["name"])
        pod = dep["spec"]["template"]
        assert svc["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
        ports = {p["name"] for c in pod["spec"]["containers"] for p in c["ports"]}
        assert {p["targetPort"] for p in svc["spec"]["ports"]} <= ports


def test_containers_run_real_camlog_commands() -> None:
    for name, c in _containers():
        assert c["command"] == ["camlog"], name
        assert c["args"][0] in COMMANDS, name
        args = _parser(c["args"][0]).parse_args(c["args"])  # argparse exits on an unknown flag
        assert callable(args.func), name


def _env(container: dict[str, Any]) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """The container's environment as its pod would see it (secret values made up), and its
    secret references."""
    env: dict[str, str] = {}
    for ref in container.get("envFrom", []):
        env.update(_find("ConfigMap", ref["configMapRef"]["name"])["data"])
    secrets = []
    for e in container.get("env", []):
        if "valueFrom" in e:
            secrets.append(e["valueFrom"]["secretKeyRef"])
            env[e["name"]] = "k1=" + "x" * 32
        else:
            env[e["name"]] = e["value"]
    return env, secrets


_SETTINGS = {f"CAMLOG_{f.name.upper()}" for f in dataclasses.fields(Settings)} - {"CAMLOG_KEYS"}
_EXTRA = {"CAMLOG_REPLICATION", "CAMLOG_SECRET"}  # parsed by load_settings itself


def test_env_names_are_settings_and_load() -> None:
    for name, c in _containers():
        env, secrets = _env(c)
        assert set(env) <= _SETTINGS | _EXTRA, f"{name}: {sorted(set(env) - _SETTINGS - _EXTRA)}"
        s = load_settings(env)
        assert s.state_dir == Path("/var/lib/camlog")
        assert s.metrics_host == "0.0.0.0" and s.telemetry == "prometheus"
        mounts = {m["mountPath"] for m in c.get("volumeMounts", [])}
        assert "/var/lib/camlog" in mounts, name  # the root filesystem is read-only
        for path in s.viewer_keys if c["args"][0] in ("bridge", "playback") else ():
            assert str(Path(path).parent) in mounts, name
        for ref in secrets:
            assert ref["name"] == "camlog-secrets", name


def test_no_secret_value_is_inline() -> None:
    for name, c in _containers():
        for e in c.get("env", []):
            assert e["name"] != "CAMLOG_SECRET" or "valueFrom" in e, name
    for cm in _kinds("ConfigMap"):
        assert "CAMLOG_SECRET" not in cm["data"], cm["metadata"]["name"]
    # Secrets with values exist only as the placeholder example.
    for path, doc in DOCS:
        if doc["kind"] == "Secret":
            assert path.parent.name == "examples"
            assert all("REPLACE" in v for v in doc["stringData"].values())


def _probe_paths(container: dict[str, Any]) -> set[tuple[str, Any]]:
    return {(container[p]["httpGet"]["path"], container[p]["httpGet"]["port"])
            for p in ("readinessProbe", "livenessProbe", "startupProbe")}


def _port(container: dict[str, Any], name: str) -> int:
    return next(p["containerPort"] for p in container["ports"] if p["name"] == name)


def test_probes_hit_the_services_real_endpoints() -> None:
    from pipeline.ingest.openapi import build_document as bridge_api
    from pipeline.playback.openapi import build_document as playback_api

    routes = {"bridge": set(bridge_api()["paths"]), "playback": set(playback_api()["paths"])}
    edge_template = (ROOT / "ops" / "edge" / "nginx.conf.template").read_text()
    for name, c in _containers():
        cmd = c["args"][0]
        if cmd == "topology":
            continue
        assert {"readinessProbe", "livenessProbe"} <= set(c), name
        env, _ = _env(c)
        s = load_settings(env)
        for path, port in _probe_paths(c):
            if cmd in routes:
                assert path in routes[cmd] and port == "http", (name, path)
                # The address it listens on is the port the probes and Service use.
                assert c["args"][c["args"].index("--addr") + 1] == f"0.0.0.0:{_port(c, 'http')}"
            elif cmd == "edge":
                assert f"location = {path} " in edge_template and port == "http", (name, path)
                assert s.edge_addr == f"0.0.0.0:{_port(c, 'http')}"
            else:  # the worker serves no HTTP but its Prometheus endpoint
                assert cmd == "worker" and port == "metrics", name
                assert _port(c, "metrics") == s.metrics_port


def test_pods_are_bounded_and_meet_the_restricted_pod_security_standard() -> None:
    for name, template in _pod_specs():
        pod = template["spec"]["securityContext"]
        assert pod["runAsNonRoot"] is True and pod["seccompProfile"] == {"type": "RuntimeDefault"}
        for c in template["spec"]["containers"]:
            res = c["resources"]
            assert {"cpu", "memory"} <= set(res["requests"]), name
            assert "memory" in res["limits"], name
            sec = c["securityContext"]
            assert sec["allowPrivilegeEscalation"] is False, name
            assert sec["capabilities"] == {"drop": ["ALL"]}, name
            assert sec["readOnlyRootFilesystem"] is True, name


def test_every_pod_may_reach_kafka() -> None:
    """The Kafka listener admits pods by label (generated/kafka.yaml): every camlog pod has it."""
    kafka = _find("Kafka", "camlog")
    peers = kafka["spec"]["kafka"]["listeners"][0]["networkPolicyPeers"]
    want = peers[0]["podSelector"]["matchLabels"]
    for name, template in _pod_specs():
        assert want.items() <= template["metadata"]["labels"].items(), name


def _emitted_metrics() -> set[str]:
    """Prometheus names of every instrument camlog declares, named by OpenTelemetry's exporter."""
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from opentelemetry.metrics import Observation
    from opentelemetry.sdk.metrics import MeterProvider
    from prometheus_client import CollectorRegistry, generate_latest

    decl = re.compile(r'create_(counter|histogram|up_down_counter|observable_gauge)\(\s*"([^"]+)"'
                      r'([^)]*)')
    reader = PrometheusMetricReader()
    registry = CollectorRegistry()
    registry.register(reader._collector)  # a private registry: the global one is the process's
    meter = MeterProvider(metric_readers=[reader]).get_meter("names")
    for src in (ROOT / "pipeline").rglob("*.py"):
        for kind, name, rest in decl.findall(src.read_text()):
            unit = (re.search(r'unit="([^"]+)"', rest) or [None, ""])[1]
            if kind == "observable_gauge":
                meter.create_observable_gauge(name, [lambda _o: [Observation(1)]], unit=unit)
            elif kind == "histogram":
                meter.create_histogram(name, unit=unit).record(1)
            else:
                getattr(meter, f"create_{kind}")(name, unit=unit).add(1)
    text = generate_latest(registry).decode()
    return {line.split("{")[0].split(" ")[0] for line in text.splitlines()
            if line and not line.startswith("#")}


def test_autoscalers_scale_on_metrics_that_exist() -> None:
    config = yaml.safe_load(_find("ConfigMap", "camlog-prometheus-adapter")["data"]["config.yaml"])
    pods = {r["name"]["as"]: r for r in config["rules"]}
    external = {r["name"]["as"]: r for r in config["externalRules"]}
    emitted = _emitted_metrics()
    kafka = _find("Kafka", "camlog")
    exporter = kafka["spec"]["kafkaExporter"]
    assert "camlog_ingest_chunks_total" in emitted  # the naming itself is what we think
    for rule in [*pods.values(), *external.values()]:
        series = rule["seriesQuery"].split("{")[0].strip("'")
        assert re.fullmatch(rule["name"]["matches"].strip("^$"), series)
        if series.startswith("kafka_consumergroup_"):
            assert exporter["groupRegex"]  # Strimzi's Kafka Exporter publishes it
        else:
            assert series in emitted, series
    for hpa in _kinds("HorizontalPodAutoscaler"):
        for m in hpa["spec"]["metrics"]:
            if m["type"] == "Pods":
                assert m["pods"]["metric"]["name"] in pods
            elif m["type"] == "External":
                assert m["external"]["metric"]["name"] in external
                group = m["external"]["metric"]["selector"]["matchLabels"]["consumergroup"]
                assert re.fullmatch(exporter["groupRegex"], group)
                dep = _find("Deployment", hpa["spec"]["scaleTargetRef"]["name"])
                args = dep["spec"]["template"]["spec"]["containers"][0]["args"]
                assert args[args.index("--app-id") + 1] == group


def test_worker_never_outnumbers_partitions() -> None:
    partitions = max(t.partitions for t in load_topics())
    assert _find("HorizontalPodAutoscaler", "camlog-worker")["spec"]["maxReplicas"] <= partitions


def test_canary_is_its_own_group_in_a_shadow_keyspace() -> None:
    prod, canary = (_find("Deployment", n)["spec"]["template"]["spec"]["containers"][0]
                    for n in ("camlog-worker", "camlog-worker-canary"))
    p_args, c_args = prod["args"], canary["args"]
    assert c_args[c_args.index("--app-id") + 1] != p_args[p_args.index("--app-id") + 1]
    assert load_settings(_env(canary)[0]).keyspace != load_settings(_env(prod)[0]).keyspace
    # It must not publish into the production log: views only, never the segmenter.
    assert c_args[c_args.index("--only") + 1] == "pipeline.agents.views"
    job = _find("Job", "camlog-topology-apply-shadow")["spec"]["template"]["spec"]["containers"][0]
    assert job["args"][job["args"].index("--into") + 1] == load_settings(_env(canary)[0]).keyspace


def test_replication_matches_the_cassandra_datacenters() -> None:
    k8c = _find("K8ssandraCluster", "camlog")
    sizes = {dc["metadata"]["name"]: dc["size"] for dc in k8c["spec"]["cassandra"]["datacenters"]}
    regions = [d for p, d in DOCS if p.parent.name == "regions"]
    assert sorted(d["data"]["CAMLOG_REGION"] for d in regions) == sorted(sizes) == ["dc1", "dc2"]
    for cm in regions:
        s = load_settings(cm["data"] | {"CAMLOG_SECRET": "k1=" + "x" * 32})
        assert dict(s.replication) == {"dc1": 3, "dc2": 3}  # README: production replication
        assert all(rf <= sizes[dc] for dc, rf in s.replication.items())
        # Each region talks to its own DC (LOCAL_QUORUM never waits on the other region).
        assert s.cassandra == (f"{k8c['metadata']['name']}-{s.region}-service.camlog.svc:9042",)
    job = _find("Job", "camlog-topology-apply")["spec"]["template"]["spec"]["containers"][0]
    assert job["args"] == ["topology", "apply", "--cassandra-only"]  # topics are Strimzi's
