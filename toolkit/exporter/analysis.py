"""Static analysis of notebook code cells; nothing here executes notebook code.

IPython syntax (magics, ``!cmd``) is rewritten to plain Python by IPython's own
input transformer before :func:`ast.parse`. Magics that behave the same in a
headless kernel are kept; the others, and shell escapes, are dropped with a note.
Names are tracked in execution order so that a kept cell reading a name that only
a dropped cell (or a dropped magic) defines is refused.
"""
from __future__ import annotations

import ast
import builtins
import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Iterable, Iterator

from toolkit.errors import CellError

SKIP_TAG = "skip-export"
PARAMETERS_TAG = "parameters"
SKIP_CELL_MAGIC = "skip_for_export"

# Magics that work unchanged in a headless kernel (papermill / nbclient).
KEPT_LINE_MAGICS = frozenset({"matplotlib", "config", "env", "time", "load_ext", "reload_ext", "autoreload"})
KEPT_CELL_MAGICS = frozenset({"time", "capture", "writefile", "html", "markdown", "latex"})
# Kept cell magics whose body is Python code (analysed like a cell of its own).
_PYTHON_BODY_CELL_MAGICS = frozenset({"time", "capture", "timeit", "prun"})
_IPYTHON_CALLS = frozenset({"run_line_magic", "run_cell_magic", "system", "getoutput"})
_HISTORY_NAME = re.compile(r"^(_{1,3}|_\d+|_i{1,3}|_i\d+|_ih|_oh|_dh|In|Out)$")
_BUILTINS = frozenset(dir(builtins)) | {"get_ipython", "display", "__name__", "__file__"}
_DROP_REASONS = {
    "pip": "installs packages at run time",
    "conda": "installs packages at run time",
    "mamba": "installs packages at run time",
    "timeit": "re-runs the code in a timing loop",
    "tensorboard": "starts a server",
}


@dataclass(frozen=True)
class Note:
    """Something export changed, reported in the header cell and printed."""

    cell: int
    text: str

    def __str__(self) -> str:
        return f"cell {self.cell}: {self.text}"


@dataclass(frozen=True)
class NameEvent:
    """``read``/``bind`` happen when the statement runs; ``deferred`` reads happen when a
    function or class body defined in the cell runs; ``star`` is ``from m import *``."""

    kind: str
    name: str
    line: int


@dataclass
class CodeCell:
    """A code cell after IPython syntax is handled: ``source`` is what the export keeps."""

    number: int
    source: str
    tags: tuple[str, ...]
    tree: ast.Module
    code: str
    line_offset: int = 0

    @cached_property
    def events(self) -> list[NameEvent]:
        return name_events(self.tree)


@dataclass
class DroppedCode:
    """Code export leaves out; the names it binds are interactive-only."""

    cell: int
    description: str
    binds: set[str] = field(default_factory=set)
    tree: ast.Module | None = None


_transformer = None


def ipython_to_python(source: str) -> str:
    """Plain-Python form of a cell; IPython is imported only for cells that need it."""
    try:
        ast.parse(source)
        return source
    except SyntaxError:
        pass
    global _transformer
    if _transformer is None:
        from IPython.core.inputtransformer2 import TransformerManager

        _transformer = TransformerManager()
    try:
        return _transformer.transform_cell(source)
    except Exception:  # malformed input: let ast.parse report the syntax error
        return source


def python_lines(number: int, source: str, line_offset: int = 0) -> str:
    """Like :func:`ipython_to_python`, but line ``n`` of the result is line ``n`` of ``source``."""
    code = ipython_to_python(source)
    if code is source:
        return code
    src_lines = source.split("\n")
    code_lines = code.split("\n")
    if code_lines and code_lines[-1] == "" and (not src_lines or src_lines[-1] != ""):
        code_lines.pop()
    leading = 0
    while leading < len(src_lines) and not src_lines[leading].strip():
        leading += 1
    if len(code_lines) == len(src_lines) - leading:
        code_lines = [""] * leading + code_lines
    if len(src_lines) != len(code_lines):
        raise CellError(
            number,
            "IPython syntax continued over several lines (a magic or `!` command ending in `\\`) "
            f"near line {line_offset + 1} cannot be exported; put it on one line",
        )
    return "\n".join(code_lines)


def cell_magic(source: str) -> tuple[str, str, str] | None:
    """``(name, arguments, body)`` when the cell starts with a ``%%`` cell magic."""
    lines = source.lstrip("\n").split("\n", 1)
    first = lines[0].strip()
    if not first.startswith("%%"):
        return None
    name, _, args = first[2:].partition(" ")
    return name, args.strip(), lines[1] if len(lines) > 1 else ""


def prepare_code_cell(
    number: int, source: str, tags: tuple[str, ...]
) -> tuple[CodeCell | None, list[Note], list[DroppedCode]]:
    """Handle a kept-by-tag code cell's IPython syntax.

    Returns the cell as exported (None when nothing is left), notes, and the code
    that was dropped along with the names it defined.
    """
    magic = cell_magic(source)
    if magic is not None:
        return _prepare_cell_magic(number, source, tags, magic)
    kept_source, notes, dropped = _strip_line_magics(number, source)
    if not kept_source.strip():
        return None, notes, dropped
    return finish_cell(number, kept_source, tags), notes, dropped


def finish_cell(number: int, source: str, tags: tuple[str, ...]) -> CodeCell:
    """Parse a cell whose remaining IPython syntax is all kept."""
    code = python_lines(number, source)
    return CodeCell(number, source, tags, parse(number, code), code)


def _prepare_cell_magic(
    number: int, source: str, tags: tuple[str, ...], magic: tuple[str, str, str]
) -> tuple[CodeCell | None, list[Note], list[DroppedCode]]:
    name, args, body = magic
    offset = source[: len(source) - len(body)].count("\n")
    if name in KEPT_CELL_MAGICS:
        if name not in _PYTHON_BODY_CELL_MAGICS:
            empty = ast.Module(body=[], type_ignores=[])
            return CodeCell(number, source, tags, empty, "", line_offset=offset), [], []
        kept_body, notes, dropped = _strip_line_magics(number, body, line_offset=offset)
        code = python_lines(number, kept_body, offset)
        tree = parse(number, code, line_offset=offset)
        if name == "capture" and args and not args.split()[-1].startswith("-"):
            target = ast.Name(id=args.split()[-1], ctx=ast.Store(), lineno=1, col_offset=0)
            tree.body.append(ast.Assign(targets=[target], value=ast.Constant(None), lineno=1, col_offset=0))
        kept = source[: len(source) - len(body)] + kept_body
        return CodeCell(number, kept, tags, tree, code, line_offset=offset), notes, dropped
    description = f"`%%{name}` cell magic ({_DROP_REASONS.get(name, _reason(name))})"
    tree = _try_parse(ipython_to_python(body)) if name in _PYTHON_BODY_CELL_MAGICS else None
    where = f"cell {number}, which export drops ({description})"
    dropped = DroppedCode(number, where, bound_names(tree), tree)
    return None, [Note(number, f"dropped the cell: {description}")], [dropped]


def _reason(name: str) -> str:
    if name in ("bash", "sh", "script", "system", "sx", "perl", "ruby"):
        return "runs a shell"
    return "needs an interactive session"


def _strip_line_magics(
    number: int, source: str, line_offset: int = 0
) -> tuple[str, list[Note], list[DroppedCode]]:
    """Remove line magics and shell escapes that would not run the same headless."""
    code = python_lines(number, source, line_offset)
    if code is source:
        return source, [], []
    src_lines: list[str | None] = list(source.split("\n"))
    code_lines = code.split("\n")
    tree = parse(number, code, line_offset)
    magic_lines = [
        index + 1
        for index, (raw, python) in enumerate(zip(src_lines, code_lines))
        if raw != python and "get_ipython()" in python and "get_ipython()" not in raw
    ]
    statements = list(_statements_with_depth(tree.body, 0))
    notes: list[Note] = []
    dropped: list[DroppedCode] = []
    for line in magic_lines:
        kind, name = _ipython_call_on_line(tree, line)
        if kind == "run_line_magic" and name in KEPT_LINE_MAGICS:
            continue
        stmt, depth = _innermost(statements, line)
        if stmt is None or stmt.lineno != stmt.end_lineno:
            raise CellError(
                number,
                f"line {line + line_offset}: IPython syntax inside a larger statement cannot be exported",
            )
        shown = str(src_lines[line - 1]).strip()
        if kind in ("system", "getoutput"):
            what = "shell command"
        else:
            what = f"%{name} magic ({_DROP_REASONS.get(name or '', _reason(name or ''))})"
        notes.append(Note(number, f"dropped `{shown}` ({what})"))
        binds = bound_names(ast.Module(body=[stmt], type_ignores=[]))
        where = f"cell {number} line {line + line_offset} by `{shown}`, which export drops"
        dropped.append(DroppedCode(number, where, binds))
        if depth == 0:
            src_lines[line - 1] = None
        else:
            original = str(src_lines[line - 1])
            src_lines[line - 1] = original[: len(original) - len(original.lstrip())] + "pass"
    return "\n".join(line for line in src_lines if line is not None), notes, dropped


def _ipython_call_on_line(tree: ast.AST, line: int) -> tuple[str | None, str | None]:
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and node.lineno == line
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in _IPYTHON_CALLS
            and isinstance(node.func.value, ast.Call)
            and isinstance(node.func.value.func, ast.Name)
            and node.func.value.func.id == "get_ipython"
        ):
            first = node.args[0] if node.args else None
            name = first.value if isinstance(first, ast.Constant) and isinstance(first.value, str) else None
            return node.func.attr, name
    return None, None


def _statements_with_depth(body: list[ast.stmt], depth: int) -> Iterator[tuple[ast.stmt, int]]:
    for stmt in body:
        yield stmt, depth
        for field_name in ("body", "orelse", "finalbody", "handlers", "cases"):
            children = getattr(stmt, field_name, None)
            if isinstance(children, list):
                for child in children:
                    if isinstance(child, ast.stmt):
                        yield from _statements_with_depth([child], depth + 1)
                    elif hasattr(child, "body"):
                        yield from _statements_with_depth(child.body, depth + 1)


def _innermost(statements: list[tuple[ast.stmt, int]], line: int) -> tuple[ast.stmt | None, int]:
    best: tuple[ast.stmt | None, int] = (None, 0)
    for stmt, depth in statements:
        if stmt.lineno <= line <= (stmt.end_lineno or stmt.lineno):
            if best[0] is None or (stmt.end_lineno - stmt.lineno) <= (best[0].end_lineno - best[0].lineno):
                best = (stmt, depth)
    return best


def parse(number: int, code: str, line_offset: int = 0) -> ast.Module:
    try:
        return ast.parse(code)
    except SyntaxError as exc:
        line = (exc.lineno or 0) + line_offset
        raise CellError(number, f"syntax error on line {line}: {exc.msg}") from None


def _try_parse(code: str) -> ast.Module | None:
    try:
        return ast.parse(code)
    except SyntaxError:
        return None


def parse_dropped(source: str) -> ast.Module | None:
    """Best-effort parse of a dropped cell, only to learn which names it defines."""
    magic = cell_magic(source)
    if magic is not None:
        source = magic[2] if magic[0] in _PYTHON_BODY_CELL_MAGICS or magic[0] == SKIP_CELL_MAGIC else ""
    try:
        return _try_parse(ipython_to_python(source))
    except Exception:  # IPython's transformer raises on some malformed input
        return None


def bound_names(tree: ast.Module | None) -> set[str]:
    if tree is None:
        return set()
    return {event.name for event in name_events(tree) if event.kind == "bind"}


def name_events(tree: ast.Module) -> list[NameEvent]:
    flow = _Flow()
    flow.block(tree.body)
    return flow.events


class _Flow:
    """Walks module-level code in execution order, recording reads and bindings."""

    def __init__(self) -> None:
        self.events: list[NameEvent] = []

    def add(self, kind: str, name: str, node: ast.AST) -> None:
        self.events.append(NameEvent(kind, name, getattr(node, "lineno", 0)))

    def block(self, stmts: Iterable[ast.stmt]) -> None:
        for stmt in stmts:
            self.stmt(stmt)

    def stmt(self, s: ast.stmt) -> None:
        if isinstance(s, ast.Assign):
            self.expr(s.value)
            for target in s.targets:
                self.target(target)
        elif isinstance(s, ast.AugAssign):
            if isinstance(s.target, ast.Name):
                self.add("read", s.target.id, s.target)
            self.expr(s.value)
            self.target(s.target)
        elif isinstance(s, ast.AnnAssign):
            if s.value is not None:
                self.expr(s.value)
                self.target(s.target)
            elif not isinstance(s.target, ast.Name):
                self.expr(s.target)
        elif isinstance(s, (ast.For, ast.AsyncFor)):
            self.expr(s.iter)
            self.target(s.target)
            self.block(s.body)
            self.block(s.orelse)
        elif isinstance(s, (ast.While, ast.If)):
            self.expr(s.test)
            self.block(s.body)
            self.block(s.orelse)
        elif isinstance(s, (ast.With, ast.AsyncWith)):
            for item in s.items:
                self.expr(item.context_expr)
                if item.optional_vars is not None:
                    self.target(item.optional_vars)
            self.block(s.body)
        elif isinstance(s, (ast.Try, getattr(ast, "TryStar", ast.Try))):
            self.block(s.body)
            for handler in s.handlers:
                if handler.type is not None:
                    self.expr(handler.type)
                if handler.name:
                    self.add("bind", handler.name, handler)
                self.block(handler.body)
            self.block(s.orelse)
            self.block(s.finalbody)
        elif isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in [*s.decorator_list, *s.args.defaults, *(d for d in s.args.kw_defaults if d)]:
                self.expr(node)
            self.add("bind", s.name, s)
            self.deferred(s)
        elif isinstance(s, ast.ClassDef):
            for node in [*s.decorator_list, *s.bases, *(k.value for k in s.keywords)]:
                self.expr(node)
            self.add("bind", s.name, s)
            self.deferred(s)
        elif isinstance(s, ast.Import):
            for alias in s.names:
                self.add("bind", alias.asname or alias.name.split(".")[0], s)
        elif isinstance(s, ast.ImportFrom):
            for alias in s.names:
                self.add("star" if alias.name == "*" else "bind", alias.asname or alias.name, s)
        elif isinstance(s, ast.Match):
            self.expr(s.subject)
            for case in s.cases:
                for node in ast.walk(case.pattern):
                    if isinstance(node, ast.MatchValue):
                        self.expr(node.value)
                    for attr in ("name", "rest"):
                        bound = getattr(node, attr, None)
                        if isinstance(bound, str):
                            self.add("bind", bound, case.pattern)
                if case.guard is not None:
                    self.expr(case.guard)
                self.block(case.body)
        elif isinstance(s, (ast.Global, ast.Nonlocal, ast.Pass, ast.Break, ast.Continue)):
            return
        elif isinstance(s, ast.Delete):
            for target in s.targets:
                if not isinstance(target, ast.Name):
                    self.expr(target)
        else:
            for child in ast.iter_child_nodes(s):
                self.expr(child)

    def target(self, t: ast.AST) -> None:
        if isinstance(t, ast.Name):
            self.add("bind", t.id, t)
        elif isinstance(t, (ast.Tuple, ast.List)):
            for element in t.elts:
                self.target(element)
        elif isinstance(t, ast.Starred):
            self.target(t.value)
        else:
            self.expr(t)

    def expr(self, e: ast.AST) -> None:
        if isinstance(e, ast.Name):
            self.add("read" if isinstance(e.ctx, ast.Load) else "bind", e.id, e)
        elif isinstance(e, ast.NamedExpr):
            self.expr(e.value)
            self.add("bind", e.target.id, e.target)
        elif isinstance(e, ast.Lambda):
            for node in [*e.args.defaults, *(d for d in e.args.kw_defaults if d)]:
                self.expr(node)
            self.deferred(e)
        elif isinstance(e, (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)):
            self.expr(e.generators[0].iter)
            local = {n.id for gen in e.generators for n in ast.walk(gen.target) if isinstance(n, ast.Name)}
            inner: list[ast.AST] = [gen.iter for gen in e.generators[1:]]
            inner += [cond for gen in e.generators for cond in gen.ifs]
            inner += [e.key, e.value] if isinstance(e, ast.DictComp) else [e.elt]
            for node in inner:
                for name in _loads(node):
                    if name.id not in local:
                        self.add("read", name.id, name)
        else:
            for child in ast.iter_child_nodes(e):
                self.expr(child)

    def deferred(self, scope: ast.AST) -> None:
        """Names a function, lambda or class body reads from module scope when it runs."""
        local: set[str] = set()
        declared_global: set[str] = set()
        loads: list[ast.Name] = []
        for node in ast.walk(scope):
            if node is scope:
                continue
            if isinstance(node, ast.Name):
                (loads.append(node) if isinstance(node.ctx, ast.Load) else local.add(node.id))
            elif isinstance(node, ast.arg):
                local.add(node.arg)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                local.add(node.name)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                local.update(a.asname or a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ExceptHandler) and node.name:
                local.add(node.name)
            elif isinstance(node, ast.Global):
                declared_global.update(node.names)
        if isinstance(scope, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            local.update(a.arg for a in [*scope.args.posonlyargs, *scope.args.args, *scope.args.kwonlyargs])
            local.update(a.arg for a in (scope.args.vararg, scope.args.kwarg) if a)
        local -= declared_global
        for name in loads:
            if name.id not in local:
                self.add("deferred", name.id, name)


def _loads(node: ast.AST) -> Iterator[ast.Name]:
    for child in ast.walk(node):
        if isinstance(child, ast.Name) and isinstance(child.ctx, ast.Load):
            yield child


def check_interactive_names(
    cells: list[CodeCell], dropped: list[DroppedCode], predefined: Iterable[str]
) -> None:
    """Refuse a kept cell that reads a name only dropped code (or IPython's history) defines."""
    defined = set(predefined)
    all_defined = set(defined)
    for cell in cells:
        all_defined.update(e.name for e in cell.events if e.kind == "bind")
    origin: dict[str, str] = {}
    for code in dropped:
        for name in sorted(code.binds):
            origin.setdefault(name, code.description)
    star = False
    deferred: list[tuple[CodeCell, NameEvent]] = []
    for cell in cells:
        for event in cell.events:
            if event.kind == "bind":
                defined.add(event.name)
            elif event.kind == "star":
                star = True
            elif event.kind == "deferred":
                deferred.append((cell, event))
            elif event.name not in defined and not star:
                _refuse_if_interactive(cell, event, origin)
    if star:
        return
    for cell, event in deferred:
        if event.name not in all_defined:
            _refuse_if_interactive(cell, event, origin)


def _refuse_if_interactive(cell: CodeCell, event: NameEvent, origin: dict[str, str]) -> None:
    name = event.name
    if name in origin:
        where = origin[name]
    elif _HISTORY_NAME.match(name) and name not in _BUILTINS:
        where = "IPython's input/output history, which exists only in an interactive session"
    else:
        return
    line = event.line + cell.line_offset
    raise CellError(
        cell.number,
        f"line {line} reads {name!r}, an interactive-only name: it is defined only in {where}; "
        "define it in a kept cell or make it a parameter",
    )


def constructs_interactive_context(tree: ast.AST) -> bool:
    """True when the code calls ``InteractiveContext(...)`` (by name, alias or attribute)."""
    aliases = {"InteractiveContext"}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            aliases.update(a.asname for a in node.names if a.name == "InteractiveContext" and a.asname)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id in aliases:
                return True
            if isinstance(func, ast.Attribute) and func.attr == "InteractiveContext":
                return True
    return False
