"""Import layering: the shared layer never imports backends, commands or the CLI; no cycles.

Checked on the source with ``ast`` (every import, including those inside functions), so an
upward import fails here even when it happens to be lazy.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

# lower number = lower layer; a module may import its own layer or below
LEAF = {"finextract.errors", "finextract.registry", "finextract.console"}
APPS = ("finextract.report", "finextract.sweep", "finextract.serve", "finextract.batch", "finextract.spark",
        "finextract.mlflow_model")
TOP = ("finextract.commands", "finextract.cli", "finextract.__main__")


def layer(mod: str) -> int:
    if mod in LEAF:
        return 0
    if mod.startswith(TOP):
        return 4
    if mod.startswith(APPS):
        return 3
    if mod.startswith("finextract.backends"):
        return 2
    return 1  # the shared layer: config, rundir, extractor, training, records, scoring, prompts, tasks, ...
    # (and ``finextract`` itself, whose __init__ re-exports the shared layer's main names)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports() -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for path in SRC.rglob("*.py"):
        mod = module_name(path)
        deps = out.setdefault(mod, set())
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                if node.module.startswith("finextract"):
                    deps.add(node.module)
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name.startswith("finextract")}
    return out


GRAPH = imports()


def test_no_upward_imports():
    bad = sorted(f"{mod} -> {dep}" for mod, deps in GRAPH.items() for dep in deps if layer(dep) > layer(mod))
    assert not bad, "upward imports:\n" + "\n".join(bad)


def test_leaf_modules_import_nothing_from_the_project():
    for mod in LEAF:
        assert not GRAPH[mod], f"{mod} must stay a leaf: imports {sorted(GRAPH[mod])}"


def test_report_does_not_import_sweep_and_commands_do_not_import_the_cli():
    bad = [f"{m} -> {d}" for m, deps in GRAPH.items() for d in deps
           if (m.startswith("finextract.report") and d.startswith("finextract.sweep"))
           or (m.startswith(("finextract.commands", "finextract.backends")) and d == "finextract.cli")]
    assert not bad, bad


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Cycles among modules (package ``__init__`` re-export edges are left out: they only re-export)."""
    nodes = {m for m in graph if not _is_package(m)}
    edges = {m: {d for d in graph[m] if d in nodes and d != m} for m in nodes}
    found, state, stack = [], {}, []

    def visit(n: str) -> None:
        state[n] = 1
        stack.append(n)
        for d in sorted(edges[n]):
            if state.get(d) == 1:
                found.append(stack[stack.index(d):] + [d])
            elif d not in state:
                visit(d)
        stack.pop()
        state[n] = 2

    for n in sorted(nodes):
        if n not in state:
            visit(n)
    return found


def _is_package(mod: str) -> bool:
    return (SRC / Path(*mod.split(".")) / "__init__.py").exists()


def test_no_import_cycles():
    assert not _cycles(GRAPH), _cycles(GRAPH)


def test_the_cycle_check_can_fail():
    assert _cycles({"a.x": {"a.y"}, "a.y": {"a.x"}}) == [["a.x", "a.y", "a.x"]]
