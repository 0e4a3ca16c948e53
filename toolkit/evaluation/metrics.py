"""The metrics the engine computes, named and configured exactly as TFMA 0.47 names them.

Each metric is a pure function of additive per-slice statistics (see ``stats.py``),
vectorized over (sample, slice[, threshold]). Formulas follow TFMA's
``confusion_matrix_metrics``, ``calibration``, ``mean_regression_error`` and the
``fairness_indicators`` package, including which value is undefined (NaN).

Deliberate difference from TFMA: ROC AUC of a slice with a single label class is
NaN here (TFMA reports 0.0), and PR AUC of a slice without positives is NaN (TFMA
reports 0.0). Both are undefined, not zero.

Multi-class (``multiclass.py``): the Keras accuracies TFMA evaluates
(SparseCategoricalAccuracy, CategoricalAccuracy; TFMA computes them in float32,
the engine in float64) and TFMA's multi-class confusion matrices. Under
``binarize`` every binary metric above is computed per sub key as TFMA does;
:func:`sub_key_support` lists the exceptions, which fall back to TFMA. One more
deliberate difference: TFMA 0.47.1 computes a MultiClassConfusionMatrixPlot and a
MultiClassConfusionMatrixAtThresholds of the same model and weighting from one
shared computation (its key ignores the thresholds), so one of them comes out at
the other's thresholds; the engine gives each its own.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from toolkit.evaluation.config import MetricConfig
from toolkit.evaluation.plots import PLOT_KINDS, PLOT_METRICS

DEFAULT_NUM_THRESHOLDS = 10000
FAIRNESS_INDICATORS_NAME = "fairness_indicators_metrics"
FAIRNESS_DEFAULT_THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
FAIRNESS_MODULES = (
    "",
    "fairness_indicators.fairness_indicators_metrics",
    "tensorflow_model_analysis.addons.fairness.metrics.fairness_indicators",
)

Formula = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def _div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """TFMA's ``_divide_only_positive_denominator``: NaN unless den > 0."""
    num, den = np.broadcast_arrays(np.asarray(num, float), np.asarray(den, float))
    out = np.full(num.shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _both_defined(a: np.ndarray, b: np.ndarray, value: np.ndarray) -> np.ndarray:
    return np.where((a > 0) & (b > 0), value, np.nan)


def _balanced_accuracy(tp, tn, fp, fn):
    with np.errstate(invalid="ignore", divide="ignore"):
        value = (tp / (tp + fn) + tn / (tn + fp)) / 2
    return _both_defined(tp + fn, tn + fp, value)


CONFUSION_FORMULAS: dict[str, tuple[str, Formula]] = {
    "TruePositives": ("true_positives", lambda tp, tn, fp, fn: np.asarray(tp, float)),
    "TP": ("tp", lambda tp, tn, fp, fn: np.asarray(tp, float)),
    "TrueNegatives": ("true_negatives", lambda tp, tn, fp, fn: np.asarray(tn, float)),
    "TN": ("tn", lambda tp, tn, fp, fn: np.asarray(tn, float)),
    "FalsePositives": ("false_positives", lambda tp, tn, fp, fn: np.asarray(fp, float)),
    "FP": ("fp", lambda tp, tn, fp, fn: np.asarray(fp, float)),
    "FalseNegatives": ("false_negatives", lambda tp, tn, fp, fn: np.asarray(fn, float)),
    "FN": ("fn", lambda tp, tn, fp, fn: np.asarray(fn, float)),
    "BinaryAccuracy": ("binary_accuracy", lambda tp, tn, fp, fn: _div(tp + tn, tp + fp + tn + fn)),
    "Precision": ("precision", lambda tp, tn, fp, fn: _div(tp, tp + fp)),
    "PPV": ("ppv", lambda tp, tn, fp, fn: _div(tp, tp + fp)),
    "Recall": ("recall", lambda tp, tn, fp, fn: _div(tp, tp + fn)),
    "TPR": ("tpr", lambda tp, tn, fp, fn: _div(tp, tp + fn)),
    "Specificity": ("specificity", lambda tp, tn, fp, fn: _div(tn, tn + fp)),
    "TNR": ("tnr", lambda tp, tn, fp, fn: _div(tn, tn + fp)),
    "FallOut": ("fall_out", lambda tp, tn, fp, fn: _div(fp, fp + tn)),
    "FPR": ("fpr", lambda tp, tn, fp, fn: _div(fp, fp + tn)),
    "MissRate": ("miss_rate", lambda tp, tn, fp, fn: _div(fn, fn + tp)),
    "FNR": ("fnr", lambda tp, tn, fp, fn: _div(fn, fn + tp)),
    "NegativePredictiveValue": ("negative_predictive_value", lambda tp, tn, fp, fn: _div(tn, tn + fn)),
    "NPV": ("npv", lambda tp, tn, fp, fn: _div(tn, tn + fn)),
    "FalseDiscoveryRate": ("false_discovery_rate", lambda tp, tn, fp, fn: _div(fp, fp + tp)),
    "FalseOmissionRate": ("false_omission_rate", lambda tp, tn, fp, fn: _div(fn, fn + tn)),
    "Prevalence": ("prevalence", lambda tp, tn, fp, fn: _div(tp + fn, tp + tn + fp + fn)),
    "PredictedPositiveRate": ("predicted_positive_rate", lambda tp, tn, fp, fn: _div(tp + fp, tp + fp + tn + fn)),
    "F1Score": ("f1_score", lambda tp, tn, fp, fn: _div(2 * tp, 2 * tp + fp + fn)),
    "BalancedAccuracy": ("balanced_accuracy", _balanced_accuracy),
}

# fairness_indicators' sub-metrics, in its output order.
FAIRNESS_SUB_METRICS: tuple[tuple[str, Formula], ...] = (
    ("false_positive_rate", lambda tp, tn, fp, fn: _div(fp, tn + fp)),
    ("false_negative_rate", lambda tp, tn, fp, fn: _div(fn, tp + fn)),
    ("true_positive_rate", lambda tp, tn, fp, fn: _div(tp, tp + fn)),
    ("true_negative_rate", lambda tp, tn, fp, fn: _div(tn, tn + fp)),
    ("positive_rate", lambda tp, tn, fp, fn: _div(tp + fp, tp + fp + tn + fn)),
    ("negative_rate", lambda tp, tn, fp, fn: _div(tn + fn, tp + fp + tn + fn)),
    ("false_discovery_rate", lambda tp, tn, fp, fn: _div(fp, fp + tp)),
    ("false_omission_rate", lambda tp, tn, fp, fn: _div(fn, fn + tn)),
    ("precision", lambda tp, tn, fp, fn: _div(tp, tp + fp)),
    ("recall", lambda tp, tn, fp, fn: _div(tp, tp + fn)),
)

SIMPLE_METRICS: dict[str, tuple[str, str]] = {
    # class_name: (default output name, kind)
    "ExampleCount": ("example_count", "count"),
    "WeightedExampleCount": ("weighted_example_count", "count"),
    "MeanLabel": ("mean_label", "mean_label"),
    "MeanPrediction": ("mean_prediction", "mean_prediction"),
    "Calibration": ("calibration", "calibration"),
    "MeanSquaredError": ("mean_squared_error", "mse"),
    "MeanAbsoluteError": ("mean_absolute_error", "mae"),
    "RootMeanSquaredError": ("root_mean_squared_error", "rmse"),
}
AUC_METRICS = {"AUC": "auc", "AUCPrecisionRecall": "auc_precision_recall"}
REGRESSION_KINDS = {"mse", "mae", "rmse"}
#: Multi-class metrics: class_name -> (default output name, kind). The accuracies are the
#: Keras metrics TFMA evaluates; the matrices are TFMA's own (a metric and a plot).
MULTICLASS_METRICS: dict[str, tuple[str, str]] = {
    "SparseCategoricalAccuracy": ("sparse_categorical_accuracy", "sparse_accuracy"),
    "CategoricalAccuracy": ("categorical_accuracy", "categorical_accuracy"),
    "MultiClassConfusionMatrixAtThresholds": ("multi_class_confusion_matrix_at_thresholds", "mc_matrix"),
    "MultiClassConfusionMatrixPlot": ("multi_class_confusion_matrix_plot", "mc_plot"),
}
MULTICLASS_KINDS = {"sparse_accuracy", "categorical_accuracy", "mc_matrix", "mc_plot"}
MATRIX_KINDS = {"mc_matrix", "mc_plot"}
#: Binary metric kinds TFMA computes on a binarized (or, without binarize, flattened) multi-class model.
BINARIZABLE_KINDS = {"count", "confusion", "fairness", "auc", "mean_label", "mean_prediction", "calibration",
                     *PLOT_KINDS}
#: ... and those it computes under ``topK`` sub keys (TFMA 0.47.1 reports AUC 0.0 there and fails on the means).
TOP_K_KINDS = {"count", "confusion", "fairness"}
#: The threshold TFMA uses for a confusion metric without thresholds under a ``topK`` sub key: it
#: counts the top-k scores as predicted positive when they fall in its histogram's upper bucket
#: (score >= 0); ``score > -5e-324`` is that test.
TOP_K_ANY = -5e-324
_EPSILON_MC = 1e-7  # TFMA's multi_class_confusion_matrix_metrics._EPSILON


@dataclass(frozen=True)
class ResolvedMetric:
    """A metric config the engine can compute: its output name(s) and parameters."""

    class_name: str
    name: str
    kind: str  # count | mean_label | mean_prediction | calibration | mse | mae | rmse | auc | confusion | fairness
    thresholds: tuple[float, ...] = ()
    num_thresholds: int = DEFAULT_NUM_THRESHOLDS
    curve: str = "ROC"
    summation_method: str = "interpolation"
    formula: Formula | None = field(default=None, compare=False)
    default_thresholds: bool = False
    #: A CalibrationPlot's range (its histogram's ``left``/``right``).
    left: float = 0.0
    right: float = 1.0

    @property
    def needs_binary(self) -> bool:
        """Labels in [0, 1] and scores read as probabilities (TFMA's fractional labels)."""
        if self.kind in PLOT_KINDS:
            return self.left == 0.0 and self.right == 1.0
        return self.kind in ("auc", "confusion", "fairness")

    @property
    def needs_multiclass(self) -> bool:
        return self.kind in MULTICLASS_KINDS

    @property
    def is_plot(self) -> bool:
        return self.kind == "mc_plot" or self.kind in PLOT_KINDS

    @property
    def compute_ci(self) -> bool:
        """TFMA never reports intervals for example counts (nor for confusion matrices)."""
        return self.kind != "count" and self.kind not in MATRIX_KINDS and self.kind not in PLOT_KINDS

    def report_thresholds(self) -> tuple[float, ...]:
        """The thresholds TFMA reports for a confusion matrix metric or plot, ascending.

        A plot with ``num_thresholds`` uses ``-eps`` and ``1 + eps`` at its ends and
        reports them as 0 and 1, as TFMA does.
        """
        out = []
        for t in self.thresholds:
            t = 0.0 if t == -_EPSILON_MC else (1.0 if t == 1.0 + _EPSILON_MC else t)
            if t not in out:
                out.append(t)
        return tuple(sorted(out))


def sub_key_support(metric: "ResolvedMetric", sub_key: str, flattened: bool = False) -> str:
    """"" when the engine computes ``metric`` under ``sub_key`` as TFMA does, else why not.

    ``flattened``: a multi-class model without binarization, whose binary metrics
    TFMA computes over every (example, class) pair.
    """
    if metric.needs_multiclass:
        return "" if not sub_key else f"{metric.class_name} with metrics_specs.binarize"
    if sub_key.startswith("topK:"):
        return "" if metric.kind in TOP_K_KINDS else f"{metric.class_name} with binarize.top_k_list"
    if sub_key or flattened:
        return "" if metric.kind in BINARIZABLE_KINDS else f"{metric.class_name} on multi-class predictions"
    return ""



def snake_case(class_name: str) -> str:
    """TFMA's default metric name for a class (used for keras metrics)."""
    import re

    intermediate = re.sub("(.)([A-Z][a-z0-9]+)", r"\1_\2", class_name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", intermediate).lower()


def metric_name(metric: MetricConfig) -> str:
    """The name under which TFMA reports this metric config."""
    if "name" in metric.config:
        return str(metric.config["name"])
    if metric.class_name in CONFUSION_FORMULAS:
        return CONFUSION_FORMULAS[metric.class_name][0]
    if metric.class_name in AUC_METRICS:
        return AUC_METRICS[metric.class_name]
    if metric.class_name in SIMPLE_METRICS:
        return SIMPLE_METRICS[metric.class_name][0]
    if metric.class_name == "FairnessIndicators":
        return FAIRNESS_INDICATORS_NAME
    if metric.class_name in MULTICLASS_METRICS:
        return MULTICLASS_METRICS[metric.class_name][0]
    if metric.class_name in PLOT_METRICS:
        return PLOT_METRICS[metric.class_name][0]
    return snake_case(metric.class_name)


def fairness_digits(thresholds: Sequence[float]) -> int:
    return max(max(len(str(t)) - 2 for t in thresholds), 1)


def fairness_key(name: str, sub_metric: str, threshold: float, thresholds: Sequence[float]) -> str:
    """``fairness_indicators_metrics/false_positive_rate@0.50`` as the package formats it."""
    return "%s/%s@%.*f" % (name, sub_metric, fairness_digits(thresholds), threshold)


def _as_thresholds(value: Any, what: str) -> tuple[float, ...]:
    if isinstance(value, (int, float)):
        return (float(value),)
    try:
        return tuple(float(v) for v in value)
    except TypeError:
        raise ValueError(f"{what}: thresholds must be a number or a list of numbers, not {value!r}") from None


def resolve(metric: MetricConfig) -> tuple[ResolvedMetric | None, str]:
    """(metric, "") when the engine supports this config, else (None, reason)."""
    cfg = dict(metric.config)
    name = metric_name(metric)
    cls = metric.class_name
    if cls == "FairnessIndicators":
        if metric.module not in FAIRNESS_MODULES:
            return None, f"FairnessIndicators from module {metric.module!r}"
        unknown = set(cfg) - {"thresholds", "name"}
        if unknown:
            return None, f"FairnessIndicators options {sorted(unknown)}"
        thresholds = _as_thresholds(cfg.get("thresholds", FAIRNESS_DEFAULT_THRESHOLDS), name)
        return ResolvedMetric(cls, name, "fairness", thresholds=thresholds), ""
    if metric.module:
        return None, f"{cls} from module {metric.module!r}"
    if cls in CONFUSION_FORMULAS:
        allowed = {"threshold", "name"} if cls == "BinaryAccuracy" else {"thresholds", "name"}
        unknown = set(cfg) - allowed
        if unknown:
            return None, f"{cls} options {sorted(unknown)}"
        raw = cfg.get("threshold" if cls == "BinaryAccuracy" else "thresholds")
        thresholds = (0.5,) if raw is None else _as_thresholds(raw, name)
        default = raw is None or not thresholds
        if not thresholds:
            thresholds = (0.5,)
        formula = CONFUSION_FORMULAS[cls][1]
        return ResolvedMetric(cls, name, "confusion", thresholds=thresholds, formula=formula,
                              default_thresholds=default), ""
    if cls in MULTICLASS_METRICS:
        return _resolve_multiclass(cls, name, cfg)
    if cls in PLOT_METRICS:
        return _resolve_plot(cls, name, cfg)
    if cls in AUC_METRICS:
        unknown = set(cfg) - {"num_thresholds", "curve", "summation_method", "name"}
        if unknown:
            return None, f"{cls} options {sorted(unknown)}"
        curve = "PR" if cls == "AUCPrecisionRecall" else str(cfg.get("curve", "ROC")).upper()
        method = str(cfg.get("summation_method", "interpolation")).lower()
        num_thresholds = int(cfg.get("num_thresholds") or DEFAULT_NUM_THRESHOLDS)
        if curve not in ("ROC", "PR") or method not in ("interpolation", "majoring", "minoring"):
            return None, f"{cls} with curve={curve!r}, summation_method={method!r}"
        if num_thresholds < 2:
            return None, f"{cls} with num_thresholds={num_thresholds}"
        return ResolvedMetric(cls, name, "auc", num_thresholds=num_thresholds, curve=curve,
                              summation_method=method), ""
    if cls in SIMPLE_METRICS:
        unknown = set(cfg) - {"name"}
        if unknown:
            return None, f"{cls} options {sorted(unknown)}"
        return ResolvedMetric(cls, name, SIMPLE_METRICS[cls][1]), ""
    return None, cls


def _resolve_plot(cls: str, name: str, cfg: dict[str, Any]) -> tuple[ResolvedMetric | None, str]:
    """ConfusionMatrixPlot(num_thresholds) and CalibrationPlot(num_buckets, left, right), TFMA's defaults."""
    _, kind, default = PLOT_METRICS[cls]
    count_field = "num_thresholds" if kind == "confusion_plot" else "num_buckets"
    allowed = {"name", count_field} | ({"left", "right"} if kind == "calibration_plot" else set())
    unknown = set(cfg) - allowed
    if unknown:
        return None, f"{cls} options {sorted(unknown)}"
    count = int(cfg.get(count_field) or default)
    if count < (2 if kind == "confusion_plot" else 1):
        return None, f"{cls} with {count_field}={count}"
    left = 0.0 if cfg.get("left") is None else float(cfg["left"])
    right = 1.0 if cfg.get("right") is None else float(cfg["right"])
    if not right > left:
        return None, f"{cls} with left={left} >= right={right}"
    return ResolvedMetric(cls, name, kind, num_thresholds=count, left=left, right=right), ""


def _resolve_multiclass(cls: str, name: str, cfg: dict[str, Any]) -> tuple[ResolvedMetric | None, str]:
    kind = MULTICLASS_METRICS[cls][1]
    allowed = {"name"} | ({"thresholds"} if kind in MATRIX_KINDS else set()) | (
        {"num_thresholds"} if kind == "mc_plot" else set())
    unknown = set(cfg) - allowed
    if unknown:
        return None, f"{cls} options {sorted(unknown)}"
    if kind not in MATRIX_KINDS:
        return ResolvedMetric(cls, name, kind), ""
    raw, num = cfg.get("thresholds"), cfg.get("num_thresholds")
    if raw is not None and num is not None:
        return None, f"{cls} with both thresholds and num_thresholds"
    if num is not None:
        num = int(num)
        if num < 2:
            return None, f"{cls} with num_thresholds={num}"
        inner = [(i + 1) * 1.0 / (num - 1) for i in range(num - 2)]
        thresholds = tuple([-_EPSILON_MC] + inner + [1.0 + _EPSILON_MC])
    else:
        thresholds = _as_thresholds(raw, name) if raw is not None else ()
        if not thresholds:
            thresholds = (0.5,) if kind == "mc_matrix" else (0.0,)
    return ResolvedMetric(cls, name, kind, thresholds=thresholds), ""


# ----------------------------------------------------------------------------- values


def simple_value(kind: str, stats: "Any") -> np.ndarray:
    """Count, mean and regression metrics from the additive sums, shape (samples, slices)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        if kind == "count":
            return (stats.wsum if stats.example_wsum is None else stats.example_wsum).copy()
        if kind == "mean_label":
            return np.where(np.isclose(stats.wsum, 0.0), np.nan, stats.wy / stats.wsum)
        if kind == "mean_prediction":
            return np.where(np.isclose(stats.wsum, 0.0), np.nan, stats.wp / stats.wsum)
        if kind == "calibration":
            return np.where(np.isclose(stats.wy, 0.0), np.nan, stats.wp / stats.wy)
        if kind == "mse":
            return np.where(stats.wsum != 0.0, stats.wse / stats.wsum, np.nan)
        if kind == "mae":
            return np.where(stats.wsum != 0.0, stats.wae / stats.wsum, np.nan)
        if kind == "rmse":
            return np.where(stats.wsum != 0.0, np.sqrt(stats.wse / stats.wsum), np.nan)
    raise ValueError(kind)


def confusion_at(stats: "Any", thresholds: Sequence[float]) -> tuple[np.ndarray, ...]:
    """(tp, tn, fp, fn) at ``thresholds``, each shaped (samples, slices, len(thresholds))."""
    index = np.searchsorted(stats.thresholds, np.asarray(thresholds, float))
    return tuple(m[..., index] for m in (stats.tp, stats.tn, stats.fp, stats.fn))


def auc_value(metric: ResolvedMetric, curve: "Any") -> np.ndarray:
    """AUC per (sample, slice) from TFMA's bucketed confusion matrices.

    ``curve`` holds, for every occupied bucket of a slice, the confusion matrix at
    that bucket's threshold ("hi") and at the next threshold ("lo"); empty buckets
    add nothing to TFMA's Riemann sum, so summing over occupied buckets reproduces it.
    """
    tp_hi, fp_hi, tn_hi, fn_hi = curve.tp_hi, curve.fp_hi, curve.tn_hi, curve.fn_hi
    tp_lo, fp_lo, tn_lo, fn_lo = curve.tp_lo, curve.fp_lo, curve.tn_lo, curve.fn_lo
    with np.errstate(invalid="ignore", divide="ignore"):
        if metric.curve == "PR" and metric.summation_method == "interpolation":
            dtp = tp_hi - tp_lo
            p_hi, p_lo = tp_hi + fp_hi, tp_lo + fp_lo
            prec_slope = dtp / np.maximum(p_hi - p_lo, 0)
            intercept = tp_lo - prec_slope * p_lo
            safe_ratio = np.where((p_hi > 0) & (p_lo > 0), p_hi / np.maximum(p_lo, 0), 1.0)
            terms = prec_slope * (dtp + intercept * np.log(safe_ratio)) / np.maximum(tp_lo + fn_lo, 0)
        else:
            if metric.curve == "ROC":
                x_hi, x_lo = fp_hi / (fp_hi + tn_hi), fp_lo / (fp_lo + tn_lo)
                y_hi, y_lo = tp_hi / (tp_hi + fn_hi), tp_lo / (tp_lo + fn_lo)
            else:
                x_hi, x_lo = tp_hi / (tp_hi + fn_hi), tp_lo / (tp_lo + fn_lo)
                y_hi, y_lo = tp_hi / (tp_hi + fp_hi), tp_lo / (tp_lo + fp_lo)
            if metric.summation_method == "interpolation":
                heights = (y_hi + y_lo) / 2.0
            elif metric.summation_method == "minoring":
                heights = np.minimum(y_hi, y_lo)
            else:
                heights = np.maximum(y_hi, y_lo)
            terms = (x_hi - x_lo) * heights
    terms = np.where(np.isnan(terms), 0.0, terms)
    value = np.add.reduceat(terms, curve.starts, axis=-1)
    positives, negatives = curve.positives, curve.negatives
    undefined = positives <= 0 if metric.curve == "PR" else (positives <= 0) | (negatives <= 0)
    return np.where(undefined, np.nan, value)


def undefined_note(metric: ResolvedMetric, positives: float, negatives: float) -> str:
    """Why a metric value of a slice is NaN, when the reason is the label mix."""
    if metric.kind == "auc":
        if positives <= 0 and negatives <= 0:
            return f"{metric.name} undefined: slice has no examples with weight"
        if positives <= 0:
            return f"{metric.name} undefined: slice has no positive labels"
        if negatives <= 0 and metric.curve == "ROC":
            return f"{metric.name} undefined: slice has no negative labels"
    return ""
