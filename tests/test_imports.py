"""Imports sit at module top; an import inside a function must be one that costs start-up time.

The rule (ARCHITECTURE.md): a function may import lazily only

* a heavy optional third-party module (``LAZY_THIRD_PARTY``: seconds to import, needed on some
  paths only), from any module; or
* from a module on the CLI's start-up path (``cli.py``, ``commands/*.py`` and what they import at
  module top: what ``zerolm-prune --help`` loads), a module that ``--help`` does not load otherwise
  (torch, transformers, most of the package: importing it at the top would slow ``--help`` down).

Everything else (the standard library, light package modules, torch in a module off the start-up
path) goes to the top, and each function that still imports lazily says why in a ``# lazy:``
comment. Read with ``ast``, nothing imported; ``test_help_loads_nothing_heavy`` runs the real
``--help`` parser in a fresh interpreter and checks that none of the heavy modules got loaded.
"""

from __future__ import annotations

import ast
import fnmatch
import subprocess
import sys
from pathlib import Path

from test_import_graph import PACKAGE, _is_type_checking, import_targets, package_files

#: heavy optional third-party modules: lazy anywhere (seconds to import, needed on some paths only)
LAZY_THIRD_PARTY = {"lm_eval", "matplotlib", "peft", "datasets", "scipy", "gguf", "llama_cpp", "huggingface_hub",
                    "sklearn", "pymoo"}
#: third-party modules that `zerolm-prune --help` must not load (measured: 20 ms to 2 s each)
START_UP_HEAVY = {"torch", "transformers", "numpy", "safetensors", "tqdm", "yaml", "accelerate"}
#: the CLI edge: its modules import lazily whatever the help does not need
CLI_EDGE = ("cli.py", "commands/*.py")
#: TODO(issue 16): another branch moves these modules' imports to the top; the lead removes this list
#: (and makes these files pass the rule) after merging it
NOT_YET_CHECKED: tuple[str, ...] = ()


def _matches(path: Path, patterns: tuple[str, ...], package: Path = PACKAGE) -> bool:
    rel = path.relative_to(package).as_posix()
    return any(fnmatch.fnmatch(rel, p) for p in patterns)


def _top_level_imports(tree: ast.Module):
    """Import nodes run when the module is imported (module body, its ``if``/``try`` blocks and
    class bodies; not functions, not ``if TYPE_CHECKING:``)."""
    stack = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
        elif isinstance(node, (ast.If, ast.Try, ast.With, ast.ClassDef)):
            stack.extend(child for child in ast.iter_child_nodes(node) if isinstance(child, ast.stmt))


def _function_imports(tree: ast.Module):
    """``(function, import nodes in its own body)`` for every function (nested ones separately)."""
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            nodes, stack = [], list(fn.body)
            while stack:
                node = stack.pop()
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    nodes.append(node)
                elif not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
                    stack.extend(ast.iter_child_nodes(node))
            if nodes:
                yield fn, sorted(nodes, key=lambda n: n.lineno)


class _Package:
    """The package read once: module-top edges and the start-up path (the modules, package and
    other, that importing the CLI edge loads)."""

    def __init__(self, package: Path = PACKAGE):
        self.files = package_files(package)
        self.trees = {name: ast.parse(path.read_text(), str(path)) for name, path in self.files.items()}
        self.top: dict[str, set[str]] = {}
        for name, tree in self.trees.items():
            targets = {t for node in _top_level_imports(tree) for t in import_targets(node, name, self.files)}
            self.top[name] = targets | set(self._parents(name))
        self.start_up = self.closure([n for n, p in self.files.items() if _matches(p, CLI_EDGE, package)])

    def _parents(self, name: str) -> list[str]:
        """Importing ``a.b.c`` runs ``a/__init__`` and ``a/b/__init__`` first."""
        parts = name.split(".")
        return [".".join(parts[:i]) for i in range(1, len(parts)) if ".".join(parts[:i]) in self.files]

    def closure(self, roots: list[str]) -> set[str]:
        """Every module (package or third-party) loaded by importing ``roots``."""
        seen, stack = set(), list(roots)
        while stack:
            name = stack.pop()
            if name in seen:
                continue
            seen.add(name)
            if name in self.files:
                stack.extend(self.top[name] | set(self._parents(name)))
        return seen

    def slows_start_up(self, target: str) -> bool:
        """Importing ``target`` at the top of a start-up module would load something new (``a.b``
        counts as loaded when ``a.b`` or a submodule of it is imported at the top of the path)."""
        return not any(m == target or m.startswith(target + ".") for m in self.start_up)


def lazy_import_problems(package: Path = PACKAGE) -> list[str]:
    """One line per in-function import the rule (module docstring) does not allow."""
    pkg = _Package(package)
    problems = []
    for name, tree in sorted(pkg.trees.items()):
        path = pkg.files[name]
        if _matches(path, NOT_YET_CHECKED, package):
            continue
        lines = path.read_text().splitlines()
        where = path.relative_to(package.parent).as_posix()
        for fn, nodes in _function_imports(tree):
            for node in nodes:
                for target in import_targets(node, name, pkg.files):
                    optional = target not in pkg.files and target.split(".")[0] in LAZY_THIRD_PARTY
                    if not optional and not (name in pkg.start_up and pkg.slows_start_up(target)):
                        problems.append(f"{where}:{node.lineno} {fn.name}() imports {target} lazily; "
                                        "move it to the module top")
            span = range(nodes[0].lineno - 2, max(n.end_lineno for n in nodes))
            if not any("# lazy:" in lines[i] for i in span if 0 <= i < len(lines)):
                problems.append(f"{where}:{nodes[0].lineno} {fn.name}() imports lazily without a '# lazy: why' "
                                "comment")
    return problems


def test_imports_are_at_module_top():
    problems = lazy_import_problems()
    assert not problems, "\n".join(problems)


def test_help_loads_nothing_heavy():
    """What `zerolm-prune --help` builds (every subcommand's parser) loads none of the heavy modules."""
    heavy = sorted(START_UP_HEAVY | LAZY_THIRD_PARTY)
    code = ("import sys; from zerolm_prune.cli import build_parser; build_parser(); "
            f"print(' '.join(m for m in {heavy!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=PACKAGE.parent)
    assert out.stdout.strip() == "", f"--help loads {out.stdout.strip()}"


def test_the_rule_sees_a_needless_lazy_import(tmp_path):
    """The checker itself: a lazy stdlib or light package import is reported, as is a missing
    comment; a lazy heavy optional module with a comment is not; torch may stay lazy only in a
    module the CLI loads at start-up, and there only what start-up does not load anyway."""
    pkg = tmp_path / "pkg"
    (pkg / "commands").mkdir(parents=True)
    for name, text in {
        "__init__.py": "",
        "light.py": "import json\n",
        "heavy.py": "import torch\n",
        "cli.py": "from . import light\n\ndef g():\n    import torch  # lazy: keeps --help fast\n",
        "commands/__init__.py": "",
        "commands/x.py": ("def run():\n    from .. import heavy  # lazy: keeps --help fast\n\n"
                          "def again():\n    import json  # lazy: no reason\n    from .. import light\n"),
        "lib.py": ("def a():\n    import json\n\n"
                   "def b():\n    from . import light  # lazy: no reason\n\n"
                   "def c():\n    import scipy\n\n"
                   "def d():\n    import matplotlib  # lazy: plots only\n\n"
                   "def e():\n    import torch  # lazy: not on the start-up path\n"),
    }.items():
        (pkg / name).write_text(text)
    found = lazy_import_problems(pkg)
    text = "\n".join(found)
    assert "pkg/lib.py:2 a() imports json lazily" in text
    assert "pkg/lib.py:2 a() imports lazily without a '# lazy: why' comment" in text
    assert "pkg/lib.py:5 b() imports pkg.light lazily" in text
    assert "pkg/lib.py:8 c() imports lazily without a '# lazy: why' comment" in text
    assert "pkg/lib.py:14 e() imports torch lazily" in text
    assert "pkg/commands/x.py:5 again() imports json lazily" in text
    assert "pkg/commands/x.py:6 again() imports pkg.light lazily" in text
    assert not any(" d() " in p or "cli.py" in p or " run() " in p for p in found), text
    assert len(found) == 7, text
