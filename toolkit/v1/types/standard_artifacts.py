"""``tfx.types.standard_artifacts``: the toolkit's artifact classes under TFX's names.

They have TFX's type names in ML Metadata and TFX's files inside their folders.
"""
from __future__ import annotations

from typing import Any

from toolkit.artifacts import (
    ExampleAnomalies,
    Examples,
    ExampleStatistics,
    HyperParameters,
    InferenceResult,
    InfraBlessing,
    Model,
    ModelBlessing,
    ModelEvaluation,
    ModelRun,
    PushedModel,
    Schema,
    TransformGraph,
    TunerResults,
)

__all__ = ["ExampleAnomalies", "ExampleStatistics", "Examples", "HyperParameters",
           "InferenceResult", "InfraBlessing", "Model", "ModelBlessing", "ModelEvaluation",
           "ModelRun", "PushedModel", "Schema", "TransformGraph", "TunerResults"]

_VALUE_ARTIFACT = ("value artifacts are not provided: pass values as component parameters "
                   "or artifact properties")
NOT_PROVIDED = {
    "TransformCache": "Transform keeps no analyzer cache",
    "Bytes": _VALUE_ARTIFACT, "Float": _VALUE_ARTIFACT, "Integer": _VALUE_ARTIFACT,
    "String": _VALUE_ARTIFACT, "Boolean": _VALUE_ARTIFACT, "JsonValue": _VALUE_ARTIFACT,
}


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    from toolkit.v1._names import missing

    missing(__name__, name, __all__, NOT_PROVIDED.get(name))
