"""The application's layout holds: one package per bounded context, importing only
the contexts below it, no import circle anywhere, and `Billing` without commands
(docs/architecture.md, "Application by bounded context").

Read from the source (imports and definitions), not by importing it: a lazy or
type-only import counts the same as any other.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LAYERS = ("domain", "application", "projections", "consumers", "infrastructure", "entrypoints")

CONTEXTS_BELOW = {
    "shared": set(),
    "billing": {"shared"},
    "receivables": {"shared", "billing"},
    "invoicing": {"shared", "billing", "receivables"},
    "runs": {"shared", "billing", "receivables", "invoicing"},
}
"""Which application contexts each may import (docs/architecture.md)."""

BILLING_METHODS = {
    "__init__",
    "construct_env",
    "construct_snapshot_store",
    "save",
    "get_account",
    "get_run",
    "get_invoice",
    "get_invoice_sequence",
    "get_sequence",
    "find_entity",
    "get_entity",
    "get_rate_book",
    "find_receivables",
    "get_receivables",
    "get_bill_group",
    "load_many",
    "iter_history",
}
"""Wiring, loaders and save: a command is a function taking the application, in
its context's package, never a method here."""


def _modules() -> dict[str, Path]:
    modules = {}
    for layer in LAYERS:
        for path in (ROOT / layer).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            modules[name.removesuffix(".__init__")] = path
    return modules


def _imported(tree: ast.AST) -> Iterator[str]:
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = {t for t in _imported(ast.parse(path.read_text())) if t in modules}
        graph[name] = targets - {name}
    return graph


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start, children_of_start in graph.items():
        if start in index:
            continue
        work = [(start, iter(sorted(children_of_start)))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def _package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The modules' imports folded onto their packages (`application.runs.check` ->
    `application.runs`), so a circle between two contexts shows."""

    modules = _modules()

    def package(name: str) -> str:
        path = modules[name]
        return name if path.name == "__init__.py" else name.rpartition(".")[0]

    folded: dict[str, set[str]] = {}
    for name, targets in graph.items():
        folded.setdefault(package(name), set()).update(package(t) for t in targets)
    # A package and its own subpackage (entrypoints and entrypoints.commands) are
    # one room with an inner one: only siblings can make a circle here.
    return {
        p: {t for t in targets if not (t.startswith(p + ".") or p.startswith(t + "."))} - {p}
        for p, targets in folded.items()
    }


def test_no_import_circle_between_modules_or_packages() -> None:
    graph = _graph()
    assert _circles(graph) == []
    assert _circles(_package_graph(graph)) == []


def test_each_application_context_imports_only_the_contexts_below_it() -> None:
    wrong = []
    for name, targets in _graph().items():
        parts = name.split(".")
        if parts[0] != "application" or len(parts) < 3:
            continue
        context = parts[1]
        for target in targets:
            other = target.split(".")
            inside = other[0] == "application" and len(other) > 1
            if inside and other[1] != context and other[1] not in CONTEXTS_BELOW[context]:
                wrong.append(f"{name} imports {target}")
    assert wrong == []


def test_every_application_module_is_in_a_context_package() -> None:
    loose = [p.name for p in (ROOT / "application").glob("*.py") if p.name != "__init__.py"]
    assert loose == [], "put it in the package of its bounded context (or shared/)"
    assert {p.name for p in (ROOT / "application").iterdir() if p.is_dir()} >= set(CONTEXTS_BELOW)


def test_billing_keeps_wiring_loaders_and_save_only() -> None:
    tree = ast.parse((ROOT / "application" / "shared" / "app.py").read_text())
    (billing,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Billing"]
    methods = {
        n.name
        for n in billing.body
        if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and not n.name.startswith("_")
    }
    assert methods <= BILLING_METHODS, (
        f"{sorted(methods - BILLING_METHODS)}: a command is a function taking the "
        "application, in its context's package"
    )
