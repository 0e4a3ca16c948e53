"""The parameters file written beside an exported notebook (``<name>.params.yaml``).

One job: find, write and read the file that lists an export's parameters, so that
``toolkit run`` knows their names, types and defaults without parsing the notebook.
It is produced by :func:`yaml.safe_dump` from plain data only, so nothing a notebook
declares can turn into YAML tags or code. Readers also accept ``.params.json``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from toolkit._text import squeeze
from toolkit.errors import ParameterError
from toolkit.exporter.parameters import NotebookParameter

PARAMS_FILE_FORMAT = 1
PARAMS_FILE_SUFFIXES = (".params.yaml", ".params.yml", ".params.json")
_HEADER = "# Parameters of the sibling exported notebook, written by `toolkit export`.\n"


def notebook_stem(notebook: Path) -> str:
    """A notebook's name without ``.ipynb``."""
    return notebook.name[: -len(".ipynb")] if notebook.name.endswith(".ipynb") else notebook.stem


def params_file_path(notebook: Path) -> Path:
    """Where export writes the parameters file for ``notebook``."""
    return notebook.with_name(notebook_stem(notebook) + PARAMS_FILE_SUFFIXES[0])


def find_params_file(notebook: Path) -> Path | None:
    """The existing parameters file beside ``notebook``, if any."""
    for suffix in PARAMS_FILE_SUFFIXES:
        candidate = notebook.with_name(notebook_stem(notebook) + suffix)
        if candidate.is_file():
            return candidate
    return None


def render_params_file(
    parameters: Sequence[NotebookParameter], *, notebook: str, source: str, source_sha256: str
) -> str:
    """The text of the parameters file for an export of ``source`` to ``notebook``."""
    import yaml

    document = {
        "format": PARAMS_FILE_FORMAT,
        "notebook": notebook,
        "source": source,
        "source_sha256": source_sha256,
        "parameters": [param.to_dict() for param in parameters],
    }
    body = yaml.safe_dump(document, sort_keys=False, allow_unicode=True, default_flow_style=False, width=100)
    return _HEADER + body


def read_params_file(path: Path) -> list[NotebookParameter]:
    """Read a ``.params.yaml``/``.params.json`` file; every entry is validated."""
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix == ".json":
            document = json.loads(text)
        else:
            import yaml

            document = yaml.safe_load(text)
    except Exception as exc:
        raise ParameterError(f"{path}: cannot read the parameters file ({squeeze(str(exc))})") from None
    entries = document.get("parameters") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise ParameterError(f"{path}: expected a mapping with a 'parameters' list")
    try:
        parameters = [NotebookParameter.from_dict(entry) for entry in entries]
    except ParameterError as exc:
        raise ParameterError(f"{path}: {exc}") from None
    names = [param.name for param in parameters]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ParameterError(f"{path}: parameter declared twice: {', '.join(duplicates)}")
    return parameters
