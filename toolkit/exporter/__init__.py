"""Export a finished notebook to a parameterized pipeline notebook that papermill runs.

``export_notebook("notebooks/taxi.ipynb")`` writes ``export/taxi.ipynb`` and
``export/taxi.params.yaml``; ``export_kfp`` also compiles ``export/taxi.kfp.yaml``, a
Kubeflow Pipelines pipeline with one task per component; ``check_export`` reports
whether they are stale. What ``toolkit export --target`` can make is registered in
:mod:`toolkit.exporter.targets`.
What an export declares is read back through :mod:`toolkit.exporter.inspection`.

The names below are imported when first used, so that importing a submodule (the
targets, for ``toolkit --help``; the inspection, for ``toolkit run``) does not import
the exporter's analysis.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from toolkit.errors import ExportError
    from toolkit.exporter.export import (CheckResult, ExportResult, check_export, export_kfp,
                                         export_notebook)
    from toolkit.exporter.parameters import NotebookParameter

__all__ = ["CheckResult", "ExportError", "ExportResult", "NotebookParameter", "check_export", "export_kfp",
           "export_notebook"]

_HOME = {"CheckResult": "toolkit.exporter.export", "ExportResult": "toolkit.exporter.export",
         "check_export": "toolkit.exporter.export", "export_kfp": "toolkit.exporter.export",
         "export_notebook": "toolkit.exporter.export", "ExportError": "toolkit.errors",
         "NotebookParameter": "toolkit.exporter.parameters"}


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
