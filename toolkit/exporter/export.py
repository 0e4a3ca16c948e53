"""Turn a finished notebook into ``export/<name>.ipynb`` plus ``export/<name>.params.yaml``."""
from __future__ import annotations

import json
import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Sequence

from toolkit.errors import CellError, DeclarationError, ExportError
from toolkit.exporter import analysis
from toolkit.exporter.analysis import PARAMETERS_TAG, SKIP_CELL_MAGIC, SKIP_TAG, CodeCell, DroppedCode, Note
from toolkit.exporter.notebook import (
    cell_source,
    cell_tags,
    display_path,
    dumps_notebook,
    project_root,
    read_notebook,
    recorded_metadata,
    source_sha256,
    write_atomic,
)
from toolkit.exporter.parameters import (
    NotebookParameter,
    comments_by_line,
    declaration_name,
    parameter_from_statement,
    parameters_in_cell,
)
from toolkit.exporter.rewrite import (
    PRODUCTION_SOURCE,
    PRODUCTION_TAG,
    ExportInfo,
    KeptCell,
    build_notebook,
    has_control_characters,
    parameters_source,
)
from toolkit.exporter.params_file import params_file_path, render_params_file

if TYPE_CHECKING:
    from toolkit.exporter.kfp import KfpExportResult


@dataclass
class ExportResult:
    """What an export wrote (or would write): paths, parameters and the notes on dropped code."""

    notebook: Path
    params_file: Path
    source: str
    source_sha256: str
    parameters: list[NotebookParameter]
    notes: list[str]
    changed: bool = True
    notebook_text: str = field(default="", repr=False)
    params_file_text: str = field(default="", repr=False)
    #: the source notebook's cell number of each exported cell (None for generated cells),
    #: so that targets derived from the exported notebook name the cells the user knows
    source_cells: list[int | None] = field(default_factory=list, repr=False)
    parameters_cell: int | None = None

    def __str__(self) -> str:
        count = len(self.parameters)
        lines = [f"exported {self.source} -> {self.notebook} ({count} parameters; {self.params_file})"]
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines)

    def _repr_pretty_(self, printer, cycle) -> None:
        printer.text(str(self))


@dataclass
class CheckResult:
    """Whether an existing export matches what exporting the notebook now would produce.

    ``command`` is the ``toolkit export`` command line that brings a stale export
    up to date (same output folder, same lifted parameters).
    """

    notebook: Path
    stale: bool
    reasons: list[str]
    command: str = ""

    def __bool__(self) -> bool:
        return not self.stale

    def __str__(self) -> str:
        if not self.stale:
            return f"{self.notebook} is up to date"
        fix = f"; re-export with `{self.command}`" if self.command else ""
        return f"{self.notebook} is stale: " + "; ".join(self.reasons) + fix


def export_notebook(
    path: str | Path, output_dir: str | Path = "export", params: Iterable[str] = ()
) -> ExportResult:
    """Export a notebook to a parameterized pipeline notebook and its parameters file.

    Static analysis only: the notebook's code is parsed, never run. ``params`` names
    top-level literal assignments to move into the parameters cell. Raises
    :class:`toolkit.errors.ExportError` naming the cell and the reason when the
    notebook cannot be exported. Writing is skipped when the files are unchanged.
    """
    result = build_export(Path(path), Path(output_dir), params)
    wrote_notebook = write_atomic(result.notebook, result.notebook_text)
    wrote_params_file = write_atomic(result.params_file, result.params_file_text)
    result.changed = wrote_notebook or wrote_params_file
    return result


def export_kfp(
    path: str | Path, output_dir: str | Path = "export", params: Iterable[str] = (),
    resources: Iterable[str] = (), image: str | None = None,
    secrets: Iterable[str] = (), volumes: Iterable[str] = (),
) -> "KfpExportResult":
    """Export ``path`` (see :func:`export_notebook`) and compile ``<name>.kfp.yaml`` beside it:
    a Kubeflow Pipelines pipeline with one task per component (:mod:`toolkit.exporter.kfp`).

    ``resources`` are ``COMPONENT=key:value,...`` strings (cpu, memory, accelerator,
    accelerator_count, retries, timeout, cache); ``image`` the image the tasks run in;
    ``secrets`` (``NAME=KEY[:VARIABLE],...``) and ``volumes`` (``CLAIM:/path``) what every
    task gets from Kubernetes.
    """
    from toolkit.exporter.kfp import DEFAULT_IMAGE, write_kfp
    from toolkit.exporter.kfp_platform import Platform

    return write_kfp(export_notebook(path, output_dir, params), resources, image or DEFAULT_IMAGE,
                     Platform.parse(secrets, volumes))


def check_export(
    path: str | Path, output_dir: str | Path = "export", params: Iterable[str] | None = None
) -> CheckResult:
    """Compare ``output_dir/<name>.ipynb`` (and its parameters file) with a fresh export.

    With ``params=None`` the parameters lifted by the previous export (recorded in
    its metadata) are lifted again.
    """
    path, output_dir = Path(path), Path(output_dir)
    target = output_dir / _export_name(path)
    existing = _read_text(target)
    recorded = recorded_metadata(existing)
    params = _recorded_lifted(recorded) if params is None else list(dict.fromkeys(params))
    fresh = build_export(path, output_dir, params)
    reasons = []
    if existing is None:
        reasons.append("it does not exist")
    else:
        old_hash = _recorded_hash(recorded)
        if old_hash != fresh.source_sha256:
            reasons.append(
                f"{fresh.source} changed since it was exported "
                f"(source sha256 {(old_hash or 'missing')[:12]}, now {fresh.source_sha256[:12]})"
            )
        elif _production_cell(existing) not in (None, PRODUCTION_SOURCE):
            reasons.append(
                "it was written by an older `toolkit export` (its production-mode cell is not "
                "`toolkit.set_mode(\"production\")`)"
            )
        elif existing != fresh.notebook_text:
            reasons.append("its content differs from a fresh export (edited by hand or by another version)")
    params_file_text = _read_text(fresh.params_file)
    if params_file_text != fresh.params_file_text and not reasons:
        reasons.append(f"{fresh.params_file.name} is missing or differs from a fresh export")
    from toolkit.exporter.targets import TARGETS

    # each target's own file beside the export (the KFP pipeline) is checked too, when
    # the notebook is current, with the options it was written with
    target_words: list[str] = []
    notebook_stale = bool(reasons)
    for export_target in TARGETS:
        words = export_target.recorded_options(fresh)
        if words is None:
            continue
        target_words += words
        if not notebook_stale:
            reasons += export_target.check(fresh)
    command = _export_command(path, output_dir, params, target_words)
    return CheckResult(target, bool(reasons), reasons, command)


def _export_command(path: Path, output_dir: Path, params: Sequence[str], extra: Sequence[str] = ()) -> str:
    """The command line that writes the export :func:`check_export` compares against."""
    words = ["toolkit", "export", str(path)]
    if output_dir != Path("export"):
        words += ["-o", str(output_dir)]
    for name in params:
        words += ["--param", name]
    return shlex.join([*words, *extra])


def _production_cell(text: str) -> str | None:
    """The source of an export's production-mode cell, or None when it has none."""
    try:
        cells = json.loads(text).get("cells", [])
        return next(cell_source(c) for c in cells if isinstance(c, dict) and PRODUCTION_TAG in cell_tags(c))
    except (ValueError, AttributeError, TypeError, StopIteration):
        return None


def _export_name(path: Path) -> str:
    return path.name if path.suffix == ".ipynb" else path.name + ".ipynb"


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (FileNotFoundError, UnicodeDecodeError):
        return None


def _recorded_hash(meta: dict) -> str | None:
    value = meta.get("source_sha256")
    return value if isinstance(value, str) else None


def _recorded_lifted(meta: dict) -> list[str]:
    names = meta.get("lifted_parameters", [])
    return [name for name in names if isinstance(name, str)] if isinstance(names, list) else []


def build_export(path: Path, output_dir: Path, params: Iterable[str] = ()) -> ExportResult:
    """Analyse ``path`` and render the export in memory (see :func:`export_notebook`)."""
    base = project_root(path)
    source = display_path(path, base)
    try:
        return _build(path, output_dir, list(dict.fromkeys(params)), base, source)
    except CellError as exc:
        raise ExportError(exc.reason, path=source, cell=exc.cell) from None


def _build(path: Path, output_dir: Path, lift: list[str], base: Path, source: str) -> ExportResult:
    nb = read_notebook(path)
    target = output_dir / _export_name(path)
    params_file = params_file_path(target)
    shown_target = display_path(target, base)
    source_dir = display_path(path.parent, base)
    for shown in (source, shown_target, source_dir):
        if has_control_characters(shown):
            raise CellError(None, f"the path {shown!r} contains control characters")
    walk = _Walk()
    for index, cell in enumerate(nb["cells"]):
        walk.cell(index + 1, cell)
    if walk.parameters_cell is None and not lift:
        raise CellError(
            None,
            "no cell is tagged 'parameters' and no --param was given: tag the cell that assigns the "
            "parameters with 'parameters' (papermill's convention) or pass --param NAME",
        )
    parameters = list(walk.parameters)
    for lifted in _lift(walk, lift, {p.name for p in parameters}):
        parameters.append(lifted)
    # Required parameters (bare annotations) first: papermill's parameter inspector
    # reads a bare annotation as the continuation of the assignment above it.
    parameters.sort(key=lambda p: not p.required)
    _check_order(walk, parameters)
    _check_context(walk)
    analysis.check_interactive_names(walk.code_cells(), walk.dropped, [p.name for p in parameters])
    _check_round_trip(parameters)
    info = ExportInfo(
        source=source,
        source_sha256=source_sha256(nb),
        notebook=shown_target,
        params_file=display_path(params_file, base),
        parameters=parameters,
        notes=[str(note) for note in sorted(walk.notes, key=lambda n: n.cell)],
        lifted=[p.name for p in parameters if p.name in lift],
        source_dir=source_dir,
        working_directory=Path(os.path.relpath(path.resolve().parent, target.resolve().parent)).as_posix(),
    )
    notebook_text = dumps_notebook(build_notebook(info, walk.kept))
    params_file_text = render_params_file(
        parameters, notebook=target.name, source=source, source_sha256=info.source_sha256
    )
    return ExportResult(
        notebook=target,
        params_file=params_file,
        source=source,
        source_sha256=info.source_sha256,
        parameters=parameters,
        notes=list(info.notes),
        notebook_text=notebook_text,
        params_file_text=params_file_text,
        source_cells=[None, walk.parameters_cell, None] + [cell.number for cell in walk.kept],
        parameters_cell=walk.parameters_cell,
    )


class _Walk:
    """Sorts the source cells into the parameters cell, kept cells and dropped code."""

    def __init__(self) -> None:
        self.kept: list[KeptCell] = []
        self.code: dict[int, CodeCell] = {}
        self.dropped: list[DroppedCode] = []
        self.notes: list[Note] = []
        self.parameters: list[NotebookParameter] = []
        self.parameters_cell: int | None = None

    def code_cells(self) -> list[CodeCell]:
        return [self.code[cell.number] for cell in self.kept if cell.number in self.code]

    def cell(self, number: int, cell: dict) -> None:
        kind = cell.get("cell_type")
        tags = cell_tags(cell)
        text = cell_source(cell)
        magic = analysis.cell_magic(text) if kind == "code" else None
        if SKIP_TAG in tags or (magic is not None and magic[0] == SKIP_CELL_MAGIC):
            if PARAMETERS_TAG in tags:
                raise CellError(number, "the parameters cell is also marked to be skipped")
            how = "tagged skip-export" if SKIP_TAG in tags else "%%skip_for_export"
            self._drop(number, text if kind == "code" else "", how)
            return
        if kind != "code":
            if kind in ("markdown", "raw"):
                attachments = cell.get("attachments") if kind == "markdown" else None
                self.kept.append(KeptCell(number, kind, text, tags, cell.get("id"), attachments))
            return
        if PARAMETERS_TAG in tags:
            self._parameters(number, text)
            return
        code, notes, dropped = analysis.prepare_code_cell(number, text, tags)
        self.notes += notes
        self.dropped += dropped
        if code is not None:
            self.code[number] = code
            self.kept.append(KeptCell(number, "code", code.source, tags, cell.get("id")))

    def _drop(self, number: int, text: str, how: str) -> None:
        tree = analysis.parse_dropped(text) if text else None
        description = f"cell {number}, which export drops ({how})"
        self.dropped.append(DroppedCode(number, description, analysis.bound_names(tree), tree))
        self.notes.append(Note(number, f"dropped the cell ({how})"))

    def _parameters(self, number: int, text: str) -> None:
        if self.parameters_cell is not None:
            raise CellError(
                number, f"cells {self.parameters_cell} and {number} are both tagged 'parameters'; keep one"
            )
        self.parameters_cell = number
        self.parameters.extend(parameters_in_cell(number, text))


def _lift(walk: _Walk, names: Sequence[str], existing: set[str]) -> list[NotebookParameter]:
    """Move top-level literal assignments named by --param into the parameters cell."""
    found: list[tuple[int, int, NotebookParameter]] = []
    for name in names:
        if name in existing:
            continue
        binders = [cell for cell in walk.code_cells() if _binds(cell, name)]
        declarations = [
            (cell, stmt) for cell in binders for stmt in cell.tree.body if declaration_name(stmt) == name
        ]
        if not declarations:
            where = ""
            if binders:
                where = f" (cell {binders[0].number} binds it, but not by a top-level assignment)"
            raise CellError(
                None, f"--param {name}: no top-level assignment of {name!r} in the exported cells{where}"
            )
        binds = sum(_binds(cell, name) for cell in binders)
        cell, stmt = declarations[0]
        if binds > 1:
            cells = ", ".join(str(c.number) for c in binders)
            raise CellError(
                cell.number,
                f"--param {name}: {name!r} is assigned more than once (cells {cells}); "
                "only a name assigned once can become a parameter",
            )
        if cell.line_offset:
            raise CellError(cell.number, f"--param {name}: the assignment is inside a %% cell magic")
        try:
            param = parameter_from_statement(stmt, comments_by_line(cell.code))
        except DeclarationError as exc:
            raise CellError(cell.number, f"--param {name}: line {stmt.lineno}: {exc}") from None
        lines = range(stmt.lineno, (stmt.end_lineno or stmt.lineno) + 1)
        if any(other is not stmt and _overlaps(other, lines) for other in cell.tree.body):
            raise CellError(cell.number, f"--param {name}: put the assignment on a line of its own")
        _remove_lines(walk, cell, lines)
        walk.notes.append(Note(cell.number, f"moved {name!r} into the parameters cell"))
        found.append((cell.number, stmt.lineno, param))
    return [param for _, _, param in sorted(found, key=lambda item: item[:2])]


def _binds(cell: CodeCell, name: str) -> int:
    return sum(1 for event in cell.events if event.kind == "bind" and event.name == name)


def _overlaps(stmt: object, lines: range) -> bool:
    start = getattr(stmt, "lineno", 0)
    end = getattr(stmt, "end_lineno", start) or start
    return start <= lines[-1] and end >= lines[0]


def _remove_lines(walk: _Walk, cell: CodeCell, lines: range) -> None:
    kept_lines = [line for index, line in enumerate(cell.source.split("\n"), 1) if index not in lines]
    text = "\n".join(kept_lines)
    position = next(i for i, kept in enumerate(walk.kept) if kept.number == cell.number)
    if not text.strip():
        del walk.kept[position]
        del walk.code[cell.number]
        walk.notes.append(Note(cell.number, "dropped the cell, empty once its parameter moved"))
        return
    updated = analysis.finish_cell(cell.number, text, cell.tags)
    walk.code[cell.number] = updated
    walk.kept[position].source = updated.source


def _check_order(walk: _Walk, parameters: list[NotebookParameter]) -> None:
    """The export sets parameters first: refuse a cell that assigns one before the parameters cell."""
    if walk.parameters_cell is None:
        return
    names = {p.name for p in parameters}
    for cell in walk.code_cells():
        if cell.number > walk.parameters_cell:
            break
        for event in cell.events:
            if event.kind == "bind" and event.name in names:
                raise CellError(
                    cell.number,
                    f"line {event.line + cell.line_offset} assigns parameter {event.name!r} before the "
                    f"parameters cell (cell {walk.parameters_cell}); the export sets parameters first, "
                    "so this would override the value passed to the run",
                )


def _check_context(walk: _Walk) -> None:
    if any(analysis.constructs_interactive_context(cell.tree) for cell in walk.code_cells()):
        return
    for code in walk.dropped:
        if code.tree is not None and analysis.constructs_interactive_context(code.tree):
            raise CellError(
                code.cell,
                "the only InteractiveContext is constructed in this cell, which export drops; "
                "a pipeline runs its components through `context = InteractiveContext(...)`",
            )
    raise CellError(
        None,
        "no InteractiveContext is constructed; an exported pipeline runs its components through "
        "`context = InteractiveContext(...)` in a kept cell",
    )


def _check_round_trip(parameters: list[NotebookParameter]) -> None:
    """The generated parameters cell must declare exactly ``parameters`` when read back."""
    if parameters_in_cell(0, parameters_source(parameters)) != parameters:
        raise CellError(None, "internal error: the generated parameters cell does not read back the same")
