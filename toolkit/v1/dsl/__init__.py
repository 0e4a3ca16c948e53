"""``tfx.dsl``: the nodes and channels of TFX's DSL that a notebook pipeline uses.

``Resolver`` and ``Importer`` run through ``context.run`` like components; their
outputs are artifacts that already exist (see :mod:`toolkit.components.resolver`).
``Channel(type=Model)`` is the toolkit's channel: for a Resolver it stands for every
artifact of that type in the pipeline. ``Pipeline`` is :class:`toolkit.pipeline.Pipeline`
(components ordered by their wiring, run by ``tfx.orchestration.LocalDagRunner``).
``Cond``, ``ExecutionMode``, ``io`` and ``placeholders`` are not provided.
"""
from __future__ import annotations

from typing import Any

from toolkit.artifacts import Artifact
from toolkit.base_component import Channel
from toolkit.components.resolver import Importer, Resolver
from toolkit.pipeline import Pipeline
from toolkit.v1.dsl import components, experimental

__all__ = ["Artifact", "Channel", "Importer", "Pipeline", "Resolver", "components",
           "experimental"]

NOT_PROVIDED = {
    "Cond": "use a Python if statement in the notebook",
    "ExecutionMode": "pipelines run synchronously, one component after another",
    "io": "use the standard library (os, shutil) or tf.io.gfile",
    "placeholders": "parameters of an exported notebook are its `parameters` cell",
}


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    from toolkit.v1._names import missing

    missing(__name__, name, __all__, NOT_PROVIDED.get(name))
