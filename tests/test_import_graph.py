"""The package's import graph has no cycle: data flows one way (ARCHITECTURE.md).

The graph is read from the source with ``ast`` (nothing is imported): an edge A -> B for every
``import``/``from ... import`` in module A that names a module B of the package, wherever it sits:
at module top, inside a function (a lazy import still ties A to B) or under ``if TYPE_CHECKING:``
(an annotation is a dependency too; ``strict=False`` leaves those out). ``from . import name`` is an
edge to the submodule ``name`` when there is one, else to the package. Run
``python -m tests.test_import_graph`` to print the graph.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "zerolm_prune"


def _module_name(path: Path, package: Path = PACKAGE) -> str:
    rel = path.relative_to(package.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST, strict: bool = True):
    """Import nodes of ``tree`` (without ``strict``, TYPE_CHECKING blocks left out)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        for child in ast.iter_child_nodes(node):
            if not strict and isinstance(child, ast.If) and _is_type_checking(child):
                stack.extend(child.orelse)
                continue
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                yield child
            stack.append(child)


def package_files(package: Path = PACKAGE) -> dict[str, Path]:
    """module name -> its file, for every module of ``package``."""
    return {_module_name(p, package): p for p in package.rglob("*.py") if "__pycache__" not in p.parts}


def import_targets(node: ast.Import | ast.ImportFrom, name: str, files: dict[str, Path]) -> list[str]:
    """The modules one import statement in module ``name`` names: package modules as module names
    (``from .x import f`` -> ``pkg.x``), anything else as written (``torch.nn``, ``json``)."""
    here = name.split(".") if files[name].name == "__init__.py" else name.split(".")[:-1]
    if isinstance(node, ast.Import):
        targets = [alias.name for alias in node.names]
    else:
        base = here[: len(here) - (node.level - 1)] if node.level else []
        mod = ".".join(base + ([node.module] if node.module else []))
        targets = [f"{mod}.{alias.name}" if f"{mod}.{alias.name}" in files else mod for alias in node.names]
    out = []
    for target in targets:
        found = target
        while found and found not in files:  # zerolm_prune.x.y where y is a name in x
            found = found.rpartition(".")[0]
        out.append(found or target)
    return out


def import_graph(package: Path = PACKAGE, *, strict: bool = True) -> dict[str, set[str]]:
    """module -> the package modules it imports (see the module docstring)."""
    files = package_files(package)
    graph: dict[str, set[str]] = {name: set() for name in files}
    for name, path in files.items():
        for node in _imports(ast.parse(path.read_text(), str(path)), strict):
            graph[name].update(t for t in import_targets(node, name, files) if t in files and t != name)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _package_edges(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The graph without edges from a package's ``__init__`` to its own submodules and back: a
    package re-exporting its modules' names is a face, not a dependency of theirs."""
    out = {}
    for v, ws in graph.items():
        out[v] = {w for w in ws if not (w.startswith(v + ".") or v.startswith(w + ".") and w != "zerolm_prune")}
    return out


def test_no_import_cycles():
    found = cycles(_package_edges(import_graph()))
    assert not found, "import cycles: " + "; ".join(" <-> ".join(c) for c in found)


def test_the_check_sees_a_cycle(tmp_path):
    """The checker itself: a two-module loop through a lazy import is reported; an annotation-only
    import is an edge too (unless not strict)."""
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .b import f\n")
    (pkg / "b.py").write_text("def f():\n    from . import a\n")
    (pkg / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .a import f\n")
    graph = import_graph(pkg)
    assert graph["pkg.a"] == {"pkg.b"} and graph["pkg.b"] == {"pkg.a"} and graph["pkg.c"] == {"pkg.a"}
    assert cycles(graph) == [["pkg.a", "pkg.b"]]
    assert import_graph(pkg, strict=False)["pkg.c"] == set()


if __name__ == "__main__":  # print the graph, one module a line
    g = import_graph()
    for module in sorted(g):
        print(module, "->", ", ".join(sorted(g[module])) or "-")
    print("cycles:", cycles(_package_edges(g)) or "none")
