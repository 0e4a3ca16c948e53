"""``tfx.orchestration``: ``LocalDagRunner``, ``metadata`` (connection configs) and
``experimental`` (``KubeflowV2DagRunner``).

``LocalDagRunner().run(pipeline)`` runs a ``tfx.dsl.Pipeline`` in this process through
the same launcher as ``toolkit.InteractiveContext`` (:mod:`toolkit.pipeline`);
``experimental.KubeflowV2DagRunner`` compiles it to a Kubeflow Pipelines file whose tasks
run its components through that launcher.
"""
from __future__ import annotations

from typing import Any

from toolkit.pipeline import LocalDagRunner
from toolkit.v1.orchestration import experimental, metadata

__all__ = ["LocalDagRunner", "experimental", "metadata"]


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    from toolkit.v1._names import missing

    missing(__name__, name, __all__)
