"""The sources a compiled Kubeflow pipeline carries, so that one generic image serves
every export and a task runs the same code whatever its working directory.

At compile time (:func:`carried_sources`) the exported notebook and the files its
components name by content (``module_file``, ``schema_file``: the parameters declared
with ``fingerprint="file"``) are packed into the task constant, compressed, each with its
SHA-256. A file counts when the notebook names it by a string literal, or by a variable a
top-level assignment or the parameters cell binds to one, and the path is relative.
Absolute paths and URIs are not carried: they must resolve where the task runs, as data
does. A path the compiler cannot read from the code is refused in one line, since the
task would otherwise stop later, in a pod, on a missing file.

At run time (:func:`materialize`) a task writes them into a fresh folder laid out as the
notebook's working directory: relative module paths resolve there as they did when the
notebook was exported.
"""
from __future__ import annotations

import ast
import base64
import functools
import hashlib
import os
import posixpath
import zlib
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from toolkit.errors import CellError

@functools.cache
def file_parameters() -> frozenset[str]:
    """Names of component parameters fingerprinted by file content."""
    import toolkit.components
    from toolkit.base_component import BaseComponent

    return frozenset(key for value in vars(toolkit.components).values()
                     if isinstance(value, type) and issubclass(value, BaseComponent)
                     for key, p in value.PARAMETERS.items() if p.fingerprint == "file")


def pack(data: bytes) -> str:
    """Compressed, base64 text: what the YAML carries for one file."""
    return base64.b64encode(zlib.compress(data, 9)).decode("ascii")


def unpack(text: str) -> bytes:
    return zlib.decompress(base64.b64decode(text))


def _entry(data: bytes) -> dict[str, str]:
    """One carried file: its SHA-256 and its packed bytes."""
    return {"sha256": hashlib.sha256(data).hexdigest(), "content": pack(data)}


def named_files(cells: Sequence[str]) -> list[tuple[int, str]]:
    """``(cell number, path)`` of each relative path the code cells pass as a file-content
    parameter; raises :class:`CellError` for a value the compiler cannot resolve."""
    wanted = file_parameters()
    bound: dict[str, Any] = {}
    found: list[tuple[int, str]] = []
    for number, source in enumerate(cells, start=1):
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue  # magics and shell lines: the exporter reports what matters
        for statement in tree.body:
            target, value = _assignment(statement)
            if target is not None:
                bound[target] = value.value if isinstance(value, ast.Constant) else None
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            for keyword in node.keywords:
                if keyword.arg not in wanted:
                    continue
                value = keyword.value
                if isinstance(value, ast.Constant):
                    path = value.value
                elif isinstance(value, ast.Name) and isinstance(bound.get(value.id), str):
                    path = bound[value.id]
                else:
                    raise CellError(number, f"{keyword.arg}= is not a path the pipeline can carry; "
                                            "write it as a string literal, a variable set to one, or "
                                            "a notebook parameter")
                if isinstance(path, str) and _is_relative(path):
                    found.append((number, path))
    return found


def _assignment(statement: ast.stmt) -> tuple[str | None, Any]:
    if isinstance(statement, ast.Assign) and len(statement.targets) == 1 \
            and isinstance(statement.targets[0], ast.Name):
        return statement.targets[0].id, statement.value
    if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name) \
            and statement.value is not None:
        return statement.target.id, statement.value
    return None, None


def _is_relative(path: str) -> bool:
    return "://" not in path and not os.path.isabs(path) and bool(path.strip())


def carried_sources(notebook_text: str, cells: Sequence[str], directory: Path | None) -> dict[str, Any]:
    """The ``sources`` entry of a task constant: the notebook and each file it names,
    read from ``directory`` (the notebook's working directory at export)."""
    files: dict[str, dict[str, str]] = {}
    for number, path in named_files(cells):
        key = posixpath.normpath(path.replace(os.sep, "/"))
        if key in files:
            continue
        location = (directory or Path(".")) / path
        try:
            data = location.read_bytes()
        except OSError as exc:
            raise CellError(number, f"{path}: cannot read it to carry in the pipeline "
                                           f"({exc.strerror or exc}); run the export where the "
                                           "notebook's files are") from None
        files[key] = _entry(data)
    return {"notebook": pack(notebook_text.encode("utf-8")), "files": files}


def matches(sources: Mapping[str, Any], directory: Path | None) -> bool:
    """Whether ``directory`` holds every carried file, byte for byte."""
    from toolkit.publishing import sha256_file

    try:
        return all(sha256_file(str((directory or Path(".")) / path)) == entry["sha256"]
                   for path, entry in (sources.get("files") or {}).items())
    except OSError:
        return False


def packed_files(paths: Iterable[str]) -> dict[str, dict[str, str]]:
    """The ``files`` entry of carried sources for ``paths`` (relative to the working
    directory); absolute paths and URIs are left to resolve where the task runs."""
    return {path: _entry(Path(path).read_bytes()) for path in paths if _is_relative(path)}


def materialize(sources: Mapping[str, Any], folder: Path, name: str | None = None
                ) -> tuple[Path | None, Path]:
    """Write the carried notebook (when there is one, as ``name``) and files under
    ``folder``; returns ``(notebook, working directory)``. Each file is checked against
    its recorded SHA-256."""
    from toolkit.errors import ToolkitError

    files = sources.get("files") or {}
    depth = max((_climbs(path) for path in files), default=0)
    cwd = folder / "src" / Path(*(["w"] * depth)) if depth else folder / "src"
    cwd.mkdir(parents=True, exist_ok=True)
    for path, entry in files.items():
        data = unpack(entry["content"])
        if hashlib.sha256(data).hexdigest() != entry["sha256"]:
            raise ToolkitError(f"{path}: the copy carried by the pipeline is damaged (sha256 "
                               "differs); compile the pipeline again")
        target = (cwd / path).resolve()
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    if name is None or "notebook" not in sources:
        return None, cwd
    notebook = folder / name
    notebook.write_bytes(unpack(sources["notebook"]))
    return notebook, cwd


def _climbs(path: str) -> int:
    """How many folders above its working directory ``path`` reaches (``../m.py``: 1)."""
    depth = lowest = 0
    for part in path.split("/"):
        depth += -1 if part == ".." else (0 if part in ("", ".") else 1)
        lowest = min(lowest, depth)
    return -lowest
