"""The package's import structure: no cycle, and no import from a higher layer.

Every ``import`` / ``from ... import`` statement of every module under ``rsmm/`` is read
with :mod:`ast` (lazy imports inside functions count too), resolved to the rsmm module it
names, and checked against the layer order written in the README's development section.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "rsmm"

# bottom -> top; a module may import its own package's modules and anything below it
LAYERS: tuple[tuple[str, ...], ...] = (
    ("rsmm.errors", "rsmm.compat", "rsmm.atomic"),
    ("rsmm.sensors",),
    ("rsmm.io", "rsmm.parsing", "rsmm.manifests", "rsmm.data_manifests", "rsmm.render"),
    ("rsmm.losses", "rsmm.hyperbolic", "rsmm.augment", "rsmm.models"),
    ("rsmm.stacks",),
    ("rsmm.datasets",),
    ("rsmm.datamodules",),
    ("rsmm.report", "rsmm.checkpoints"),
    ("rsmm.tasks",),
    ("rsmm.export",),
    ("rsmm.benchmarks", "rsmm.grid", "rsmm.quickstart"),
    ("rsmm.cli",),
)


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def unit(name: str) -> str | None:
    """The layer unit (``rsmm.tasks``, ``rsmm.errors`` ...) a module belongs to."""
    for layer in LAYERS:
        for u in layer:
            if name == u or name.startswith(u + "."):
                return u
    return None


def layer_of(name: str) -> int:
    u = unit(name)
    assert u is not None, f"{name} is in no layer: add it to LAYERS and the README"
    return next(i for i, layer in enumerate(LAYERS) if u in layer)


def resolve(target: str) -> str | None:
    """The rsmm module an imported name lives in (``rsmm.a.b.func`` -> ``rsmm.a.b``)."""
    while target and target not in MODULES:
        target = target.rpartition(".")[0]
    return target or None


def imports_of(name: str) -> set[str]:
    path = MODULES[name]
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # ``from pkg import submodule`` imports the submodule, not pkg's own names
            targets = [
                f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names
            ]
        for t in targets:
            if t == "rsmm" or not t.startswith("rsmm."):
                continue
            resolved = resolve(t)
            if resolved is not None and resolved != name:
                found.add(resolved)
    return found


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (as ``[a, b, ..., a]``), or None."""
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return [*stack[stack.index(m) :], m]
            if m not in state and (cycle := visit(m)) is not None:
                return cycle
        stack.pop()
        state[n] = 2
        return None

    for name in sorted(graph):
        if name not in state and (cycle := visit(name)) is not None:
            return cycle
    return None


def upward_imports(name: str, graph: dict[str, set[str]]) -> list[str]:
    return sorted(t for t in graph[name] if layer_of(t) > layer_of(name))


GRAPH = {
    name: {t for t in imports_of(name) if t != "rsmm"} for name in MODULES if name != "rsmm"
}


def test_every_module_has_a_layer() -> None:
    missing = sorted(n for n in GRAPH if unit(n) is None)
    assert not missing, f"modules in no layer: {missing}"


@pytest.mark.parametrize("name", sorted(GRAPH))
def test_no_upward_import(name: str) -> None:
    upward = upward_imports(name, GRAPH)
    assert not upward, f"{name} (layer {layer_of(name)}) imports higher layers: {upward}"


def test_no_import_cycle() -> None:
    cycle = find_cycle(GRAPH)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_checks_can_fail() -> None:
    """A synthetic cycle and a synthetic upward import are found; real names resolve."""
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    assert upward_imports("rsmm.errors", {"rsmm.errors": {"rsmm.cli"}}) == ["rsmm.cli"]
    assert resolve("rsmm.errors.RsmmError") == "rsmm.errors"
    assert imports_of("rsmm.errors") == set()
