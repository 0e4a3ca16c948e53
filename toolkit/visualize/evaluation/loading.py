"""Input adapters of the dashboard: what an evaluation is, whatever produced it.

The dashboard draws a toolkit :class:`~toolkit.evaluation.EvalResult`, a tidy
metrics DataFrame (``EvalResult.to_dataframe()``'s columns), a ``tfma.EvalResult``
with or without its ``ValidationResult``, or a ``ModelEvaluation`` artifact. Each
is recognised here, by the attributes it has, and turned into the plain records
and failures of :mod:`.model`; no other module of the dashboard probes its input.
TFMA and TensorFlow are imported only to read a folder that TFMA wrote.
"""
from __future__ import annotations

import math
import re
from typing import Any, Mapping, Sequence

from toolkit import storage
from toolkit.errors import ToolkitError
from toolkit.visualize.evaluation.model import (DEFAULT_LABELS, DashboardData, Failure, Series,
                                                build_series, spec_of, threshold_key, to_float)
from toolkit.visualize.reading import toolkit_artifact


def dashboard_data(result: Any, compare_to: Any = None,
                   labels: Sequence[str] | None = None) -> DashboardData:
    """The dashboard's data for ``result`` (and ``compare_to``, drawn beside it).

    A result evaluated with a baseline model gives two series (candidate first);
    ``labels`` names the series (default: the model names, or candidate/baseline).
    """
    validation = getattr(result, "validation", None)
    by_model = split_models(result, records_of(result))
    if compare_to is not None:
        other = split_models(compare_to, records_of(compare_to))[0][1]
        parts = [(by_model[0][1], validation),
                 (other, getattr(compare_to, "validation", None))]
    else:
        parts = [(records, validation if i == 0 else None)
                 for i, (_, records) in enumerate(by_model)]
    names = [model for model, _ in by_model]
    if labels is None:
        own = compare_to is None and all(names)
        labels = names if own else DEFAULT_LABELS
    labels = list(labels) + [f"model {i + 1}" for i in range(len(labels), len(parts))]
    series = [_series(labels[i] if len(parts) > 1 else "", records, check)
              for i, (records, check) in enumerate(parts)]
    data = DashboardData(series, min_slice_size_of(result))
    models = _model_plots(result)
    if compare_to is not None:
        models = models[:1] + _model_plots(compare_to)[:1]
    data.curves = curves_by_slice(models, [labels[i] if len(models) > 1 else "" for i in range(len(models))])
    return data


def _model_plots(result: Any) -> list[tuple[str, dict]]:
    """Per model (the candidate first): ``("values" | "tfma", {(slice key, sub key): plots})``.

    A toolkit result gives its typed plot values for every model; a ``tfma.EvalResult``
    (or a folder TFMA wrote) the JSON form of its one model's plots; a tidy frame none.
    """
    slices = getattr(result, "slices", None)
    if isinstance(slices, list) and all(hasattr(sm, "plots") for sm in slices):
        found: dict[str, dict] = {}
        for sm in slices:
            if sm.error or sm.is_cross or sm.empty:
                continue
            for key, value in sm.plots.items():
                if getattr(value, "plot", ""):
                    found.setdefault(key.model_name, {}).setdefault((sm.key, key.sub_key), {})[key] = value
        config = getattr(result, "eval_config", None)
        first = config.candidate.name if config is not None else ""
        names = sorted(found, key=lambda name: name != first)
        return [("values", found[name]) for name in names]
    plots = getattr(getattr(result, "eval_result", result), "plots", None)
    if not isinstance(plots, list):
        return []
    found_tfma: dict = {}
    for key, by_output in plots:
        for sub_key, value in (by_output or {}).get("", {}).items():
            if isinstance(value, Mapping):
                found_tfma[(key, sub_key)] = value
    return [("tfma", found_tfma)] if found_tfma else []


def curves_by_slice(models: list[tuple[str, dict]], labels: Sequence[str]) -> dict[tuple[str, str], list]:
    """``{(slice name, sub key): [ModelCurves per model]}`` for the dashboard's curves."""
    from toolkit.evaluation.slicing import is_cross_key, slice_display
    from toolkit.visualize.evaluation.curves import from_tfma_dict, from_values

    out: dict[tuple[str, str], list] = {}
    for (kind, plots), label in zip(models, labels):
        for (key, sub_key), value in plots.items():
            if is_cross_key(key):
                continue
            curves = from_values(label, value) if kind == "values" else from_tfma_dict(label, value)
            if curves is not None:
                out.setdefault((slice_display(key), sub_key), []).append(curves)
    return out


def _series(label: str, records: list[dict], validation: Any) -> Series:
    failures, blessed, text = validation_failures(validation)
    return build_series(label, records, failures, blessed, text,
                        not getattr(validation, "missing_thresholds", False))


def records_of(result: Any) -> list[dict[str, Any]]:
    """Tidy rows of ``result``: its ``to_dataframe()``, a tidy frame, or a TFMA EvalResult."""
    if hasattr(result, "to_dataframe"):
        return frame_records(result.to_dataframe())
    if hasattr(result, "columns") and {"slice", "metric", "value"} <= set(result.columns):
        return frame_records(result)
    if hasattr(result, "slicing_metrics"):
        return _records_from_tfma(result)
    raise ToolkitError(f"cannot show a {type(result).__name__} as an evaluation: pass the "
                       "result of toolkit.evaluate(), a tfma.EvalResult or a tidy metrics "
                       "dataframe")


def frame_records(frame: Any) -> list[dict[str, Any]]:
    """Rows of a dataframe as dicts; column lists zipped, much faster than ``to_dict``."""
    columns = [str(c) for c in frame.columns]
    lists = [frame[c].tolist() for c in frame.columns]
    return [dict(zip(columns, row)) for row in zip(*lists)]


def candidate_model(result: Any, models: list[str]) -> str:
    config = getattr(result, "eval_config", None)
    candidate = getattr(config, "candidate", None)
    name = getattr(candidate, "name", None)
    return name if name in models else models[0]


def split_models(result: Any, records: list[dict[str, Any]]) -> list[tuple[str, list[dict]]]:
    """Records per model, candidate first (a result evaluated with a baseline model has two)."""
    models: list[str] = []
    for record in records:
        model = record.get("model")
        model = model if isinstance(model, str) else ""
        if model not in models:
            models.append(model)
    if len(models) <= 1:
        return [(models[0] if models else "", records)]
    first = candidate_model(result, models)
    ordered = [first] + [m for m in models if m != first]
    return [(m, [r for r in records if (r.get("model") or "") == m]) for m in ordered]


def parse_metric(name: str) -> tuple[str, float | None]:
    """``fairness_indicators_metrics/false_positive_rate@0.50`` -> (name, 0.5)."""
    match = re.fullmatch(r"(.+)@([-+0-9.eE]+)", name)
    if match:
        return match.group(1), threshold_key(match.group(2))
    return name, None


def validation_failures(validation: Any) -> tuple[list[Failure], bool | None, str]:
    """Failed checks of a :class:`~toolkit.evaluation.Validation` or TFMA ValidationResult.

    Returns (failures, blessed, summary); ``blessed`` is None without a validation.
    """
    if validation is None:
        return [], None, ""
    if hasattr(validation, "failures"):
        failures = []
        for check in validation.failures:
            metric, threshold = parse_metric(str(check.metric))
            rule = check.threshold.describe() if hasattr(check.threshold, "describe") \
                else str(check.threshold)
            failures.append(Failure(str(check.slice), metric, threshold, rule,
                                    to_float(check.value), str(check.message or "")))
        summary = validation.summary() if hasattr(validation, "summary") else ""
        return failures, bool(validation.ok), summary
    if hasattr(validation, "validation_ok"):
        return _failures_from_tfma(validation)
    return [], None, ""


def min_slice_size_of(result: Any) -> int | None:
    options = getattr(getattr(result, "eval_config", None), "options", None)
    value = getattr(options, "min_slice_size", None)
    if value is None:
        config = getattr(result, "config", None) if not hasattr(result, "eval_config") else None
        wrapped = getattr(getattr(config, "options", None), "min_slice_size", None)
        value = getattr(wrapped, "value", None)
    return int(value) if isinstance(value, (int, float)) and value > 1 else None


class LoadedEvaluation:
    """A TFMA EvalResult with its ValidationResult, read from an evaluation folder."""

    def __init__(self, eval_result: Any, validation: Any):
        self.eval_result = eval_result
        self.validation = validation
        self.config = getattr(eval_result, "config", None)

    def to_dataframe(self) -> Any:
        import pandas as pd

        return pd.DataFrame(_records_from_tfma(self.eval_result))


def load_evaluation(source: Any) -> Any:
    """The evaluation in a ``ModelEvaluation`` artifact (or its folder), for the dashboard.

    What the Evaluator stored (``evaluation.json``) is read by ``ModelEvaluation.load()``,
    without TensorFlow; a folder holding only an older toolkit's pickle raises its
    one-line "re-run its Evaluator" message. A folder with neither (TFMA's records,
    written by TFMA itself or by ``write_tfma_artifact``) is read with
    ``tfma.load_eval_result`` and ``tfma.load_validation_result``, which import
    TensorFlow.
    """
    from toolkit.evaluation.storage import LEGACY_FILE, RESULT_FILE

    artifact = toolkit_artifact(source, "ModelEvaluation")
    uri = artifact.uri
    if any(storage.is_file(storage.join(uri, name)) for name in (RESULT_FILE, LEGACY_FILE)):
        return artifact.load()
    import tensorflow_model_analysis as tfma

    local = storage.local_path(uri)  # TFMA's loaders read local files
    try:
        validation = tfma.load_validation_result(local)
    except Exception:  # a folder written without validations still has metrics
        validation = None
    return LoadedEvaluation(tfma.load_eval_result(local), validation)


def _metric_thresholds(config: Any) -> dict[str, tuple[float, ...]]:
    """Thresholds of array-valued metrics (one value per threshold), from the EvalConfig."""
    if config is None:
        return {}
    from toolkit.evaluation.config import iter_metric_configs, load_eval_config
    from toolkit.evaluation.metrics import resolve

    found: dict[str, tuple[float, ...]] = {}
    for _, metric_config in iter_metric_configs(load_eval_config(config)):
        resolved, _ = resolve(metric_config)
        if resolved is not None and resolved.thresholds:
            found[resolved.name] = tuple(resolved.thresholds)
    return found


def _tfma_value(encoded: Mapping[str, Any]) -> tuple[list[float], float, float]:
    if "boundedValue" in encoded:
        bounded = encoded["boundedValue"]
        return ([to_float(bounded.get("value"))], to_float(bounded.get("lowerBound")),
                to_float(bounded.get("upperBound")))
    if "arrayValue" in encoded:
        array = encoded["arrayValue"]
        values = next((array[k] for k in array if k.endswith("Values")), [])
        return [to_float(v) for v in values], math.nan, math.nan
    return [to_float(encoded.get("doubleValue"))], math.nan, math.nan


def _records_from_tfma(eval_result: Any) -> list[dict[str, Any]]:
    """Tidy rows from a ``tfma.EvalResult`` (TFMA's JSON encoding of each metric)."""
    from toolkit.evaluation.slicing import is_cross_key, slice_display

    try:
        thresholds = _metric_thresholds(getattr(eval_result, "config", None))
    except Exception:  # an unreadable config only loses array thresholds
        thresholds = {}
    records = []
    for key, by_output in eval_result.slicing_metrics:
        cross = is_cross_key(key)
        name = slice_display(key)
        base = {"slice": name, "slice_key": key, "slice_spec": spec_of(name),
                "is_cross_slice": cross, "below_min_slice_size": False}
        metrics: dict[str, Any] = {}
        sub_keys: dict[str, str] = {}
        for output, by_sub_key in by_output.items():
            for sub_key, values in by_sub_key.items():
                prefix = output
                for m, v in values.items():
                    name = f"{prefix}/{m}" if prefix else m
                    if sub_key:  # per-class metrics keep their name; the sub key says which class
                        name = f"{sub_key}\x00{name}"
                        sub_keys[name] = sub_key
                    metrics[name] = v
        error = metrics.pop("__ERROR__", None)
        count = metrics.get("example_count")
        size = _tfma_value(count)[0][0] if isinstance(count, Mapping) else math.nan
        base["slice_size"] = None if math.isnan(size) else int(size)
        if error is not None:
            note = str(error.get("debugMessage", "")) if isinstance(error, Mapping) else str(error)
            records.append(dict(base, below_min_slice_size=True, metric="", note=note))
            continue
        for metric_name, encoded in metrics.items():
            if not isinstance(encoded, Mapping) or not ({"doubleValue", "boundedValue", "arrayValue"} & set(encoded)):
                continue  # e.g. a multi-class confusion matrix: not a number per slice
            sub_key = sub_keys.get(metric_name, "")
            metric, at = parse_metric(metric_name.split("\x00", 1)[-1])
            values, lower, upper = _tfma_value(encoded)
            listed = thresholds.get(metric, ())
            for i, value in enumerate(values):
                if at is not None:
                    threshold = at
                elif len(values) > 1 or listed:
                    threshold = listed[i] if i < len(listed) else float(i)
                else:
                    threshold = math.nan
                records.append(dict(base, model="", metric=metric, threshold=threshold,
                                    value=value, lower=lower, upper=upper, note="", sub_key=sub_key))
    return records


def _failures_from_tfma(validation: Any) -> tuple[list[Failure], bool | None, str]:
    from google.protobuf import json_format

    from toolkit.evaluation.slicing import slice_display
    from toolkit.evaluation.tfma_adapter import deserialize_key

    failures = []
    for per_slice in validation.metric_validations_per_slice:
        name = slice_display(deserialize_key(per_slice))  # a slice_key or a cross_slice_key
        for failure in per_slice.failures:
            metric, threshold = parse_metric(failure.metric_key.name)
            if failure.metric_key.is_diff:
                metric += "_diff"
            rule = json_format.MessageToDict(failure.metric_threshold)
            value = to_float(getattr(failure.metric_value.double_value, "value", math.nan)) \
                if failure.HasField("metric_value") else math.nan
            failures.append(Failure(name, metric, threshold, _describe_rule(rule), value,
                                    failure.message))
    ok = bool(validation.validation_ok)
    text = ("blessed" if ok else f"not blessed: {len(failures)} failed checks")
    return failures, ok, text


def _describe_rule(rule: Mapping[str, Any]) -> str:
    value = rule.get("valueThreshold") or {}
    parts = []
    if "lowerBound" in value:
        parts.append(f">= {to_float(value['lowerBound']):g}")
    if "upperBound" in value:
        parts.append(f"<= {to_float(value['upperBound']):g}")
    change = rule.get("changeThreshold") or {}
    if "absolute" in change:
        parts.append(f"change {to_float(change['absolute']):g}")
    if "relative" in change:
        parts.append(f"relative change {to_float(change['relative']):g}")
    return " and ".join(parts) or "a threshold"
