"""``tfx.components``: the toolkit's standard components under TFX's names.

Every component here is the toolkit's own class (the same object as in
``toolkit.components``), except the two ExampleGens: through ``toolkit.v1`` they
write TFX's default payload, GZIP TFRecord of ``tf.Example``, where the toolkit's
native default is Parquet (once ExampleGen offers TFX's ``output_data_format``;
until then both write Parquet). Messages from :mod:`toolkit.v1.proto` are accepted
wherever the components take dicts.
"""
from __future__ import annotations

from typing import Any

from toolkit.components import (
    BulkInferrer,
    DataAccessor,
    Evaluator,
    ExampleValidator,
    FnArgs,
    ImportSchemaGen,
    InfraValidator,
    SchemaGen,
    StatisticsGen,
    Trainer,
    Transform,
    Tuner,
    TunerFnResult,
)
from toolkit.components import CsvExampleGen as _CsvExampleGen
from toolkit.components import ImportExampleGen as _ImportExampleGen
from toolkit.components import Pusher as _Pusher
from toolkit.v1.proto import PayloadFormat

__all__ = ["BulkInferrer", "CsvExampleGen", "DataAccessor", "Evaluator", "ExampleValidator",
           "FnArgs", "ImportExampleGen", "ImportSchemaGen", "InfraValidator", "Pusher",
           "SchemaGen", "StatisticsGen", "Trainer", "Transform", "Tuner", "TunerFnResult"]

#: tfx.v1.components names that are not provided, with what to do instead
NOT_PROVIDED = {
    "ExampleDiff": "there is no ExampleDiff component; ExampleValidator with "
                   "serving_statistics= checks skew",
}

#: TFX's ExampleGen parameter choosing the payload, and TFX's default for it
PAYLOAD_PARAMETER = "output_data_format"
TFX_DEFAULT_PAYLOAD = PayloadFormat.FORMAT_TF_EXAMPLE


def _tfx_payload(component_class: type, kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` with TFX's default payload when the caller chose none and the toolkit's
    ExampleGen takes the parameter."""
    if PAYLOAD_PARAMETER in component_class.PARAMETERS and kwargs.get(PAYLOAD_PARAMETER) is None:
        kwargs = {**kwargs, PAYLOAD_PARAMETER: TFX_DEFAULT_PAYLOAD}
    return kwargs


class CsvExampleGen(_CsvExampleGen):
    """``toolkit.components.CsvExampleGen`` writing TFX's default payload (TFRecord of
    ``tf.Example``) unless ``output_data_format`` says otherwise."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **_tfx_payload(_CsvExampleGen, kwargs))


class ImportExampleGen(_ImportExampleGen):
    """``toolkit.components.ImportExampleGen`` writing TFX's default payload (TFRecord of
    ``tf.Example``) unless ``output_data_format`` says otherwise."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **_tfx_payload(_ImportExampleGen, kwargs))


class Pusher(_Pusher):
    """``toolkit.components.Pusher`` with TFX's rule for a pipeline that wires no blessing:
    TFX pushes such a model (its pipeline tutorials do), where the toolkit's own Pusher
    refuses unless told ``require_blessing=False``. A blessing that is wired still decides."""

    def __init__(self, *args: Any, **kwargs: Any):
        if (kwargs.get("model_blessing") is None and kwargs.get("infra_blessing") is None
                and len(args) < 3 and "require_blessing" not in kwargs):
            kwargs["require_blessing"] = False
        super().__init__(*args, **kwargs)


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    from toolkit.v1._names import missing

    missing(__name__, name, __all__, NOT_PROVIDED.get(name))
