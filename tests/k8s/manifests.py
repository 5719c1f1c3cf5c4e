"""Load the manifests under ``ops/k8s/`` and validate them offline.

Core kinds against the Kubernetes OpenAPI schemas shipped by ``kubernetes-validate``; custom
resources against the CRD schemas vendored in ``ops/k8s/crds/``. Both strict: an unknown field
is an error, as with ``kubectl apply``'s default (server-side strict field validation).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

from pipeline import ROOT

K8S = ROOT / "ops" / "k8s"
CRDS = K8S / "crds"
#: The oldest Kubernetes the manifests support and the newest the validator knows.
K8S_VERSIONS = ("1.31", "1.37")


class InvalidManifest(AssertionError):
    """A manifest the API server would refuse; the message says where and why."""


def manifest_files() -> list[Path]:
    """Every YAML file under ops/k8s (the vendored CRD schemas are JSON)."""
    return sorted(K8S.rglob("*.yaml"))


def documents(path: Path) -> Iterator[dict[str, Any]]:
    """The non-empty documents of one YAML file."""
    for doc in yaml.safe_load_all(path.read_text()):
        if doc:
            yield doc


def all_documents() -> list[tuple[Path, dict[str, Any]]]:
    """(file, document) for every manifest."""
    return [(p, d) for p in manifest_files() for d in documents(p)]


def _strict(node: Any) -> Any:
    """The schema with unknown fields refused wherever the API server would refuse them."""
    if isinstance(node, dict):
        out = {k: _strict(v) if k in ("properties", "items", "additionalProperties", "anyOf",
                                       "allOf", "oneOf", "not") else v for k, v in node.items()}
        if isinstance(out.get("properties"), dict):
            out["properties"] = {k: _strict(v) for k, v in node["properties"].items()}
            if "additionalProperties" not in node and not node.get(
                    "x-kubernetes-preserve-unknown-fields"):
                out["additionalProperties"] = False
        return out
    if isinstance(node, list):
        return [_strict(v) for v in node]
    return node


@cache
def _crd_schemas() -> dict[tuple[str, str], Path]:
    """(apiVersion, kind) → its vendored schema file."""
    out = {}
    for path in sorted(CRDS.glob("*.json")):
        gvk = json.loads(path.read_text())["x-camlog-gvk"]
        out[(f"{gvk['group']}/{gvk['version']}", gvk["kind"])] = path
    return out


@cache
def crd_validator(key: tuple[str, str]) -> jsonschema.protocols.Validator | None:
    """A strict validator for a vendored CRD schema, or None when ``key`` is not a custom kind."""
    path = _crd_schemas().get(key)
    if path is None:
        return None
    strict = _strict(json.loads(path.read_text()))
    jsonschema.Draft202012Validator.check_schema(strict)
    return jsonschema.Draft202012Validator(strict)


def validate(doc: dict[str, Any]) -> None:
    """Raise ``InvalidManifest`` unless ``doc`` is a valid resource of a kind with a schema."""
    key = (doc.get("apiVersion", ""), doc.get("kind", ""))
    if not all(key):
        raise InvalidManifest("a manifest needs apiVersion and kind")
    name = f"{key[1]} {doc.get('metadata', {}).get('name', '?')}"
    validator = crd_validator(key)
    if validator is not None:
        errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
        if errors:
            raise InvalidManifest("; ".join(
                f"{name}: {'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
                for e in errors[:5]))
        return
    for version in K8S_VERSIONS:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            raise InvalidManifest(f"{name} (Kubernetes {version}): {exc.message}") from None
        except kubernetes_validate.SchemaNotFoundError as exc:
            raise InvalidManifest(f"{name}: no schema for {key[0]} {key[1]} "
                                  "(a custom resource's belongs in ops/k8s/crds)") from exc
