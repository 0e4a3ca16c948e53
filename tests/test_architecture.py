"""The package's shape: no import cycles, and data flows one way (views depend on
computation, never the reverse).

The graph is read from the source with ``ast``, so it needs no imports of the package.
Imports inside functions count: they are still dependencies, only deferred.
"""
from __future__ import annotations

import ast
import os
import re
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


def _string_constants(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef,
                                       ast.AsyncFunctionDef))
                  and ast.get_docstring(node, clean=False) is not None}
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and id(node) not in docstrings]


def test_every_environment_name_is_spelled_in_one_module():
    """``TOOLKIT_*`` names are spelled in ``toolkit/_env.py`` (one line each saying what the
    variable does) and imported from there, so one search finds each variable's uses."""
    stray = []
    for path in sorted(PACKAGE.rglob("*.py")):
        name = path.relative_to(REPO).as_posix()
        if name == "toolkit/_env.py":
            continue
        for line, text in _string_constants(path):
            if text.startswith("TOOLKIT_"):
                stray.append(f"{name}:{line}: {text!r}")
    assert not stray, "spell these in toolkit/_env.py and import them:\n" + "\n".join(stray)


MAX_MODULE_LINES = 700


def test_no_module_is_over_700_lines():
    """A module that outgrows 700 lines becomes a package of modules with one job each (as
    ``toolkit/visualize/statistics/`` and ``toolkit/visualize/evaluation/`` did)."""
    long = [f"{path.relative_to(REPO).as_posix()}: {count} lines"
            for path in sorted(PACKAGE.rglob("*.py"))
            if (count := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES]
    assert not long, "\n".join(long)


def test_the_version_report_uses_the_shared_markup():
    """``toolkit/model_report.py`` (below the views) escapes, colours and draws tables with
    ``toolkit/_markup.py``, as the views do, and keeps no copies of its own that could drift."""
    markup = ast.parse((PACKAGE / "_markup.py").read_text(encoding="utf-8"))
    shared = {node.name for node in markup.body if isinstance(node, ast.FunctionDef)}
    shared |= {target.id for node in markup.body if isinstance(node, ast.Assign)
               for target in node.targets if isinstance(target, ast.Name)}
    assert {"escape", "esc", "table", "MUTED", "GOOD", "BAD", "NOTE"} <= shared
    report = PACKAGE / "model_report.py"
    tree = ast.parse(report.read_text(encoding="utf-8"))
    defined = {node.name for node in tree.body
               if isinstance(node, (ast.FunctionDef, ast.ClassDef))}
    defined |= {target.id for node in tree.body if isinstance(node, ast.Assign)
                for target in node.targets if isinstance(target, ast.Name)}
    assert not defined & shared, f"model_report.py redefines {sorted(defined & shared)}"
    assert not [name for name in defined if "esc" in name.lower()], defined
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    assert "html" not in imported, "model_report.py escapes with toolkit._markup, not html"
    colours = [(line, text) for line, text in _string_constants(report)
               if re.search(r"#[0-9a-fA-F]{6}\b|rgba?\(", text)]
    page_ink = [(line, text) for line, text in colours if "color:#202124" in text]
    assert colours == page_ink, f"colours of its own in model_report.py: {colours}"
    assert "toolkit._markup" in import_graph(PACKAGE)["toolkit.model_report"]


#: modules whose artifact-file I/O goes through ``toolkit.storage`` (the storage seam)
ROUTED_THROUGH_STORAGE = [
    "toolkit/publishing.py", "toolkit/cache.py", "toolkit/artifacts.py",
    "toolkit/components/_io.py", "toolkit/components/schema_gen.py",
    "toolkit/components/statistics_gen.py", "toolkit/components/example_validator.py",
    "toolkit/components/transform.py", "toolkit/components/trainer.py",
    "toolkit/components/bulk_inferrer.py", "toolkit/components/infra_validator.py",
    "toolkit/components/resolver.py", "toolkit/components/_model_io.py",
    "toolkit/components/_spans.py", "toolkit/components/csv_reader.py",
    "toolkit/components/example_gen/__init__.py", "toolkit/components/example_gen/beam.py",
    "toolkit/components/example_gen/reader.py", "toolkit/components/example_gen/splitting.py",
    "toolkit/components/_shipping.py", "toolkit/components/fn_args.py",
    "toolkit/components/evaluator.py", "toolkit/components/tuner/__init__.py",
    "toolkit/evaluation/storage.py", "toolkit/evaluation/tfma_adapter.py",
    "toolkit/components/pusher.py", "toolkit/models.py", "toolkit/model_report.py",
    "toolkit/visualize/__init__.py", "toolkit/visualize/html.py",
    "toolkit/visualize/reading.py", "toolkit/visualize/model_report.py",
    "toolkit/visualize/tuner.py", "toolkit/visualize/drift.py", "toolkit/visualize/schema.py",
    "toolkit/visualize/evaluation/loading.py", "toolkit/visualize/statistics/loading.py",
]
#: direct file calls the seam replaces
DIRECT_FILE_CALLS = {"open", "os.remove", "os.unlink", "os.rename", "os.replace", "os.walk",
                     "os.listdir", "os.scandir", "os.makedirs", "os.rmdir", "shutil.*",
                     "glob.glob", "glob.iglob"}
#: (module, call) -> why it stays
DIRECT_FILE_CALLS_ALLOWED: dict[tuple[str, str], str] = {}


def _direct_file_calls(path: Path) -> list[tuple[int, str]]:
    """``(line, call)`` of every call in ``path`` that ``DIRECT_FILE_CALLS`` names."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name):
            name = func.id
        elif isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            name = f"{func.value.id}.{func.attr}"
        else:
            continue
        if name in DIRECT_FILE_CALLS or (name.startswith("shutil.") and "shutil.*" in
                                         DIRECT_FILE_CALLS):
            found.append((node.lineno, name))
    return found


def test_the_direct_file_call_finder_sees_each_kind(tmp_path):
    """The checker itself: each forbidden call is found, ``storage.open`` and
    ``storage.glob`` are not."""
    source = tmp_path / "m.py"
    source.write_text("import glob, os, shutil\nfrom toolkit import storage\n"
                      "def f(p):\n    open(p)\n    os.replace(p, p)\n    shutil.rmtree(p)\n"
                      "    os.walk(p)\n    glob.glob(p)\n    glob.iglob(p)\n"
                      "    storage.open(p)\n    storage.glob(p)\n    os.path.join(p, 'x')\n")
    found = sorted(_direct_file_calls(source))
    assert [name for _, name in found] == ["open", "os.replace", "shutil.rmtree", "os.walk",
                                           "glob.glob", "glob.iglob"]


def test_artifact_file_io_goes_through_the_storage_seam():
    """The routed modules read, write, list, move and remove files only through
    ``toolkit.storage``, so another backend (an object store) serves them unchanged."""
    stray = []
    for name in ROUTED_THROUGH_STORAGE:
        path = Path(REPO) / name
        assert path.exists(), f"{name} is listed as routed but does not exist"
        for line, call in _direct_file_calls(path):
            if (name, call) not in DIRECT_FILE_CALLS_ALLOWED:
                stray.append(f"{name}:{line}: {call}(...)")
    assert not stray, ("use toolkit.storage (or allow the call with a reason in "
                       "DIRECT_FILE_CALLS_ALLOWED):\n" + "\n".join(stray))
