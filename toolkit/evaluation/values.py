"""Metric keys and values as the engine reports them, and their TFMA JSON encoding."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

ERROR_METRIC = "__ERROR__"


@dataclass(frozen=True)
class MetricKey:
    """TFMA's MetricKey, restricted to what the engine produces.

    ``sub_key`` is TFMA's SubKey as TFMA prints it (``classId:0``, ``k:2``,
    ``topK:1``), ``""`` for none: binarized multi-class metrics carry one.
    """

    name: str
    model_name: str = ""
    is_diff: bool = False
    example_weighted: bool | None = False
    sub_key: str = ""

    @property
    def display_name(self) -> str:
        """The name TFMA's EvalResult uses: ``auc``, or ``auc_diff`` against the baseline model."""
        return f"{self.name}_diff" if self.is_diff else self.name

    def baseline_key(self, baseline_model: str) -> "MetricKey":
        return MetricKey(self.name, baseline_model, False, self.example_weighted, self.sub_key)

    @property
    def class_id(self) -> int | None:
        """The class id of a ``classId:N`` sub key, else None."""
        for part in self.sub_key.split():
            name, _, value = part.partition(":")
            if name == "classId":
                return int(value)
        return None


@dataclass
class MetricValue:
    """One metric of one slice: a number, or one number per threshold.

    ``thresholds`` is set for threshold metrics (a 1-tuple for a single threshold);
    ``array`` says TFMA encodes the value as an ``arrayValue`` (several thresholds).
    Interval fields follow TFMA's t-distribution summary of the resamples.

    ``matrix`` marks a multi-class confusion matrix at thresholds (TFMA's
    ``MultiClassConfusionMatrixAtThresholds``, as a metric or a plot): ``value`` is
    an array shaped (thresholds, actual class, predicted class + 1) of weighted
    example counts, column 0 being "no class predicted" (TFMA's class id -1) and
    NaN marking the (actual, predicted) pairs no example fell in (TFMA has no entry
    for them); ``thresholds`` are TFMA's reported thresholds, ascending.
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
    matrix: bool = False
    #: A binary plot (:mod:`toolkit.evaluation.plots`): ``confusion_plot`` with ``value``
    #: shaped (thresholds, 4) holding tp, tn, fp, fn at ``thresholds``; ``calibration_plot``
    #: with ``value`` shaped (buckets, 3) holding weighted labels, predictions and examples
    #: per bucket and ``thresholds`` the buckets' lower edges.
    plot: str = ""

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
    #: TFMA's plots (ConfusionMatrixPlot, CalibrationPlot, MultiClassConfusionMatrixPlot), kept
    #: apart from metrics as TFMA does.
    plots: dict[MetricKey, MetricValue] = field(default_factory=dict)


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


MATRIX_FIELD = "multiClassConfusionMatrixAtThresholds"
#: TFMA's PlotData field of each binary plot kind (the key ``tfma.load_eval_result(...).plots`` shows).
PLOT_FIELDS = {"confusion_plot": "confusionMatrixAtThresholds", "calibration_plot": "calibrationHistogramBuckets"}


def matrix_entries(value: MetricValue) -> list[tuple[float, list[tuple[int, int, float]]]]:
    """(threshold, [(actual, predicted, weighted examples)...]) of a matrix value, TFMA's order."""
    counts = np.asarray(value.value, float)
    out = []
    for index, threshold in enumerate(value.thresholds or ()):
        actual, predicted = np.nonzero(~np.isnan(counts[index]))
        out.append((float(threshold), [(int(a), int(p) - 1, float(counts[index, a, p]))
                                       for a, p in zip(actual, predicted)]))
    return out


def encode_matrix(value: MetricValue) -> dict[str, Any]:
    """TFMA's JSON form of a MultiClassConfusionMatrixAtThresholds (zero fields omitted, as
    protobuf's JSON printer does)."""
    matrices = []
    for threshold, entries in matrix_entries(value):
        matrix: dict[str, Any] = {}
        if threshold != 0.0:
            matrix["threshold"] = json_double(threshold)
        rows = []
        for actual, predicted, weight in entries:
            entry: dict[str, Any] = {}
            if actual:
                entry["actualClassId"] = actual
            if predicted:
                entry["predictedClassId"] = predicted
            if weight != 0.0:
                entry["numWeightedExamples"] = json_double(weight)
            rows.append(entry)
        if rows:
            matrix["entries"] = rows
        matrices.append(matrix)
    return {MATRIX_FIELD: {"matrices": matrices} if matrices else {}}


def encode(value: MetricValue) -> dict[str, Any]:
    """The dict TFMA's ``EvalResult`` holds for a MetricValue proto."""
    if value.encoded is not None:
        return value.encoded
    if value.matrix:
        return encode_matrix(value)
    if value.plot:
        return encode_plot(value)
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
    return {"": _by_sub_key(slice_metrics.metrics, model_name, baseline_model,
                            lambda key, value: key.display_name)}


def encode_plots(slice_metrics: SliceMetrics, model_name: str, baseline_model: str | None) -> dict[str, Any]:
    """``{output_name: {sub_key: {plot_type: value}}}``, as ``tfma.load_eval_result(...).plots``.

    TFMA keys a loaded plot by its proto field (``multiClassConfusionMatrixAtThresholds``),
    not by its name, so two plots of one type in a slice show as one; the toolkit's
    own accessors (``EvalResult.confusion_matrices()``) keep them apart.
    """
    return {"": _by_sub_key(slice_metrics.plots, model_name, baseline_model,
                            lambda key, value: next(iter(encode(value)), key.name), unwrap=True)}


def _by_sub_key(values: dict[MetricKey, MetricValue], model_name: str, baseline_model: str | None,
                name_of, unwrap: bool = False) -> dict[str, Any]:
    out: dict[str, dict[str, Any]] = {}
    ordered = sorted(
        (k for k in values if k.model_name in (model_name, "") and not (
            baseline_model and k.model_name == baseline_model)),
        key=lambda k: (k.is_diff, k.example_weighted is False),
    )
    for key in ordered:
        encoded = encode(values[key])
        name = name_of(key, values[key])
        out.setdefault(key.sub_key, {})[name] = encoded[name] if unwrap and name in encoded else encoded
    if not out and not unwrap:
        out[""] = {}
    return out


# ----------------------------------------------------------------------------- binary plots


def confusion_fields(counts: np.ndarray) -> dict[str, np.ndarray]:
    """Every ConfusionMatrixAtThresholds field from (tp, tn, fp, fn), as TFMA's ``to_proto``."""
    counts = np.asarray(counts, float)
    tp, tn, fp, fn = counts.T
    with np.errstate(invalid="ignore", divide="ignore"):
        predicted, labeled = tp + fp, tp + fn
        precision = np.divide(tp, predicted, out=np.ones_like(predicted), where=predicted > 0)
        recall = np.divide(tp, labeled, out=np.zeros_like(labeled), where=labeled > 0)
        return {
            "true_positives": tp, "true_negatives": tn, "false_positives": fp, "false_negatives": fn,
            "precision": precision, "recall": recall,
            "false_positive_rate": fp / (tn + fp), "false_omission_rate": fn / (tn + fn),
            "f1": 2 * precision * recall / (precision + recall),
            "accuracy": (tp + tn) / (tp + tn + fp + fn),
        }


_CAMEL = {"true_positives": "truePositives", "true_negatives": "trueNegatives",
          "false_positives": "falsePositives", "false_negatives": "falseNegatives",
          "false_positive_rate": "falsePositiveRate", "false_omission_rate": "falseOmissionRate"}


def encode_plot(value: "MetricValue") -> dict[str, Any]:
    """TFMA's JSON form of a plot value (protobuf's: zero doubles omitted, NaN as text)."""
    def put(out: dict, name: str, number: float) -> None:
        if number != 0.0 or np.signbit(number):
            out[name] = json_double(number)

    if value.plot == "confusion_plot":
        fields = confusion_fields(value.value)
        matrices = []
        for i, threshold in enumerate(value.thresholds):
            entry: dict[str, Any] = {}
            put(entry, "threshold", threshold)
            for name in ("false_negatives", "true_negatives", "false_positives", "true_positives",
                         "precision", "recall", "false_positive_rate", "f1", "accuracy",
                         "false_omission_rate"):
                put(entry, _CAMEL.get(name, name), float(fields[name][i]))
            matrices.append(entry)
        return {PLOT_FIELDS["confusion_plot"]: {"matrices": matrices} if matrices else {}}
    sums = np.asarray(value.value, float)
    edges = list(value.thresholds) + [np.inf]
    buckets = []
    for i in range(len(sums)):
        entry = {}
        put(entry, "lowerThresholdInclusive", edges[i])
        put(entry, "upperThresholdExclusive", edges[i + 1])
        entry["numWeightedExamples"] = json_double(sums[i, 2])
        entry["totalWeightedLabel"] = json_double(sums[i, 0])
        entry["totalWeightedRefinedPrediction"] = json_double(sums[i, 1])
        buckets.append(entry)
    return {PLOT_FIELDS["calibration_plot"]: {"buckets": buckets} if buckets else {}}


def plot_points(value: "MetricValue") -> dict[str, np.ndarray]:
    """The drawable points of a plot value.

    Confusion plot: ``threshold``, ``fpr``, ``tpr`` (= recall), ``precision``, ``recall``;
    calibration plot: per non-empty bucket ``mean_prediction``, ``mean_label``, ``weight``.
    """
    if value.plot == "confusion_plot":
        fields = confusion_fields(value.value)
        return {"threshold": np.asarray(value.thresholds, float), "fpr": fields["false_positive_rate"],
                "tpr": fields["recall"], "precision": fields["precision"], "recall": fields["recall"]}
    sums = np.asarray(value.value, float)
    used = sums[:, 2] > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        return {"mean_prediction": sums[used, 1] / sums[used, 2], "mean_label": sums[used, 0] / sums[used, 2],
                "weight": sums[used, 2]}
