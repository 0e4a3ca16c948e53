"""``evaluate``: TFMA's model-agnostic evaluation of a dataframe, vectorized.

The engine reads TFMA's EvalConfig, builds every slice once, computes additive
statistics for all slices and thresholds in one pass per model (``stats.py``),
derives the metrics (``metrics.py``), diffs against a baseline model, cross-slice
differences, confidence intervals and threshold checks, and returns an
:class:`~toolkit.evaluation.result.EvalResult` that reads like TFMA's.

Metrics the engine does not implement are computed by TFMA
(TFMA's pipeline as ``tensorflow_model_analysis.analyze_raw_data`` builds it, given
both models when there is a baseline) and merged, with a warning that
names them; ``engine="tfma"`` runs TFMA for everything. Binary metrics of predictions
outside [0, 1] (logits) are computed as TFMA computes them, with a warning; labels
outside [0, 1] are refused, as TFMA refuses them.
"""
from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd

from toolkit import progress
from toolkit.evaluation import config as config_mod
from toolkit.evaluation import metrics as metrics_mod
from toolkit.evaluation import multiclass, resampling
from toolkit.evaluation import plots as plots_mod
from toolkit.evaluation.config import EvalConfig, ModelSpec, load_eval_config
from toolkit.evaluation.engines import ENGINES
from toolkit.evaluation.errors import EvalConfigError, InvalidValuesError, MissingColumnError
from toolkit.evaluation.metrics import ResolvedMetric
from toolkit.evaluation.result import EvalResult
from toolkit.evaluation.slicing import SliceSet, build_slices, check_columns
from toolkit.evaluation.stats import StatsPlan
from toolkit.evaluation.validation import has_change_thresholds, threshold_rules, validate
from toolkit.evaluation.values import MetricKey, MetricValue, SliceMetrics, small_slice_message

logger = logging.getLogger(__name__)

NUM_SAMPLES = resampling.NUM_SAMPLES  # TFMA's bootstrap samples and jackknife buckets
BASELINE_COLUMN = "__toolkit_baseline_prediction__"


@dataclass
class _Planned:
    """A supported metric for one model and weighting."""

    metric: ResolvedMetric
    model: ModelSpec
    weighted: bool
    sub_key: str = ""


def evaluate(
    dataframe: pd.DataFrame,
    eval_config: Any,
    engine: str = "auto",
    *,
    baseline: str | pd.DataFrame | None = None,
    baseline_slice: Any = None,
    rubber_stamp: bool = False,
    random_seed: int | None = None,
) -> EvalResult:
    """Evaluate predictions in ``dataframe`` per slice, as TFMA would.

    Args:
      dataframe: one row per example with the label, prediction (and optional
        example weight) columns named by ``eval_config.model_specs`` (defaults
        ``label`` and ``prediction``) and the slicing features.
      eval_config: a ``tfma.EvalConfig``, or its dict / JSON / text-proto form.
      engine: ``"auto"`` (the vectorized engine; TFMA only for metrics it does not
        support, with a warning), ``"toolkit"`` (engine only; unsupported metrics
        raise) or ``"tfma"`` (TFMA's pipeline for everything); or an engine registered
        with :func:`toolkit.evaluation.engines.register_engine`.
      baseline: predictions of a baseline model, for change thresholds and
        ``*_diff`` metrics: the name of a column of ``dataframe``, or a dataframe
        with the same index holding the baseline's predictions under the same
        prediction column. Equivalent to a second ModelSpec with
        ``is_baseline: true`` (which the config may also contain directly).
      baseline_slice: slice that ``to_dataframe()`` compares every slice with
        (``baseline_diff``/``baseline_ratio``); see :meth:`EvalResult.against`.
      rubber_stamp: first run without a baseline model: change thresholds are
        ignored instead of raising, as in TFX.
      random_seed: seed for the confidence-interval resampling (None: seed 0). A row's
        resampling weights depend on its content and the seed only, so the intervals do
        not depend on the row order and equal those of the engine on Beam.

    Raises:
      EvalConfigError, MissingColumnError, InvalidValuesError: with a message that
        names the config field or column at fault.
    """
    chosen = ENGINES.get(engine)  # an unknown name: one line naming the known engines
    if not isinstance(dataframe, pd.DataFrame):
        raise InvalidValuesError(f"evaluate() needs a pandas DataFrame, not {type(dataframe).__name__}")
    config = load_eval_config(eval_config)
    data = dataframe
    if baseline is not None:
        config, data = _attach_baseline(config, dataframe, baseline)
    if config.baseline is None and has_change_thresholds(config) and not rubber_stamp:
        raise EvalConfigError(
            "the EvalConfig has change thresholds but no baseline model: pass baseline=<column or "
            "dataframe> or add a model_spec with is_baseline: true (or rubber_stamp=True on a first run)"
        )
    check_model_columns(data, config)
    check_columns(data, config.all_slicing_specs())
    multiclass_models = {spec.name for spec in config.model_specs
                         if multiclass.is_vector_column(data[spec.prediction_key])}
    planned, unsupported = plan_metrics(config, multiclass_models)
    if chosen.vectorized and not chosen.falls_back and unsupported:
        raise EvalConfigError(f"the toolkit engine does not support {describe_unsupported(unsupported)}; use engine='auto'")
    if not chosen.vectorized:  # an engine that computes every metric itself (TFMA)
        slices = chosen.compute_all()(data, config, list(_all_metrics(config)))
        return finish_result(config, slices, [], chosen.name, baseline_slice, rubber_stamp)

    check_values(data, planned, multiclass_models)
    inputs = {spec.name: multiclass.read_inputs(data, spec.label_key, spec.prediction_key)
              for spec in config.model_specs if spec.name in multiclass_models
              and any(item.model.name == spec.name for item in planned)}
    _warn_label_shapes(planned, inputs)
    progress.report("slicing rows", len(data))
    slice_set = build_slices(data, config.all_slicing_specs())
    slices = _compute(data, config, planned, slice_set, random_seed, inputs)
    engine_used = "toolkit"
    if unsupported:
        from toolkit.evaluation import tfma_adapter

        message = (f"toolkit.evaluate: {describe_unsupported(unsupported)} not supported by the vectorized engine; "
                   "computing with TFMA (slower)")
        warnings.warn(message, stacklevel=2)
        logger.warning(message)
        sizes = {s.key: s.size for s in slice_set.slices}
        progress.report(f"computing {describe_unsupported(unsupported)} with TFMA")
        extra = tfma_adapter.run(data, config, [(s, m) for s, m, _ in unsupported], sizes)
        _merge(slices, extra)
        engine_used = "toolkit+tfma"
    return finish_result(config, slices, slice_set.empty, engine_used, baseline_slice, rubber_stamp,
                   missing_values=slice_set.missing_values)


def describe_unsupported(unsupported) -> str:
    return ", ".join(f"{m.class_name}" + (f" ({why})" if why != m.class_name else "") for _, m, why in unsupported)


def _attach_baseline(config: EvalConfig, data: pd.DataFrame, baseline) -> tuple[EvalConfig, pd.DataFrame]:
    if isinstance(baseline, str):
        if baseline not in data.columns:
            raise MissingColumnError("baseline prediction", baseline, data.columns)
        return config_mod.with_baseline_predictions(config, baseline), data
    if isinstance(baseline, pd.DataFrame):
        key = config.candidate.prediction_key
        if key not in baseline.columns:
            raise MissingColumnError("baseline prediction (in the baseline dataframe)", key, baseline.columns)
        if len(baseline) != len(data) or not baseline.index.equals(data.index):
            raise InvalidValuesError(
                f"the baseline dataframe must have the same rows (index) as the evaluated dataframe: "
                f"{len(baseline)} rows vs {len(data)}"
            )
        data = data.assign(**{BASELINE_COLUMN: baseline[key].to_numpy()})
        return config_mod.with_baseline_predictions(config, BASELINE_COLUMN), data
    raise EvalConfigError(f"baseline must be a column name or a DataFrame, not {type(baseline).__name__}")


def check_model_columns(data: pd.DataFrame, config: EvalConfig) -> None:
    for spec in config.model_specs:
        model = f" of model {spec.name!r}" if spec.name else ""
        for role, column in (("label", spec.label_key), ("prediction", spec.prediction_key)):
            if column not in data.columns:
                raise MissingColumnError(f"{role}{model} (model_specs.{role}_key)", column, data.columns)
        if spec.example_weight_key and spec.example_weight_key not in data.columns:
            raise MissingColumnError(f"example weight{model} (model_specs.example_weight_key)",
                                     spec.example_weight_key, data.columns)


def _all_metrics(config: EvalConfig):
    for index, spec in enumerate(config.metrics_specs):
        for metric in spec.metrics:
            yield index, metric


def _weighted_default(config: EvalConfig, spec: config_mod.MetricsSpec) -> bool:
    models = [m for m in config.model_specs if not spec.model_names or m.name in spec.model_names]
    return any(m.example_weight_key for m in models)


def plan_metrics(config: EvalConfig, multiclass_models: set[str] = frozenset()):
    planned: list[_Planned] = []
    unsupported = []
    array_names: set[str] = set()
    for index, spec in enumerate(config.metrics_specs):
        models = [m for m in config.model_specs if not spec.model_names or m.name in spec.model_names]
        weightings = [(_weighted_default(config, spec) if w is None else w) for w in spec.weighted_options]
        for metric in spec.metrics:
            resolved, reason = metrics_mod.resolve(metric)
            if (resolved is not None and resolved.kind in ("confusion", "fairness")
                    and len(resolved.thresholds) == 1 and resolved.thresholds[0] < 0):
                # TFMA 0.47.1 then counts by its one-bucket calibration histogram: every example
                # above the slice's lowest occupied bucket (< 0, [0, 1), >= 1) is positive.
                threshold = resolved.thresholds[0]
                resolved, reason = None, f"at the single negative threshold {threshold}"
            if spec.unsupported_fields:
                resolved, reason = None, f"metrics_specs.{'/'.join(spec.unsupported_fields)}"
            if resolved is not None:
                for model in models:
                    _check_model_kind(resolved, model, spec.sub_keys, model.name in multiclass_models)
                    for sub_key in spec.sub_keys:
                        why = metrics_mod.sub_key_support(
                            resolved, sub_key, flattened=model.name in multiclass_models)
                        if why:
                            resolved, reason = None, why
                            break
                    if resolved is None:
                        break
            if resolved is None:
                unsupported.append((index, metric, reason))
                continue
            if resolved.kind == "confusion" and len(resolved.thresholds) > 1:
                array_names.add(resolved.name)
            for model in models:
                for weighted in weightings:
                    for sub_key in spec.sub_keys:
                        planned.append(_Planned(_for_sub_key(resolved, sub_key), model, weighted, sub_key))
    for rule in threshold_rules(config):
        if rule.metric_name in array_names:
            raise EvalConfigError(
                f"a threshold is set on {rule.metric_name!r}, which has one value per threshold; "
                "TFMA cannot validate such a metric: configure a separate metric with a single threshold "
                f'(e.g. config \'"thresholds": [0.5], "name": "{rule.metric_name}_at_0.5"\') and set the bound there'
            )
    return planned, unsupported


def _check_model_kind(metric: ResolvedMetric, model: ModelSpec, sub_keys: Sequence[str],
                      is_multiclass: bool) -> None:
    """Multi-class metrics and binarization need class-score vectors: say so in one line."""
    if is_multiclass:
        return
    column = model.prediction_key
    if metric.needs_multiclass:
        raise InvalidValuesError(
            f"{metric.class_name} needs a vector of class scores per row in prediction column "
            f"{column!r}, which holds one number per row")
    if any(sub_keys):
        raise InvalidValuesError(
            f"metrics_specs.binarize ({', '.join(sub_keys)}) needs a vector of class scores per row "
            f"in prediction column {column!r}, which holds one number per row")


def _for_sub_key(metric: ResolvedMetric, sub_key: str) -> ResolvedMetric:
    """TFMA's default threshold of a confusion metric under a ``topK`` sub key: every top-k score."""
    if sub_key.startswith("topK:") and metric.kind == "confusion" and metric.default_thresholds:
        import dataclasses

        return dataclasses.replace(metric, thresholds=(metrics_mod.TOP_K_ANY,))
    return metric


def _warn_label_shapes(planned: Sequence[_Planned], inputs: dict[str, multiclass.MultiClassInputs]) -> None:
    """Where TFMA computes a number that is probably not what was meant, warn (and match TFMA)."""
    warned: set[tuple[str, str]] = set()
    for item in planned:
        mc = inputs.get(item.model.name)
        if mc is None or (item.metric.class_name, item.model.name) in warned:
            continue
        message = ""
        if item.metric.kind == "categorical_accuracy" and mc.sparse:
            message = (f"toolkit.evaluate: CategoricalAccuracy expects one-hot labels, but label column "
                       f"{mc.label_column!r} holds class ids; like Keras and TFMA it then compares the "
                       "predicted class with 0 (use SparseCategoricalAccuracy for class ids)")
        elif item.metric.kind == "sparse_accuracy" and not mc.sparse:
            raise InvalidValuesError(
                f"SparseCategoricalAccuracy needs class ids in label column {mc.label_column!r}, which "
                "holds vectors (TFMA fails on them too); use CategoricalAccuracy for one-hot labels")
        if message:
            warned.add((item.metric.class_name, item.model.name))
            warnings.warn(message, stacklevel=3)
            logger.warning(message)


def check_values(data: pd.DataFrame, planned: Sequence[_Planned], multiclass_models: set[str] = frozenset()) -> None:
    checked: set[tuple[str, bool]] = set()
    logits: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # prediction column -> (values, outside)
    for item in planned:
        model = item.model
        if model.name in multiclass_models:
            continue
        binary = item.metric.needs_binary
        for role, column in (("label", model.label_key), ("prediction", model.prediction_key)):
            if (column, binary) in checked:
                continue
            checked.add((column, binary))
            values = numeric_column(data, column, role)
            bad = np.isnan(values)
            if bad.any():
                raise InvalidValuesError(
                    f"{role} column {column!r} has {int(bad.sum())} missing/NaN values "
                    f"(first rows: {list(data.index[bad][:5])}); drop or fill them before evaluating"
                )
            if binary:
                outside = (values < 0) | (values > 1)
                if outside.any() and role == "prediction":
                    logits[column] = (values, outside)  # TFMA computes on them: warn below
                elif outside.any():
                    raise InvalidValuesError(
                        f"{role} column {column!r} has {int(outside.sum())} values outside [0, 1] "
                        f"(e.g. {values[outside][:3].tolist()} in rows {list(data.index[outside][:3])}); "
                        f"{item.metric.class_name} needs labels in [0, 1]"
                    )
        if model.example_weight_key and (model.example_weight_key, None) not in checked:
            checked.add((model.example_weight_key, None))
            weights = numeric_column(data, model.example_weight_key, "example weight")
            bad = ~np.isfinite(weights) | (weights < 0)
            if bad.any():
                raise InvalidValuesError(
                    f"example weight column {model.example_weight_key!r} has {int(bad.sum())} negative, "
                    f"infinite or missing values (rows {list(data.index[bad][:5])})"
                )
    for column, (values, outside) in logits.items():
        names = []
        for item in planned:
            if (item.metric.needs_binary and item.model.prediction_key == column
                    and item.model.name not in multiclass_models and item.metric.class_name not in names):
                names.append(item.metric.class_name)
        _warn_logits(column, values, outside, names)


def _warn_logits(column: str, values: np.ndarray, outside: np.ndarray, names: Sequence[str]) -> None:
    """TFMA 0.47.1 computes every binary metric on predictions outside [0, 1] (it checks only
    labels), and so does the engine, with this warning."""
    message = (
        f"toolkit.evaluate: prediction column {column!r} has {int(outside.sum()):,} of {values.size:,} "
        f"values outside [0, 1] (from {np.min(values):.4g} to {np.max(values):.4g}): they look like "
        f"logits, not probabilities. As TFMA does, {', '.join(names)} read them as probabilities: a "
        "thresholded metric counts a score above its threshold (0.5 by default) as positive, "
        "and AUC puts all scores below 0 in one bucket of TFMA's calibration histogram and all above 1 "
        "in another, so it does not rank them within those; apply a sigmoid to evaluate probabilities"
    )
    warnings.warn(message, stacklevel=4)
    logger.warning(message)


def numeric_column(data: pd.DataFrame, column: str, role: str) -> np.ndarray:
    series = data[column]
    if pd.api.types.is_bool_dtype(series.dtype):
        return series.to_numpy(dtype=float)
    if not pd.api.types.is_numeric_dtype(series.dtype):
        try:
            return pd.to_numeric(series).to_numpy(dtype=float)
        except (TypeError, ValueError):
            raise InvalidValuesError(
                f"{role} column {column!r} is not numeric (dtype {series.dtype}); "
                f"first values: {series.head(3).tolist()}"
            ) from None
    return series.to_numpy(dtype=float)


def _multipliers(data: pd.DataFrame, config: EvalConfig, seed: int | None) -> list[np.ndarray]:
    """Each row's resampling weights, from the row's content and the seed: the Beam
    engine draws the same ones (:mod:`toolkit.evaluation.resampling`)."""
    return resampling.resample_weights(data, resampling.evaluated_columns(config),
                                       config.options.confidence_interval_method, seed, NUM_SAMPLES)


def _compute(data: pd.DataFrame, config: EvalConfig, planned: Sequence[_Planned], slice_set: SliceSet,
             seed: int | None, inputs: dict[str, multiclass.MultiClassInputs] | None = None) -> list[SliceMetrics]:
    groups = slice_set.slices
    ci = config.options.compute_confidence_intervals
    multipliers = _multipliers(data, config, seed) if ci else []
    inputs = inputs or {}
    # (key) -> (point[G(,m)], samples[R,G(,m)] | None, metric, thresholds, array, tidy name)
    computed: dict[MetricKey, tuple] = {}
    order: list[MetricKey] = []
    by_model: dict[tuple[str, bool, str], list[_Planned]] = {}
    for item in planned:
        by_model.setdefault((item.model.name, item.weighted, item.sub_key), []).append(item)
    specs = {m.name: m for m in config.model_specs}
    for done, ((model_name, weighted, sub_key), items) in enumerate(by_model.items()):
        progress.report("computing metrics, group", done + 1, len(by_model), rows=len(data),
                        slices=len(groups))
        model = specs[model_name]
        weights = (numeric_column(data, model.example_weight_key, "example weight")
                   if weighted and model.example_weight_key else np.ones(len(data)))
        mc = inputs.get(model_name)
        if mc is not None:
            for item in items:
                if item.metric.needs_multiclass:
                    for key, entry in _multiclass_values(item, mc, slice_set, weights, multipliers, weighted):
                        if key not in computed:
                            order.append(key)
                        computed[key] = entry
            items = [item for item in items if not item.metric.needs_multiclass]
            if not items:
                continue
            view = multiclass.binary_view(mc, sub_key)
            labels, predictions, per_row = view.labels, view.scores, view.per_row
        else:
            labels = numeric_column(data, model.label_key, "label")
            predictions = numeric_column(data, model.prediction_key, "prediction")
            per_row = 1
        incidence = multiclass.expand(slice_set.incidence, per_row)
        row_weights = np.repeat(weights, per_row) if per_row > 1 else weights
        row_multipliers = [np.repeat(m, per_row) for m in multipliers] if per_row > 1 else multipliers
        thresholds = sorted({t for i in items if i.metric.kind in ("confusion", "fairness")
                             for t in i.metric.thresholds})
        aucs = sorted({i.metric.num_thresholds for i in items if i.metric.kind == "auc"})
        binary = any(i.metric.needs_binary for i in items)
        errors = any(i.metric.kind in metrics_mod.REGRESSION_KINDS for i in items)
        plan = StatsPlan(incidence, labels, predictions, row_weights, thresholds, aucs, binary, errors)
        curve_items = [item for item in items if item.metric.kind in plots_mod.PLOT_KINDS]
        for key, entry in plots_mod.plot_entries(curve_items, incidence.rows, incidence.group, incidence.n_groups,
                                                 labels, predictions, row_weights, weighted):
            if key not in computed:
                order.append(key)
            computed[key] = entry
        items = [item for item in items if item.metric.kind not in plots_mod.PLOT_KINDS]
        point = plan.compute([None])
        samples = plan.compute(row_multipliers) if row_multipliers else None
        if per_row > 1 and any(i.metric.kind == "count" for i in items):
            # TFMA counts examples, not the (example, class) pairs of a flattened view.
            point.example_wsum = _example_weights(slice_set, weights, [None])
            if samples is not None:
                samples.example_wsum = _example_weights(slice_set, weights, multipliers)
        for item in items:
            for key, entry in metric_values(item, point, samples, weighted):
                if key not in computed:
                    order.append(key)
                computed[key] = entry
    add_model_diffs(config, computed, order)
    return assemble_slices(config, groups, computed, order)


def _example_weights(slice_set: SliceSet, weights: np.ndarray, multipliers) -> np.ndarray:
    rows, group, size = slice_set.incidence.rows, slice_set.incidence.group, slice_set.incidence.n_groups
    return np.stack([np.bincount(group, weights=weights[rows] if m is None else weights[rows] * m[rows],
                                 minlength=size) for m in multipliers])


def _multiclass_values(item: _Planned, mc: multiclass.MultiClassInputs, slice_set: SliceSet,
                       weights: np.ndarray, multipliers, weighted: bool):
    metric = item.metric
    key = MetricKey(metric.name, item.model.name, False, bool(weighted), item.sub_key)
    if metric.kind in metrics_mod.MATRIX_KINDS:
        thresholds, counts = multiclass.confusion_matrices(mc, metric.thresholds, slice_set.incidence, weights)
        yield key, (counts, None, metric, thresholds, False, metric.name)
        return
    sparse = metric.kind == "sparse_accuracy"
    point = multiclass.accuracy(mc, sparse, slice_set.incidence, weights, [None])[0]
    samples = multiclass.accuracy(mc, sparse, slice_set.incidence, weights, multipliers) if multipliers else None
    yield key, (point, samples, metric, None, False, metric.name)


def metric_values(item: _Planned, point, samples, weighted: bool):
    metric = item.metric
    weighted_flag = bool(weighted)
    model_name = item.model.name
    sub_key = item.sub_key

    def both(fn):
        return fn(point)[0], (fn(samples) if samples is not None else None)

    if metric.kind in metrics_mod.REGRESSION_KINDS or metric.kind in (
            "count", "mean_label", "mean_prediction", "calibration"):
        p, s = both(lambda st: metrics_mod.simple_value(metric.kind, st))
        yield MetricKey(metric.name, model_name, False, weighted_flag, sub_key), (p, s, metric, None, False, metric.name)
    elif metric.kind == "auc":
        p, s = both(lambda st: metrics_mod.auc_value(metric, st.curves[metric.num_thresholds]))
        curve = point.curves[metric.num_thresholds]
        notes = [metrics_mod.undefined_note(metric, pos, neg)
                 for pos, neg in zip(curve.positives[0], curve.negatives[0])]
        yield MetricKey(metric.name, model_name, False, weighted_flag, sub_key), (p, s, metric, None, False, metric.name,
                                                                          notes)
    elif metric.kind == "confusion":
        def values(st):
            return metric.formula(*metrics_mod.confusion_at(st, metric.thresholds))
        p, s = both(values)
        if len(metric.thresholds) == 1:
            p, s = p[..., 0], (None if s is None else s[..., 0])
        array = len(metric.thresholds) > 1
        reported = None if metric.thresholds == (metrics_mod.TOP_K_ANY,) else metric.thresholds
        yield MetricKey(metric.name, model_name, False, weighted_flag, sub_key), (p, s, metric, reported, array,
                                                                                   metric.name)
    elif metric.kind == "fairness":
        cm_point = metrics_mod.confusion_at(point, metric.thresholds)
        cm_samples = metrics_mod.confusion_at(samples, metric.thresholds) if samples is not None else None
        for i, threshold in enumerate(metric.thresholds):
            for sub, formula in metrics_mod.FAIRNESS_SUB_METRICS:
                p = formula(*(m[..., i] for m in cm_point))[0]
                s = None if cm_samples is None else formula(*(m[..., i] for m in cm_samples))
                name = metrics_mod.fairness_key(metric.name, sub, threshold, metric.thresholds)
                yield MetricKey(name, model_name, False, weighted_flag, sub_key), (p, s, metric, (threshold,), False,
                                                                          f"{metric.name}/{sub}")


def add_model_diffs(config: EvalConfig, computed: dict, order: list[MetricKey]) -> None:
    baseline = config.baseline
    if baseline is None:
        return
    for key in list(order):
        if key.model_name == baseline.name or key.is_diff or computed[key][2].is_plot or \
                computed[key][2].kind in metrics_mod.MATRIX_KINDS:
            continue
        base = computed.get(key.baseline_key(baseline.name))
        if base is None:
            continue
        p, s, metric, thresholds, array, tidy = computed[key][:6]
        diff_samples = None if s is None or base[1] is None else s - base[1]
        diff_key = MetricKey(key.name, key.model_name, True, key.example_weighted, key.sub_key)
        computed[diff_key] = (p - base[0], diff_samples, metric, thresholds, array, tidy)
        order.append(diff_key)


def _interval(config: EvalConfig, point: np.ndarray, samples: np.ndarray):
    """TFMA's t-distribution summary of the resamples: (mean, std error, lower, upper, dof)."""
    from scipy import stats as scipy_stats

    n = samples.shape[0]
    dof = n - 1
    with np.errstate(invalid="ignore"):
        if config.options.confidence_interval_method == "POISSON_BOOTSTRAP":
            mean = samples.mean(axis=0)
            std_error = samples.std(axis=0, ddof=1)
        else:
            pseudo = point * n - samples * (n - 1)
            std_error = pseudo.std(axis=0, ddof=1) / np.sqrt(n)
            mean = samples.sum(axis=0) / n
    t_stat = scipy_stats.t.ppf(1 - 0.05 / 2.0, dof)
    return mean, std_error, mean - std_error * t_stat, mean + std_error * t_stat, dof


def assemble_slices(config: EvalConfig, groups, computed: dict, order: list[MetricKey]) -> list[SliceMetrics]:
    ci = config.options.compute_confidence_intervals
    intervals = {}
    if ci:
        for key in order:
            p, s, metric = computed[key][:3]
            if s is not None and (metric.compute_ci or key.is_diff):
                intervals[key] = _interval(config, p, s)
    min_size = config.options.min_slice_size
    out: list[SliceMetrics] = []
    for g in groups:
        small = bool(g.key) and g.size < min_size
        sm = SliceMetrics(key=g.key, size=g.size, spec=g.spec.describe(), below_min_slice_size=small)
        if small:
            sm.error = small_slice_message(min_size)
        else:
            for key in order:
                entry = computed[key]
                target = sm.plots if entry[2].is_plot else sm.metrics
                target[key] = _slice_value(entry, intervals.get(key), g.group)
        out.append(sm)
    out.extend(_cross_slices(config, groups, computed, order, intervals))
    return out


def _slice_value(entry, interval, index) -> MetricValue:
    p, _, metric, thresholds, array, tidy = entry[:6]
    notes = entry[6] if len(entry) > 6 else None
    value = p[index]
    if metric.kind in plots_mod.PLOT_KINDS:
        return value  # a MetricValue per slice already (plots.plot_value)
    if metric.kind in metrics_mod.MATRIX_KINDS:
        return MetricValue(value=np.asarray(value, float), metric=tidy, thresholds=thresholds, matrix=True)
    mv = MetricValue(value=value if array else float(value), metric=tidy, thresholds=thresholds, array=array,
                     note=(notes[index] if notes is not None and 0 <= index < len(notes) else ""))
    if interval is not None:
        _set_interval(mv, interval, array, index)
    return mv


def _set_interval(mv: MetricValue, interval, array: bool, index=None) -> None:
    """``mv``'s interval fields from ``_interval``'s summary (element ``index`` of each when given).

    Array metrics keep their arrays; the others get Python floats.
    """
    mean, std_error, lower, upper, dof = interval

    def pick(values):
        value = values if index is None else values[index]
        return value if array else float(value)

    mv.sample_mean, mv.std_error, mv.lower, mv.upper = (pick(v) for v in (mean, std_error, lower, upper))
    mv.dof = dof


def _cross_slices(config, groups, computed, order, intervals) -> list[SliceMetrics]:
    out: list[SliceMetrics] = []
    seen: set[tuple] = set()
    min_size = config.options.min_slice_size
    for cross in config.cross_slicing_specs:
        bases = [g for g in groups if cross.baseline_spec.is_slice_applicable(g.key)]
        if cross.slicing_specs:
            comparisons = [g for g in groups if any(s.is_slice_applicable(g.key) for s in cross.slicing_specs)]
        else:
            comparisons = [g for g in groups if not cross.baseline_spec.is_slice_applicable(g.key)]
        for base in bases:
            for comp in comparisons:
                key = (base.key, comp.key)
                if key in seen:
                    continue
                seen.add(key)
                sm = SliceMetrics(key=key, size=None, spec=f"{cross.baseline_spec.describe()} vs "
                                  f"{comp.spec.describe()}", is_cross=True)
                small = [g for g in (base, comp) if g.key and g.size < min_size]
                if small:
                    sm.below_min_slice_size = True
                    sm.error = small_slice_message(min_size)
                    out.append(sm)
                    continue
                for mkey in order:
                    entry = computed[mkey]
                    p, s, metric, thresholds, array, tidy = entry[:6]
                    if metric.kind in metrics_mod.MATRIX_KINDS or metric.is_plot:
                        continue  # TFMA gives no cross-slice difference of a confusion matrix or plot
                    diff_point = p[base.group] - p[comp.group]
                    mv = MetricValue(value=diff_point if array else float(diff_point), metric=tidy,
                                     thresholds=thresholds, array=array)
                    if mkey in intervals and s is not None:
                        diff_samples = s[:, base.group] - s[:, comp.group]
                        _set_interval(mv, _interval(config, diff_point, diff_samples), array)
                    sm.metrics[mkey] = mv
                out.append(sm)
    return out


def _merge(slices: list[SliceMetrics], extra: list[SliceMetrics]) -> None:
    """Add metrics computed by TFMA to the engine's slices (same slice keys)."""
    by_key = {sm.key: sm for sm in slices}
    for other in extra:
        mine = by_key.get(other.key)
        if mine is None:
            slices.append(other)
            continue
        if mine.error:
            continue
        for key, value in other.metrics.items():
            mine.metrics.setdefault(key, value)


def finish_result(config: EvalConfig, slices: list[SliceMetrics], empty, engine_used: str, baseline_slice,
            rubber_stamp: bool, missing_values: dict[str, int] | None = None) -> EvalResult:
    rules = threshold_rules(config)
    baseline_model = config.baseline.name if config.baseline else None
    if baseline_model is None:
        rules = [r for r in rules if not isinstance(r.threshold, config_mod.ChangeThreshold)]
    weighted = _weighted_default(config, config.metrics_specs[0]) if config.metrics_specs else False
    for item in empty:
        slices.append(SliceMetrics(key=item.key, size=0, spec=item.spec.describe(), empty=True,
                                   error=f"no rows match slicing spec {item.spec.describe()!r}"))
    validation = validate(slices, rules, config.candidate.name, baseline_model, weighted, rubber_stamp)
    result = EvalResult(slices, config, validation, engine=engine_used, missing_values=missing_values or {})
    if baseline_slice is not None:
        result = result.against(baseline_slice)
    return result
