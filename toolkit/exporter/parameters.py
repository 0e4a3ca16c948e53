"""Notebook parameters: their declaration in a ``parameters`` cell, their types, and
the conversion of one supplied value.

A parameter is a top-level assignment of a literal in the notebook's ``parameters``
cell, optionally annotated (``epochs: int = 5``) and optionally followed by a
comment that becomes its help text. Only ``ast`` is used: nothing is executed, and
values are read with :func:`ast.literal_eval` on the literal node alone. Both the
exporter (which writes the cell) and :mod:`toolkit.exporter.inspection` (which reads
it back for a run) declare parameters through :func:`parameters_in_cell`.
"""
from __future__ import annotations

import ast
import io
import json
import keyword
import math
import tokenize
from dataclasses import dataclass, replace
from typing import Any

from toolkit._text import one_line, shorten
from toolkit.errors import CellError, DeclarationError, ParameterError
from toolkit.exporter import analysis

TYPES: dict[str, type] = {"str": str, "int": int, "float": float, "bool": bool, "list": list, "dict": dict}
_ALIASES = {"List": "list", "Dict": "dict"}
_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})
_NULL = frozenset({"none", "null"})


@dataclass(frozen=True)
class NotebookParameter:
    """One parameter of a notebook, as its parameters cell or its params file declares it.

    Named apart from :class:`toolkit.base_component.ExecutionParameter` (a
    component's parameter) and :class:`toolkit.custom.Parameter` (the annotation
    for custom components): this one is a value a pipeline run takes.

    ``required`` parameters have no default (a bare annotation such as
    ``data_root: str``); ``nullable`` ones accept ``None`` (``Optional[str]``).
    """

    name: str
    type: str
    default: Any = None
    help: str = ""
    required: bool = False
    nullable: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.isidentifier() or keyword.iskeyword(self.name):
            raise ParameterError(f"{self.name!r} is not a valid parameter name")
        if self.type not in TYPES:
            raise ParameterError(f"parameter {self.name!r} has unsupported type {self.type!r}")

    @property
    def annotation(self) -> str:
        return f"Optional[{self.type}]" if self.nullable else self.type

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "nullable": self.nullable,
            "required": self.required,
            "default": self.default,
            "help": self.help,
        }

    @classmethod
    def from_dict(cls, data: Any) -> "NotebookParameter":
        if not isinstance(data, dict) or "name" not in data or "type" not in data:
            raise ParameterError(f"a parameter entry needs 'name' and 'type', got {data!r}")
        param = cls(
            name=data["name"],
            type=data["type"],
            help=str(data.get("help") or ""),
            required=bool(data.get("required", False)),
            nullable=bool(data.get("nullable", False)),
        )
        if param.required:
            return param
        return replace(param, default=check_value(param, data.get("default")))


def is_plain_data(value: Any) -> bool:
    """True for JSON-like data: str, int, float (finite), bool, None, lists and str-keyed dicts."""
    if value is None or isinstance(value, (str, bool, int)):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(is_plain_data(item) for item in value)
    if isinstance(value, dict):
        return all(isinstance(key, str) and is_plain_data(item) for key, item in value.items())
    return False


def type_name(value: Any) -> str:
    if value is None:
        return "None"
    for name, kind in TYPES.items():
        if type(value) is kind:
            return name
    return type(value).__name__


def check_value(param: NotebookParameter, value: Any) -> Any:
    """Validate a typed value (from Python or a YAML/JSON file) and return it in canonical form."""
    if value is None:
        if param.nullable:
            return None
        raise ParameterError(f"parameter {param.name!r} expects {param.type}, got None")
    if param.type == "float" and type(value) is int:
        value = float(value)
    if type(value) is not TYPES[param.type]:
        raise ParameterError(
            f"parameter {param.name!r} expects {param.type}, got {type_name(value)} {value!r}"
        )
    if not is_plain_data(value):
        raise ParameterError(
            f"parameter {param.name!r}: {value!r} holds values other than str, int, finite float, "
            "bool, None, lists and dicts with string keys"
        )
    return value


def parse_text(param: NotebookParameter, text: str) -> Any:
    """Convert a command-line string by the parameter's declared type (never by guessing).

    ``str`` keeps the text verbatim; ``bool`` accepts true/false/1/0/yes/no; ``list``
    and ``dict`` accept JSON or a Python literal (read by :func:`ast.literal_eval`).
    ``none``/``null`` stands for None only for nullable non-string parameters.
    """
    if param.type == "str":
        return text
    stripped = text.strip()
    if param.nullable and stripped.lower() in _NULL:
        return None
    fail = ParameterError(f"parameter {param.name!r} expects {_expects(param)}, got {text!r}")
    if param.type == "bool":
        lowered = stripped.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise fail
    if param.type == "int":
        digits = stripped[1:] if stripped[:1] in "+-" else stripped
        if not digits.isdigit() or not digits.isascii():
            raise fail
        return int(stripped)
    if param.type == "float":
        try:
            return float(stripped)
        except ValueError:
            raise fail from None
    value = _parse_container(stripped)
    if type(value) is not TYPES[param.type]:
        raise fail
    return check_value(param, value)


def _expects(param: NotebookParameter) -> str:
    hint = {"bool": "bool (true/false/1/0/yes/no)", "list": "list (JSON or Python literal)",
            "dict": "dict (JSON or Python literal)"}.get(param.type, param.type)
    return f"{hint} or none" if param.nullable else hint


def _parse_container(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None


def comments_by_line(code: str) -> dict[int, str]:
    """Map line number -> text of the comment on that line (without ``#``), as one printable line."""
    found: dict[int, str] = {}
    try:
        for tok in tokenize.generate_tokens(io.StringIO(code).readline):
            if tok.type == tokenize.COMMENT:
                found[tok.start[0]] = one_line(tok.string.lstrip("#")).strip()
    except (tokenize.TokenError, SyntaxError):
        pass
    return found


def declaration_name(stmt: ast.stmt) -> str | None:
    """The name a statement declares if it is a plain (optionally annotated) single-name assignment."""
    if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
        return stmt.targets[0].id
    if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.simple:
        return stmt.target.id
    return None


def parameter_from_statement(stmt: ast.stmt, comments: dict[int, str]) -> NotebookParameter:
    """Build a :class:`NotebookParameter` from one assignment.

    Raises :class:`~toolkit.errors.DeclarationError` with the reason.
    """
    name = declaration_name(stmt)
    if name is None:
        raise DeclarationError(
            "only assignments of literal values to single names are allowed here (e.g. `epochs: int = 5`)"
        )
    annotation = stmt.annotation if isinstance(stmt, ast.AnnAssign) else None
    declared, nullable = _annotation_type(annotation, name) if annotation is not None else (None, False)
    help_text = comments.get(stmt.end_lineno or stmt.lineno) or comments.get(stmt.lineno, "")
    if stmt.value is None:
        if declared is None:
            raise DeclarationError(f"parameter {name!r} has neither a type nor a default")
        return NotebookParameter(name, declared, None, help_text, required=True, nullable=nullable)
    default = _literal(stmt.value, name)
    if default is None:
        if declared is None:
            raise DeclarationError(
                f"parameter {name!r} defaults to None without a type; annotate it, "
                f"e.g. `{name}: Optional[str] = None`"
            )
        return NotebookParameter(name, declared, None, help_text, nullable=True)
    found = type_name(default)
    if declared is None:
        return NotebookParameter(name, found, default, help_text)
    if declared == "float" and found == "int":
        default = float(default)
    elif declared != found:
        raise DeclarationError(f"parameter {name!r} is annotated {declared} but its default is {found}")
    return NotebookParameter(name, declared, default, help_text, nullable=nullable)


def _literal(node: ast.expr, name: str) -> Any:
    try:
        value = ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        raise DeclarationError(
            f"parameter {name!r} is not a literal ({_snippet(node)}); a parameter's default must be "
            "a str, int, float, bool, list or dict literal, or None"
        ) from None
    if type_name(value) not in TYPES and value is not None:
        raise DeclarationError(
            f"parameter {name!r} is a {type(value).__name__}; use a str, int, float, bool, list or dict"
        )
    if not is_plain_data(value):
        raise DeclarationError(
            f"parameter {name!r} holds values other than str, int, finite float, bool, None, "
            "lists and dicts with string keys"
        )
    return value


def _snippet(node: ast.AST, limit: int = 60) -> str:
    return shorten(ast.unparse(node), limit)


def _annotation_type(node: ast.expr, name: str) -> tuple[str, bool]:
    """(type name, nullable) for an annotation such as ``int``, ``Optional[str]`` or ``list[int] | None``."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        try:
            node = ast.parse(node.value, mode="eval").body
        except SyntaxError:
            raise DeclarationError(
                f"parameter {name!r} has an unreadable annotation {node.value!r}"
            ) from None
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        parts = [node.left, node.right]
        rest = [part for part in parts if not _is_none(part)]
        if len(rest) == 1 and len(parts) == 2:
            return _annotation_type(rest[0], name)[0], True
    if isinstance(node, ast.Subscript):
        head = _dotted_tail(node.value)
        if head == "Optional":
            return _annotation_type(node.slice, name)[0], True
        if head == "Union" and isinstance(node.slice, ast.Tuple):
            rest = [part for part in node.slice.elts if not _is_none(part)]
            if len(rest) == 1 and len(node.slice.elts) == 2:
                return _annotation_type(rest[0], name)[0], True
        if head in ("list", "dict", "List", "Dict"):
            return _ALIASES.get(head, head), False
    head = _dotted_tail(node)
    if head in TYPES or head in _ALIASES:
        return _ALIASES.get(head, head), False
    raise DeclarationError(
        f"parameter {name!r} has unsupported annotation `{_snippet(node)}`; use str, int, float, bool, "
        "list, dict, or Optional[...] of one of them"
    )


def _is_none(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and node.value is None


def _dotted_tail(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def parameters_in_cell(number: int, text: str) -> list[NotebookParameter]:
    """The parameters a ``parameters`` cell declares, one per top-level assignment.

    Raises :class:`~toolkit.errors.CellError` (naming the line) for anything but
    annotated literal assignments, and for a name assigned twice.
    """
    code = analysis.python_lines(number, text)
    tree = analysis.parse(number, code)
    comments = comments_by_line(code)
    parameters: list[NotebookParameter] = []
    for stmt in tree.body:
        try:
            param = parameter_from_statement(stmt, comments)
        except DeclarationError as exc:
            raise CellError(number, f"line {stmt.lineno}: {exc}") from None
        if any(p.name == param.name for p in parameters):
            raise CellError(number, f"line {stmt.lineno}: parameter {param.name!r} is assigned twice")
        parameters.append(param)
    return parameters
