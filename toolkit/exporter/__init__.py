"""Export a finished notebook to a parameterized pipeline notebook that papermill runs.

``export_notebook("notebooks/taxi.ipynb")`` writes ``export/taxi.ipynb`` and
``export/taxi.params.yaml``; ``export_kfp`` also compiles ``export/taxi.kfp.yaml``, a
Kubeflow Pipelines pipeline with one task per component; ``check_export`` reports
whether they are stale.
What an export declares is read back through :mod:`toolkit.exporter.inspection`.
"""
from __future__ import annotations

from toolkit.errors import ExportError
from toolkit.exporter.export import CheckResult, ExportResult, check_export, export_kfp, export_notebook
from toolkit.exporter.parameters import NotebookParameter

__all__ = ["CheckResult", "ExportError", "ExportResult", "NotebookParameter", "check_export", "export_kfp",
           "export_notebook"]
