"""EvalResult: TFMA's result interface plus a tidy dataframe, validation and blessing."""
from __future__ import annotations

import copy
import math
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from toolkit.evaluation.config import EvalConfig, sub_key_text
from toolkit.evaluation.errors import EvalConfigError
from toolkit.evaluation.slicing import slice_display
from toolkit.evaluation.validation import Validation
from toolkit.evaluation.values import MetricKey, SliceMetrics, encode_plots, encode_slice, matrix_entries

TIDY_COLUMNS = [
    "slice", "slice_key", "slice_spec", "is_cross_slice", "slice_size", "model", "metric", "threshold",
    "value", "lower", "upper", "below_min_slice_size", "note", "sub_key", "class_id",
]
MATRIX_COLUMNS = [
    "slice", "slice_key", "slice_spec", "slice_size", "model", "metric", "kind", "example_weighted",
    "sub_key", "threshold", "actual_class_id", "predicted_class_id", "weighted_examples",
]


class EvalResult:
    """The result of :func:`toolkit.evaluate`.

    Reads like ``tfma.EvalResult``: ``slicing_metrics`` is a list of
    ``(slice_key, {output_name: {sub_key: {metric_name: value}}})`` with TFMA's
    keys (``()`` for the overall slice, ``(('sex', 'female'),)`` for a slice,
    ``((baseline_key), (comparison_key))`` for a cross slice) and TFMA's JSON value
    encoding (``{'doubleValue': ...}``, ``{'arrayValue': ...}``,
    ``{'boundedValue': ...}`` with intervals, ``{'__ERROR__': {'debugMessage': ...}}``
    for slices below ``min_slice_size``). With a baseline model it shows the
    candidate's metrics and the ``*_diff`` metrics, as ``tfma.load_eval_result`` does.

    Multi-class results follow TFMA too: binarized metrics sit under their sub key
    (``get_metrics_for_slice(key, class_id=0)``, ``top_k=1``, ``k=2``), and
    :attr:`plots` holds the plots (``ConfusionMatrixPlot``, ``CalibrationPlot``,
    ``MultiClassConfusionMatrixPlot``) as ``tfma.load_eval_result(...).plots`` does; :meth:`get_plots_for_slice` reads it
    like ``get_metrics_for_slice``, and :meth:`confusion_matrices` gives every
    multi-class confusion matrix (metric or plot) as a tidy frame.

    Beyond TFMA: :meth:`to_dataframe` (tidy, one row per slice, metric and
    threshold), :meth:`against` (differences and ratios to a baseline slice),
    :attr:`validation` and :attr:`blessed`. :mod:`toolkit.evaluation.storage` stores it;
    ``toolkit.show(result)`` draws it with the dashboard that :mod:`toolkit.visualize`
    registers for this class (the library itself never imports a view).
    """

    def __init__(self, slices: Sequence[SliceMetrics], eval_config: EvalConfig, validation: Validation,
                 engine: str = "toolkit", baseline_slice: tuple | None = None,
                 missing_values: Mapping[str, int] | None = None):
        self._slices = list(slices)
        self.eval_config = eval_config
        self.validation = validation
        self.engine = engine
        self.baseline_slice = baseline_slice
        self.missing_values = dict(missing_values or {})
        baseline = eval_config.baseline
        self._model = eval_config.candidate.name
        self._baseline_model = baseline.name if baseline else None
        self.slicing_metrics = [
            (sm.key, encode_slice(sm, self._model, self._baseline_model)) for sm in self._slices if not sm.empty
        ]
        #: TFMA's ``EvalResult.plots``: ``[(slice_key, {output: {sub_key: {plot_type: value}}})]``
        self.plots = [
            (sm.key, encode_plots(sm, self._model, self._baseline_model)) for sm in self._slices
            if not sm.empty and not sm.error and sm.plots
        ]

    # --- TFMA's EvalResult interface -------------------------------------------------
    @property
    def config(self) -> Any:
        """The evaluation's ``tfma.EvalConfig`` (imports TFMA on first use)."""
        return self.eval_config.to_proto()

    @property
    def blessed(self) -> bool:
        """True when every threshold passed on every slice it applies to (TFMA's validation_ok)."""
        return self.validation.ok

    def get_slice_names(self) -> list:
        return [key for key, _ in self.slicing_metrics]

    def get_metric_names(self) -> list[str]:
        names: set[str] = set()
        for _, by_output in self.slicing_metrics:
            for by_sub_key in by_output.values():
                for metrics in by_sub_key.values():
                    names.update(metrics)
        return list(names)

    def get_metrics_for_slice(self, slice_name: tuple = (), output_name: str = "", class_id: int | None = None,
                              k: int | None = None, top_k: int | None = None) -> dict | None:
        sub_key = _sub_key(class_id, k, top_k)
        for key, value in self.slicing_metrics:
            if (not key and not slice_name) or key == slice_name:
                return value[output_name][sub_key]
        return None

    def get_metrics_for_all_slices(self, output_name: str = "", class_id: int | None = None,
                                   k: int | None = None, top_k: int | None = None) -> dict:
        sub_key = _sub_key(class_id, k, top_k)
        return {key: dict(value[output_name][sub_key]) for key, value in self.slicing_metrics}

    def get_plots_for_slice(self, slice_name: tuple = (), output_name: str = "", class_id: int | None = None,
                            k: int | None = None, top_k: int | None = None) -> dict | None:
        """``{plot_type: value}`` of one slice (and sub key), from :attr:`plots`; None without plots."""
        sub_key = _sub_key(class_id, k, top_k)
        for key, value in self.plots:
            if (not key and not slice_name) or key == slice_name:
                return value.get(output_name, {}).get(sub_key)
        return None

    def sub_keys(self) -> list[str]:
        """The sub keys of the metrics (``""``, ``classId:0``, ``topK:1``...), in evaluation order."""
        found: list[str] = []
        for sm in self._slices:
            for key in list(sm.metrics) + list(sm.plots):
                if key.sub_key not in found:
                    found.append(key.sub_key)
        return found

    def confusion_matrices(self) -> pd.DataFrame:
        """Every multi-class confusion matrix (MultiClassConfusionMatrixAtThresholds metrics and
        MultiClassConfusionMatrixPlot plots) as one tidy row per (slice, matrix, threshold,
        actual class, predicted class) that TFMA has an entry for.

        ``kind`` is ``metric`` or ``plot``; ``predicted_class_id`` -1 means no class was
        predicted (the top score was not above the threshold).
        """
        rows = []
        for sm in self._slices:
            if sm.empty or sm.error or sm.is_cross:
                continue
            for kind, values in (("metric", sm.metrics), ("plot", sm.plots)):
                for key, mv in values.items():
                    if not mv.matrix:
                        continue
                    for threshold, entries in matrix_entries(mv):
                        for actual, predicted, weight in entries:
                            rows.append({"slice": slice_display(sm.key), "slice_key": sm.key,
                                         "slice_spec": sm.spec, "slice_size": sm.size,
                                         "model": key.model_name, "metric": key.name, "kind": kind,
                                         "example_weighted": key.example_weighted, "sub_key": key.sub_key,
                                         "threshold": threshold, "actual_class_id": actual,
                                         "predicted_class_id": predicted, "weighted_examples": weight})
        frame = pd.DataFrame(rows, columns=MATRIX_COLUMNS)
        frame["slice_size"] = frame["slice_size"].astype("Int64")
        return frame

    # --- beyond TFMA ----------------------------------------------------------------
    @property
    def slices(self) -> list[SliceMetrics]:
        """Every slice with its typed metric values (including empty requested slices)."""
        return list(self._slices)

    def against(self, baseline_slice: Any) -> "EvalResult":
        """A view of this result whose tidy frame compares every slice with ``baseline_slice``.

        ``baseline_slice`` is a TFMA slice key (``()``, ``(('sex', 'female'),)``), its
        display string (``"Overall"``, ``"sex:female"``) or a dict ``{"sex": "female"}``.
        """
        other = copy.copy(self)
        other.baseline_slice = self._resolve_slice(baseline_slice)
        return other

    def to_dataframe(self, baseline_slice: Any = None) -> pd.DataFrame:
        """Tidy metrics: one row per slice, model, metric and threshold.

        Multi-class results add a row per sub key: ``sub_key`` is TFMA's (``classId:0``,
        ``k:2``, ``topK:1``; ``""`` for metrics without one) and ``class_id`` the class of
        a ``classId`` sub key (<NA> otherwise). Confusion matrices are in
        :meth:`confusion_matrices`, not here.

        Columns: ``slice`` (display: "Overall", "sex:female", "age_group:young × sex:female",
        cross slices "A vs B"), ``slice_key`` (TFMA key tuple), ``slice_spec``,
        ``is_cross_slice``, ``slice_size`` (example count, <NA> for cross slices),
        ``model``, ``metric`` (TFMA name; for FairnessIndicators
        ``fairness_indicators_metrics/false_positive_rate`` with the threshold in its own
        column), ``threshold`` (float, NaN for metrics without one), ``value``, ``lower``
        and ``upper`` (confidence bounds or NaN), ``below_min_slice_size``, ``note`` (why a
        value is missing or undefined) and, when a baseline slice is chosen (argument,
        :meth:`against` or ``evaluate(..., baseline_slice=...)``), ``baseline_slice``,
        ``baseline_value``, ``baseline_diff`` (value - baseline) and ``baseline_ratio``
        (value / baseline).
        """
        baseline = self.baseline_slice if baseline_slice is None else self._resolve_slice(baseline_slice)
        template = self._template()
        rows = []
        for sm in self._slices:
            base = {
                "slice": slice_display(sm.key),
                "slice_key": sm.key,
                "slice_spec": sm.spec,
                "is_cross_slice": sm.is_cross,
                "slice_size": pd.NA if sm.size is None else sm.size,
                "below_min_slice_size": sm.below_min_slice_size,
            }
            if sm.error:
                for key, (tidy, thresholds) in template.items():
                    for threshold in thresholds or (math.nan,):
                        rows.append(dict(base, model=key.model_name, metric=_tidy_name(key, tidy),
                                         threshold=threshold, value=math.nan, lower=math.nan, upper=math.nan,
                                         note=sm.error, sub_key=key.sub_key, class_id=key.class_id))
                continue
            for key, mv in sm.metrics.items():
                if mv.matrix:
                    continue
                for threshold, value, lower, upper in mv.elements():
                    rows.append(dict(base, model=key.model_name, metric=_tidy_name(key, mv.metric),
                                     threshold=threshold, value=value, lower=lower, upper=upper,
                                     note=mv.note or ("undefined" if math.isnan(value) else ""),
                                     sub_key=key.sub_key, class_id=key.class_id))
        frame = pd.DataFrame(rows, columns=TIDY_COLUMNS)
        frame["slice_size"] = frame["slice_size"].astype("Int64")
        frame["threshold"] = frame["threshold"].astype(float)
        frame["sub_key"] = frame["sub_key"].astype(object)
        frame["class_id"] = frame["class_id"].astype("Int64")
        if baseline is not None:
            frame = _add_baseline(frame, baseline)
        return frame

    def _template(self) -> dict[MetricKey, tuple[str, tuple | None]]:
        template: dict[MetricKey, tuple[str, tuple | None]] = {}
        for sm in self._slices:
            for key, mv in sm.metrics.items():
                if not mv.matrix:
                    template.setdefault(key, (mv.metric, mv.thresholds))
        return template

    def _resolve_slice(self, slice_ref: Any) -> tuple:
        keys = [sm.key for sm in self._slices if not sm.empty]
        if isinstance(slice_ref, Mapping):
            slice_ref = tuple(sorted(slice_ref.items()))
        if isinstance(slice_ref, str):
            for key in keys:
                if slice_display(key) == slice_ref:
                    return key
        elif isinstance(slice_ref, (tuple, list)):
            wanted = tuple(tuple(p) for p in slice_ref)
            for key in keys:
                if key == wanted:
                    return key
        shown = ", ".join(slice_display(k) for k in keys[:20])
        raise EvalConfigError(f"baseline slice {slice_ref!r} is not among the evaluated slices: {shown}")

    def __repr__(self) -> str:
        n_slices = sum(1 for sm in self._slices if not sm.empty)
        return (f"<EvalResult: {n_slices} slices, {len(self.get_metric_names())} metrics, engine={self.engine}, "
                f"{'blessed' if self.blessed else 'not blessed'}>")


def _sub_key(class_id, k, top_k) -> str:
    return sub_key_text(class_id, k, top_k)


def _tidy_name(key: MetricKey, tidy: str) -> str:
    return f"{tidy}_diff" if key.is_diff else tidy


def _add_baseline(frame: pd.DataFrame, baseline: tuple) -> pd.DataFrame:
    ids = ["model", "sub_key", "metric", "threshold"]
    base = frame[frame["slice_key"].apply(lambda k: k == baseline)][ids + ["value"]].copy()
    base["threshold"] = base["threshold"].fillna(-np.inf)
    base = base.drop_duplicates(ids).rename(columns={"value": "baseline_value"})
    keyed = frame.assign(threshold=frame["threshold"].fillna(-np.inf))
    merged = keyed.merge(base, on=ids, how="left")
    merged["threshold"] = frame["threshold"].to_numpy()
    merged.loc[merged["is_cross_slice"], "baseline_value"] = np.nan
    values, reference = merged["value"].astype(float), merged["baseline_value"].astype(float)
    merged["baseline_slice"] = slice_display(baseline)
    merged["baseline_diff"] = values - reference
    with np.errstate(divide="ignore", invalid="ignore"):
        merged["baseline_ratio"] = np.where(reference != 0, values / reference, np.nan)
    return merged
