"""Read a TFMA ``EvalConfig`` (proto, dict, JSON or text form) without importing TFMA.

The engine works from plain dataclasses built here. A ``tfma.EvalConfig`` object is
converted with ``google.protobuf.json_format`` (protobuf only, no TensorFlow); a
dict or JSON string is read directly; only the protobuf *text* format needs TFMA's
generated classes, which pulls TensorFlow in, so that import happens inside
:func:`load_eval_config` and only for text input.

Field names follow TFMA's proto (snake_case); camelCase keys as written by
``json_format.MessageToJson`` are accepted too.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from toolkit.evaluation.errors import EvalConfigError

CANDIDATE_MODEL_NAME = "candidate"
BASELINE_MODEL_NAME = "baseline"

# Proto map fields: their keys are data (feature or metric names), not field names.
_ALWAYS_MAPS = {"feature_values", "label_keys", "prediction_keys", "example_weight_keys", "output_weights"}
# Fields that are maps in MetricsSpec but repeated messages elsewhere.
_MAPS_WHEN_DICT = {"thresholds", "per_slice_thresholds", "cross_slice_thresholds"}


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _normalize(value: Any) -> Any:
    """camelCase -> snake_case for field names, leaving map keys untouched."""
    if isinstance(value, list):
        return [_normalize(v) for v in value]
    if not isinstance(value, Mapping):
        return value
    out: dict[str, Any] = {}
    for key, item in value.items():
        name = _snake(str(key))
        if name in _ALWAYS_MAPS or (name in _MAPS_WHEN_DICT and isinstance(item, Mapping)):
            out[name] = {str(k): _normalize(v) for k, v in dict(item).items()}
        else:
            out[name] = _normalize(item)
    return out


def _unwrap(value: Any) -> Any:
    """Protobuf wrapper values may arrive as ``{"value": x}`` or as ``x``."""
    if isinstance(value, Mapping) and set(value) <= {"value"}:
        return value.get("value")
    return value


def _as_dict(eval_config: Any) -> dict[str, Any]:
    if eval_config is None:
        raise EvalConfigError("eval_config is required (a tfma.EvalConfig, dict, JSON or text proto)")
    if hasattr(eval_config, "DESCRIPTOR") and hasattr(eval_config, "ListFields"):
        from google.protobuf import json_format

        return json_format.MessageToDict(eval_config, preserving_proto_field_name=True)
    if isinstance(eval_config, Mapping):
        return _normalize(dict(eval_config))
    if isinstance(eval_config, (bytes, str)):
        text = eval_config.decode() if isinstance(eval_config, bytes) else eval_config
        stripped = text.strip()
        if stripped.startswith("{"):
            try:
                return _normalize(json.loads(stripped))
            except json.JSONDecodeError as exc:
                raise EvalConfigError(f"eval_config is not valid JSON: {exc}") from exc
        return _parse_text_proto(stripped)
    raise EvalConfigError(
        f"eval_config must be a tfma.EvalConfig, dict, JSON or text proto, not {type(eval_config).__name__}"
    )


def _parse_text_proto(text: str) -> dict[str, Any]:
    from google.protobuf import json_format, text_format
    from tensorflow_model_analysis.proto import config_pb2

    try:
        message = text_format.Parse(text, config_pb2.EvalConfig())
    except text_format.ParseError as exc:
        raise EvalConfigError(f"eval_config text proto does not parse: {exc}") from exc
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def parse_metric_config_json(text: str | Mapping[str, Any] | None) -> dict[str, Any]:
    """TFMA accepts ``'"thresholds": [0.5]'`` as well as ``'{"thresholds": [0.5]}'``."""
    if isinstance(text, Mapping):
        return dict(text)
    if not text:
        return {}
    body = text if text.lstrip().startswith("{") else "{" + text + "}"
    try:
        parsed = json.loads(body)
    except json.JSONDecodeError as exc:
        raise EvalConfigError(f"metric config {text!r} is not valid JSON: {exc}") from exc
    if not isinstance(parsed, dict):
        raise EvalConfigError(f"metric config {text!r} must be a JSON object")
    return parsed


@dataclass(frozen=True)
class ModelSpec:
    name: str = ""
    label_key: str = "label"
    prediction_key: str = "prediction"
    example_weight_key: str = ""
    is_baseline: bool = False


@dataclass(frozen=True)
class SlicingSpec:
    """One TFMA SlicingSpec; ``()``/``()`` is the overall slice."""

    feature_keys: tuple[str, ...] = ()
    feature_values: tuple[tuple[str, str], ...] = ()

    @property
    def is_overall(self) -> bool:
        return not self.feature_keys and not self.feature_values

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(sorted(set(self.feature_keys) | {k for k, _ in self.feature_values}))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.feature_keys:
            out["feature_keys"] = list(self.feature_keys)
        if self.feature_values:
            out["feature_values"] = dict(self.feature_values)
        return out

    def describe(self) -> str:
        if self.is_overall:
            return "Overall"
        parts = list(self.feature_keys) + [f"{k}={v}" for k, v in self.feature_values]
        return " × ".join(parts)

    def is_slice_applicable(self, slice_key: tuple) -> bool:
        """TFMA's rule: the key's columns are exactly this spec's, fixed values match."""
        columns = list(self.feature_keys)
        fixed = [(k, slice_value(v)) for k, v in self.feature_values]
        for column, value in slice_key:
            if (column, slice_value(value)) in fixed:
                fixed.remove((column, slice_value(value)))
            elif column in columns:
                columns.remove(column)
            else:
                return False
        return not fixed and not columns


def slice_value(value: Any) -> Any:
    """TFMA compares slice values after turning '2' into 2 and '2.5' into 2.5."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    text = value.decode() if isinstance(value, bytes) else str(value)
    try:
        return float(text) if "." in text else int(text)
    except ValueError:
        return text


@dataclass(frozen=True)
class CrossSlicingSpec:
    baseline_spec: SlicingSpec
    slicing_specs: tuple[SlicingSpec, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"baseline_spec": self.baseline_spec.to_dict()}
        if self.slicing_specs:
            out["slicing_specs"] = [s.to_dict() for s in self.slicing_specs]
        return out

    def is_applicable(self, cross_key: tuple) -> bool:
        baseline_key, comparison_key = cross_key
        if not self.baseline_spec.is_slice_applicable(baseline_key):
            return False
        return any(spec.is_slice_applicable(comparison_key) for spec in self.slicing_specs)


@dataclass(frozen=True)
class ValueThreshold:
    lower_bound: float | None
    upper_bound: float | None
    raw: Mapping[str, Any] = field(compare=False, repr=False, default_factory=dict)

    def describe(self) -> str:
        parts = []
        if self.lower_bound is not None:
            parts.append(f">= {self.lower_bound:g}")
        if self.upper_bound is not None:
            parts.append(f"<= {self.upper_bound:g}")
        return " and ".join(parts) or "any value"


@dataclass(frozen=True)
class ChangeThreshold:
    direction: str
    absolute: float | None
    relative: float | None
    raw: Mapping[str, Any] = field(compare=False, repr=False, default_factory=dict)

    def describe(self) -> str:
        op = ">=" if self.direction == "HIGHER_IS_BETTER" else "<="
        parts = []
        if self.absolute is not None:
            parts.append(f"change vs baseline model {op} {self.absolute:g}")
        if self.relative is not None:
            parts.append(f"relative change vs baseline model {op} {self.relative:g}")
        return " and ".join(parts) or "any change"


Threshold = ValueThreshold | ChangeThreshold
# A slice restriction for a threshold: None (every single slice), or the specs it applies to.
SliceRestriction = SlicingSpec | CrossSlicingSpec | None


@dataclass
class MetricConfig:
    class_name: str
    module: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class MetricsSpec:
    """One TFMA MetricsSpec.

    ``sub_keys`` are TFMA's sub keys from ``binarize`` in TFMA's order (class ids,
    then ``k_list``, then ``top_k_list``), as TFMA prints them: ``classId:0``,
    ``k:2``, ``topK:1``; ``("",)`` without binarization. Every metric of the spec is
    computed once per sub key, as in TFMA.
    """

    metrics: list[MetricConfig]
    model_names: tuple[str, ...] = ()
    weighted_options: tuple[bool | None, ...] = (None,)
    unsupported_fields: tuple[str, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict, repr=False)
    sub_keys: tuple[str, ...] = ("",)


@dataclass(frozen=True)
class Options:
    compute_confidence_intervals: bool = False
    confidence_interval_method: str = "JACKKNIFE"
    min_slice_size: int = 1


@dataclass
class EvalConfig:
    """The parts of a TFMA EvalConfig the engine uses, plus the original dict."""

    model_specs: list[ModelSpec]
    slicing_specs: list[SlicingSpec]
    cross_slicing_specs: list[CrossSlicingSpec]
    metrics_specs: list[MetricsSpec]
    options: Options
    raw: dict[str, Any] = field(repr=False, default_factory=dict)

    @property
    def candidate(self) -> ModelSpec:
        return next(spec for spec in self.model_specs if not spec.is_baseline)

    @property
    def baseline(self) -> ModelSpec | None:
        return next((spec for spec in self.model_specs if spec.is_baseline), None)

    def all_slicing_specs(self) -> list[SlicingSpec]:
        """Slicing specs plus the specs cross slicing needs, as TFMA's slice extractor does."""
        specs = list(self.slicing_specs)
        for cross in self.cross_slicing_specs:
            for spec in (cross.baseline_spec, *cross.slicing_specs):
                if spec not in specs:
                    specs.append(spec)
        return specs or [SlicingSpec()]

    def to_proto(self) -> Any:
        """The equivalent ``tfma.EvalConfig`` (imports TFMA)."""
        from google.protobuf import json_format
        from tensorflow_model_analysis.proto import config_pb2

        return json_format.ParseDict(self.raw, config_pb2.EvalConfig())


def load_eval_config(eval_config: Any) -> EvalConfig:
    """Build an :class:`EvalConfig` from a tfma.EvalConfig, dict, JSON or text proto."""
    if isinstance(eval_config, EvalConfig):
        return eval_config
    raw = _as_dict(eval_config)
    return from_dict(raw)


def from_dict(raw: dict[str, Any]) -> EvalConfig:
    model_specs = [_model_spec(d) for d in raw.get("model_specs", [])] or [ModelSpec()]
    if all(spec.is_baseline for spec in model_specs):
        raise EvalConfigError("eval_config has only baseline model_specs; one must be the candidate")
    if sum(1 for spec in model_specs if not spec.is_baseline) > 1:
        raise EvalConfigError(
            "eval_config has several candidate model_specs; the engine evaluates one candidate "
            "(and optionally one baseline with is_baseline: true)"
        )
    if len(model_specs) > 1 and any(not spec.name for spec in model_specs):
        raise EvalConfigError("with a baseline model every model_spec needs a name")
    slicing_specs = [parse_slicing_spec(d) for d in raw.get("slicing_specs", [])]
    cross_specs = [parse_cross_slicing_spec(d) for d in raw.get("cross_slicing_specs", [])]
    metrics_specs = [_metrics_spec(d) for d in raw.get("metrics_specs", [])]
    add_threshold_metrics(metrics_specs)
    options = _options(raw.get("options", {}))
    return EvalConfig(model_specs, slicing_specs, cross_specs, metrics_specs, options, raw=raw)


def _model_spec(d: Mapping[str, Any]) -> ModelSpec:
    for multi in ("label_keys", "prediction_keys", "example_weight_keys"):
        if d.get(multi):
            raise EvalConfigError(f"model_specs.{multi} (multi-output models) is not supported by the engine")
    return ModelSpec(
        name=d.get("name", ""),
        label_key=d.get("label_key") or "label",
        prediction_key=d.get("prediction_key") or "prediction",
        example_weight_key=d.get("example_weight_key", ""),
        is_baseline=bool(d.get("is_baseline", False)),
    )


def parse_slicing_spec(d: Mapping[str, Any]) -> SlicingSpec:
    if d.get("slice_keys_sql"):
        raise EvalConfigError("slicing_specs.slice_keys_sql is not supported; use feature_keys/feature_values")
    keys = d.get("feature_keys", [])
    if isinstance(keys, str):
        keys = [keys]
    values = d.get("feature_values", {}) or {}
    return SlicingSpec(
        feature_keys=tuple(str(k) for k in keys),
        feature_values=tuple(sorted((str(k), str(v)) for k, v in dict(values).items())),
    )


def parse_cross_slicing_spec(d: Mapping[str, Any]) -> CrossSlicingSpec:
    return CrossSlicingSpec(
        baseline_spec=parse_slicing_spec(d.get("baseline_spec", {})),
        slicing_specs=tuple(parse_slicing_spec(s) for s in d.get("slicing_specs", [])),
    )


def _metrics_spec(d: Mapping[str, Any]) -> MetricsSpec:
    metrics = []
    for m in d.get("metrics", []):
        if not m.get("class_name"):
            raise EvalConfigError(f"a metric in metrics_specs has no class_name: {m}")
        metrics.append(
            MetricConfig(
                class_name=m["class_name"],
                module=m.get("module", ""),
                config=parse_metric_config_json(m.get("config")),
                raw=dict(m),
            )
        )
    weights = d.get("example_weights")
    if weights is None:
        options: tuple[bool | None, ...] = (None,)
    else:
        options = tuple(
            flag for flag, on in ((True, weights.get("weighted")), (False, weights.get("unweighted"))) if on
        )
    unsupported = tuple(
        name for name in ("aggregate", "output_names", "output_weights", "query_key") if d.get(name)
    )
    return MetricsSpec(
        metrics=metrics,
        model_names=tuple(d.get("model_names", [])),
        weighted_options=options,
        unsupported_fields=unsupported,
        raw=dict(d),
        sub_keys=binarize_sub_keys(d.get("binarize")),
    )


#: The Keras metrics a MetricsSpec's threshold maps may name without listing them in
#: ``metrics``: TFMA name -> (class name, config). TFMA computes such a metric "in graph",
#: from the Keras model's compiled metrics; the engine reads predictions, not the graph,
#: so it computes the metric of that name from them, with Keras's defaults (AUC: 200
#: thresholds; the others: a 0.5 cut).
THRESHOLD_ONLY_METRICS: dict[str, tuple[str, dict[str, Any]]] = {
    "sparse_categorical_accuracy": ("SparseCategoricalAccuracy", {}),
    "categorical_accuracy": ("CategoricalAccuracy", {}),
    "binary_accuracy": ("BinaryAccuracy", {}),
    "precision": ("Precision", {}),
    "recall": ("Recall", {}),
    "true_positives": ("TruePositives", {}),
    "true_negatives": ("TrueNegatives", {}),
    "false_positives": ("FalsePositives", {}),
    "false_negatives": ("FalseNegatives", {}),
    "auc": ("AUC", {"num_thresholds": 200}),
    "mean_squared_error": ("MeanSquaredError", {}),
    "mean_absolute_error": ("MeanAbsoluteError", {}),
    "root_mean_squared_error": ("RootMeanSquaredError", {}),
}
_THRESHOLD_MAPS = ("thresholds", "per_slice_thresholds", "cross_slice_thresholds")


def _reported_name(metric: MetricConfig) -> str:
    """The name a metric of :data:`THRESHOLD_ONLY_METRICS`'s classes reports under (its
    configured ``name``, else its default); another class's name never collides with one."""
    if "name" in metric.config:
        return str(metric.config["name"])
    return next((name for name, (cls, _) in THRESHOLD_ONLY_METRICS.items()
                 if cls == metric.class_name), metric.class_name)


def add_threshold_metrics(specs: list["MetricsSpec"]) -> None:
    """Compute the metrics that only the threshold maps of a MetricsSpec name.

    TFMA takes ``thresholds``, ``per_slice_thresholds`` and ``cross_slice_thresholds``
    keyed by a metric name (value or change thresholds alike) as naming a metric to
    compute: for a Keras model it evaluates the model's compiled metrics, and the
    tutorials' configs rely on it (a ``sparse_categorical_accuracy`` bound with an empty
    ``metrics`` list). So each such name of :data:`THRESHOLD_ONLY_METRICS` joins its spec's
    metrics, computed for the spec's models, weightings and sub keys, unless a spec with
    the same models, weightings and sub keys computes it already. Any other name is left
    as it is: its threshold fails with "Metric not found.", as TFMA's does when the model
    has no such metric.
    """
    computed: set[tuple] = set()
    for spec in specs:
        scope = (spec.model_names, spec.weighted_options, spec.sub_keys)
        computed.update((scope, _reported_name(m)) for m in spec.metrics)
    for spec in specs:
        scope = (spec.model_names, spec.weighted_options, spec.sub_keys)
        for field_name in _THRESHOLD_MAPS:
            named = spec.raw.get(field_name) or {}
            for name in named if isinstance(named, Mapping) else ():
                if name not in THRESHOLD_ONLY_METRICS or (scope, name) in computed:
                    continue
                class_name, options = THRESHOLD_ONLY_METRICS[name]
                raw: dict[str, Any] = {"class_name": class_name}
                if options:
                    raw["config"] = json.dumps(options)
                spec.metrics.append(MetricConfig(class_name, config=dict(options), raw=raw))
                computed.add((scope, name))


#: TFMA's sub-key fields of BinarizationOptions, in the order TFMA creates sub keys.
_BINARIZE_FIELDS = (("class_ids", "classId"), ("k_list", "k"), ("top_k_list", "topK"))


def sub_key_text(class_id: int | None = None, k: int | None = None, top_k: int | None = None) -> str:
    """TFMA's printed SubKey: ``classId:0``, ``k:2``, ``topK:1`` (``""`` for none)."""
    parts = [f"{name}:{value}" for name, value in (("classId", class_id), ("k", k), ("topK", top_k))
             if value is not None]
    return " ".join(parts)


def parse_sub_key(text: str) -> dict[str, int]:
    """``"classId:0"`` -> ``{"classId": 0}``; ``""`` -> ``{}``."""
    out: dict[str, int] = {}
    for part in text.split():
        name, _, value = part.partition(":")
        out[name] = int(value)
    return out


def binarize_sub_keys(binarize: Mapping[str, Any] | None) -> tuple[str, ...]:
    """The sub keys of a MetricsSpec's ``binarize`` (``("",)`` when it has none)."""
    if not binarize:
        return ("",)
    keys: list[str] = []
    for field_name, label in _BINARIZE_FIELDS:
        entry = binarize.get(field_name) or {}
        values = entry.get("values", []) if isinstance(entry, Mapping) else entry
        for value in values or []:
            try:
                number = int(value)
            except (TypeError, ValueError):
                raise EvalConfigError(f"metrics_specs.binarize.{field_name} holds {value!r}; "
                                      "it needs integers") from None
            if number < 0 or (label != "classId" and number < 1):
                raise EvalConfigError(f"metrics_specs.binarize.{field_name} holds {number}; "
                                      + ("class ids are >= 0" if label == "classId" else "it needs values >= 1"))
            key = f"{label}:{number}"
            if key not in keys:
                keys.append(key)
    return tuple(keys) or ("",)


def _options(d: Mapping[str, Any]) -> Options:
    ci_options = d.get("confidence_intervals") or {}
    method = ci_options.get("method", "UNKNOWN_CONFIDENCE_INTERVAL_METHOD")
    if isinstance(method, int):
        method = {0: "UNKNOWN_CONFIDENCE_INTERVAL_METHOD", 1: "POISSON_BOOTSTRAP", 2: "JACKKNIFE"}.get(method, "")
    if method not in ("UNKNOWN_CONFIDENCE_INTERVAL_METHOD", "POISSON_BOOTSTRAP", "JACKKNIFE"):
        raise EvalConfigError(f"unknown confidence interval method {method!r}")
    # TFMA's config defaults: an unset method means jackknife.
    if method == "UNKNOWN_CONFIDENCE_INTERVAL_METHOD":
        method = "JACKKNIFE"
    min_slice_size = _unwrap(d.get("min_slice_size"))
    return Options(
        compute_confidence_intervals=bool(_unwrap(d.get("compute_confidence_intervals")) or False),
        confidence_interval_method=method,
        min_slice_size=int(min_slice_size) if min_slice_size else 1,
    )


def parse_thresholds(d: Mapping[str, Any] | None) -> list[Threshold]:
    if not d:
        return []
    out: list[Threshold] = []
    value = d.get("value_threshold")
    if value is not None:
        lower, upper = _unwrap(value.get("lower_bound")), _unwrap(value.get("upper_bound"))
        out.append(
            ValueThreshold(
                lower_bound=None if lower is None else float(lower),
                upper_bound=None if upper is None else float(upper),
                raw=dict(value),
            )
        )
    change = d.get("change_threshold")
    if change is not None:
        direction = change.get("direction", "UNKNOWN")
        if isinstance(direction, int):
            direction = {0: "UNKNOWN", 1: "LOWER_IS_BETTER", 2: "HIGHER_IS_BETTER"}.get(direction, "UNKNOWN")
        absolute, relative = _unwrap(change.get("absolute")), _unwrap(change.get("relative"))
        if direction not in ("LOWER_IS_BETTER", "HIGHER_IS_BETTER"):
            raise EvalConfigError(
                f"change_threshold {dict(change)} needs direction LOWER_IS_BETTER or HIGHER_IS_BETTER"
            )
        out.append(
            ChangeThreshold(
                direction=direction,
                absolute=None if absolute is None else float(absolute),
                relative=None if relative is None else float(relative),
                raw=dict(change),
            )
        )
    return out


def with_baseline_predictions(config: EvalConfig, prediction_key: str) -> EvalConfig:
    """A copy of ``config`` with a baseline model reading ``prediction_key``."""
    if config.baseline is not None:
        raise EvalConfigError("eval_config already has a baseline model_spec (is_baseline: true)")
    raw = json.loads(json.dumps(config.raw))
    specs = raw.get("model_specs") or [{}]
    candidate = dict(specs[0])
    candidate.setdefault("name", CANDIDATE_MODEL_NAME)
    baseline = dict(candidate, name=BASELINE_MODEL_NAME, prediction_key=prediction_key, is_baseline=True)
    raw["model_specs"] = [candidate, baseline]
    return from_dict(raw)


def iter_metric_configs(config: EvalConfig) -> Iterable[tuple[MetricsSpec, MetricConfig]]:
    for spec in config.metrics_specs:
        for metric in spec.metrics:
            yield spec, metric
