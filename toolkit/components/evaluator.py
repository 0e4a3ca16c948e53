"""Evaluator: the model's predictions on real examples, sliced metrics, thresholds, blessing.

The model answers as TFMA calls it: its preprocessing signatures
(``preprocessing_function_names``, such as TFX's ``transform_features``) compute features
and labels from the raw serialized examples, a transformed feature taking precedence over
a raw column of the same name, and the signature ``signature_name`` (``serving_default``)
gives the predictions. The vectorized engine of :mod:`toolkit.evaluation` computes TFMA's metrics per slice,
and the evaluation artifact holds TFMA's own records, so ``tfma.load_eval_result``
reads it, beside the toolkit's stored result (``evaluation.json`` and a tidy
``metrics.parquet``, see :mod:`toolkit.evaluation.storage`) that
``ModelEvaluation.load()`` returns without TensorFlow. A ``blessing`` says whether
every threshold passed; a change threshold compares the candidate with
``baseline_model`` on the same examples.
"""
from __future__ import annotations

import contextlib
import json
from typing import Any, NamedTuple

from toolkit import storage
from toolkit._quiet import quiet_tensorflow
from toolkit.artifacts import Examples, Model, ModelBlessing, ModelEvaluation, TransformGraph
from toolkit.base_component import BaseComponent, ExecutorContext, InputSpec, ExecutionParameter
from toolkit.components._io import check_splits, read_split
from toolkit.components._model_io import (load_saved_model, output_shape, predict_outputs,
                                           serialize_examples, signature_of)
from toolkit.errors import InputDataError, ToolkitError

#: TFMA metrics computed from class scores (one score per class and example)
MULTI_CLASS_METRICS = ("SparseCategoricalAccuracy", "CategoricalAccuracy",
                       "MultiClassConfusionMatrixPlot", "MultiClassConfusionMatrixAtThresholds",
                       "SparseCategoricalCrossentropy", "CategoricalCrossentropy",
                       "SparseTopKCategoricalAccuracy", "TopKCategoricalAccuracy",
                       "MultiLabelConfusionMatrixPlot")
#: TFMA metrics (beyond those the engine resolves as binary) that read scores as probabilities
PROBABILITY_METRICS = ("BinaryCrossentropy", "CalibrationPlot", "ConfusionMatrixPlot",
                       "ConfusionMatrixAtThresholds", "MultiClassConfusionMatrixPlot",
                       "MultiClassConfusionMatrixAtThresholds")
#: TFMA's preprocessing signatures, called when the model has them and none is named
DEFAULT_PREPROCESSING = ("transformed_features", "transformed_labels")


class Evaluator(BaseComponent):
    """Evaluates ``model`` on ``examples`` with a ``tfma.EvalConfig``.

    Args:
        examples: raw Examples (the model is called as a server would call it).
        model: the candidate Model.
        baseline_model: optional Model to compare with (change thresholds, ``*_diff``
            metrics); see :func:`toolkit.components.latest_blessed_model` and
            :class:`toolkit.components.Resolver`.
        eval_config: a ``tfma.EvalConfig`` (or its dict / JSON form). From the
            candidate's model_spec: ``signature_name`` is the signature that predicts
            (``serving_default``); ``preprocessing_function_names`` are signatures that
            compute features and labels (``label_key='tips_xf'`` of TFX's taxi tutorial,
            made by ``transform_features``); with none named, TFMA's
            ``transformed_features``/``transformed_labels`` are called if the model has
            them. ``prediction_key`` names the column the predictions go to
            (``prediction`` by default) and, when the signature returns several
            outputs, the output to evaluate. That output holds one score per example,
            or class scores when the config asks for multi-class metrics
            (:data:`MULTI_CLASS_METRICS`, ``binarize``, ``aggregate``); otherwise class
            scores are refused, not reduced to their argmax. Scores that look wrong for
            a metric (logits read as probabilities) are evaluated as TFMA evaluates
            them, with a warning in the log and in the evaluation's ``warnings``
            property (a JSON list).
        transform_graph: optional TransformGraph; computes the label (``label_key``)
            when no preprocessing signature does, in place of a raw column of the same
            name (a label made in ``preprocessing_fn``, as in the taxi example).
        example_splits: splits to evaluate on (``["eval"]``).
        engine: ``"auto"``, ``"toolkit"`` or ``"tfma"`` (see :func:`toolkit.evaluate`).
    """

    INPUTS = {"examples": InputSpec(Examples), "model": InputSpec(Model),
              "baseline_model": InputSpec(Model, optional=True),
              "transform_graph": InputSpec(TransformGraph, optional=True)}
    OUTPUTS = {"evaluation": ModelEvaluation, "blessing": ModelBlessing}
    #: 4: confidence intervals resampled by row content and seed (toolkit.evaluation.resampling),
    #: the same in process and on Beam, so cached evaluations with intervals are recomputed
    EXECUTOR_VERSION = "4"
    PARAMETERS = {"eval_config": ExecutionParameter(object, required=True),
                  "example_splits": ExecutionParameter(list, default=["eval"]),
                  "engine": ExecutionParameter(str, default="auto")}

    def __init__(self, examples, model, eval_config, baseline_model=None, transform_graph=None,
                 example_splits: list[str] | None = None, engine: str = "auto"):
        super().__init__(examples=examples, model=model, baseline_model=baseline_model,
                         transform_graph=transform_graph, eval_config=eval_config,
                         example_splits=list(example_splits or ["eval"]), engine=engine)

    def Do(self, input_dict, output_dict, exec_properties, ctx: ExecutorContext) -> None:
        from toolkit.evaluation import load_eval_config

        if ctx.beam_pipeline_args:
            return _do_on_beam(self, input_dict, output_dict, exec_properties, ctx)
        config = load_eval_config(exec_properties["eval_config"])
        candidate = config.candidate
        label_key = candidate.label_key or "label"
        prediction_key = candidate.prediction_key or "prediction"
        signature_name, preprocessing = model_spec_signatures(config)
        class_scores = wants_class_scores(config)
        examples: Examples = input_dict["examples"][0]
        model: Model = input_dict["model"][0]
        baseline: Model | None = (input_dict.get("baseline_model") or [None])[0]
        graph = (input_dict.get("transform_graph") or [None])[0]
        tables = []
        for split in exec_properties["example_splits"]:
            check_splits(examples, [split], "example_splits names")
            tables.append(read_split(examples, split))
        import pyarrow as pa

        table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
        ctx.log(f"predicting {table.num_rows:,} examples with Model #{model.id}"
                + (f" and baseline Model #{baseline.id}" if baseline else "")
                + f" ({signature_name}"
                + (f"; features from {', '.join(preprocessing)}" if preprocessing else "") + ")")
        frame = table.to_pandas()
        answer = _model_answer(model, table, signature_name, preprocessing, prediction_key,
                               class_scores)
        referenced = _referenced_columns(config)
        replaced = [c for c in _merge_features(frame, answer.features, referenced)
                    if c in referenced]
        if replaced:
            ctx.log(f"transformed {', '.join(replaced)} from {', '.join(answer.preprocessing)} "
                    "take precedence over the raw column(s) of the same name, as in TFMA")
        frame[prediction_key] = _column(answer.predictions)
        baseline_column, baseline_answer = None, None
        if baseline is not None:
            baseline_column = f"{prediction_key}__baseline"
            baseline_answer = _model_answer(baseline, table, signature_name, [], prediction_key,
                                            class_scores, preprocess=False)
            frame[baseline_column] = _column(baseline_answer.predictions)
        if label_key not in answer.features:
            if graph is not None and (label_key not in frame.columns
                                      or _graph_outputs(graph, label_key)):
                frame[label_key] = _label_from_transform(graph, table, label_key)
            elif label_key not in frame.columns:
                raise InputDataError(_missing_label(label_key, examples, table, answer))
        warnings = _value_warnings(config, model, answer, "")
        if baseline_answer is not None:
            warnings += _value_warnings(config, baseline, baseline_answer, "baseline ")
        for warning in warnings:
            ctx.log(f"warning: {warning}")
        result = _evaluate(_evaluated_frame(frame, config, baseline_column), config,
                           exec_properties["engine"], baseline_column, baseline is None,
                           out_of_range=bool(warnings))
        _publish(result, warnings, config, examples, model, baseline, output_dict, ctx,
                 signature_name)


def _failures(result) -> list[str]:
    """Each failed threshold as one line: metric, slice, value and why."""
    lines = []
    for check in result.validation.failures:
        value = "missing" if check.value is None else f"{check.value:.4g}"
        why = f" ({check.message})" if check.message else ""
        lines.append(f"{check.metric} on {check.slice} = {value}{why}")
    if not result.validation.checks:
        lines.append("the EvalConfig has no thresholds")
    return lines


class _Answer(NamedTuple):
    """What a model said about the examples: its predictions (one score per example, or
    a matrix of class scores), the output they come from, and the features its
    preprocessing signatures computed (name -> one row per example)."""

    predictions: Any
    output: str
    features: dict[str, Any]
    preprocessing: list[str]


def model_spec_signatures(config) -> tuple[str, list[str]]:
    """The candidate model_spec's ``signature_name`` (TFMA's default ``serving_default``)
    and ``preprocessing_function_names``."""
    specs = config.raw.get("model_specs") or [{}]
    spec = next((s for s in specs if not s.get("is_baseline")), specs[0])
    return (spec.get("signature_name") or "serving_default",
            [str(n) for n in spec.get("preprocessing_function_names") or []])


def wants_class_scores(config) -> bool:
    """True when the EvalConfig asks for metrics computed from class scores: a metric of
    :data:`MULTI_CLASS_METRICS`, a metric configured with ``top_k``/``class_id``, or a
    MetricsSpec that binarizes (``class_ids``, ``k_list``, ``top_k_list``) or aggregates."""
    for spec in config.metrics_specs:
        binarize = spec.raw.get("binarize") or {}
        if spec.raw.get("aggregate") or any(binarize.get(k) for k in ("class_ids", "k_list",
                                                                        "top_k_list")):
            return True
        for metric in spec.metrics:
            if metric.class_name in MULTI_CLASS_METRICS or {"top_k", "class_id"} & set(
                    metric.config):
                return True
    return False


def _model_answer(model: Model, table, signature_name: str, preprocessing: list[str],
                  prediction_key: str, class_scores: bool, preprocess: bool = True,
                  loaded=None) -> _Answer:
    """Call the model as TFMA does: the preprocessing signatures named (or, when none is
    named, TFMA's defaults ``transformed_features``/``transformed_labels`` if the model has
    them) on the raw serialized examples, then ``signature_name`` for the predictions."""
    import tensorflow as tf

    loaded = load_saved_model(model) if loaded is None else loaded
    required = bool(preprocessing)
    names = list(preprocessing) if required else [
        n for n in DEFAULT_PREPROCESSING if preprocess and n in loaded.signatures]
    features: dict[str, Any] = {}
    for name in names if preprocess else []:
        signature = signature_of(
            model, loaded, name, what=f"signature {name!r} (named in the EvalConfig's "
            "model_spec preprocessing_function_names)")
        for key, value in predict_outputs(tf, signature, table).items():
            if len(value) != table.num_rows:
                raise ToolkitError(
                    f"Model #{model.id}: signature {name!r} returns {key!r} with "
                    f"{len(value):,} rows for {table.num_rows:,} examples; a preprocessing "
                    "function must return one row per example")
            features[key] = value
    signature = signature_of(model, loaded, signature_name,
                             what=f"signature {signature_name!r} (the EvalConfig's model_spec "
                             "signature_name)")
    outputs = predict_outputs(tf, signature, table)
    predictions, output = _predictions(model, signature_name, signature, outputs,
                                       prediction_key, class_scores)
    return _Answer(predictions, output, features, names)


def _predictions(model: Model, signature_name: str, signature, outputs, prediction_key: str,
                 class_scores: bool):
    """``(predictions, output name)`` from the outputs of the prediction signature.

    When the signature returns several outputs, the one named ``prediction_key`` is
    evaluated, as TFMA reads a dict of predictions. An output with several scores per
    example (class scores) is passed on as a matrix when the EvalConfig asks for
    multi-class metrics, and refused otherwise rather than reduced to its argmax: binary
    metrics computed on a class index look plausible and mean nothing.
    """
    import numpy as np

    widths = {name: _scores_per_example(value) for name, value in outputs.items()}
    single = sorted(name for name, width in widths.items() if width == 1)
    listed = ", ".join(f"{name!r} {output_shape(signature, name, value)}"
                       for name, value in sorted(outputs.items()))
    if len(outputs) == 1:
        (name,) = outputs
    elif prediction_key in outputs:
        name = prediction_key
    else:
        raise ToolkitError(
            f"Model #{model.id}: {signature_name} returns {len(outputs)} outputs ({listed}) "
            f"and none is named {prediction_key!r}: set prediction_key in the EvalConfig's "
            "model_spec to the output to evaluate")
    value = np.asarray(outputs[name], dtype=float)
    if widths[name] == 1:
        return value.reshape(-1), name
    if class_scores:
        return value.reshape(len(value), -1), name
    others = [n for n in single if n != name]
    fix = (f"set prediction_key in the EvalConfig's model_spec to "
           f"{' or '.join(repr(n) for n in others)}, an output with one score per example"
           if others else "export a serving signature that returns one score per example "
           "(such as the probability of the positive class)")
    raise ToolkitError(
        f"Model #{model.id}: output {name!r} has {widths[name]} scores per example "
        f"(shape {output_shape(signature, name, outputs[name])}); the Evaluator evaluates "
        "one score per example, or class scores when the EvalConfig asks for multi-class "
        f"metrics ({', '.join(MULTI_CLASS_METRICS[:4])}, or a MetricsSpec with binarize "
        f"class_ids/top_k_list): add such a metric, or {fix}")


def _scores_per_example(value) -> int:
    return int(value[0].size) if value.ndim > 1 and len(value) else 1


def _column(values) -> Any:
    """A frame column: one value per row, or (class scores) one numpy vector per row."""
    return values if values.ndim == 1 else list(values)


def _referenced_columns(config) -> set[str]:
    """Columns the evaluation reads: labels, example weights and slicing features."""
    columns = {spec.label_key for spec in config.model_specs}
    columns |= {spec.example_weight_key for spec in config.model_specs if spec.example_weight_key}
    for spec in config.all_slicing_specs():
        columns |= set(spec.columns)
    return columns


def _merge_features(frame, features: dict[str, Any], referenced: set[str]) -> list[str]:
    """Put the preprocessed features into ``frame``, in place of raw columns of the same
    name (TFMA looks features up in the transformed ones first). A feature with one value
    per example becomes a column (bytes decoded to text, as raw string columns are); one
    with several (a one-hot vector) only when the evaluation reads it. Returns the raw
    columns replaced."""
    import numpy as np

    replaced = []
    for name, value in features.items():
        flat = value.reshape(len(value), -1) if value.ndim > 1 else value.reshape(-1, 1)
        if flat.shape[1] == 1:
            column = flat[:, 0]
            if column.dtype == object:
                column = np.array([v.decode("utf-8", "replace") if isinstance(v, bytes) else v
                                   for v in column], dtype=object)
        elif name in referenced:
            column = list(flat)
        else:
            continue
        if name in frame.columns:
            replaced.append(name)
        frame[name] = column
    return sorted(replaced)


def _evaluated_frame(frame, config, baseline_column: str | None):
    """Only the columns the evaluation reads (TFMA's path serializes every column), unless
    one is missing: then the whole frame, so the engine's error lists every column."""
    wanted = _referenced_columns(config) | {config.candidate.prediction_key}
    if baseline_column:
        wanted.add(baseline_column)
    if not wanted <= set(frame.columns):
        return frame
    return frame[[c for c in frame.columns if c in wanted]]


def _missing_label(label_key: str, examples: Examples, table, answer: _Answer) -> str:
    made = (f", nor an output of {', '.join(answer.preprocessing)} "
            f"({', '.join(sorted(answer.features)) or 'none'})" if answer.preprocessing else "")
    return (f"label_key {label_key!r} is not a column of Examples #{examples.id} "
            f"(columns: {', '.join(table.column_names)}){made}; name the model's signature "
            "that computes it in the model_spec's preprocessing_function_names (as TFX's "
            "tutorials do with 'transform_features'), or give transform_graph= when the "
            "label is computed by preprocessing_fn")


def _value_warnings(config, model: Model, answer: _Answer, which: str) -> list[str]:
    """Values that look wrong for a metric that TFMA computes anyway (so the engine does
    too): scores outside [0, 1], such as logits, read as probabilities."""
    import numpy as np

    from toolkit.evaluation.config import iter_metric_configs
    from toolkit.evaluation.metrics import resolve

    names = []
    for _, metric in iter_metric_configs(config):
        resolved, _ = resolve(metric)
        thresholded = (resolved is not None and resolved.needs_binary) or (
            metric.class_name in PROBABILITY_METRICS)
        if thresholded and metric.class_name not in names:
            names.append(metric.class_name)
    values = np.asarray(answer.predictions, dtype=float)
    if not names or not values.size:
        return []
    outside = (values < 0) | (values > 1)
    if not outside.any():
        return []
    what = "class scores" if values.ndim > 1 else "predictions"
    return [f"{what} of {which}Model #{model.id} (output {answer.output!r}) range from "
            f"{np.nanmin(values):.4g} to {np.nanmax(values):.4g}, {int(outside.sum()):,} of "
            f"{values.size:,} outside [0, 1]: they look like logits, not probabilities. "
            f"As TFMA does, {', '.join(names)} read them as probabilities (BinaryAccuracy "
            "counts a score above 0.5 as positive); end the model with a sigmoid (or "
            "softmax) to evaluate probabilities"]


def _evaluate(frame, config, engine: str, baseline_column: str | None, rubber_stamp: bool,
              out_of_range: bool):
    """``toolkit.evaluate``. Predictions outside [0, 1] (logits) are evaluated as TFMA
    evaluates them, by the vectorized engine too; when ``out_of_range``, the Executor has
    warned about them already (log and artifact), so the engine's warning is not repeated."""
    import logging
    import warnings

    from toolkit.evaluation import evaluate

    if not out_of_range:
        return evaluate(frame, config, engine=engine, baseline=baseline_column,
                        rubber_stamp=rubber_stamp)

    def not_logits(record: logging.LogRecord) -> bool:
        return "look like logits" not in record.getMessage()

    engine_logger = logging.getLogger("toolkit.evaluation.engine")
    engine_logger.addFilter(not_logits)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"toolkit\.evaluate: .*look like logits")
            return evaluate(frame, config, engine=engine, baseline=baseline_column,
                            rubber_stamp=rubber_stamp)
    finally:
        engine_logger.removeFilter(not_logits)


def _graph_outputs(graph: TransformGraph, key: str) -> bool:
    import tensorflow_transform as tft

    quiet_tensorflow()
    return key in tft.TFTransformOutput(storage.local_path(graph.uri)).transformed_feature_spec()


def _label_from_transform(graph: TransformGraph, table, label_key: str):
    import numpy as np
    import tensorflow as tf
    import tensorflow_transform as tft

    quiet_tensorflow()
    output = tft.TFTransformOutput(storage.local_path(graph.uri))
    if label_key not in output.transformed_feature_spec():
        raise InputDataError(f"label_key {label_key!r} is neither a raw column nor an output of "
                             f"the transform graph ({', '.join(output.transformed_feature_spec())})")
    raw_spec = output.raw_feature_spec()
    layer = output.transform_features_layer()
    values = []
    for start in range(0, table.num_rows, 4096):
        rows = table.slice(start, 4096).select([c for c in table.column_names if c in raw_spec])
        parsed = tf.io.parse_example(tf.constant(serialize_examples(rows)), raw_spec)
        values.append(np.asarray(layer(parsed)[label_key]).reshape(-1))
    return np.concatenate(values)


def _publish(result, warnings: list[str], config, examples: Examples, model: Model,
             baseline: Model | None, output_dict, ctx: ExecutorContext, signature_name: str) -> None:
    """Write the evaluation (TFMA's records and the toolkit's stored result) and the blessing."""
    from toolkit.evaluation import write_tfma_artifact
    from toolkit.evaluation.storage import save_result

    candidate = config.candidate
    evaluation: ModelEvaluation = output_dict["evaluation"][0]
    locations = {candidate.name or "candidate": model.uri}
    if baseline is not None:
        locations["baseline"] = baseline.uri
    write_tfma_artifact(result, evaluation.uri, data_location=examples.uri,
                        model_locations=locations)
    save_result(result, evaluation.uri)
    blessing: ModelBlessing = output_dict["blessing"][0]
    blessed = bool(result.blessed)
    storage.write_text(storage.join(blessing.uri, "BLESSED" if blessed else "NOT_BLESSED"), "")
    failures = _failures(result)
    storage.write_text(storage.join(blessing.uri, "validation.json"),
                       json.dumps({"blessed": blessed, "failures": failures}, indent=1))
    blessing.properties.update(blessed=int(blessed), current_model_id=model.id or 0)
    if baseline is not None:
        blessing.properties["baseline_model_id"] = baseline.id or 0
    if not blessed:
        blessing.properties["reason"] = "; ".join(failures[:3]) or "thresholds failed"
    evaluation.properties.update(blessed=int(blessed), engine=result.engine,
                                 signature_name=signature_name)
    if warnings:
        evaluation.properties["warnings"] = json.dumps(warnings)
    ctx.log(f"{'blessed' if blessed else 'NOT blessed'}"
            + (f": {'; '.join(failures[:3])}" if failures else ""))


def _do_on_beam(component: Evaluator, input_dict, output_dict, exec_properties,
                ctx: ExecutorContext) -> None:
    """The Evaluator with ``beam_pipeline_args``: the toolkit engine as a Beam pipeline
    (examples read, the model called and per-slice statistics computed in the workers,
    see :mod:`toolkit.evaluation.beam_engine`); ``engine="tfma"`` runs TFMA's pipeline with
    the same arguments."""
    import dataclasses

    from toolkit.components._beam import check_beam_args
    from toolkit.components._io import (FORMAT_TF_EXAMPLE, payload_format, recorded_column_types,
                                        split_pattern)
    from toolkit.evaluation import load_eval_config
    from toolkit.evaluation.beam_engine import evaluate_on_beam
    from toolkit.evaluation.engines import ENGINES

    args = list(ctx.beam_pipeline_args)
    # before any work: the TFMA path calls the model in process before its pipeline runs
    check_beam_args(args, "the evaluation on Beam")
    engine = ENGINES.get(exec_properties["engine"])
    if not engine.vectorized:  # an engine of its own (TFMA's pipeline), given the arguments
        with engine.on_beam(args):
            return component.Do(input_dict, output_dict, exec_properties,
                                dataclasses.replace(ctx, beam_pipeline_args=[]))
    config = load_eval_config(exec_properties["eval_config"])
    if wants_class_scores(config):
        raise ToolkitError("the Evaluator on Beam evaluates one score per example; multi-class "
                           "metrics (class scores) are evaluated in process: run it without "
                           "beam_pipeline_args")
    signature_name, preprocessing = model_spec_signatures(config)
    examples: Examples = input_dict["examples"][0]
    model: Model = input_dict["model"][0]
    baseline: Model | None = (input_dict.get("baseline_model") or [None])[0]
    graph = (input_dict.get("transform_graph") or [None])[0]
    splits = list(exec_properties["example_splits"])
    for split in splits:
        check_splits(examples, [split], "example_splits names")
    prediction_key = config.candidate.prediction_key or "prediction"
    baseline_column = f"{prediction_key}__baseline" if baseline is not None else None
    tfrecord = payload_format(examples) == FORMAT_TF_EXAMPLE
    patterns = [split_pattern(examples, split) for split in splits]

    def read(pipeline):
        import apache_beam as beam

        parts = []
        for split, pattern in zip(splits, patterns):
            if tfrecord:
                parts.append(pipeline
                             | f"Read[{split}]" >> beam.io.ReadFromTFRecord(
                                 pattern, compression_type=beam.io.filesystem.CompressionTypes.AUTO)
                             | f"Batch[{split}]" >> beam.BatchElements(min_batch_size=1000,
                                                                       max_batch_size=8192))
            else:
                parts.append(pipeline | f"Read[{split}]" >> beam.io.ReadFromParquetBatched(pattern))
        return parts[0] if len(parts) == 1 else parts | "Splits" >> beam.Flatten()

    ctx.log(f"evaluating {', '.join(splits)} on Beam ({' '.join(args)}) with Model #{model.id}"
            + (f" and baseline Model #{baseline.id}" if baseline else "") + f" ({signature_name}"
            + (f"; features from {', '.join(preprocessing)}" if preprocessing else "") + ")")
    frames = _BeamFrames(config.raw, model, baseline, graph, signature_name, preprocessing,
                         baseline_column, recorded_column_types(examples) if tfrecord else None)
    with _logits_noted() as noted:
        result = evaluate_on_beam(read, config, args, prepare=frames, baseline=baseline_column,
                                  rubber_stamp=baseline is None, tmp_dir=ctx.tmp_dir,
                                  label=f"the evaluation of Model #{model.id} on "
                                        f"{', '.join(splits)}")
    for warning in noted:
        ctx.log(f"warning: {warning}")
    _publish(result, noted, config, examples, model, baseline, output_dict, ctx, signature_name)


@contextlib.contextmanager
def _logits_noted():
    """On Beam the predictions are only seen in the workers, so the engine's own warning
    about scores outside [0, 1] (logits) is what tells: it is kept, once, as the
    artifact's warning (as the in-process path keeps its own) rather than printed twice."""
    import logging
    import warnings

    noted: list[str] = []

    def not_logits(record: logging.LogRecord) -> bool:
        return "look like logits" not in record.getMessage()

    engine_logger = logging.getLogger("toolkit.evaluation.engine")
    engine_logger.addFilter(not_logits)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield noted
    finally:
        engine_logger.removeFilter(not_logits)
    for warning in caught:
        text = str(warning.message)
        if "look like logits" in text:
            noted.append(text.removeprefix("toolkit.evaluate: "))
        else:
            warnings.warn_explicit(warning.message, warning.category, warning.filename,
                                   warning.lineno)


class _BeamFrames:
    """In a Beam worker: the model (and baseline) loaded once by ``setup``, then each batch of
    examples (an Arrow table, or serialized tf.Examples) made into the frame the engine
    evaluates, as ``Evaluator.Do`` makes it in process."""

    def __init__(self, config_raw, model: Model, baseline: Model | None, graph, signature_name: str,
                 preprocessing: list[str], baseline_column: str | None, column_types):
        self.config_raw = config_raw
        self.model, self.baseline, self.graph = model, baseline, graph
        self.signature_name, self.preprocessing = signature_name, preprocessing
        self.baseline_column = baseline_column
        self.column_types = column_types
        self._loaded = self._baseline_loaded = self._config = None

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k not in ("_loaded", "_baseline_loaded")}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._loaded = self._baseline_loaded = None

    def setup(self) -> None:
        from toolkit.evaluation import load_eval_config

        self._config = load_eval_config(self.config_raw)
        self._loaded = load_saved_model(self.model)
        if self.baseline is not None:
            self._baseline_loaded = load_saved_model(self.baseline)

    def __call__(self, batch):
        import pyarrow as pa

        from toolkit.components._io import decode_examples, restore_column_types, scalar_columns

        if self._loaded is None:
            self.setup()
        config = self._config
        if isinstance(batch, pa.Table):
            table = batch
        else:
            table = scalar_columns(pa.Table.from_batches([decode_examples(list(batch), "Examples")]))
            if self.column_types:
                table = restore_column_types(table, self.column_types)
        label_key = config.candidate.label_key or "label"
        prediction_key = config.candidate.prediction_key or "prediction"
        frame = table.to_pandas()
        answer = _model_answer(self.model, table, self.signature_name, self.preprocessing,
                               prediction_key, False, loaded=self._loaded)
        _merge_features(frame, answer.features, _referenced_columns(config))
        frame[prediction_key] = _column(answer.predictions)
        if self.baseline is not None:
            other = _model_answer(self.baseline, table, self.signature_name, [], prediction_key,
                                  False, preprocess=False, loaded=self._baseline_loaded)
            frame[self.baseline_column] = _column(other.predictions)
        if label_key not in answer.features:
            if self.graph is not None and (label_key not in frame.columns
                                           or _graph_outputs(self.graph, label_key)):
                frame[label_key] = _label_from_transform(self.graph, table, label_key)
            elif label_key not in frame.columns:
                raise InputDataError(f"label_key {label_key!r} is not a column of the examples "
                                     f"(columns: {', '.join(table.column_names)})")
        return _evaluated_frame(frame, config, self.baseline_column)
