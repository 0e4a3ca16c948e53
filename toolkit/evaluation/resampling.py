"""Confidence-interval resampling weights that depend only on each row's content and the seed.

Both engines draw them here, so ``evaluate`` and ``evaluate_on_beam`` compute the same
intervals, digit for digit up to float summation order, for a given seed; and because a
row's draws come from a hash of that row (its evaluated columns) and the seed, not from a
generator walking the data in order, they do not depend on the row order, on how rows are
split into batches, or on which Beam worker reads them.

- Poisson bootstrap (TFMA's ``POISSON_BOOTSTRAP``): each of the ``NUM_SAMPLES`` resamples
  gives every row a Poisson(1) multiplicity, by inverting Poisson(1)'s CDF at a 53-bit
  uniform number derived from (row hash, seed, resample number).
- Jackknife (TFMA's ``JACKKNIFE``): every row falls into one of ``NUM_SAMPLES`` buckets
  (row hash and seed modulo the bucket count); resample ``b`` leaves bucket ``b`` out.

The row hash covers the columns :func:`evaluated_columns` names (labels, predictions and
example weights of every model, slicing features), with numbers hashed as float64, so an
integer column and its float copy draw alike. Rows identical in all of those columns
draw identical weights: for them the resampling treats the copies as one example with
their summed weight (the variance contribution of ``d`` exact copies is counted as
``d**2`` rather than ``d``). Any per-row scheme that is independent of row order and
batching has this property; on data with many exact duplicates, intervals are wider
than TFMA's.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

#: TFMA's _DEFAULT_NUM_BOOTSTRAP_SAMPLES and _DEFAULT_NUM_JACKKNIFE_BUCKETS
NUM_SAMPLES = 20
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
#: Poisson(1)'s CDF up to 39; P(k >= 40) is far below 2**-53, the resolution of the uniforms
_POISSON_TAIL = 40


def evaluated_columns(config) -> list[str]:
    """The columns a row's draws are hashed from, in a fixed order: every model's label,
    prediction and example weight, then every slicing feature."""
    wanted: list[str] = []
    for spec in config.model_specs:
        wanted += [spec.label_key, spec.prediction_key] + ([spec.example_weight_key]
                                                           if spec.example_weight_key else [])
    for spec in config.all_slicing_specs():
        wanted += list(spec.columns)
    return list(dict.fromkeys(wanted))


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, vectorized on uint64."""
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def _hashable(series: pd.Series) -> pd.Series:
    """The column as hashed: numbers as float64 (NaN and -0.0 canonical), vectors (class
    scores) as the bytes of their float64 values, anything else as it is."""
    if pd.api.types.is_bool_dtype(series.dtype) or pd.api.types.is_numeric_dtype(series.dtype):
        values = series.to_numpy(dtype=float) + 0.0  # -0.0 -> 0.0
        values[np.isnan(values)] = np.nan
        return pd.Series(values, copy=False)
    if len(series) and isinstance(series.iloc[0], (list, tuple, np.ndarray)):
        return pd.Series([np.asarray(v, float).tobytes() for v in series], dtype=object)
    return series.reset_index(drop=True)


def row_hashes(frame: pd.DataFrame, columns: Sequence[str]) -> np.ndarray:
    """One uint64 per row from the row's values in ``columns`` (those the frame has)."""
    present = [c for c in columns if c in frame.columns]
    if not present:
        return np.zeros(len(frame), np.uint64)
    hashable = pd.DataFrame({i: _hashable(frame[c]) for i, c in enumerate(present)})
    return pd.util.hash_pandas_object(hashable, index=False).to_numpy(np.uint64)


def resample_weights(frame: pd.DataFrame, columns: Sequence[str], method: str, seed: int | None,
                     resamples: int = NUM_SAMPLES) -> list[np.ndarray]:
    """Per-row multipliers of each resample (``resamples`` arrays of ``len(frame)``).

    ``method`` is ``"POISSON_BOOTSTRAP"`` or ``"JACKKNIFE"``; ``seed`` None is seed 0, so
    an evaluation without a seed gives the same intervals on every run and on every runner.
    """
    if not resamples or not len(frame):
        return []
    seed_bits = np.asarray([(0 if seed is None else int(seed)) % (1 << 64)], np.uint64)
    with np.errstate(over="ignore"):
        base = _mix(row_hashes(frame, columns) ^ _mix(seed_bits + _GOLDEN))
    if method != "POISSON_BOOTSTRAP":
        bucket = (base % np.uint64(resamples)).astype(np.int64)
        return [(bucket != b).astype(float) for b in range(resamples)]
    from scipy import stats as scipy_stats

    cdf = scipy_stats.poisson.cdf(np.arange(_POISSON_TAIL), 1.0)
    out = []
    for r in range(resamples):
        with np.errstate(over="ignore"):
            bits = _mix(base + np.uint64(r + 1) * _GOLDEN)
        uniform = (bits >> np.uint64(11)).astype(float) * (1.0 / (1 << 53))
        out.append(np.searchsorted(cdf, uniform, side="right").astype(float))
    return out
