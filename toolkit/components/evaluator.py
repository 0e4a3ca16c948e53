"""Evaluator: the model's predictions on real examples, sliced metrics, thresholds, blessing.

The model answers through its serving signature (raw serialized examples in), the
vectorized engine of :mod:`toolkit.evaluation` computes TFMA's metrics per slice,
and the evaluation artifact holds TFMA's own records, so ``tfma.load_eval_result``
reads it, beside the toolkit's stored result (``evaluation.json`` and a tidy
``metrics.parquet``, see :mod:`toolkit.evaluation.storage`) that
``ModelEvaluation.load()`` returns without TensorFlow. A ``blessing`` says whether
every threshold passed; a change threshold compares the candidate with
``baseline_model`` on the same examples.
"""
from __future__ import annotations

import json
import os

from toolkit._quiet import quiet_tensorflow
from toolkit.artifacts import Examples, Model, ModelBlessing, ModelEvaluation, TransformGraph
from toolkit.base_component import BaseComponent, ExecutorContext, InputSpec, ExecutionParameter
from toolkit.components._io import check_splits, read_split
from toolkit.components._model_io import (load_signature, output_shape, predict_outputs,
                                           serialize_examples)
from toolkit.errors import InputDataError, ToolkitError


class Evaluator(BaseComponent):
    """Evaluates ``model`` on ``examples`` with a ``tfma.EvalConfig``.

    Args:
        examples: raw Examples (the model is called as a server would call it).
        model: the candidate Model.
        baseline_model: optional Model to compare with (change thresholds, ``*_diff``
            metrics); see :class:`toolkit.components.LatestBlessedModelResolver`.
        eval_config: a ``tfma.EvalConfig`` (or its dict / JSON form). The candidate's
            ``prediction_key`` names the column the model's predictions go to
            (``prediction`` by default) and, when ``serving_default`` returns several
            outputs, the output to evaluate. The evaluated output must hold one score
            per example: class scores of a multi-class model are refused, not reduced
            to their argmax.
        transform_graph: optional TransformGraph; when the label (``label_key``) is
            not a raw column, it is computed by this graph (a label made in
            ``preprocessing_fn``, as in the taxi example).
        example_splits: splits to evaluate on (``["eval"]``).
        engine: ``"auto"``, ``"toolkit"`` or ``"tfma"`` (see :func:`toolkit.evaluate`).
    """

    INPUTS = {"examples": InputSpec(Examples), "model": InputSpec(Model),
              "baseline_model": InputSpec(Model, optional=True),
              "transform_graph": InputSpec(TransformGraph, optional=True)}
    OUTPUTS = {"evaluation": ModelEvaluation, "blessing": ModelBlessing}
    EXECUTOR_VERSION = "2"
    PARAMETERS = {"eval_config": ExecutionParameter(object, required=True),
                  "example_splits": ExecutionParameter(list, default=["eval"]),
                  "engine": ExecutionParameter(str, default="auto")}

    def __init__(self, examples, model, eval_config, baseline_model=None, transform_graph=None,
                 example_splits: list[str] | None = None, engine: str = "auto"):
        super().__init__(examples=examples, model=model, baseline_model=baseline_model,
                         transform_graph=transform_graph, eval_config=eval_config,
                         example_splits=list(example_splits or ["eval"]), engine=engine)

    def Do(self, input_dict, output_dict, exec_properties, ctx: ExecutorContext) -> None:
        from toolkit.evaluation import evaluate, load_eval_config, write_tfma_artifact
        from toolkit.evaluation.storage import save_result

        config = load_eval_config(exec_properties["eval_config"])
        candidate = config.candidate
        label_key = candidate.label_key or "label"
        prediction_key = candidate.prediction_key or "prediction"
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
                + (f" and baseline Model #{baseline.id}" if baseline else ""))
        frame = table.to_pandas()
        frame[prediction_key] = _predictions(model, table, prediction_key)
        baseline_column = None
        if baseline is not None:
            baseline_column = f"{prediction_key}__baseline"
            frame[baseline_column] = _predictions(baseline, table, prediction_key)
        if label_key not in frame.columns:
            if graph is None:
                raise InputDataError(
                    f"label_key {label_key!r} is not a column of Examples #{examples.id} "
                    f"(columns: {', '.join(table.column_names)}); give transform_graph= when "
                    "the label is computed by preprocessing_fn")
            frame[label_key] = _label_from_transform(graph, table, label_key)
        result = evaluate(frame, config, engine=exec_properties["engine"],
                          baseline=baseline_column, rubber_stamp=baseline is None)
        evaluation: ModelEvaluation = output_dict["evaluation"][0]
        locations = {candidate.name or "candidate": model.uri}
        if baseline is not None:
            locations["baseline"] = baseline.uri
        write_tfma_artifact(result, evaluation.uri, data_location=examples.uri,
                            model_locations=locations)
        save_result(result, evaluation.uri)
        blessing: ModelBlessing = output_dict["blessing"][0]
        blessed = bool(result.blessed)
        with open(os.path.join(blessing.uri, "BLESSED" if blessed else "NOT_BLESSED"), "w"):
            pass
        failures = _failures(result)
        with open(os.path.join(blessing.uri, "validation.json"), "w") as handle:
            json.dump({"blessed": blessed, "failures": failures}, handle, indent=1)
        blessing.properties.update(blessed=int(blessed), current_model_id=model.id or 0)
        if baseline is not None:
            blessing.properties["baseline_model_id"] = baseline.id or 0
        if not blessed:
            blessing.properties["reason"] = "; ".join(failures[:3]) or "thresholds failed"
        evaluation.properties.update(blessed=int(blessed), engine=result.engine)
        ctx.log(f"{'blessed' if blessed else 'NOT blessed'}"
                + (f": {'; '.join(failures[:3])}" if failures else ""))


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


def _predictions(model: Model, table, prediction_key: str):
    """One score per example from the model's ``serving_default`` (serialized examples).

    When the signature returns several outputs, the one named ``prediction_key`` is
    evaluated, as TFMA reads a dict of predictions. An output with several scores per
    example (class scores) is refused rather than reduced to its argmax: binary metrics
    computed on a class index look plausible and mean nothing.
    """
    import numpy as np
    import tensorflow as tf

    loaded, signature = load_signature(model, "serving_default",
                                       what="serving_default signature")
    outputs = predict_outputs(tf, signature, table)
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
            f"Model #{model.id}: serving_default returns {len(outputs)} outputs ({listed}) "
            f"and none is named {prediction_key!r}: set prediction_key in the EvalConfig's "
            "model_spec to the output to evaluate")
    if widths[name] != 1:
        others = [n for n in single if n != name]
        fix = (f"set prediction_key in the EvalConfig's model_spec to "
               f"{' or '.join(repr(n) for n in others)}, an output with one score per example"
               if others else "export a serving signature that returns one score per example "
               "(such as the probability of the positive class)")
        raise ToolkitError(
            f"Model #{model.id}: output {name!r} has {widths[name]} scores per example "
            f"(shape {output_shape(signature, name, outputs[name])}); the Evaluator evaluates "
            f"one score per example, not multi-class scores: {fix}")
    return np.asarray(outputs[name], dtype=float).reshape(-1)


def _scores_per_example(value) -> int:
    return int(value[0].size) if value.ndim > 1 and len(value) else 1


def _label_from_transform(graph: TransformGraph, table, label_key: str):
    import numpy as np
    import tensorflow as tf
    import tensorflow_transform as tft

    quiet_tensorflow()
    output = tft.TFTransformOutput(graph.uri)
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
