"""The bridge to TFMA: run TFMA's pipeline on a dataframe, read its records, write TFMA artifacts.

Everything here imports TensorFlow Model Analysis (and so TensorFlow), which is
why it lives apart from the engine and is imported only when needed.
"""
from __future__ import annotations

import contextlib
import contextvars
import importlib
import json
import tempfile
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd

from toolkit import storage
from toolkit.evaluation.config import (
    ChangeThreshold,
    CrossSlicingSpec,
    EvalConfig,
    MetricConfig,
    SlicingSpec,
    ValueThreshold,
    parse_metric_config_json,
)
from toolkit.evaluation.errors import EngineUnavailableError
from toolkit.evaluation.metrics import FAIRNESS_MODULES
from toolkit.evaluation.slicing import build_slices, is_cross_key
from toolkit.evaluation.values import (ERROR_METRIC, MetricKey, MetricValue, SliceMetrics,
                                       small_slice_message)

_FAIRNESS_MODULE = "fairness_indicators.fairness_indicators_metrics"
#: Beam arguments for TFMA's pipeline (set by :func:`beam_pipeline_args`); empty: in process
_BEAM_ARGS: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar("toolkit_tfma_beam_args",
                                                                             default=())
_THRESHOLD_FIELDS = ("threshold", "per_slice_thresholds", "cross_slice_thresholds")


@contextlib.contextmanager
def beam_pipeline_args(args: Sequence[str] | None) -> Iterator[None]:
    """Within the block, :func:`run` runs TFMA's pipeline with these Beam arguments
    (without them, on Beam's default runner, as ``analyze_raw_data`` does)."""
    token = _BEAM_ARGS.set(tuple(args or ()))
    try:
        yield
    finally:
        _BEAM_ARGS.reset(token)


def _materialized_models(proto) -> list | None:
    """TFMA's own description of models whose predictions are columns of the data.

    With a baseline ModelSpec, TFMA keeps it (and computes ``*_diff`` metrics) only when
    it is given one ``EvalSharedModel`` per model: its config defaulting counts the models
    it was handed, not the ModelSpecs, and ``analyze_raw_data`` hands it none. An
    ``EvalSharedModel`` of TFMA's model type ``materialized_prediction`` is a model without
    a model file, whose predictions TFMA reads from the ``prediction_key`` column, which
    is exactly a second prediction column. None without a baseline: then ``analyze_raw_data``'s
    pipeline (no models) is built.
    """
    if not any(spec.is_baseline for spec in proto.model_specs):
        return None
    import tensorflow_model_analysis as tfma
    from tensorflow_model_analysis import constants

    return [tfma.types.EvalSharedModel(model_name=spec.name, model_type=constants.MATERIALIZED_PREDICTION,
                                       is_baseline=spec.is_baseline, include_default_metrics=False)
            for spec in proto.model_specs]


def _analyze(data: pd.DataFrame, proto, output: str, args: Sequence[str]) -> None:
    """TFMA's pipeline on ``data``, built with TFMA's public API, on a pipeline built with ``args``.

    ``tfma.ExtractEvaluateAndWriteResults`` as ``tfma.analyze_raw_data`` builds it (one
    canonicalized Arrow record batch of the dataframe, TFMA's default extractors,
    evaluators and writers), with the models of :func:`_materialized_models` so a baseline
    ModelSpec is evaluated; nothing of TFMA's is replaced.
    """
    import apache_beam as beam
    import pyarrow as pa
    import tensorflow_model_analysis as tfma
    from tfx_bsl.arrow import table_util

    from toolkit.components._beam import beam_pipeline

    for spec in proto.model_specs:  # analyze_raw_data's defaults
        spec.prediction_key = spec.prediction_key or "prediction"
        spec.label_key = spec.label_key or "label"
    models = _materialized_models(proto)
    batch = table_util.CanonicalizeRecordBatch(pa.RecordBatch.from_pandas(data))
    with beam_pipeline(args, "TFMA's evaluation pipeline") as pipeline:
        _ = (pipeline
             | "Data" >> beam.Create([batch])
             | "ExtractEvaluateAndWriteResults" >> tfma.ExtractEvaluateAndWriteResults(
                 eval_shared_model=models, eval_config=proto, output_path=output))


def tfma_config(config: EvalConfig, metrics: Sequence[tuple[int, MetricConfig]]) -> dict[str, Any]:
    """The config TFMA runs: the same models, slices and options, only ``metrics``, no thresholds.

    Thresholds are checked by the toolkit's validator for every engine, so the
    blessing does not depend on which engine computed a metric.
    """
    raw = json.loads(json.dumps(config.raw))
    wanted: dict[int, list[dict]] = {}
    for index, metric in metrics:
        entry = {k: v for k, v in metric.raw.items() if k not in _THRESHOLD_FIELDS}
        if metric.class_name == "FairnessIndicators" and not entry.get("module"):
            entry["module"] = _FAIRNESS_MODULE
        wanted.setdefault(index, []).append(entry)
    specs = []
    for index, spec in enumerate(raw.get("metrics_specs", [])):
        if index not in wanted:
            continue
        spec = {k: v for k, v in spec.items() if k not in ("thresholds", "per_slice_thresholds",
                                                           "cross_slice_thresholds")}
        spec["metrics"] = wanted[index]
        specs.append(spec)
    raw["metrics_specs"] = specs
    options = dict(raw.get("options", {}))
    if raw.get("cross_slicing_specs") and options.get("min_slice_size"):
        # TFMA 0.47.1 fails (IndexError in FilterOutSmallSlices) when cross slices meet
        # min_slice_size; the small-slice rule is applied to TFMA's output afterwards.
        options.pop("min_slice_size")
    raw["options"] = options
    return raw


def _check_importable(metrics: Sequence[tuple[int, MetricConfig]]) -> None:
    for _, metric in metrics:
        if metric.class_name == "FairnessIndicators":
            module = metric.module or _FAIRNESS_MODULE
            if module not in FAIRNESS_MODULES:
                continue
            try:
                importlib.import_module(module)
            except ImportError:
                raise EngineUnavailableError(
                    f"TFMA computes FairnessIndicators with module {module!r}, which is not installed "
                    "(pip install fairness-indicators); the toolkit engine computes it without that package"
                ) from None


def run(data: pd.DataFrame, config: EvalConfig, metrics: Sequence[tuple[int, MetricConfig]],
        sizes: Mapping[tuple, int] | None = None) -> list[SliceMetrics]:
    """Compute ``metrics`` with TFMA's pipeline (see :func:`_analyze`); slices keyed as the engine keys them.

    ``sizes`` (rows per slice key of ``config.all_slicing_specs()`` on ``data``) saves
    building the slices again when the caller already did.
    """
    from google.protobuf import json_format

    from toolkit import _quiet

    _check_importable(metrics)
    import tensorflow_model_analysis as tfma
    from tensorflow_model_analysis.proto import config_pb2

    _quiet.quiet_tensorflow()
    _quiet.offline_beam()
    proto = json_format.ParseDict(tfma_config(config, metrics), config_pb2.EvalConfig())
    thresholds_by_name = _threshold_lists(metrics)
    with tempfile.TemporaryDirectory(prefix="toolkit-tfma-") as output:
        _analyze(data, proto, output, _BEAM_ARGS.get())
        records = list(tfma.load_metrics(output))
    if sizes is None:
        sizes = {s.key: s.size for s in build_slices(data, config.all_slicing_specs()).slices}
    specs = config.all_slicing_specs()
    out = [_from_record(record, thresholds_by_name, sizes, specs) for record in records]
    _apply_min_slice_size(out, config)
    return out


def _threshold_lists(metrics: Sequence[tuple[int, MetricConfig]]) -> dict[str, tuple[float, ...]]:
    from toolkit.evaluation.metrics import metric_name

    out = {}
    for _, metric in metrics:
        cfg = parse_metric_config_json(metric.raw.get("config"))
        value = cfg.get("thresholds", cfg.get("threshold"))
        if isinstance(value, (int, float)):
            out[metric_name(metric)] = (float(value),)
        elif isinstance(value, list) and all(isinstance(v, (int, float)) for v in value):
            out[metric_name(metric)] = tuple(float(v) for v in value)
    return out


def _apply_min_slice_size(slices: list[SliceMetrics], config: EvalConfig) -> None:
    min_size = config.options.min_slice_size
    if min_size <= 1:
        return
    message = small_slice_message(min_size)
    sizes = {sm.key: sm.size for sm in slices if not sm.is_cross}
    for sm in slices:
        parts = sm.key if sm.is_cross else (sm.key,)
        if any(part and (sizes.get(part) or 0) < min_size for part in parts):
            sm.below_min_slice_size = True
            sm.error = sm.error or message
            sm.metrics = {}


def deserialize_key(record) -> tuple:
    from tensorflow_model_analysis.slicer import slicer_lib

    if record.HasField("cross_slice_key"):
        return slicer_lib.deserialize_cross_slice_key(record.cross_slice_key)
    return slicer_lib.deserialize_slice_key(record.slice_key)


def _spec_label(key: tuple, specs: Sequence[SlicingSpec]) -> str:
    for spec in specs:
        if spec.is_slice_applicable(key):
            return spec.describe()
    return ""


def _from_record(record, thresholds_by_name, sizes, specs) -> SliceMetrics:
    from google.protobuf import json_format

    key = deserialize_key(record)
    cross = is_cross_key(key)
    label = (f"{_spec_label(key[0], specs)} vs {_spec_label(key[1], specs)}" if cross
             else _spec_label(key, specs))
    sm = SliceMetrics(key=key, size=None if cross else sizes.get(key), spec=label, is_cross=cross)
    if ERROR_METRIC in record.metrics:
        sm.error = record.metrics[ERROR_METRIC].debug_message
        sm.below_min_slice_size = "minimum required value" in sm.error
        return sm
    for kv in record.metric_keys_and_values:
        mkey = MetricKey(
            name=kv.key.name,
            model_name=kv.key.model_name,
            is_diff=kv.key.is_diff,
            example_weighted=kv.key.example_weighted.value if kv.key.HasField("example_weighted") else None,
            sub_key=_sub_key_text(kv.key.sub_key),
        )
        sm.metrics[mkey] = _value(kv, thresholds_by_name, json_format)
    return sm


def _value(kv, thresholds_by_name, json_format) -> MetricValue:
    name = kv.key.name
    tidy, thresholds = name, thresholds_by_name.get(name)
    if "@" in name:
        base, _, tail = name.rpartition("@")
        try:
            thresholds, tidy = (float(tail),), base
        except ValueError:
            pass
    kind = kv.value.WhichOneof("type")
    ci = kv.confidence_interval if kv.HasField("confidence_interval") else None
    if kind == "double_value":
        mv = MetricValue(value=kv.value.double_value.value, metric=tidy,
                         thresholds=thresholds if thresholds and len(thresholds) == 1 else None)
        if ci is not None and ci.lower_bound.HasField("double_value"):
            mv.lower = ci.lower_bound.double_value.value
            mv.upper = ci.upper_bound.double_value.value
            mv.std_error = ci.standard_error.double_value.value
            mv.dof = ci.degrees_of_freedom.value
        return mv
    if kind == "array_value" and kv.value.array_value.float64_values:
        values = np.asarray(kv.value.array_value.float64_values, float)
        if not thresholds or len(thresholds) != len(values):
            thresholds = None
        return MetricValue(value=values, metric=tidy, thresholds=thresholds, array=True)
    encoded = json_format.MessageToDict(kv.value)
    return MetricValue(value=float("nan"), metric=tidy, encoded=encoded,
                       note=f"{kind or 'empty'} value: not a number (kept in slicing_metrics)")


# ----------------------------------------------------------------------------- writing


def write_tfma_artifact(result: Any, output_dir: str, data_location: str = "<dataframe>",
                        model_locations: dict[str, str] | None = None) -> None:
    """Write ``result`` as TFMA writes an evaluation, so ``tfma.load_eval_result`` reads it.

    Files: ``metrics-00000-of-00001.tfrecord`` (MetricsForSlice records),
    ``plots-00000-of-00001.tfrecord`` (PlotsForSlice records: the confusion matrix,
    calibration and multi-class confusion matrix plots, when evaluated), ``validations.tfrecord`` (one
    ValidationResult) and ``eval_config.json`` (TFMA's EvalRun JSON). TensorFlow's record
    writers are given the files' local paths (``storage.local_path``); the JSON goes
    through the storage seam.
    """
    import tensorflow as tf
    from google.protobuf import json_format
    from tensorflow_model_analysis import version as tfma_version
    from tensorflow_model_analysis.proto import config_pb2

    storage.makedirs(output_dir)

    def local(name: str) -> str:
        return storage.local_path(storage.join(output_dir, name))

    with tf.io.TFRecordWriter(local("metrics-00000-of-00001.tfrecord")) as writer:
        for sm in result.slices:
            if not sm.empty:
                writer.write(metrics_for_slice(sm).SerializeToString())
    with tf.io.TFRecordWriter(local("plots-00000-of-00001.tfrecord")) as writer:
        for sm in result.slices:
            if not sm.empty and not sm.error and sm.plots:
                writer.write(plots_for_slice(sm).SerializeToString())
    with tf.io.TFRecordWriter(local("validations.tfrecord")) as writer:
        writer.write(validation_result(result.validation).SerializeToString())
    models = model_locations or {spec.name: "<predictions in dataframe>" for spec in result.eval_config.model_specs}
    run = config_pb2.EvalRun(
        eval_config=result.eval_config.to_proto(),
        version=tfma_version.VERSION,
        data_location=data_location,
        file_format="<dataframe>",
        model_locations=models,
    )
    storage.write_text(storage.join(output_dir, "eval_config.json"), json_format.MessageToJson(run))


def _metric_key_proto(key: MetricKey):
    from tensorflow_model_analysis.proto import metrics_for_slice_pb2

    proto = metrics_for_slice_pb2.MetricKey(name=key.name)
    if key.model_name:
        proto.model_name = key.model_name
    _sub_key_fields(proto.sub_key, key.sub_key)
    if key.example_weighted is not None:
        proto.example_weighted.value = bool(key.example_weighted)
    if key.is_diff:
        proto.is_diff = True
    return proto


def _sub_key_fields(proto, sub_key: str) -> None:
    from toolkit.evaluation.config import parse_sub_key

    fields = {"classId": "class_id", "k": "k", "topK": "top_k"}
    for name, value in parse_sub_key(sub_key).items():
        getattr(proto, fields[name]).value = value


def _sub_key_text(proto) -> str:
    from toolkit.evaluation.config import sub_key_text

    return sub_key_text(*(getattr(proto, f).value if proto.HasField(f) else None
                          for f in ("class_id", "k", "top_k")))


def _matrices_proto(proto, value: MetricValue) -> None:
    """Fill a MultiClassConfusionMatrixAtThresholds proto from a matrix value."""
    from toolkit.evaluation.values import matrix_entries

    for threshold, entries in matrix_entries(value):
        matrix = proto.matrices.add(threshold=threshold)
        for actual, predicted, weight in entries:
            matrix.entries.add(actual_class_id=actual, predicted_class_id=predicted,
                               num_weighted_examples=weight)


def plots_for_slice(sm: SliceMetrics):
    """One PlotsForSlice record: the slice's plots, grouped as TFMA's writer groups them.

    TFMA stores a ConfusionMatrixPlot and a CalibrationPlot under their default names
    (``confusion_matrix_plot``, ``calibration_plot``) of one model, weighting and sub key in
    one entry without a name; every other plot gets an entry of its own.
    """
    from tensorflow_model_analysis.proto import metrics_for_slice_pb2

    from toolkit.evaluation.plots import MERGED_NAMES

    record = metrics_for_slice_pb2.PlotsForSlice()
    _slice_key_fields(record, sm.key)
    entries: dict[tuple, Any] = {}
    for key in sorted(sm.plots, key=lambda k: (k.name, k.model_name, k.sub_key, bool(k.example_weighted))):
        mv = sm.plots[key]
        merged = bool(mv.plot) and key.name in MERGED_NAMES
        group = ("", key.model_name, key.sub_key, key.example_weighted) if merged else (key,)
        if group not in entries:
            entry = record.plot_keys_and_values.add()
            plot_key = _metric_key_proto(key)
            if not merged:
                entry.key.name = plot_key.name
            entry.key.model_name = plot_key.model_name
            if key.sub_key:
                entry.key.sub_key.CopyFrom(plot_key.sub_key)
            if plot_key.HasField("example_weighted"):
                entry.key.example_weighted.CopyFrom(plot_key.example_weighted)
            entries[group] = entry
        value = entries[group].value
        if mv.plot:
            _plot_proto(value, mv)
        else:
            _matrices_proto(value.multi_class_confusion_matrix_at_thresholds, mv)
    return record


def _plot_proto(plot_data, value: MetricValue) -> None:
    """Fill TFMA's PlotData with a binary plot value (ConfusionMatrixAtThresholds or
    CalibrationHistogramBuckets), every field as TFMA's ``to_proto`` functions set it."""
    from toolkit.evaluation.values import confusion_fields

    if value.plot == "confusion_plot":
        fields = confusion_fields(value.value)
        target = plot_data.confusion_matrix_at_thresholds
        for i, threshold in enumerate(value.thresholds or ()):
            target.matrices.add(threshold=threshold, **{name: float(column[i]) for name, column in fields.items()})
        return
    sums = np.asarray(value.value, float)
    edges = list(value.thresholds or ()) + [float("inf")]
    target = plot_data.calibration_histogram_buckets
    for i in range(len(sums)):
        target.buckets.add(lower_threshold_inclusive=edges[i], upper_threshold_exclusive=edges[i + 1],
                           total_weighted_label={"value": float(sums[i, 0])},
                           total_weighted_refined_prediction={"value": float(sums[i, 1])},
                           num_weighted_examples={"value": float(sums[i, 2])})


def _slice_key_fields(proto, key: tuple) -> None:
    from tensorflow_model_analysis.slicer import slicer_lib

    if is_cross_key(key):
        proto.cross_slice_key.CopyFrom(slicer_lib.serialize_cross_slice_key(key))
    else:
        proto.slice_key.CopyFrom(slicer_lib.serialize_slice_key(key))


def _metric_value_proto(value: Any):
    from tensorflow_model_analysis.proto import metrics_for_slice_pb2

    proto = metrics_for_slice_pb2.MetricValue()
    array = np.asarray(value, float)
    if array.ndim:
        proto.array_value.data_type = metrics_for_slice_pb2.ArrayValue.FLOAT64
        proto.array_value.shape[:] = list(array.shape)
        proto.array_value.float64_values[:] = array.reshape(-1).tolist()
    else:
        proto.double_value.value = float(array)
    return proto


def metrics_for_slice(sm: SliceMetrics):
    """One MetricsForSlice record, as TFMA's writer builds it."""
    from google.protobuf import json_format
    from tensorflow_model_analysis.proto import metrics_for_slice_pb2

    record = metrics_for_slice_pb2.MetricsForSlice()
    _slice_key_fields(record, sm.key)
    if sm.error:
        record.metrics[ERROR_METRIC].debug_message = sm.error
        return record
    for key, mv in sm.metrics.items():
        entry = record.metric_keys_and_values.add()
        entry.key.CopyFrom(_metric_key_proto(key))
        if mv.encoded is not None:
            json_format.ParseDict(mv.encoded, entry.value)
            continue
        if mv.matrix:
            _matrices_proto(entry.value.multi_class_confusion_matrix_at_thresholds, mv)
            continue
        entry.value.CopyFrom(_metric_value_proto(mv.value if mv.array else float(mv.value)))
        if mv.lower is not None and mv.upper is not None:
            ci = entry.confidence_interval
            ci.lower_bound.CopyFrom(_metric_value_proto(mv.lower))
            ci.upper_bound.CopyFrom(_metric_value_proto(mv.upper))
            if mv.std_error is not None:
                ci.standard_error.CopyFrom(_metric_value_proto(mv.std_error))
            if mv.dof is not None:
                ci.degrees_of_freedom.value = int(mv.dof)
    return record


def _threshold_proto(threshold):
    from tensorflow_model_analysis.proto import config_pb2

    proto = config_pb2.MetricThreshold()
    if isinstance(threshold, ValueThreshold):
        if threshold.lower_bound is not None:
            proto.value_threshold.lower_bound.value = threshold.lower_bound
        if threshold.upper_bound is not None:
            proto.value_threshold.upper_bound.value = threshold.upper_bound
        if threshold.lower_bound is None and threshold.upper_bound is None:
            proto.value_threshold.SetInParent()
    elif isinstance(threshold, ChangeThreshold):
        proto.change_threshold.direction = config_pb2.MetricDirection.Value(threshold.direction)
        if threshold.absolute is not None:
            proto.change_threshold.absolute.value = threshold.absolute
        if threshold.relative is not None:
            proto.change_threshold.relative.value = threshold.relative
    return proto


def _spec_proto(spec):
    from google.protobuf import json_format
    from tensorflow_model_analysis.proto import config_pb2

    if isinstance(spec, CrossSlicingSpec):
        return json_format.ParseDict(spec.to_dict(), config_pb2.CrossSlicingSpec())
    return json_format.ParseDict(spec.to_dict(), config_pb2.SlicingSpec())


def validation_result(validation: Any):
    """TFMA's ValidationResult proto for a :class:`~toolkit.evaluation.validation.Validation`."""
    from tensorflow_model_analysis.proto import validation_result_pb2

    proto = validation_result_pb2.ValidationResult(
        validation_ok=validation.ok,
        missing_thresholds=validation.missing_thresholds,
        rubber_stamp=validation.rubber_stamp,
    )
    per_slice: dict[tuple, Any] = {}
    for check in validation.failures:
        if check.slice_key not in per_slice:
            entry = proto.metric_validations_per_slice.add()
            _slice_key_fields(entry, check.slice_key)
            per_slice[check.slice_key] = entry
        failure = per_slice[check.slice_key].failures.add()
        failure.metric_key.CopyFrom(_metric_key_proto(check.metric_key))
        failure.metric_threshold.CopyFrom(_threshold_proto(check.threshold))
        if check.value is not None:
            failure.metric_value.double_value.value = check.value
        failure.message = check.message
    for spec, count in validation.slicing_details:
        details = proto.validation_details.slicing_details.add()
        if isinstance(spec, CrossSlicingSpec):
            details.cross_slicing_spec.CopyFrom(_spec_proto(spec))
        else:
            details.slicing_spec.CopyFrom(_spec_proto(spec))
        details.num_matching_slices = count
    for spec in validation.missing_slices:
        proto.missing_slices.append(_spec_proto(spec))
    for spec in validation.missing_cross_slices:
        proto.missing_cross_slices.append(_spec_proto(spec))
    return proto
