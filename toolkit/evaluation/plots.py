"""TFMA's binary plots: ``ConfusionMatrixPlot`` (ROC and precision-recall) and ``CalibrationPlot``.

Both come, in TFMA 0.47.1, from one additive statistic: the calibration histogram,
10,000 equal-width buckets over ``[left, right]`` (plus one below and one above),
each holding the weighted labels, weighted predictions and weights of the examples
whose score falls in it. Sums add up over batches and Beam workers, so the engine
keeps, per slice, the occupied buckets only (:class:`Histogram`), merges them by
bucket id (:func:`merge`) and derives the plots at the end exactly as TFMA does:

* ``ConfusionMatrixPlot(num_thresholds=n)``: thresholds ``[-1e-6, 0, 1/n, ..., 1]``;
  the histogram is re-binned onto them (shifted by TFMA's ``1e-7`` so a score equal to
  a threshold counts as below it), and the confusion matrix at each threshold counts
  the re-binned buckets at and above it as predicted positive. Precision is 1 and
  recall 0 where undefined, as TFMA writes them; reported thresholds are rounded to
  6 digits, as TFMA rounds them.
* ``CalibrationPlot(num_buckets=n, left, right)``: the histogram re-binned onto
  ``[-inf, left, left + (right - left)/n, ..., right]``; one bucket per interval with
  its weighted examples, labels and predictions (its mean prediction and mean label
  are the calibration curve).

The re-binning and the running sums visit buckets in TFMA's order, so the values are
TFMA's up to the order in which examples were added. Without a schema TFMA's
calibration range is [0, 1] unless the config sets ``left``/``right``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from toolkit.evaluation.values import MetricKey, MetricValue

HISTOGRAM_BUCKETS = 10000
CONFUSION_PLOT = "ConfusionMatrixPlot"
CALIBRATION_PLOT = "CalibrationPlot"
#: class name -> (TFMA's default name, engine kind, TFMA's default number of thresholds/buckets)
PLOT_METRICS = {
    CONFUSION_PLOT: ("confusion_matrix_plot", "confusion_plot", 1000),
    CALIBRATION_PLOT: ("calibration_plot", "calibration_plot", 1000),
}
PLOT_KINDS = frozenset(kind for _, kind, _ in PLOT_METRICS.values())
#: TFMA's PlotData field of each kind (the key ``tfma.load_eval_result(...).plots`` shows).
#: The names TFMA's writer merges into one unnamed plot entry per model and sub key.
MERGED_NAMES = ("confusion_matrix_plot", "calibration_plot")
_EPSILON = 1e-7  # binary_confusion_matrices._EPSILON
_LOWEST = -1e-6  # ConfusionMatrixPlot's first threshold


@dataclass
class Histogram:
    """One slice's occupied histogram buckets: ids ascending, sums shaped (3, buckets).

    Rows of ``sums``: weighted labels, weighted predictions, weights.
    """

    ids: np.ndarray
    sums: np.ndarray

    @classmethod
    def empty(cls) -> "Histogram":
        return cls(np.zeros(0, np.int64), np.zeros((3, 0)))


def bucket_ids(predictions: np.ndarray, left: float = 0.0, right: float = 1.0) -> np.ndarray:
    """TFMA's ``_bucket_index``: ``int((p - left) / (right - left) * 10000 + 1)``, clipped to [0, 10001]."""
    raw = (np.asarray(predictions, float) - left) / (right - left) * HISTOGRAM_BUCKETS + 1
    with np.errstate(invalid="ignore"):
        out = np.where(raw < 0, 0.0, np.where(raw >= HISTOGRAM_BUCKETS + 1, HISTOGRAM_BUCKETS + 1, raw))
    return np.floor(out).astype(np.int64)


def histograms(rows: np.ndarray, group: np.ndarray, n_groups: int, labels: np.ndarray,
               predictions: np.ndarray, weights: np.ndarray, left: float = 0.0,
               right: float = 1.0) -> list[Histogram]:
    """The histogram of every slice, from a (row, slice) incidence list, in one pass."""
    width = HISTOGRAM_BUCKETS + 2
    key = group.astype(np.int64) * width + bucket_ids(predictions[rows], left, right)
    unique, inverse = np.unique(key, return_inverse=True)
    w = weights[rows]
    sums = np.stack([np.bincount(inverse, weights=w * labels[rows], minlength=len(unique)),
                     np.bincount(inverse, weights=w * predictions[rows], minlength=len(unique)),
                     np.bincount(inverse, weights=w, minlength=len(unique))])
    bounds = np.searchsorted(unique // width, np.arange(n_groups + 1))
    return [Histogram(unique[a:b] % width, sums[:, a:b]) for a, b in zip(bounds[:-1], bounds[1:])]


def merge(a: Histogram, b: Histogram) -> Histogram:
    """The histogram of two batches' examples (bucket sums added)."""
    ids = np.concatenate([a.ids, b.ids])
    unique, inverse = np.unique(ids, return_inverse=True)
    sums = np.zeros((3, len(unique)))
    np.add.at(sums, (slice(None), inverse), np.concatenate([a.sums, b.sums], axis=1))
    return Histogram(unique, sums)


def _rebin(hist: Histogram, thresholds: np.ndarray, left: float, right: float) -> np.ndarray:
    """``calibration_histogram.rebin``: sums per new bucket, shaped (3, len(thresholds))."""
    ids = hist.ids
    with np.errstate(invalid="ignore"):
        preds = (ids - 1) / HISTOGRAM_BUCKETS * (right - left) + left
    preds = np.where(ids == 0, -np.inf, np.where(ids >= HISTOGRAM_BUCKETS + 1, np.inf, preds))
    target = np.minimum(np.searchsorted(thresholds[1:], preds, side="right"), len(thresholds) - 1)
    return np.stack([np.bincount(target, weights=row, minlength=len(thresholds)) for row in hist.sums])


def confusion_thresholds(num_thresholds: int) -> np.ndarray:
    """ConfusionMatrixPlot's thresholds: ``[-1e-6, 0, 1/n, ..., 1]``."""
    return np.concatenate([[_LOWEST], np.arange(num_thresholds + 1) * 1.0 / num_thresholds])


def confusion_counts(hist: Histogram, num_thresholds: int) -> tuple[np.ndarray, np.ndarray]:
    """(thresholds, counts shaped (thresholds, 4): tp, tn, fp, fn) as TFMA derives them."""
    thresholds = confusion_thresholds(num_thresholds)
    shifted = np.where(thresholds != 0, thresholds + _EPSILON, thresholds)
    labels, _, examples = _rebin(hist, shifted, 0.0, 1.0)
    negatives = examples - labels
    tp = np.cumsum(labels[::-1])[::-1]
    fp = np.cumsum(negatives[::-1])[::-1]
    fn = np.concatenate([[0.0], np.cumsum(labels)[:-1]])
    tn = np.concatenate([[0.0], np.cumsum(negatives)[:-1]])
    return thresholds, np.stack([tp, tn, fp, fn], axis=1)


def calibration_edges(num_buckets: int, left: float, right: float) -> np.ndarray:
    """CalibrationPlot's bucket lower edges: ``[-inf, left, ..., right]``."""
    return np.concatenate([[-np.inf], left + np.arange(num_buckets + 1) * (right - left) / num_buckets])


def calibration_sums(hist: Histogram, num_buckets: int, left: float, right: float):
    """(lower edges, sums shaped (buckets, 3): weighted labels, predictions, examples)."""
    edges = calibration_edges(num_buckets, left, right)
    return edges, _rebin(hist, edges, left, right).T.copy()


def plot_value(metric: Any, hist: Histogram):
    """The MetricValue of ``metric`` (a resolved plot) for one slice's histogram."""
    if metric.kind == "confusion_plot":
        thresholds, counts = confusion_counts(hist, metric.num_thresholds)
        reported = tuple(round(float(t), 6) for t in thresholds)
        return MetricValue(value=counts, metric=metric.name, thresholds=reported, plot=metric.kind)
    edges, sums = calibration_sums(hist, metric.num_thresholds, metric.left, metric.right)
    return MetricValue(value=sums, metric=metric.name, thresholds=tuple(float(e) for e in edges),
                       plot=metric.kind)


def plot_entries(items, rows: np.ndarray, group: np.ndarray, n_groups: int, labels: np.ndarray,
                 predictions: np.ndarray, weights: np.ndarray, weighted: bool):
    """``(MetricKey, engine entry)`` for each planned plot in ``items``, the entry holding a
    MetricValue per slice; one histogram per calibration range serves every plot using it."""
    cache: dict[tuple[float, float], list[Histogram]] = {}
    for item in items:
        metric = item.metric
        span = histogram_span(metric)
        if span not in cache:
            cache[span] = histograms(rows, group, n_groups, labels, predictions, weights, *span)
        key = MetricKey(metric.name, item.model.name, False, bool(weighted), item.sub_key)
        yield key, plot_entry(metric, cache[span])


def histogram_span(metric: Any) -> tuple[float, float]:
    """The range of the calibration histogram a plot is derived from."""
    return (metric.left, metric.right) if metric.kind == "calibration_plot" else (0.0, 1.0)


def plot_entry(metric: Any, slice_histograms: list[Histogram]) -> tuple:
    """The engine's computed entry (point, samples, metric, thresholds, array, name) of a plot."""
    return ([plot_value(metric, hist) for hist in slice_histograms], None, metric, None, False, metric.name)
