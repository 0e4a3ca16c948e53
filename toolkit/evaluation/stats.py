"""Additive per-slice statistics: one vectorized pass for all slices and thresholds.

Every metric the engine supports is a function of sums over a slice's examples:
weights, weighted labels and predictions, squared and absolute errors, the
weighted label mix in each "number of thresholds below the score" bin (which
gives the confusion matrix at every requested threshold at once), and TFMA's
calibration histogram for AUC. Sums are computed with ``np.bincount`` over a
(row, slice) incidence list, so a resampled evaluation (bootstrap, jackknife)
is the same pass with other per-row weights.

AUC reproduces TFMA's estimator, not the exact rank statistic: TFMA puts each
score into one of 10,000 equal-width buckets (``int(score * 10000) + 1``),
re-bins that histogram onto ``num_thresholds`` thresholds and integrates the
resulting confusion matrices. The engine does the same arithmetic on the
occupied buckets only (empty buckets add zero to the Riemann sum).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

_EPSILON = 1e-7
HISTOGRAM_BUCKETS = 10000


@dataclass
class Incidence:
    """Which rows belong to which slice: parallel arrays, one entry per (row, slice)."""

    rows: np.ndarray
    group: np.ndarray
    n_groups: int


@dataclass
class Curve:
    """Confusion matrices around each occupied AUC bucket, shape (samples, entries)."""

    starts: np.ndarray
    tp_hi: np.ndarray
    fp_hi: np.ndarray
    tn_hi: np.ndarray
    fn_hi: np.ndarray
    tp_lo: np.ndarray
    fp_lo: np.ndarray
    tn_lo: np.ndarray
    fn_lo: np.ndarray
    positives: np.ndarray
    negatives: np.ndarray


@dataclass
class Stats:
    """Sums per (sample, slice); confusion matrices per (sample, slice, threshold)."""

    wsum: np.ndarray
    wy: np.ndarray
    wp: np.ndarray
    wse: np.ndarray
    wae: np.ndarray
    thresholds: np.ndarray
    tp: np.ndarray
    tn: np.ndarray
    fp: np.ndarray
    fn: np.ndarray
    curves: dict[int, Curve]
    #: Per-example weight sums where they differ from ``wsum`` (a flattened multi-class view).
    example_wsum: np.ndarray | None = None


def tfma_bucket_map(num_thresholds: int) -> np.ndarray:
    """For each of TFMA's 10,002 histogram buckets, its re-binned threshold index.

    Mirrors ``binary_confusion_matrices`` + ``calibration_histogram.rebin`` for the
    interpolated thresholds ``[-eps, 1/(T-1), ..., (T-2)/(T-1), 1+eps]``. The top
    index (threshold 1+eps) is folded into the one below it, because TFMA sets the
    matrix at 1+eps to "nothing predicted positive", which equals merging them.
    """
    inner = (np.arange(num_thresholds - 2) + 1) * 1.0 / (num_thresholds - 1)
    thresholds = np.concatenate([[-_EPSILON], inner, [1.0 + _EPSILON]])
    rebin = np.where(thresholds != 0, thresholds + _EPSILON, thresholds)
    bucket_ids = np.arange(HISTOGRAM_BUCKETS + 2)
    preds = (bucket_ids - 1) / HISTOGRAM_BUCKETS * (1.0 - 0.0) + 0.0
    preds[0] = -np.inf
    preds[-1] = np.inf
    index = np.searchsorted(rebin[1:], preds, side="right")
    return np.minimum(index, num_thresholds - 2)


def tfma_histogram_bucket(predictions: np.ndarray) -> np.ndarray:
    """TFMA's ``_bucket_index``: ``int(p * 10000) + 1``, clipped to [0, 10001]."""
    raw = (predictions - 0.0) / 1.0 * HISTOGRAM_BUCKETS + 1
    return np.clip(np.floor(np.maximum(raw, 0.0)), 0, HISTOGRAM_BUCKETS + 1).astype(np.int64)


class StatsPlan:
    """Per-(row, slice) bin indices for one model, reused for every resample."""

    def __init__(
        self,
        incidence: Incidence,
        labels: np.ndarray,
        predictions: np.ndarray,
        weights: np.ndarray,
        thresholds: Sequence[float],
        auc_num_thresholds: Sequence[int],
        binary: bool,
        errors: bool = True,
    ):
        self.incidence = incidence
        rows = incidence.rows
        self.group = incidence.group
        self.n_groups = incidence.n_groups
        self.y = labels[rows]
        self.p = predictions[rows]
        self.w = weights[rows]
        self._errors = errors
        self._wy = self.w * self.y
        self._wp = self.w * self.p
        self._wneg = self.w * (1.0 - self.y)
        err = self.p - self.y
        self._wse = self.w * err * err if errors else None
        self._wae = self.w * np.abs(err) if errors else None
        self.thresholds = np.unique(np.asarray(thresholds, float))
        m = len(self.thresholds)
        self._thr_key = None
        if binary and m:
            k = np.searchsorted(self.thresholds, self.p, side="left")
            self._thr_key = self.group * (m + 1) + k
        self._auc: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = {}
        if binary and auc_num_thresholds:
            bucket = tfma_histogram_bucket(self.p)
            for num in sorted(set(auc_num_thresholds)):
                width = num - 1
                key = self.group * width + tfma_bucket_map(num)[bucket]
                unique, inverse = np.unique(key, return_inverse=True)
                entry_group = unique // width
                at_top = (unique % width) == num - 2
                starts = np.searchsorted(entry_group, np.arange(self.n_groups), side="left")
                is_last = np.ones(len(unique), bool)
                is_last[:-1] = entry_group[1:] != entry_group[:-1]
                self._auc[num] = (inverse, entry_group, starts, is_last, at_top)

    def compute(self, multipliers: Sequence[np.ndarray | None]) -> Stats:
        """Stats for each per-row multiplier (None = the data as is), stacked."""
        parts = [self._one(None if m is None else m[self.incidence.rows]) for m in multipliers]
        curves = {
            num: Curve(
                starts=parts[0][-1][num].starts,
                **{f: np.stack([getattr(p[-1][num], f) for p in parts]) for f in _CURVE_FIELDS},
            )
            for num in parts[0][-1]
        }
        stacked = [np.stack([p[i] for p in parts]) for i in range(9)]
        return Stats(*stacked[:5], self.thresholds, *stacked[5:], curves)

    def _one(self, mult: np.ndarray | None):
        g, G = self.group, self.n_groups

        def scaled(values):
            return values if mult is None else values * mult

        w, wy, wneg = scaled(self.w), scaled(self._wy), scaled(self._wneg)
        wsum = np.bincount(g, weights=w, minlength=G)
        wy_sum = np.bincount(g, weights=wy, minlength=G)
        wp = np.bincount(g, weights=scaled(self._wp), minlength=G)
        if self._errors:
            wse = np.bincount(g, weights=scaled(self._wse), minlength=G)
            wae = np.bincount(g, weights=scaled(self._wae), minlength=G)
        else:
            wse = wae = np.zeros(G)
        m = len(self.thresholds)
        if self._thr_key is not None:
            size = G * (m + 1)
            pos = np.bincount(self._thr_key, weights=wy, minlength=size).reshape(G, m + 1)
            neg = np.bincount(self._thr_key, weights=wneg, minlength=size).reshape(G, m + 1)
            cpos, cneg = np.cumsum(pos, axis=1), np.cumsum(neg, axis=1)
            fn, tn = cpos[:, :m], cneg[:, :m]
            tp, fp = cpos[:, m:] - fn, cneg[:, m:] - tn
        else:
            tp = tn = fp = fn = np.zeros((G, m))
        curves = {num: self._curve(num, w, wy) for num in self._auc}
        return wsum, wy_sum, wp, wse, wae, tp, tn, fp, fn, curves

    def _curve(self, num: int, w: np.ndarray, wy: np.ndarray) -> Curve:
        inverse, entry_group, starts, is_last, at_top = self._auc[num]
        size = len(entry_group)
        pos = np.bincount(inverse, weights=wy, minlength=size)
        tot = np.bincount(inverse, weights=w, minlength=size)
        neg = tot - pos
        tp_hi = _within_group_from_top(pos, entry_group, starts)
        fp_hi = _within_group_from_top(neg, entry_group, starts)
        fn_hi = _within_group_before(pos, entry_group, starts)
        tn_hi = _within_group_before(neg, entry_group, starts)
        tp_lo = np.where(is_last, 0.0, np.append(tp_hi[1:], 0.0))
        fp_lo = np.where(is_last, 0.0, np.append(fp_hi[1:], 0.0))
        positives, negatives = tp_hi[starts], fp_hi[starts]
        top = is_last & at_top
        fn_lo = np.where(top, positives[entry_group], fn_hi + pos)
        tn_lo = np.where(top, negatives[entry_group], tn_hi + neg)
        return Curve(starts, tp_hi, fp_hi, tn_hi, fn_hi, tp_lo, fp_lo, tn_lo, fn_lo, positives, negatives)


_CURVE_FIELDS = ("tp_hi", "fp_hi", "tn_hi", "fn_hi", "tp_lo", "fp_lo", "tn_lo", "fn_lo", "positives", "negatives")


def _within_group_from_top(values: np.ndarray, entry_group: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Sum of ``values`` at this entry and above it, within its slice."""
    reverse = np.cumsum(values[::-1])[::-1]
    ends = np.append(starts[1:], len(values))
    tail = np.append(reverse, 0.0)[ends]
    return reverse - tail[entry_group]


def _within_group_before(values: np.ndarray, entry_group: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Sum of ``values`` strictly below this entry, within its slice."""
    forward = np.cumsum(values)
    head = np.append(0.0, forward)[starts]
    return forward - values - head[entry_group]
