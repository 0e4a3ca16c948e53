"""Slice metrics, fairness metrics and model validation, equal to TFMA and fast.

``toolkit.evaluate(df, eval_config)`` reads a TFMA ``EvalConfig`` and returns an
:class:`EvalResult` with TFMA's interface (``slicing_metrics``,
``get_metrics_for_slice``...), a tidy ``to_dataframe()``, ``validation`` and
``blessed``. :func:`write_tfma_artifact` writes the result as TFMA's records so
``tfma.load_eval_result`` reads it; :func:`save_result` and :func:`load_result` store
and read the toolkit's own exact form (``evaluation.json``, plus ``metrics.parquet``).

Multi-class and multi-label models (a vector of class scores per row, labels as
class ids or one-hot vectors, see :mod:`toolkit.evaluation.multiclass`) get
``SparseCategoricalAccuracy``/``CategoricalAccuracy``, ``binarize`` (``class_ids``,
``k_list``, ``top_k_list``: every binary metric per class, under TFMA's sub keys)
and the multi-class confusion matrices (``EvalResult.plots``,
``EvalResult.confusion_matrices()``).

Importing this package does not import TensorFlow or TFMA; only ``engine="tfma"``,
metrics the engine does not implement, text-proto configs and
``write_tfma_artifact`` do.
"""
from __future__ import annotations


from toolkit.evaluation.config import EvalConfig, load_eval_config
from toolkit.evaluation.engine import evaluate
from toolkit.evaluation.errors import (
    EngineUnavailableError,
    EvalConfigError,
    InvalidValuesError,
    MissingColumnError,
)
from toolkit.evaluation.result import EvalResult
from toolkit.evaluation.storage import load_result, save_result
from toolkit.evaluation.validation import ThresholdCheck, Validation
from toolkit.evaluation.values import MetricKey, MetricValue, SliceMetrics


def write_tfma_artifact(result: EvalResult, output_dir: str, data_location: str = "<dataframe>",
                        model_locations: dict[str, str] | None = None) -> None:
    """Write ``result`` as TFMA's MetricsForSlice/ValidationResult records plus eval_config.json.

    ``tfma.load_eval_result(output_dir)`` and ``tfma.load_validation_result(output_dir)``
    read the output. Imports TFMA.
    """
    from toolkit.evaluation.tfma_adapter import write_tfma_artifact as _write

    _write(result, output_dir, data_location=data_location, model_locations=model_locations)


__all__ = [
    "EngineUnavailableError",
    "EvalConfig",
    "EvalConfigError",
    "EvalResult",
    "InvalidValuesError",
    "MetricKey",
    "MetricValue",
    "MissingColumnError",
    "SliceMetrics",
    "ThresholdCheck",
    "Validation",
    "evaluate",
    "load_eval_config",
    "load_result",
    "save_result",
    "write_tfma_artifact",
]
