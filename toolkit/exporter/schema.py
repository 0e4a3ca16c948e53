"""The parameters file written beside an exported notebook (``<name>.params.yaml``).

It is produced by :func:`yaml.safe_dump` from plain data only, so nothing a notebook
declares can turn into YAML tags or code. Readers also accept ``.params.json``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from toolkit._text import squeeze
from toolkit.errors import ParameterError
from toolkit.exporter.parameters import Parameter

SCHEMA_FORMAT = 1
SCHEMA_SUFFIXES = (".params.yaml", ".params.yml", ".params.json")
_HEADER = "# Parameters of the sibling exported notebook, written by `toolkit export`.\n"


def schema_path(notebook: Path) -> Path:
    """Where export writes the parameters file for ``notebook``."""
    return notebook.with_name(notebook_stem(notebook) + SCHEMA_SUFFIXES[0])


def find_schema(notebook: Path) -> Path | None:
    """The existing parameters file beside ``notebook``, if any."""
    for suffix in SCHEMA_SUFFIXES:
        candidate = notebook.with_name(notebook_stem(notebook) + suffix)
        if candidate.is_file():
            return candidate
    return None


def notebook_stem(notebook: Path) -> str:
    """A notebook's name without ``.ipynb``."""
    return notebook.name[: -len(".ipynb")] if notebook.name.endswith(".ipynb") else notebook.stem


def dumps_schema(parameters: Sequence[Parameter], *, notebook: str, source: str, source_sha256: str) -> str:
    import yaml

    document = {
        "format": SCHEMA_FORMAT,
        "notebook": notebook,
        "source": source,
        "source_sha256": source_sha256,
        "parameters": [param.to_dict() for param in parameters],
    }
    body = yaml.safe_dump(document, sort_keys=False, allow_unicode=True, default_flow_style=False, width=100)
    return _HEADER + body


def load_schema(path: Path) -> list[Parameter]:
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
        parameters = [Parameter.from_dict(entry) for entry in entries]
    except ParameterError as exc:
        raise ParameterError(f"{path}: {exc}") from None
    names = [param.name for param in parameters]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ParameterError(f"{path}: parameter declared twice: {', '.join(duplicates)}")
    return parameters


def load_values(path: Path) -> dict[str, Any]:
    """Read a values file for ``toolkit run -f`` (YAML or JSON mapping of name to value)."""
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

