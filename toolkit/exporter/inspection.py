"""What a notebook declares, read back for a run: the one entry point runner and CLI use.

The exporter writes a notebook's parameters twice, as the ``parameters`` cell and as
``<name>.params.yaml``; running, ``--help-notebook`` and the run record need them
back, with every supplied value checked against them before a kernel starts. This
module answers those questions from either source, so that callers do not need to
know which exporter module parses cells, reads the params file or converts values.
Nothing here executes notebook code.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping

from toolkit._text import one_line, shorten, squeeze
from toolkit.errors import CellError, ExportError, ParameterError, RunError
from toolkit.exporter.analysis import PARAMETERS_TAG
from toolkit.exporter.notebook import cell_source, cell_tags, read_notebook, recorded_metadata
from toolkit.exporter.parameters import NotebookParameter, check_value, parameters_in_cell, parse_text
from toolkit.exporter.params_file import find_params_file, notebook_stem, read_params_file

__all__ = [
    "NotebookParameter",
    "describe_parameters",
    "notebook_parameters",
    "notebook_stem",
    "read_values_file",
    "resolve_values",
    "run_values",
    "source_directory",
]


def notebook_parameters(notebook: str | Path) -> tuple[list[NotebookParameter], str]:
    """The declared parameters of ``notebook`` and where they were read from.

    Reads the sibling ``<name>.params.yaml`` (or ``.json``) written by export, else
    analyses the notebook's ``parameters`` cell (no code is run either way).
    """
    notebook = Path(notebook)
    if not notebook.is_file():
        raise RunError(f"{notebook}: no such notebook")
    params_file = find_params_file(notebook)
    if params_file is not None:
        return read_params_file(params_file), str(params_file)
    return _parameters_from_cell(notebook), f"the parameters cell of {notebook}"


def _parameters_from_cell(notebook: Path) -> list[NotebookParameter]:
    try:
        nb = read_notebook(notebook)
    except ExportError as exc:
        raise RunError(str(exc)) from None
    for number, cell in enumerate(nb["cells"], 1):
        if cell.get("cell_type") == "code" and PARAMETERS_TAG in cell_tags(cell):
            try:
                return parameters_in_cell(number, cell_source(cell))
            except CellError as exc:
                raise ParameterError(f"{notebook}, cell {number} (parameters): {exc}") from None
    return []


def describe_parameters(notebook: str | Path) -> str:
    """A table of the notebook's parameters (name, type, default, help) for ``--help-notebook``."""
    parameters, origin = notebook_parameters(notebook)
    if not parameters:
        return f"{notebook} declares no parameters ({origin})."
    rows = [("NAME", "TYPE", "DEFAULT", "HELP")]
    for param in parameters:
        default = "(required)" if param.required else shorten(repr(param.default), 40)
        rows.append((param.name, param.annotation, default, param.help))
    rows = [tuple(one_line(str(cell)) for cell in row) for row in rows]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [f"Parameters of {notebook} (from {origin}):"]
    for row in rows:
        padded = [cell.ljust(width) for cell, width in zip(row[:3], widths)]
        lines.append("  " + "  ".join(padded) + "  " + row[3])
    lines.append("Pass them with -p NAME VALUE (converted by type) or -f values.yaml.")
    return "\n".join(line.rstrip() for line in lines)


def resolve_values(
    parameters: Iterable[NotebookParameter],
    values: Mapping[str, Any] | None = None,
    texts: Iterable[tuple[str, str]] = (),
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Validate supplied values against declared ``parameters`` before anything runs.

    ``values`` are typed (Python or a values file); ``texts`` are command-line
    ``(name, text)`` pairs converted by declared type and applied after ``values``.
    Returns ``(overrides, effective)``: the values to inject, and every parameter's
    value for the run record. Raises :class:`ParameterError` on the first problem.
    """
    declared = {param.name: param for param in parameters}
    overrides: dict[str, Any] = {}
    supplied = [(name, value, False) for name, value in (values or {}).items()]
    supplied += [(name, text, True) for name, text in texts]
    for name, value, is_text in supplied:
        param = declared.get(name)
        if param is None:
            known = ", ".join(sorted(declared)) or "none"
            raise ParameterError(f"unknown parameter {name!r}; known parameters: {known}")
        overrides[name] = parse_text(param, value) if is_text else check_value(param, value)
    missing = [p.name for p in declared.values() if p.required and p.name not in overrides]
    if missing:
        described = ", ".join(f"{n} ({declared[n].annotation})" for n in missing)
        raise ParameterError(f"missing required parameter{'s' if len(missing) > 1 else ''}: {described}")
    effective = {name: overrides.get(name, param.default) for name, param in declared.items()}
    return overrides, effective


def read_values_file(path: str | Path) -> dict[str, Any]:
    """Read a values file for ``toolkit run -f`` (YAML or JSON mapping of name to value)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ParameterError(f"{path}: cannot read the parameter file ({exc.strerror})") from None
    try:
        import yaml

        values = yaml.safe_load(text)
    except Exception as exc:
        raise ParameterError(f"{path}: not valid YAML/JSON ({squeeze(str(exc))})") from None
    if values is None:
        return {}
    if not isinstance(values, dict) or not all(isinstance(key, str) for key in values):
        raise ParameterError(f"{path}: expected a mapping of parameter names to values")
    return values


def run_values(
    notebook: str | Path,
    values: Mapping[str, Any] | None = None,
    *,
    values_file: str | Path | None = None,
    texts: Iterable[tuple[str, str]] = (),
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Every value a run of ``notebook`` gets, checked: ``(overrides, effective)``.

    Precedence, lowest first: ``values_file``, ``values``, then the command-line
    ``texts``. See :func:`resolve_values`.
    """
    declared, _ = notebook_parameters(notebook)
    supplied = read_values_file(values_file) if values_file is not None else {}
    supplied.update(values or {})
    return resolve_values(declared, supplied, texts)


def source_directory(notebook: str | Path) -> Path | None:
    """The source notebook's folder recorded by export (relative paths in the code resolve there)."""
    notebook = Path(notebook)
    try:
        meta = recorded_metadata(notebook.read_text(encoding="utf-8"))
        folder = (notebook.parent / meta["working_directory"]).resolve()
    except (ValueError, KeyError, TypeError, OSError):
        return None
    return folder if folder.is_dir() else None
