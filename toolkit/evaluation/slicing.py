"""Turn TFMA slicing specs into slice keys and row sets, the way TFMA's slicer does.

A slice key is TFMA's tuple of ``(column, value)`` pairs sorted by column name,
``()`` for the overall slice. Values keep their type (``int`` for integer columns,
``float`` for float columns, ``str`` otherwise). Rows whose slicing column is
missing (NaN/None) belong to no slice of that spec, as in TFMA. Two specs that
produce the same key (``feature_keys: sex`` and ``feature_values {sex: female}``)
share one slice.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd

from toolkit.evaluation.config import SlicingSpec, slice_value
from toolkit.evaluation.errors import MissingColumnError
from toolkit.evaluation.stats import Incidence

SliceKey = tuple


@dataclass
class Slice:
    key: SliceKey
    spec: SlicingSpec
    size: int
    group: int


@dataclass
class EmptySlice:
    """A slice the config asks for that has no rows (only for fixed feature values)."""

    key: SliceKey
    spec: SlicingSpec


@dataclass
class SliceSet:
    slices: list[Slice]
    incidence: Incidence
    empty: list[EmptySlice] = field(default_factory=list)
    missing_values: dict[str, int] = field(default_factory=dict)


def python_value(value: Any) -> Any:
    """numpy scalars to the Python types TFMA puts in slice keys."""
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value if isinstance(value, str) else str(value)


def _is_numeric(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype)


def _matches(series: pd.Series, raw: str) -> tuple[np.ndarray, Any]:
    """Rows equal to a feature_values entry, and the value as it appears in the key."""
    if _is_numeric(series):
        typed = slice_value(raw)
        if isinstance(typed, str):
            return np.zeros(len(series), bool), typed
        return (series.to_numpy() == typed), typed
    return series.isin([raw, raw.encode()]).to_numpy(), slice_value(raw)


def slice_display(key: SliceKey) -> str:
    """``Overall``, ``sex:female``, ``age_group:young × sex:female`` or a cross pair."""
    if is_cross_key(key):
        return f"{slice_display(key[0])} vs {slice_display(key[1])}"
    if not key:
        return "Overall"
    return " × ".join(f"{column}:{value}" for column, value in key)


def is_cross_key(key: SliceKey) -> bool:
    """A cross-slice key is a pair of slice keys; a slice key is a tuple of pairs."""
    return len(key) == 2 and all(
        isinstance(part, tuple) and all(isinstance(item, tuple) for item in part) for part in key
    )


def check_columns(df: pd.DataFrame, specs: Sequence[SlicingSpec]) -> None:
    for spec in specs:
        for column in spec.columns:
            if column not in df.columns:
                raise MissingColumnError(f"slicing feature (in slicing spec {spec.describe()!r})", column, df.columns)


def build_slices(df: pd.DataFrame, specs: Sequence[SlicingSpec]) -> SliceSet:
    check_columns(df, specs)
    n = len(df)
    slices: list[Slice] = []
    seen: dict[SliceKey, int] = {}
    rows_parts: list[np.ndarray] = []
    group_parts: list[np.ndarray] = []
    empty: list[EmptySlice] = []
    missing: dict[str, int] = {}
    for spec in specs:
        mask = np.ones(n, bool)
        fixed: list[tuple[str, Any]] = []
        for column, raw in spec.feature_values:
            match, typed = _matches(df[column], raw)
            mask &= match
            fixed.append((column, typed))
        keys_cols = sorted(spec.feature_keys)
        if not keys_cols:
            key = tuple(sorted(fixed, key=lambda kv: kv[0]))
            rows = np.flatnonzero(mask)
            if len(rows) == 0:
                empty.append(EmptySlice(key, spec))
                continue
            candidates = [(key, rows)]
        else:
            candidates = _grouped(df, keys_cols, mask, fixed, spec, missing)
        for key, rows in candidates:
            if key in seen:
                continue
            group = len(slices)
            seen[key] = group
            slices.append(Slice(key, spec, len(rows), group))
            rows_parts.append(rows)
            group_parts.append(np.full(len(rows), group, np.int64))
    incidence = Incidence(
        rows=np.concatenate(rows_parts) if rows_parts else np.zeros(0, np.int64),
        group=np.concatenate(group_parts) if group_parts else np.zeros(0, np.int64),
        n_groups=len(slices),
    )
    return SliceSet(slices, incidence, empty, missing)


def _grouped(df, columns, mask, fixed, spec, missing) -> list[tuple[SliceKey, np.ndarray]]:
    codes, uniques = [], []
    present = np.ones(len(df), bool)
    for column in columns:
        code, unique = pd.factorize(df[column], sort=True)
        present &= code >= 0
        codes.append(code)
        uniques.append(unique)
    dropped = int((mask & ~present).sum())
    if dropped:
        missing[spec.describe()] = dropped
    keep = np.flatnonzero(mask & present)
    if len(keep) == 0:
        return []
    dims = [max(len(u), 1) for u in uniques]
    if float(np.prod(np.asarray(dims, float))) < 2.0 ** 62:
        flat = np.ravel_multi_index([c[keep] for c in codes], dims)
        present, inverse = np.unique(flat, return_inverse=True)
        combos = np.stack(np.unravel_index(present, dims), axis=1)
    else:
        combos, inverse = np.unique(np.stack([c[keep] for c in codes], axis=1), axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    order = np.argsort(inverse, kind="stable")
    bounds = np.searchsorted(inverse[order], np.arange(len(combos) + 1))
    out = []
    for i, combo in enumerate(combos):
        pairs = [(column, python_value(uniques[j][combo[j]])) for j, column in enumerate(columns)] + fixed
        key = tuple(sorted(pairs, key=lambda kv: kv[0]))
        out.append((key, keep[order[bounds[i]:bounds[i + 1]]]))
    return out
