"""The package's shape: no import cycles, and data flows one way (views depend on
computation, never the reverse).

The graph is read from the source with ``ast``, so it needs no imports of the package.
Imports inside functions count: they are still dependencies, only deferred.
"""
from __future__ import annotations

import ast
import os
import textwrap
from pathlib import Path

from datapaths import REPO

PACKAGE = Path(REPO) / "toolkit"

#: Modules that may import the views: the notebook layer, which shows results (the
#: driver, and the records it returns, whose ``_repr_html_`` a notebook calls).
MAY_IMPORT_VIEWS = {"toolkit.context", "toolkit.records"}


def module_files(package_dir: Path) -> dict[str, tuple[Path, bool]]:
    """Dotted module name -> (file, is_package) for every ``.py`` file of the package."""
    root = package_dir.parent
    found = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        found[".".join(parts)] = (path, is_package)
    return found


def _imported(module: str, is_package: bool, node: ast.AST, known: set[str]) -> list[str]:
    """The modules of the package that one import statement depends on."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
        if node.level:
            base = module.split(".") if is_package else module.split(".")[:-1]
            base = base[:len(base) - node.level + 1]
            origin = ".".join(base + ([node.module] if node.module else []))
        else:
            origin = node.module or ""
        # ``from pkg import sub`` depends on the submodule when there is one
        names = [f"{origin}.{a.name}" if f"{origin}.{a.name}" in known else origin
                 for a in node.names]
    else:
        return []
    out = []
    for name in names:
        while name and name not in known:
            name = name.rpartition(".")[0]
        if name:
            out.append(name)
    return out


def import_graph(package_dir: Path) -> dict[str, set[str]]:
    """Module -> the package's modules it imports, at module level or inside functions."""
    modules = module_files(package_dir)
    known = set(modules)
    graph = {}
    for module, (path, is_package) in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        deps = set()
        for node in ast.walk(tree):
            deps.update(_imported(module, is_package, node, known))
        deps.discard(module)
        graph[module] = deps
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
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


def _write_package(root: Path, files: dict[str, str]) -> Path:
    for name, source in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
    return root / "pkg"


def test_cycle_finder_sees_lazy_and_relative_imports(tmp_path):
    """The checker itself: a cycle closed by an import inside a function, through a
    relative import, is found; the same package without that import has none."""
    files = {
        "pkg/__init__.py": "",
        "pkg/a.py": "from pkg.b import thing\n",
        "pkg/sub/__init__.py": "",
        "pkg/b.py": "from .sub import c\nthing = 1\n",
        "pkg/sub/c.py": "def later():\n    from .. import a\n    return a\n",
    }
    package = _write_package(tmp_path / "cyclic", files)
    graph = import_graph(package)
    assert graph["pkg.sub.c"] == {"pkg.a"} and graph["pkg.b"] == {"pkg.sub.c"}
    assert cycles(graph) == [["pkg.a", "pkg.b", "pkg.sub.c"]]
    files["pkg/sub/c.py"] = "def later():\n    return 1\n"
    assert cycles(import_graph(_write_package(tmp_path / "acyclic", files))) == []


def test_toolkit_has_no_import_cycle():
    found = cycles(import_graph(PACKAGE))
    assert not found, "import cycles in toolkit/ (each line is one cycle):\n" + "\n".join(
        " <-> ".join(component) for component in found)


def test_views_depend_on_computation_never_the_reverse():
    """Only the notebook layer imports ``toolkit.visualize``; components, artifacts and the
    evaluation library do not, and the views never import components or the context."""
    graph = import_graph(PACKAGE)
    views = {m for m in graph if m == "toolkit.visualize" or m.startswith("toolkit.visualize.")}
    wrong = sorted(f"{module} imports {sorted(graph[module] & views)}"
                   for module in graph
                   if module not in views and module not in MAY_IMPORT_VIEWS
                   and graph[module] & views)
    assert not wrong, "\n".join(wrong)
    upward = sorted(f"{module} imports {dep}" for module in views for dep in graph[module]
                    if dep.startswith(("toolkit.components", "toolkit.context", "toolkit.records")))
    assert not upward, "\n".join(upward)


def test_every_module_says_its_job():
    """Each file opens with a docstring: the one job a newcomer should expect of it."""
    missing = [str(path.relative_to(REPO)) for module, (path, _) in module_files(PACKAGE).items()
               if not ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
               and os.path.getsize(path) > 0]
    assert not missing, f"modules without a docstring: {missing}"
