"""The stored form of an evaluation: ``evaluation.json`` (exact, versioned) and ``metrics.parquet``.

A pickle would name classes by their import path, so moving a class would break
every stored evaluation, and unpickling a file runs code from it. The JSON
document names fields instead of classes and carries a format name and version:
a later toolkit can read version 1, and this one refuses a newer document with a
message instead of misreading it. It holds everything an :class:`EvalResult`
is made of, so :func:`load_result` gives back an equal result: the same slices,
tidy frame, validation and blessing.

``metrics.parquet`` is the tidy ``EvalResult.to_dataframe()`` (the ``slice_key``
column as the JSON text of :func:`slice_key_to_json`), for pandas, DuckDB or Spark
users without the toolkit. Loading reads ``evaluation.json`` only.

Encoding rules, one for each kind of value:

* numbers: JSON numbers; NaN and infinities as the strings ``"NaN"``,
  ``"Infinity"`` and ``"-Infinity"`` (protobuf's JSON form, also TFMA's), so the
  file is strict JSON; numpy arrays as ``{"array": [...], "dtype": ..., "shape": [...]}``;
* slice keys: a list of ``[column, value]`` pairs (``[]`` is Overall), a cross
  slice as ``{"cross": [baseline_key, comparison_key]}``; a value is a JSON string,
  integer or float, except bytes (``{"bytes": base64}``) and non-finite floats
  (``{"float": "NaN"}``), so every value comes back with its type;
* configuration (the EvalConfig, thresholds, slicing specs): their TFMA dict form,
  parsed again with :mod:`toolkit.evaluation.config` on loading.

Multi-class results add three optional fields, written only when used, so a
binary evaluation's document is unchanged and version 1 still describes it: a
metric key's ``sub_key`` (TFMA's ``classId:0``, ``k:2``, ``topK:1``), a metric
value's ``matrix`` flag (a multi-class confusion matrix: its ``value`` is the
array of weighted counts, NaN where TFMA has no entry), and a slice's ``plots``
(entries shaped like ``metrics``). A reader of version 1 that predates them
ignores them (it would show per-class metrics as if they had no sub key); the
format version was not raised because the existing documents, and every
reader's refusal of a newer version, stay exactly as they are.

Binary plots (ConfusionMatrixPlot, CalibrationPlot) go into the same optional
``plots`` list, their values carrying one more optional field, ``plot`` (the kind:
``confusion_plot`` with ``value`` the (thresholds, 4) array of tp, tn, fp, fn and
``thresholds`` TFMA's reported thresholds; ``calibration_plot`` with ``value`` the
(buckets, 3) array of weighted labels, predictions and examples and ``thresholds``
the buckets' lower edges). Only the counts are kept: precision, recall and the
other rates are derived from them when read, as TFMA derives them.
"""
from __future__ import annotations

import base64
import json
import math
import os
from typing import Any, Mapping

import numpy as np

from toolkit import storage
from toolkit.errors import ToolkitError
from toolkit.evaluation.config import (ChangeThreshold, CrossSlicingSpec, SlicingSpec,
                                       ValueThreshold, from_dict, parse_cross_slicing_spec,
                                       parse_slicing_spec, parse_thresholds)
from toolkit.evaluation.result import EvalResult
from toolkit.evaluation.slicing import is_cross_key
from toolkit.evaluation.validation import ThresholdCheck, Validation
from toolkit.evaluation.values import PLOT_FIELDS, MetricKey, MetricValue, SliceMetrics, json_double

FORMAT = "toolkit.evaluation"
#: The version this toolkit writes; it reads every version up to this one.
VERSION = 1
RESULT_FILE = "evaluation.json"
METRICS_FILE = "metrics.parquet"
#: What toolkit versions before the JSON document stored: never read (it would run code).
LEGACY_FILE = "toolkit_eval_result.pkl"

_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


class _Malformed(ValueError):
    """A part of the document that does not have the shape this module writes."""


# --------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------

def save_result(result: EvalResult, folder: str) -> str:
    """Write ``result`` into ``folder`` as ``evaluation.json`` and ``metrics.parquet``.

    Each file is written under a temporary name and renamed, so a reader never
    sees half a file. Returns the path of ``evaluation.json``.
    """
    storage.makedirs(folder)
    document = to_document(result)
    try:
        text = json.dumps(document, allow_nan=False, separators=(",", ":"), default=_json_default)
    except (TypeError, ValueError) as exc:
        raise ToolkitError(f"cannot store the evaluation in {folder}: {_one_line(exc)}") from None
    path = storage.join(folder, RESULT_FILE)
    _replace(path, lambda tmp: storage.write_text(tmp, text))
    frame = result.to_dataframe()
    frame["slice_key"] = [slice_key_to_json(key) for key in frame["slice_key"]]
    _replace(storage.join(folder, METRICS_FILE), lambda tmp: _write_parquet(tmp, frame))
    return path


def load_result(folder: str, what: str | None = None) -> EvalResult:
    """The :class:`EvalResult` stored in ``folder`` by :func:`save_result`.

    ``what`` names the evaluation in messages (default: the folder). Every problem
    raises one line: no stored evaluation, one stored by an older toolkit (a pickle,
    never unpickled), a newer format version, or a malformed file (named).
    """
    what = what or folder
    path = storage.join(folder, RESULT_FILE)
    if not storage.is_file(path):
        if storage.is_file(storage.join(folder, LEGACY_FILE)):
            raise ToolkitError(f"{what}: this evaluation was stored by an older toolkit version "
                               f"({LEGACY_FILE}); re-run its Evaluator")
        raise ToolkitError(f"{what}: no {RESULT_FILE} (an evaluation written by TFMA alone is "
                           "read with tfma.load_eval_result)")
    try:
        with storage.open(path, "r", encoding="utf-8") as handle:
            document = json.load(handle, parse_constant=_reject_constant)
    except OSError as exc:
        raise ToolkitError(f"cannot read {path}: {exc.strerror}") from None
    except (ValueError, _Malformed) as exc:  # JSONDecodeError, bare NaN tokens, bad UTF-8
        raise ToolkitError(f"{path} is not valid JSON: {_one_line(exc)}") from None
    return from_document(document, path)


def to_document(result: EvalResult) -> dict[str, Any]:
    """``result`` as the JSON-ready dict stored in ``evaluation.json``."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "engine": result.engine,
        "baseline_slice": None if result.baseline_slice is None
        else _key_doc(result.baseline_slice),
        "missing_values": {str(k): int(v) for k, v in result.missing_values.items()},
        "eval_config": result.eval_config.raw,
        "slices": [_slice_doc(sm) for sm in result.slices],
        "validation": _validation_doc(result.validation),
    }


def from_document(document: Any, path: str = RESULT_FILE) -> EvalResult:
    """The :class:`EvalResult` of a document made by :func:`to_document`; ``path`` names it
    in the one-line error raised for a foreign, newer or malformed document."""
    if not isinstance(document, Mapping) or document.get("format") != FORMAT:
        found = document.get("format") if isinstance(document, Mapping) else None
        raise ToolkitError(f"{path} is not a toolkit evaluation (format {found!r}, "
                           f"expected {FORMAT!r})")
    version = document.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ToolkitError(f"{path} has no valid format version ({version!r})")
    if version > VERSION:
        raise ToolkitError(f"{path} was stored by a newer toolkit (evaluation format version "
                           f"{version}; this toolkit reads up to version {VERSION}): upgrade "
                           "the toolkit to read it")
    try:
        baseline = document["baseline_slice"]
        return EvalResult(
            [_slice_from(d) for d in _list(document["slices"])],
            from_dict(_dict(document["eval_config"])),
            _validation_from(_dict(document["validation"])),
            engine=_str(document["engine"]),
            baseline_slice=None if baseline is None else _key_from(baseline),
            missing_values={str(k): int(v) for k, v in _dict(document["missing_values"]).items()},
        )
    except ToolkitError as exc:
        raise ToolkitError(f"{path} is malformed: {_one_line(exc)}") from None
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        detail = f"missing field {exc}" if isinstance(exc, KeyError) else _one_line(exc)
        raise ToolkitError(f"{path} is malformed: {detail}") from None


def slice_key_to_json(key: tuple) -> str:
    """A slice key (or cross-slice key) as JSON text, the form ``metrics.parquet`` holds."""
    return json.dumps(_key_doc(key), allow_nan=False, separators=(",", ":"))


def slice_key_from_json(text: str) -> tuple:
    """The slice key :func:`slice_key_to_json` wrote, with its value types."""
    return _key_from(json.loads(text, parse_constant=_reject_constant))


# --------------------------------------------------------------------------
# Numbers
# --------------------------------------------------------------------------

def _number(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biuf":
            raise TypeError(f"a metric value is an array of {value.dtype}, not numbers")
        return {"array": [_number(v) for v in value.reshape(-1).tolist()],
                "dtype": value.dtype.name, "shape": list(value.shape)}
    if isinstance(value, (list, tuple)):
        return {"list" if isinstance(value, list) else "tuple": [_number(v) for v in value]}
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return json_double(value)
    raise TypeError(f"a metric value is a {type(value).__name__}, not a number")


def _number_from(data: Any) -> Any:
    if data is None or isinstance(data, (bool, int, float)):
        return data
    if isinstance(data, str):
        if data in _NON_FINITE:
            return _NON_FINITE[data]
        raise _Malformed(f"{data!r} is not a number")
    if isinstance(data, Mapping):
        if "array" in data:
            values = [_number_from(v) for v in _list(data["array"])]
            return np.array(values, dtype=np.dtype(_str(data["dtype"]))).reshape(
                [int(n) for n in _list(data["shape"])])
        if "list" in data:
            return [_number_from(v) for v in _list(data["list"])]
        if "tuple" in data:
            return tuple(_number_from(v) for v in _list(data["tuple"]))
    raise _Malformed(f"{data!r} is not a stored number")


# --------------------------------------------------------------------------
# Slice keys
# --------------------------------------------------------------------------

def _key_doc(key: tuple) -> Any:
    if is_cross_key(key):
        return {"cross": [_key_doc(key[0]), _key_doc(key[1])]}
    return [[str(column), _slice_value_doc(value)] for column, value in key]


def _slice_value_doc(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"bytes": base64.b64encode(value).decode("ascii")}
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, np.bool_)):
        return {"bool": bool(value)}
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        number = float(value)
        return number if math.isfinite(number) else {"float": _number(number)}
    raise TypeError(f"a slice value is a {type(value).__name__} (expected str, int, float or "
                    "bytes)")


def _key_from(data: Any) -> tuple:
    if isinstance(data, Mapping):
        baseline, comparison = _list(data["cross"])
        return (_key_from(baseline), _key_from(comparison))
    pairs = []
    for pair in _list(data):
        column, value = _list(pair)
        pairs.append((_str(column), _slice_value_from(value)))
    return tuple(pairs)


def _slice_value_from(data: Any) -> Any:
    if isinstance(data, (str, int, float)) and not isinstance(data, bool):
        return data
    if isinstance(data, Mapping):
        if "bytes" in data:
            return base64.b64decode(_str(data["bytes"]), validate=True)
        if "float" in data:
            return float(_number_from(data["float"]))
        if "bool" in data:
            return bool(data["bool"])
    raise _Malformed(f"{data!r} is not a stored slice value")


# --------------------------------------------------------------------------
# Slices and metrics
# --------------------------------------------------------------------------

def _slice_doc(sm: SliceMetrics) -> dict[str, Any]:
    return {
        "key": _key_doc(sm.key),
        "size": None if sm.size is None else int(sm.size),
        "spec": sm.spec,
        "is_cross": bool(sm.is_cross),
        "below_min_slice_size": bool(sm.below_min_slice_size),
        "error": sm.error,
        "empty": bool(sm.empty),
        "metrics": [{"key": _metric_key_doc(key), "value": _metric_value_doc(value)}
                    for key, value in sm.metrics.items()],
        **({"plots": [{"key": _metric_key_doc(key), "value": _metric_value_doc(value)}
                      for key, value in sm.plots.items()]} if sm.plots else {}),
    }


def _slice_from(data: Any) -> SliceMetrics:
    data = _dict(data)
    size = data["size"]
    metrics = {}
    for entry in _list(data["metrics"]):
        entry = _dict(entry)
        metrics[_metric_key_from(entry["key"])] = _metric_value_from(entry["value"])
    plots = {}
    for entry in _list(data.get("plots", [])):
        entry = _dict(entry)
        plots[_metric_key_from(entry["key"])] = _metric_value_from(entry["value"])
    return SliceMetrics(
        key=_key_from(data["key"]), size=None if size is None else int(size),
        spec=_str(data["spec"]), is_cross=_bool(data["is_cross"]),
        below_min_slice_size=_bool(data["below_min_slice_size"]), error=_str(data["error"]),
        metrics=metrics, empty=_bool(data["empty"]), plots=plots)


def _metric_key_doc(key: MetricKey) -> dict[str, Any]:
    weighted = key.example_weighted
    doc = {"name": key.name, "model_name": key.model_name, "is_diff": bool(key.is_diff),
           "example_weighted": None if weighted is None else bool(weighted)}
    if key.sub_key:
        doc["sub_key"] = key.sub_key
    return doc


def _metric_key_from(data: Any) -> MetricKey:
    data = _dict(data)
    weighted = data["example_weighted"]
    return MetricKey(_str(data["name"]), _str(data["model_name"]), _bool(data["is_diff"]),
                     None if weighted is None else _bool(weighted), _str(data.get("sub_key", "")))


def _metric_value_doc(value: MetricValue) -> dict[str, Any]:
    extra = {"matrix": True} if value.matrix else {}
    if value.plot:
        extra["plot"] = value.plot
    return {**extra,
        "value": _number(value.value),
        "metric": value.metric,
        "thresholds": None if value.thresholds is None else [_number(t) for t in value.thresholds],
        "array": bool(value.array),
        "lower": _number(value.lower),
        "upper": _number(value.upper),
        "sample_mean": _number(value.sample_mean),
        "std_error": _number(value.std_error),
        "dof": None if value.dof is None else int(value.dof),
        "note": value.note,
        # TFMA's JSON form of a metric the engine keeps as TFMA gave it (already JSON)
        "encoded": value.encoded,
    }


def _metric_value_from(data: Any) -> MetricValue:
    data = _dict(data)
    thresholds = data["thresholds"]
    dof = data["dof"]
    encoded = data["encoded"]
    return MetricValue(
        value=_number_from(data["value"]), metric=_str(data["metric"]),
        thresholds=None if thresholds is None else tuple(
            float(_number_from(t)) for t in _list(thresholds)),
        array=_bool(data["array"]), lower=_number_from(data["lower"]),
        upper=_number_from(data["upper"]), sample_mean=_number_from(data["sample_mean"]),
        std_error=_number_from(data["std_error"]), dof=None if dof is None else int(dof),
        note=_str(data["note"]), encoded=None if encoded is None else _dict(encoded),
        matrix=_bool(data.get("matrix", False)), plot=_plot_kind(data.get("plot", "")))


def _plot_kind(data: Any) -> str:
    kind = _str(data)
    if kind and kind not in PLOT_FIELDS:
        raise _Malformed(f"unknown plot kind {kind!r}")
    return kind


# --------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------

def _validation_doc(validation: Validation) -> dict[str, Any]:
    return {
        "ok": bool(validation.ok),
        "checks": [_check_doc(check) for check in validation.checks],
        "missing_thresholds": bool(validation.missing_thresholds),
        "missing_slices": [spec.to_dict() for spec in validation.missing_slices],
        "missing_cross_slices": [spec.to_dict() for spec in validation.missing_cross_slices],
        "slicing_details": [{"restriction": _restriction_doc(spec), "count": int(count)}
                            for spec, count in validation.slicing_details],
        "rubber_stamp": bool(validation.rubber_stamp),
    }


def _validation_from(data: Mapping[str, Any]) -> Validation:
    details = []
    for entry in _list(data["slicing_details"]):
        entry = _dict(entry)
        restriction = _restriction_from(entry["restriction"])
        if restriction is None:
            raise _Malformed("a slicing detail has no slicing spec")
        details.append((restriction, int(entry["count"])))
    return Validation(
        ok=_bool(data["ok"]),
        checks=[_check_from(c) for c in _list(data["checks"])],
        missing_thresholds=_bool(data["missing_thresholds"]),
        missing_slices=[parse_slicing_spec(_dict(d)) for d in _list(data["missing_slices"])],
        missing_cross_slices=[parse_cross_slicing_spec(_dict(d))
                              for d in _list(data["missing_cross_slices"])],
        slicing_details=details,
        rubber_stamp=_bool(data["rubber_stamp"]),
    )


def _check_doc(check: ThresholdCheck) -> dict[str, Any]:
    return {
        "slice_key": _key_doc(check.slice_key),
        "metric_key": _metric_key_doc(check.metric_key),
        "threshold": _threshold_doc(check.threshold),
        "restriction": _restriction_doc(check.restriction),
        "value": _number(check.value),
        "passed": bool(check.passed),
        "message": check.message,
    }


def _check_from(data: Any) -> ThresholdCheck:
    data = _dict(data)
    value = _number_from(data["value"])
    return ThresholdCheck(
        slice_key=_key_from(data["slice_key"]), metric_key=_metric_key_from(data["metric_key"]),
        threshold=_threshold_from(data["threshold"]),
        restriction=_restriction_from(data["restriction"]),
        value=None if value is None else float(value), passed=_bool(data["passed"]),
        message=_str(data["message"]))


def _threshold_doc(threshold: Any) -> dict[str, Any]:
    """The threshold's own TFMA dict; its parsed fields when it was not parsed from one."""
    if isinstance(threshold, ValueThreshold):
        fields = {"lower_bound": threshold.lower_bound, "upper_bound": threshold.upper_bound}
        kind = "value"
    elif isinstance(threshold, ChangeThreshold):
        fields = {"direction": threshold.direction, "absolute": threshold.absolute,
                  "relative": threshold.relative}
        kind = "change"
    else:
        raise TypeError(f"a threshold check holds a {type(threshold).__name__}")
    raw = dict(threshold.raw) if threshold.raw else {
        k: v for k, v in fields.items() if v is not None}
    return {"kind": kind, "raw": raw}


def _threshold_from(data: Any) -> Any:
    data = _dict(data)
    kind = data["kind"]
    if kind not in ("value", "change"):
        raise _Malformed(f"unknown threshold kind {kind!r}")
    parsed = parse_thresholds({f"{kind}_threshold": _dict(data["raw"])})
    if len(parsed) != 1:
        raise _Malformed(f"threshold {data['raw']!r} does not parse")
    return parsed[0]


def _restriction_doc(restriction: Any) -> dict[str, Any] | None:
    if restriction is None:
        return None
    if isinstance(restriction, CrossSlicingSpec):
        return {"cross_slicing_spec": restriction.to_dict()}
    if isinstance(restriction, SlicingSpec):
        return {"slicing_spec": restriction.to_dict()}
    raise TypeError(f"a threshold applies to a {type(restriction).__name__}")


def _restriction_from(data: Any) -> SlicingSpec | CrossSlicingSpec | None:
    if data is None:
        return None
    data = _dict(data)
    if "cross_slicing_spec" in data:
        return parse_cross_slicing_spec(_dict(data["cross_slicing_spec"]))
    return parse_slicing_spec(_dict(data["slicing_spec"]))


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------

def _dict(data: Any) -> dict[str, Any]:
    if not isinstance(data, Mapping):
        raise _Malformed(f"expected an object, found {type(data).__name__}")
    return dict(data)


def _list(data: Any) -> list:
    if not isinstance(data, list):
        raise _Malformed(f"expected a list, found {type(data).__name__}")
    return data


def _str(data: Any) -> str:
    if not isinstance(data, str):
        raise _Malformed(f"expected a string, found {type(data).__name__}")
    return data


def _bool(data: Any) -> bool:
    if not isinstance(data, bool):
        raise _Malformed(f"expected true or false, found {data!r}")
    return data


def _reject_constant(name: str) -> Any:
    raise _Malformed(f"bare {name} (numbers that are not finite are stored as strings)")


def _json_default(value: Any) -> Any:
    """numpy scalars in a config dict (a user's ``np.float64(0.5)`` bound) as Python numbers."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} values cannot be stored in JSON")


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _write_parquet(uri: str, frame: Any) -> None:
    """The frame as Parquet, written through the seam (pyarrow writes to the open file)."""
    with storage.open(uri, "wb") as handle:
        frame.to_parquet(handle, index=False)


def _replace(path: str, write: Any) -> None:
    temporary = f"{path}.tmp-{os.getpid()}"
    try:
        write(temporary)
        storage.move(temporary, path)
    finally:
        if storage.exists(temporary):
            storage.remove(temporary)
