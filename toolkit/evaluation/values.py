"""Metric keys and values as the engine reports them, and their TFMA JSON encoding."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

ERROR_METRIC = "__ERROR__"


@dataclass(frozen=True)
class MetricKey:
    """TFMA's MetricKey, restricted to what the engine produces."""

    name: str
    model_name: str = ""
    is_diff: bool = False
    example_weighted: bool | None = False

    @property
    def display_name(self) -> str:
        """The name TFMA's EvalResult uses: ``auc``, or ``auc_diff`` against the baseline model."""
        return f"{self.name}_diff" if self.is_diff else self.name

    def baseline_key(self, baseline_model: str) -> "MetricKey":
        return MetricKey(self.name, baseline_model, False, self.example_weighted)


@dataclass
class MetricValue:
    """One metric of one slice: a number, or one number per threshold.

    ``thresholds`` is set for threshold metrics (a 1-tuple for a single threshold);
    ``array`` says TFMA encodes the value as an ``arrayValue`` (several thresholds).
    Interval fields follow TFMA's t-distribution summary of the resamples.
    """

    value: Any
    metric: str
    thresholds: tuple[float, ...] | None = None
    array: bool = False
    lower: Any = None
    upper: Any = None
    sample_mean: Any = None
    std_error: Any = None
    dof: int | None = None
    note: str = ""
    encoded: dict[str, Any] | None = None

    def elements(self) -> list[tuple[float, float, float, float]]:
        """(threshold, value, lower, upper) per element; NaN where not applicable."""
        values = np.atleast_1d(np.asarray(self.value, float))
        lower = np.full(values.shape, np.nan) if self.lower is None else np.atleast_1d(np.asarray(self.lower, float))
        upper = np.full(values.shape, np.nan) if self.upper is None else np.atleast_1d(np.asarray(self.upper, float))
        thresholds = self.thresholds if self.thresholds else (math.nan,) * len(values)
        return [(float(t), float(v), float(lo), float(up)) for t, v, lo, up in zip(thresholds, values, lower, upper)]


@dataclass
class SliceMetrics:
    key: tuple
    size: int | None
    spec: str
    is_cross: bool = False
    below_min_slice_size: bool = False
    error: str = ""
    metrics: dict[MetricKey, MetricValue] = field(default_factory=dict)
    empty: bool = False


def small_slice_message(min_size: int) -> str:
    """TFMA's error for a slice smaller than ``min_slice_size`` (no metrics are computed)."""
    return (f"Example count for this slice key is lower than the minimum required value: {min_size}. "
            "No data is aggregated for this slice.")


def json_double(value: float) -> float | str:
    """protobuf's JSON form of a double: NaN and infinities as strings."""
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def encode(value: MetricValue) -> dict[str, Any]:
    """The dict TFMA's ``EvalResult`` holds for a MetricValue proto."""
    if value.encoded is not None:
        return value.encoded
    if value.array:
        data = np.asarray(value.value, float).reshape(-1)
        return {
            "arrayValue": {
                "dataType": "FLOAT64",
                "shape": [int(len(data))],
                "float64Values": [json_double(v) for v in data],
            }
        }
    if value.lower is not None and value.upper is not None:
        return {
            "boundedValue": {
                "lowerBound": json_double(value.lower),
                "upperBound": json_double(value.upper),
                "value": json_double(value.value),
            }
        }
    return {"doubleValue": json_double(value.value)}


def encode_slice(slice_metrics: SliceMetrics, model_name: str, baseline_model: str | None) -> dict[str, Any]:
    """``{output_name: {sub_key: {metric_name: value}}}`` for one model, as TFMA loads it."""
    if slice_metrics.error:
        return {"": {"": {ERROR_METRIC: {"debugMessage": slice_metrics.error}}}}
    chosen: dict[str, Any] = {}
    ordered = sorted(
        (k for k in slice_metrics.metrics if k.model_name in (model_name, "") and not (
            baseline_model and k.model_name == baseline_model)),
        key=lambda k: (k.is_diff, k.example_weighted is False),
    )
    for key in ordered:
        chosen[key.display_name] = encode(slice_metrics.metrics[key])
    return {"": {"": chosen}}
