"""``tfx.orchestration``: only ``metadata`` (connection configs for ``InteractiveContext``).

Runners are not provided: components run in the notebook through
``toolkit.InteractiveContext``, and ``toolkit export`` makes the notebook a pipeline
that papermill or ``toolkit run`` executes.
"""
from __future__ import annotations

from typing import Any

from toolkit.v1.orchestration import metadata

__all__ = ["metadata"]

NOT_PROVIDED = {
    "LocalDagRunner": "run components with toolkit.InteractiveContext; `toolkit export` and "
                      "`toolkit run` run the notebook as a pipeline",
    "experimental": "export to Kubeflow Pipelines with `toolkit export`",
}


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    from toolkit.v1._names import missing

    missing(__name__, name, __all__, NOT_PROVIDED.get(name))
