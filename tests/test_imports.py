"""No import cycles among transfergrid's modules (DESIGN.md: data flows one way).

The graph is read from the source with `ast`, so it sees imports inside functions too (a lazy
import hides a cycle from Python, not from the design). `if TYPE_CHECKING:` blocks are skipped:
they never run. `from transfergrid.x import y` imports `transfergrid.x.y` when y is a submodule
and `transfergrid.x` (its `__init__`) otherwise; importing a module also imports the packages above
it, except the importer's own packages when not named (those are already being imported when it
runs).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = "transfergrid"
ROOT = Path(__file__).resolve().parents[1] / "src" / PACKAGE


def module_files(root: Path = ROOT) -> dict[str, Path]:
    """Module name -> file; a package is its `__init__.py`."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = (PACKAGE, *path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(tree: ast.AST):
    """Every Import / ImportFrom node, at any depth, outside `if TYPE_CHECKING:` bodies."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)  # the `else:` branch runs
            continue
        stack.extend(ast.iter_child_nodes(node))


def imported_modules(name: str, path: Path, modules: set[str]) -> set[str]:
    """The transfergrid modules that importing / running module `name` imports."""
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    explicit: set[str] = set()  # what the statement names
    for node in _import_nodes(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            explicit.update(alias.name for alias in node.names)
            continue
        if node.level:  # relative: from ..x import y
            base = package.split(".")
            base = base[: len(base) - (node.level - 1)]
            source = ".".join(base + ([node.module] if node.module else []))
        else:
            source = node.module or ""
        subs = {f"{source}.{alias.name}" for alias in node.names} & modules
        explicit.update(subs)
        if len(subs) < len(node.names):  # a name defined in `source` itself
            explicit.add(source)
    own = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 2)}  # with itself
    out = {t for t in explicit if t in modules and t != name}
    for target in explicit:  # the packages above it run first, except the importer's own
        parts = target.split(".")
        out.update(m for m in (".".join(parts[:i]) for i in range(1, len(parts))) if m in modules and m not in own)
    return out


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    files = module_files(root)
    names = set(files)
    return {name: imported_modules(name, path, names) for name, path in files.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as [a, b, ..., a], or None (iterative depth-first search)."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    for start in sorted(graph):
        if state.get(start):
            continue
        path, iters = [start], [iter(sorted(graph[start]))]
        state[start] = 1
        while path:
            nxt = next(iters[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                iters.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            elif not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                iters.append(iter(sorted(graph.get(nxt, ()))))
    return None


def test_no_import_cycles():
    graph = import_graph()
    assert len(graph) > 50, f"only {len(graph)} modules found under {ROOT}"
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


# --- the checker itself -------------------------------------------------------------------------


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / PACKAGE
    for rel, text in {"__init__.py": "", **files}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


@pytest.mark.parametrize("a_text", [
    "from transfergrid import b\n",  # a submodule named in from-import
    "def f():\n    import transfergrid.b\n",  # function level
    "from . import b\n",  # relative
    "from transfergrid.b import thing\n",
])
def test_finds_a_cycle(tmp_path, a_text):
    root = _package(tmp_path, {"a.py": a_text, "b.py": "from transfergrid.a import x\n"})
    assert find_cycle(import_graph(root)) in (
        ["transfergrid.a", "transfergrid.b", "transfergrid.a"], ["transfergrid.b", "transfergrid.a", "transfergrid.b"])


def test_package_init_and_type_checking(tmp_path):
    # importing pkg.c runs pkg/__init__, which imports a: a -> pkg -> a
    root = _package(tmp_path, {"a.py": "from transfergrid.pkg.c import y\n", "pkg/__init__.py": "import transfergrid.a\n",
                               "pkg/c.py": ""})
    assert find_cycle(import_graph(root)) is not None
    root = _package(tmp_path / "t", {
        "a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from transfergrid import b\n",
        "b.py": "import transfergrid.a\n"})
    assert find_cycle(import_graph(root)) is None
    # a module's own package is not an edge (it is being imported already)
    root = _package(tmp_path / "own", {"pkg/__init__.py": "from transfergrid.pkg.c import y\n",
                                       "pkg/c.py": "from transfergrid.pkg import d\n", "pkg/d.py": ""})
    assert find_cycle(import_graph(root)) is None
