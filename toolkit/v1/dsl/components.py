"""``tfx.dsl.components``: custom components from typed Python functions.

``@component`` is :func:`toolkit.custom.component`: the function's annotations
(``InputArtifact[Examples]``, ``OutputArtifact[Model]``, ``Parameter[int]``) declare
its inputs, outputs and parameters, as in TFX.
"""
from __future__ import annotations

from typing import Any

from toolkit.custom import InputArtifact, OutputArtifact, Parameter, component

__all__ = ["InputArtifact", "OutputArtifact", "Parameter", "component"]

NOT_PROVIDED = {
    "OutputDict": "write output values into OutputArtifact properties",
    "BeamComponentParameter": "components read beam_pipeline_args from the context",
    "AsyncOutputArtifact": None,
}


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    from toolkit.v1._names import missing

    missing(__name__, name, __all__, NOT_PROVIDED.get(name))
