"""The playback package has no import cycle: ``context`` is a leaf every handler may import,
handlers declare their routes, and only ``app`` (and ``cli``) import the handlers."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = "pipeline.playback"
ROOT = Path(__file__).resolve().parents[2] / "pipeline" / "playback"


def _imports(path: Path) -> set[str]:
    """Every ``pipeline.playback.<module>`` a file imports, at any depth (lazy imports count)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # ``from pipeline.playback import llhls`` imports the module llhls
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            if name.startswith(PACKAGE + "."):
                module = name[len(PACKAGE) + 1:].split(".")[0]
                if (ROOT / f"{module}.py").exists():
                    found.add(module)
    found.discard(path.stem)
    return found


def graph() -> dict[str, set[str]]:
    """module -> the package modules it imports."""
    return {p.stem: _imports(p) for p in sorted(ROOT.glob("*.py")) if p.stem != "__init__"}


def cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path of module names, or None (depth-first, three colours)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for n in sorted(edges.get(m, ())):
            if state.get(n) == 1:
                return [*stack[stack.index(n):], n]
            if n not in state and (found := visit(n)):
                return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(edges):
        if m not in state and (found := visit(m)):
            return found
    return None


def test_cycle_finder_finds_cycles():
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_playback_has_no_import_cycle():
    edges = graph()
    assert {"app", "context", "playlists", "media"} <= set(edges)
    assert cycle(edges) is None, " -> ".join(cycle(edges) or [])


def test_context_is_a_leaf_and_only_app_composes_handlers():
    edges = graph()
    handlers = {"api", "playlists", "media", "pages", "jwks", "openapi"}
    assert not edges["context"] & (handlers | {"app", "cli"}), edges["context"]
    for module, imported in edges.items():
        if module not in ("app", "cli"):
            assert "app" not in imported, module


@pytest.mark.parametrize("name", ["api", "playlists", "media", "pages", "jwks", "openapi"])
def test_every_handler_declares_its_routes(name):
    import importlib

    from pipeline.playback import app

    module = importlib.import_module(f"{PACKAGE}.{name}")
    assert callable(module.routes) and module in app.HANDLERS
