"""Vendor a CRD's OpenAPI v3 schema as JSON for offline validation (``tests/k8s/``).

Usage: ``python ops/k8s/crds/vendor.py CRD.yaml VERSION OUT.json`` with the released CRD YAML
(Strimzi ``packaging/install/cluster-operator/04x-Crd-*.yaml``, k8ssandra-operator
``config/crd/bases/*.yaml``). Only ``description`` texts are dropped (they do not validate);
the schema is otherwise the one the API server enforces. Record the source in ``SOURCES.md``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml


def strip_descriptions(node: Any) -> Any:
    """The schema without ``description`` keys (a property *named* description is kept)."""
    if isinstance(node, dict):
        return {k: (strip_descriptions(v) if k != "properties"
                    else {p: strip_descriptions(s) for p, s in v.items()})
                for k, v in node.items() if k != "description"}
    if isinstance(node, list):
        return [strip_descriptions(v) for v in node]
    return node


def crd_schema(crd: dict[str, Any], version: str) -> dict[str, Any]:
    """The ``openAPIV3Schema`` of one served version, tagged with its group/version/kind."""
    spec = crd["spec"]
    for v in spec["versions"]:
        if v["name"] == version:
            schema = strip_descriptions(v["schema"]["openAPIV3Schema"])
            schema["x-camlog-gvk"] = {"group": spec["group"], "version": version,
                                      "kind": spec["names"]["kind"]}
            return schema
    raise SystemExit(f"{crd['metadata']['name']}: no version {version}")


def main(argv: list[str]) -> int:
    src, version, out = argv
    docs = [d for d in yaml.safe_load_all(Path(src).read_text()) if d]
    crd = next(d for d in docs if d.get("kind") == "CustomResourceDefinition")
    Path(out).write_text(json.dumps(crd_schema(crd, version), indent=1, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
