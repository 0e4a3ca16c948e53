"""BulkInferrer: batch predictions written beside the input features.

The output is a table per split (``Split-<name>/data.parquet``): every input
column, then the predictions, so it can go straight to ``toolkit.evaluate`` or
pandas. Rows go through the model's serving signature (raw serialized examples
for a model exported with its transform graph), as a server would see them.
"""
from __future__ import annotations

import json

from toolkit.artifacts import Examples, InferenceResult, Model, ModelBlessing
from toolkit.base_component import BaseComponent, ExecutorContext, InputSpec, ExecutionParameter
from toolkit.components._io import check_splits, read_split, write_split
from toolkit.components._model_io import blessing_verdict, load_signature, predict


class BulkInferrer(BaseComponent):
    """Runs a model over Examples and writes ``prediction`` (and ``scores``) columns.

    Args:
        examples: Examples to predict on (labelled or not).
        model: the Model.
        model_blessing: if given and the model is not blessed, nothing is inferred
            (as in TFX); in production mode the run stops (``gate``).
        data_spec: ``{"example_splits": ["eval"]}``; every split by default.
        model_spec: ``{"model_signature_name": ["serving_default"]}``.

    A model output of one value per example becomes the column ``prediction``;
    several values per example (class scores) become ``scores`` (the full list) and
    ``prediction`` (the index of the highest), which is then a class index, not a
    score to compute binary metrics on. Models with several outputs get
    ``prediction_<output>`` and ``scores_<output>`` columns instead.
    """

    INPUTS = {"examples": InputSpec(Examples), "model": InputSpec(Model),
              "model_blessing": InputSpec(ModelBlessing, optional=True)}
    OUTPUTS = {"inference_result": InferenceResult}
    PARAMETERS = {"data_spec": ExecutionParameter(dict), "model_spec": ExecutionParameter(dict)}

    def __init__(self, examples, model, model_blessing=None, data_spec: dict | None = None,
                 model_spec: dict | None = None):
        super().__init__(examples=examples, model=model, model_blessing=model_blessing,
                         data_spec=data_spec, model_spec=model_spec)

    def Do(self, input_dict, output_dict, exec_properties, ctx: ExecutorContext) -> None:
        examples: Examples = input_dict["examples"][0]
        model: Model = input_dict["model"][0]
        result: InferenceResult = output_dict["inference_result"][0]
        reason = blessing_verdict(model, {"model_blessing": input_dict.get("model_blessing")
                                          or []})
        if reason:
            result.split_names = []
            result.properties.update(inferred=0, reason=f"no inference: {reason}")
            ctx.log(f"no inference: {reason}")
            return
        splits = list((exec_properties.get("data_spec") or {}).get("example_splits")
                      or examples.split_names)
        check_splits(examples, splits, "data_spec names split")
        names = (exec_properties.get("model_spec") or {}).get("model_signature_name") or [
            "serving_default"]
        signature_name = names[0] if isinstance(names, (list, tuple)) else names
        import tensorflow as tf

        loaded, signature = load_signature(model, signature_name)
        counts = {}
        for split in splits:
            table = read_split(examples, split)
            predictions = predict(tf, signature, table)
            for name, column in predictions.items():
                table = table.append_column(_unique(name, table.column_names), column)
            write_split(result, split, table)
            counts[split] = table.num_rows
        result.split_names = splits
        result.properties.update(inferred=1, signature=signature_name,
                                 row_counts=json.dumps(counts))
        ctx.log("predicted " + ", ".join(f"{s}: {n:,} rows" for s, n in counts.items())
                + f" with {signature_name}")

    def gate(self, outputs, exec_properties) -> str | None:
        result = outputs["inference_result"][0]
        if int(result.properties.get("inferred", 1) or 0) == 0:
            return result.properties.get("reason") or "no inference"
        return None


def _unique(name: str, existing: list[str]) -> str:
    candidate, index = name, 1
    while candidate in existing:
        candidate = f"{name}_{index}"
        index += 1
    return candidate
