"""Read and write notebook JSON, hash cell sources, and name files relative to the project.

Reading and writing go through :mod:`json` directly (in nbformat's on-disk layout:
sorted keys, one-space indent, sources split into lines) so that exporting does not
pay for importing nbformat and its JSON-schema validator.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from toolkit.errors import ExportError

_PROJECT_MARKERS = (".git", "pyproject.toml", "setup.py", "setup.cfg")


def read_notebook(path: Path) -> dict[str, Any]:
    """Load a notebook as a plain dict in nbformat 4 layout, with a clear error if it is not one."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ExportError("no such notebook", path=str(path)) from None
    except UnicodeDecodeError as exc:
        raise ExportError(f"is not UTF-8 text ({exc.reason})", path=str(path)) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ExportError(
            f"is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); "
            "is it a notebook saved by Jupyter?",
            path=str(path),
        ) from None
    if not isinstance(data, dict) or "nbformat" not in data:
        raise ExportError("is valid JSON but not a Jupyter notebook (no 'nbformat' field)", path=str(path))
    if data.get("nbformat") != 4:
        data = _upgrade(text, path)
    cells = data.get("cells")
    if not isinstance(cells, list) or not all(isinstance(c, dict) for c in cells):
        raise ExportError("is not a Jupyter notebook ('cells' is not a list of cells)", path=str(path))
    return data


def _upgrade(text: str, path: Path) -> dict[str, Any]:
    import nbformat

    try:
        return dict(nbformat.reads(text, as_version=4))
    except Exception as exc:  # nbformat raises several unrelated types for old formats
        raise ExportError(f"cannot be read as an nbformat 4 notebook ({exc})", path=str(path)) from None


def recorded_metadata(text: str | None) -> dict[str, Any]:
    """What export recorded in an exported notebook's ``metadata.toolkit`` (source hash,
    lifted parameters, working directory); empty when ``text`` is not such a notebook."""
    try:
        meta = json.loads(text or "").get("metadata", {}).get("toolkit", {})
    except (ValueError, AttributeError):
        return {}
    return meta if isinstance(meta, dict) else {}


def cell_source(cell: dict[str, Any]) -> str:
    """A cell's source as one string, with Windows line endings normalized."""
    source = cell.get("source", "")
    if isinstance(source, list):
        source = "".join(source)
    return source.replace("\r\n", "\n").replace("\r", "\n")


def cell_tags(cell: dict[str, Any]) -> tuple[str, ...]:
    tags = cell.get("metadata", {}).get("tags", [])
    return tuple(tag for tag in tags if isinstance(tag, str))


def source_sha256(nb: dict[str, Any]) -> str:
    """Hash of what export reads from a notebook: each cell's type, tags and normalized source.

    Outputs, execution counts and other metadata are left out, so running the
    notebook again does not make its export stale.
    """
    canonical = [
        {"cell_type": cell.get("cell_type"), "source": cell_source(cell), "tags": list(cell_tags(cell))}
        for cell in nb["cells"]
    ]
    payload = json.dumps(canonical, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def project_root(path: Path) -> Path:
    """The nearest parent directory that looks like a project root, else the file's own directory."""
    start = path.resolve().parent
    for folder in (start, *start.parents):
        if any((folder / marker).exists() for marker in _PROJECT_MARKERS):
            return folder
    return start


def display_path(path: Path, base: Path) -> str:
    """``path`` relative to ``base`` in POSIX form; independent of the current directory."""
    return Path(os.path.relpath(path.resolve(), base)).as_posix()


def split_lines(text: str) -> list[str]:
    """nbformat's on-disk form of a multi-line string: a list of lines that keep their newline."""
    return text.splitlines(keepends=True)


def dumps_notebook(nb: dict[str, Any]) -> str:
    """Serialize a notebook exactly as nbformat writes it, so output is byte-stable."""
    return json.dumps(nb, sort_keys=True, indent=1, ensure_ascii=False) + "\n"


def write_atomic(path: Path, text: str) -> bool:
    """Write ``text`` to ``path`` through a temporary file; returns False when nothing changed."""
    data = text.encode("utf-8")
    try:
        if path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True
