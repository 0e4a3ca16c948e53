"""The component graph of an exported notebook, read statically: which components it
runs, in which cell, and which components each one takes its inputs from.

An export target that gives every component a task of its own (Kubeflow Pipelines)
needs this graph before anything runs. It is read from the code with :mod:`ast`:
a component is a top-level ``name = SomeComponent(...)`` (optionally
``.with_id("...")``) that a later top-level ``context.run(name)`` runs, where
``context`` was bound to ``InteractiveContext(...)``; its upstream components are the
run components whose ``.outputs`` its constructor reads (directly, or through a
top-level name bound to such a channel). The id is the one the toolkit gives at run
time: the class name, unless ``.with_id`` names it.

What the analysis cannot resolve is refused with the cell and the reason rather than
guessed: a component built or run inside a loop, a function, a ``with``/``try``
block, or under a condition that is not a literal; a component run twice, or two
with one id; an input taken from something that is not a component the notebook runs
before it.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass, field, replace
from typing import Callable, Iterator

from toolkit.errors import CellError
from toolkit.exporter import analysis

_CONTROL = {
    ast.For: "a `for` loop", ast.AsyncFor: "a `for` loop", ast.While: "a `while` loop",
    ast.If: "an `if` whose condition is not a literal", ast.With: "a `with` block",
    ast.AsyncWith: "a `with` block", ast.Try: "a `try` block", ast.FunctionDef: "a function",
    ast.AsyncFunctionDef: "a function", ast.ClassDef: "a class body", ast.Match: "a `match`",
}


@dataclass(frozen=True)
class ComponentNode:
    """One component the notebook runs: its id, its class (as the code names it), the
    variable naming it, where it runs, the components whose outputs it reads (in run
    order), the gates of earlier cells it waits for besides, and the cell's tags."""

    id: str
    kind: str
    variable: str
    cell: int
    line: int
    upstream: tuple[str, ...]
    tags: tuple[str, ...] = ()
    after: tuple[str, ...] = ()


@dataclass
class ComponentGraph:
    """The components a notebook runs, in run order, with their wiring."""

    nodes: list[ComponentNode] = field(default_factory=list)

    def node(self, component_id: str) -> ComponentNode:
        return next(node for node in self.nodes if node.id == component_id)

    @property
    def ids(self) -> list[str]:
        return [node.id for node in self.nodes]

    def wiring(self) -> set[tuple[str, str]]:
        """``(producer, consumer)`` for every component whose outputs another reads."""
        return {(up, node.id) for node in self.nodes for up in node.upstream}

    def edges(self) -> set[tuple[str, str]]:
        """The wiring, and each wait for a gate of an earlier cell."""
        return self.wiring() | {(gate, node.id) for node in self.nodes for gate in node.after}

    def ancestors(self, component_id: str) -> list[str]:
        """Every component ``component_id`` waits for, directly or not, in run order."""
        found: set[str] = set()
        node = self.node(component_id)
        todo = [*node.upstream, *node.after]
        while todo:
            current = todo.pop()
            if current not in found:
                found.add(current)
                todo.extend([*self.node(current).upstream, *self.node(current).after])
        return [node.id for node in self.nodes if node.id in found]

    def wait_for_gates(self, gates: set[str]) -> "ComponentGraph":
        """The graph where every component also waits for each gate (a component that can
        stop a production run) of an earlier cell, unless it already does through others:
        in the notebook a failing gate stops every later cell, so a task never starts
        before the gates above it passed."""
        graph = ComponentGraph()
        for node in self.nodes:
            graph.nodes.append(node)
            waits = set(graph.ancestors(node.id))
            extra = [gate.id for gate in graph.nodes[:-1]
                     if gate.id in gates and gate.cell < node.cell and gate.id not in waits]
            extra = [gate for gate in extra
                     if not any(gate in graph.ancestors(other) for other in extra if other != gate)]
            graph.nodes[-1] = replace(node, after=tuple(extra))
        return graph


@dataclass
class _Construction:
    component_id: str
    kind: str
    cell: int
    line: int
    refs: list[tuple[str, int]]


class _Reader:
    """Walks the code cells in order, keeping the names that matter to the graph."""

    def __init__(self, shown: Callable[[int], int | None]) -> None:
        self.shown = shown
        self.graph = ComponentGraph()
        self.contexts: set[str] = set()
        self.context_classes = {"InteractiveContext"}
        self.class_names: dict[str, str] = {}
        self.built: dict[str, _Construction] = {}
        self.nested: dict[str, tuple[int, int, str]] = {}
        self.channels: dict[str, str] = {}
        self.run_vars: dict[str, tuple[int, int]] = {}

    # -- cells and statements -------------------------------------------------------
    def cell(self, number: int, source: str, tags: tuple[str, ...]) -> None:
        magic = analysis.cell_magic(source)
        if magic is not None:
            if magic[0] not in ("time", "capture"):
                return
            offset = source[: len(source) - len(magic[2])].count("\n")
            code = analysis.python_lines(number, magic[2], offset)
            tree = analysis.parse(number, code, offset)
        else:
            offset = 0
            tree = analysis.parse(number, analysis.python_lines(number, source))
        self.number, self.offset, self.tags = number, offset, tags
        self.block(tree.body, None)

    def block(self, body: list[ast.stmt], enclosing: str | None) -> None:
        for stmt in body:
            self.stmt(stmt, enclosing)

    def stmt(self, stmt: ast.stmt, enclosing: str | None) -> None:
        if isinstance(stmt, ast.If) and enclosing is None:
            taken = _literal_truth(stmt.test)
            if taken is not None:
                self.block(stmt.body if taken else stmt.orelse, None)
                return
        if isinstance(stmt, ast.ImportFrom):
            for alias in stmt.names:
                local = alias.asname or alias.name
                self.class_names[local] = alias.name
                if alias.name == "InteractiveContext":
                    self.context_classes.add(local)
        kind = next((text for node_type, text in _CONTROL.items() if isinstance(stmt, node_type)), None)
        if kind is not None:
            for child in _child_blocks(stmt):
                self.block(child, enclosing or kind)
            for node in _header_nodes(stmt):
                self.expressions(node, enclosing or kind)
            return
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            self.assign(stmt.targets[0].id, stmt.value, stmt.lineno, enclosing)
        self.expressions(stmt, enclosing)

    def assign(self, name: str, value: ast.expr, line: int, enclosing: str | None) -> None:
        self.channels.pop(name, None)
        if enclosing is not None:
            if isinstance(value, ast.Call):
                self.nested[name] = (self.number, self.where(line), enclosing)
            return
        self.nested.pop(name, None)
        if isinstance(value, ast.Call) and self.callee(value.func) in self.context_classes:
            self.contexts.add(name)
            return
        source = _channel_source(value)
        if source is not None:
            self.channels[name] = source
            return
        construction = self.construction(value, line)
        if construction is not None:
            self.built[name] = construction
        else:
            self.built.pop(name, None)

    def expressions(self, node: ast.AST, enclosing: str | None) -> None:
        for call, inner in _calls(node, enclosing):
            if not (isinstance(call.func, ast.Attribute) and call.func.attr == "run"
                    and isinstance(call.func.value, ast.Name) and call.func.value.id in self.contexts
                    and call.args):
                continue
            line = self.where(call.lineno)
            if inner is not None:
                raise CellError(self.number, f"line {line} runs a component inside {inner}; the "
                                "Kubeflow Pipelines export needs every component built and run once, "
                                "at the top level of a cell")
            self.run(call.args[0], line)

    # -- components ----------------------------------------------------------------------
    def run(self, target: ast.expr, line: int) -> None:
        if isinstance(target, ast.Name):
            name = target.id
            if name in self.nested and name not in self.built:
                cell, where, kind = self.nested[name]
                raise CellError(cell, f"line {where} builds {name!r} inside {kind}; the Kubeflow "
                                "Pipelines export needs every component built once, at the top level "
                                "of a cell")
            construction = self.built.get(name)
            if construction is None:
                raise CellError(self.number, f"line {line} runs {name!r}, which no top-level "
                                "`name = Component(...)` assignment before it builds")
            if name in self.run_vars:
                first_cell, first_line = self.run_vars[name]
                raise CellError(self.number, f"line {line} runs {name!r} again (it first runs in cell "
                                f"{self.shown(first_cell)}, line {first_line}); a pipeline task runs each "
                                "component once")
            self.run_vars[name] = (self.number, line)
        else:
            construction = self.construction(target, line)
            if construction is None:
                raise CellError(self.number, f"line {line} runs `{ast.unparse(target)}`, which the "
                                "export cannot resolve to one component")
            name = ast.unparse(target)
        self.add(name, construction, line)

    def add(self, variable: str, construction: _Construction, line: int) -> None:
        known = {node.id: node for node in self.graph.nodes}
        if construction.component_id in known:
            other = known[construction.component_id]
            raise CellError(self.number, f"line {line} runs a second component with id "
                            f"{construction.component_id!r} (the first runs in cell {self.shown(other.cell)}); give "
                            "one of them its own id with .with_id(\"...\")")
        by_variable = {node.variable: node.id for node in self.graph.nodes}
        upstream: list[str] = []
        for ref, ref_line in construction.refs:
            if ref in by_variable:
                if by_variable[ref] not in upstream:
                    upstream.append(by_variable[ref])
                continue
            if ref in self.built:
                why = f"component {ref!r}, which the notebook does not run before it"
            else:
                why = f"`{ref}.outputs`, which is not a component this notebook runs"
            raise CellError(construction.cell, f"line {ref_line}: an input of {construction.component_id} "
                            f"comes from {why}; every input must come from a component of the "
                            "notebook's graph that runs earlier")
        order = {node.id: index for index, node in enumerate(self.graph.nodes)}
        upstream.sort(key=order.__getitem__)
        self.graph.nodes.append(ComponentNode(construction.component_id, construction.kind, variable,
                                              self.number, line, tuple(upstream), self.tags))

    def construction(self, value: ast.expr, line: int) -> _Construction | None:
        component_id = None
        call = value
        if (isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute)
                and value.func.attr == "with_id" and isinstance(value.func.value, ast.Call)):
            given = value.args[0] if value.args else None
            if not (isinstance(given, ast.Constant) and isinstance(given.value, str)):
                raise CellError(self.number, f"line {self.where(line)}: .with_id(...) needs a string "
                                "literal for the export to know the component's id")
            component_id, call = given.value, value.func.value
        if not isinstance(call, ast.Call):
            return None
        callee = self.callee(call.func)
        if callee is None or not callee[:1].isupper():
            return None
        refs = []
        for node in ast.walk(call):
            source = _outputs_owner(node)
            if source is not None:
                refs.append((source, self.where(node.lineno)))
            elif isinstance(node, ast.Name) and node.id in self.channels:
                refs.append((self.channels[node.id], self.where(node.lineno)))
        return _Construction(component_id or callee, callee, self.number, self.where(line), refs)

    def callee(self, func: ast.expr) -> str | None:
        if isinstance(func, ast.Name):
            return self.class_names.get(func.id, func.id)
        if isinstance(func, ast.Attribute):
            return func.attr
        return None

    def where(self, line: int) -> int:
        return line + self.offset


def _outputs_owner(node: ast.AST) -> str | None:
    """``v`` for an expression ``v.outputs``."""
    if (isinstance(node, ast.Attribute) and node.attr == "outputs"
            and isinstance(node.value, ast.Name)):
        return node.value.id
    return None


def _channel_source(value: ast.expr) -> str | None:
    """``v`` when ``value`` is ``v.outputs[...]`` (a channel bound to a name)."""
    if isinstance(value, ast.Subscript):
        return _outputs_owner(value.value)
    return None


def _calls(node: ast.AST, inside: str | None) -> Iterator[tuple[ast.Call, str | None]]:
    """Every call in ``node``, with what encloses it (a comprehension or lambda runs its
    body any number of times, like a loop)."""
    if isinstance(node, (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)):
        inside = inside or "a comprehension"
    elif isinstance(node, ast.Lambda):
        inside = inside or "a lambda"
    if isinstance(node, ast.Call):
        yield node, inside
    for child in ast.iter_child_nodes(node):
        yield from _calls(child, inside)


def _literal_truth(test: ast.expr) -> bool | None:
    try:
        return bool(ast.literal_eval(test))
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None


def _child_blocks(stmt: ast.stmt) -> list[list[ast.stmt]]:
    blocks = [getattr(stmt, name) for name in ("body", "orelse", "finalbody")
              if isinstance(getattr(stmt, name, None), list)]
    blocks += [handler.body for handler in getattr(stmt, "handlers", [])]
    blocks += [case.body for case in getattr(stmt, "cases", [])]
    return blocks


def _header_nodes(stmt: ast.stmt) -> list[ast.AST]:
    """The parts of a compound statement outside its blocks (a loop's iterable, a test)."""
    names = ("iter", "test", "items", "subject", "decorator_list", "bases")
    nodes: list[ast.AST] = []
    for name in names:
        value = getattr(stmt, name, None)
        if isinstance(value, list):
            nodes.extend(v for v in value if isinstance(v, ast.AST))
        elif isinstance(value, ast.AST):
            nodes.append(value)
    return nodes


def component_graph(cells: list[tuple[int, str, tuple[str, ...]]],
                    shown: Callable[[int], int | None] = lambda number: number) -> ComponentGraph:
    """The graph of the components that ``cells`` (``(number, source, tags)`` of the code
    cells, in order) run. Raises :class:`~toolkit.errors.CellError` naming the cell and
    the reason when the graph cannot be read without running the code; ``shown`` maps a
    cell's number to the one a message names (the source notebook's)."""
    reader = _Reader(shown)
    for number, source, tags in cells:
        reader.cell(number, source, tags)
    return reader.graph
