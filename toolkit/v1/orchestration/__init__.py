"""``tfx.orchestration``: ``LocalDagRunner`` and ``metadata`` (connection configs).

``LocalDagRunner().run(pipeline)`` runs a ``tfx.dsl.Pipeline`` in this process through
the same launcher as ``toolkit.InteractiveContext`` (:mod:`toolkit.pipeline`).
"""
from __future__ import annotations

from typing import Any

from toolkit.pipeline import LocalDagRunner
from toolkit.v1.orchestration import metadata

__all__ = ["LocalDagRunner", "metadata"]

NOT_PROVIDED = {
    "experimental": "export to Kubeflow Pipelines with `toolkit export`",
}


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    from toolkit.v1._names import missing

    missing(__name__, name, __all__, NOT_PROVIDED.get(name))
