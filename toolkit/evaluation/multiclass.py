"""Multi-class and multi-label inputs: class-score vectors, their binarized views and matrices.

A multi-class model's prediction column holds, per row, a vector of class scores
(a list or a numpy array, one score per class). Its label column holds integer
class ids (sparse labels) or vectors of the same length (one-hot, or several ones
for multi-label). TFMA reads them the same way.

TFMA computes binary metrics on such a model through a *binarized view*
(``metric_util.to_label_prediction_example_weight``), one per sub key:

* ``classId:c``: one pair per example, label ``label == c`` (or ``label[c]``),
  score ``scores[c]``;
* ``k:k``: one pair per example, the k-th largest score and its class's label;
* ``topK:k``: every (example, class) pair, scores outside the example's top k
  set to ``-inf``;
* no sub key: every (example, class) pair (TFMA's flattening, a micro average).

:func:`binary_view` builds those pairs as flat arrays, and the engine runs its
binary statistics (``stats.py``) on them unchanged. The multi-class metrics proper
(Keras' sparse/categorical accuracy, TFMA's multi-class confusion matrices) are
computed here from per-slice sums.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from toolkit.evaluation.errors import InvalidValuesError
from toolkit.evaluation.stats import Incidence


@dataclass
class MultiClassInputs:
    """One model's scores (rows × classes) and labels, validated."""

    scores: np.ndarray
    label_matrix: np.ndarray  # rows × classes: one-hot (sparse labels) or the given vectors
    label_ids: np.ndarray | None  # the class ids when labels are sparse
    label_column: str
    prediction_column: str

    @property
    def num_classes(self) -> int:
        return self.scores.shape[1]

    @property
    def sparse(self) -> bool:
        return self.label_ids is not None


@dataclass
class BinaryView:
    """Binary (label, score) pairs of a multi-class model for one sub key.

    ``per_row`` pairs per example (1, or the number of classes when flattened);
    pair ``i * per_row + j`` belongs to example ``i``.
    """

    labels: np.ndarray
    scores: np.ndarray
    per_row: int


def is_vector_column(series: pd.Series) -> bool:
    """Whether a column holds a sequence (list, tuple, array) per row."""
    if series.dtype != object or len(series) == 0:
        return False
    first = series.iloc[0]
    if first is None and series.notna().any():
        first = series[series.notna()].iloc[0]
    return isinstance(first, (list, tuple, np.ndarray))


def _rows_of(series: pd.Series, column: str, role: str) -> list:
    values = series.to_numpy()
    missing = [i for i, v in enumerate(values) if not isinstance(v, (list, tuple, np.ndarray))]
    if missing:
        shown = [series.index[i] for i in missing[:5]]
        raise InvalidValuesError(
            f"{role} column {column!r} holds a vector per row, but {len(missing)} rows hold "
            f"something else (rows {shown}, e.g. {values[missing[0]]!r}); every row needs one "
            "value per class")
    return list(values)


def _stack(series: pd.Series, column: str, role: str) -> np.ndarray:
    rows = _rows_of(series, column, role)
    lengths = np.fromiter(map(np.size, rows), np.int64, len(rows))
    if len(rows) and (lengths != lengths[0]).any():
        other = int(np.flatnonzero(lengths != lengths[0])[0])
        raise InvalidValuesError(
            f"{role} column {column!r} holds vectors of different lengths ({lengths[0]} in row "
            f"{series.index[0]!r}, {lengths[other]} in row {series.index[other]!r}); every row "
            "needs one value per class")
    try:
        matrix = np.stack(rows).astype(float, copy=False) if all(
            isinstance(v, np.ndarray) for v in rows) else np.asarray(rows, dtype=float)
    except (TypeError, ValueError):
        raise InvalidValuesError(
            f"{role} column {column!r} holds vectors that are not numbers (e.g. {rows[0]!r})") from None
    return matrix.reshape(len(rows), -1)


def read_inputs(data: pd.DataFrame, label_column: str, prediction_column: str) -> MultiClassInputs:
    """The validated scores and labels of a multi-class model (one-line errors naming the column)."""
    scores = _stack(data[prediction_column], prediction_column, "prediction")
    n, classes = scores.shape
    if classes < 2:
        raise InvalidValuesError(
            f"prediction column {prediction_column!r} holds vectors of {classes} score; a "
            "multi-class model needs one score per class (2 or more), a binary one a number per row")
    bad = ~np.isfinite(scores).all(axis=1)
    if bad.any():
        raise InvalidValuesError(
            f"prediction column {prediction_column!r} has {int(bad.sum())} score vectors with "
            f"missing/NaN or infinite values (rows {list(data.index[bad][:5])})")
    labels = data[label_column]
    if is_vector_column(labels):
        matrix = _stack(labels, label_column, "label")
        if matrix.shape[1] != classes:
            raise InvalidValuesError(
                f"label column {label_column!r} holds vectors of length {matrix.shape[1]} but "
                f"prediction column {prediction_column!r} has {classes} class scores per row; "
                "labels are class ids or vectors with one value per class")
        bad = ~np.isfinite(matrix).all(axis=1)
        if bad.any():
            raise InvalidValuesError(f"label column {label_column!r} has {int(bad.sum())} vectors with "
                                     f"missing/NaN values (rows {list(data.index[bad][:5])})")
        return MultiClassInputs(scores, matrix, None, label_column, prediction_column)
    if pd.api.types.is_bool_dtype(labels.dtype) or not pd.api.types.is_numeric_dtype(labels.dtype):
        raise InvalidValuesError(
            f"label column {label_column!r} has dtype {labels.dtype} (e.g. {labels.head(3).tolist()}); "
            f"a {classes}-class model needs integer class ids 0..{classes - 1} or one-hot vectors "
            "(map class names to ids first)")
    values = labels.to_numpy(dtype=float)
    bad = ~np.isfinite(values) | (values != np.round(values)) | (values < 0) | (values >= classes)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise InvalidValuesError(
            f"label column {label_column!r} has {int(bad.sum())} values that are not class ids "
            f"0..{classes - 1} (e.g. {values[first]!r} in row {data.index[first]!r}); prediction "
            f"column {prediction_column!r} has {classes} class scores per row")
    ids = values.astype(np.int64)
    matrix = np.zeros((n, classes))
    matrix[np.arange(n), ids] = 1.0
    return MultiClassInputs(scores, matrix, ids, label_column, prediction_column)


def top_k_indices(scores: np.ndarray, k: int) -> np.ndarray:
    """Per row, the column indices of the k largest scores (TFMA's ``top_k_indices``)."""
    if k > scores.shape[1]:
        raise InvalidValuesError(f"top_k/k of {k} exceeds the {scores.shape[1]} class scores per row")
    return np.argpartition(scores, -k, axis=-1)[:, -k:]


def binary_view(inputs: MultiClassInputs, sub_key: str) -> BinaryView:
    """The binary (label, score) pairs TFMA derives for ``sub_key`` ("" = flattened)."""
    n, classes = inputs.scores.shape
    rows = np.arange(n)
    name, _, value = sub_key.partition(":")
    if name == "classId":
        c = int(value)
        if c >= classes:
            raise InvalidValuesError(
                f"binarize.class_ids holds {c} but prediction column {inputs.prediction_column!r} has "
                f"{classes} class scores per row (class ids 0..{classes - 1})")
        return BinaryView(inputs.label_matrix[:, c].copy(), inputs.scores[:, c].copy(), 1)
    if name == "k":
        index = top_k_indices(inputs.scores, int(value))[:, 0]
        return BinaryView(inputs.label_matrix[rows, index], inputs.scores[rows, index], 1)
    if name == "topK":
        kept = np.full(inputs.scores.shape, -np.inf)
        index = top_k_indices(inputs.scores, int(value))
        kept[rows[:, None], index] = inputs.scores[rows[:, None], index]
        return BinaryView(inputs.label_matrix.ravel(), kept.ravel(), classes)
    if sub_key:
        raise InvalidValuesError(f"unknown sub key {sub_key!r}")
    return BinaryView(inputs.label_matrix.ravel(), inputs.scores.ravel(), classes)


def expand(incidence: Incidence, per_row: int) -> Incidence:
    """The slice incidence over a view's pairs (each example's ``per_row`` pairs)."""
    if per_row == 1:
        return incidence
    offsets = np.arange(per_row)
    rows = (incidence.rows[:, None] * per_row + offsets).ravel()
    return Incidence(rows=rows, group=np.repeat(incidence.group, per_row), n_groups=incidence.n_groups)


def accuracy(inputs: MultiClassInputs, sparse: bool, incidence: Incidence, weights: np.ndarray,
             multipliers: Sequence[np.ndarray | None]) -> np.ndarray:
    """Keras' (sparse_)categorical_accuracy per (sample, slice).

    ``sparse``: SparseCategoricalAccuracy (the label is a class id); else
    CategoricalAccuracy, which compares the argmax of the label vector (for a class
    id, a one-element vector: always 0, which is what Keras and TFMA compute).
    Keras' weighted mean is 0 for a slice without weight (``divide_no_nan``).
    """
    predicted = np.argmax(inputs.scores, axis=1)
    if sparse:
        actual = inputs.label_ids
    else:
        actual = np.zeros(len(predicted), np.int64) if inputs.sparse else np.argmax(inputs.label_matrix, axis=1)
    matches = (predicted == actual).astype(float)
    rows, group, size = incidence.rows, incidence.group, incidence.n_groups
    out = []
    for mult in multipliers:
        w = weights[rows] if mult is None else weights[rows] * mult[rows]
        total = np.bincount(group, weights=w * matches[rows], minlength=size)
        count = np.bincount(group, weights=w, minlength=size)
        with np.errstate(invalid="ignore", divide="ignore"):
            out.append(np.where(count != 0, total / np.where(count != 0, count, 1.0), 0.0))
    return np.stack(out)


def confusion_matrices(inputs: MultiClassInputs, thresholds: Sequence[float], incidence: Incidence,
                       weights: np.ndarray) -> tuple[tuple[float, ...], np.ndarray]:
    """TFMA's multi-class confusion matrices at ``thresholds`` for every slice.

    Returns (reported thresholds ascending, counts shaped (slices, thresholds,
    actual class, predicted class + 1)) with NaN where no example fell.

    TFMA's combiner visits the thresholds in config order and, once an example's top
    score is ``<=`` a threshold, keeps it as "no prediction" (class -1) for every later
    threshold too; so an example is unpredicted at a threshold when its top score is
    ``<=`` the largest threshold visited so far. TFMA reports ``-1e-7``/``1 + 1e-7``
    (the ends of ``num_thresholds``) as 0 and 1, merging equal reported thresholds.
    """
    n, classes = inputs.scores.shape
    actual = inputs.label_ids if inputs.sparse else np.argmax(inputs.label_matrix, axis=1)
    predicted = np.argmax(inputs.scores, axis=1)
    top = inputs.scores[np.arange(n), predicted]
    rows, group, size = incidence.rows, incidence.group, incidence.n_groups
    cells = classes * (classes + 1)
    base = group * cells + actual[rows] * (classes + 1)
    w = weights[rows]
    reported: list[float] = []
    by_reported: dict[float, tuple[np.ndarray, np.ndarray]] = {}
    running = -np.inf
    for t in thresholds:
        running = max(running, t)
        shown = 0.0 if t == -1e-7 else (1.0 if t == 1.0 + 1e-7 else float(t))
        column = np.where(top[rows] <= running, 0, predicted[rows] + 1)
        index = base + column
        weight = np.bincount(index, weights=w, minlength=size * cells)
        hits = np.bincount(index, minlength=size * cells)
        if shown in by_reported:  # TFMA adds a repeated threshold's counts into the same matrix
            weight, hits = weight + by_reported[shown][0], hits + by_reported[shown][1]
        else:
            reported.append(shown)
        by_reported[shown] = (weight, hits)
    ordered = sorted(reported)
    stacked = []
    for t in ordered:
        weight, hits = by_reported[t]
        stacked.append(np.where(hits > 0, weight, np.nan).reshape(size, classes, classes + 1))
    return tuple(ordered), np.stack(stacked, axis=1)
