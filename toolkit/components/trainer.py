"""Trainer: calls a TFX module file's ``run_fn(fn_args)`` and publishes its SavedModel.

``fn_args`` carries the fields TFX documents (``train_files``, ``eval_files``,
``transform_output``, ``serving_model_dir``, ``data_accessor`` ...), so a module
file written for TFX runs unchanged. The model lands where TFX puts it:
``<model>/Format-Serving/``; TensorBoard logs go to the ``model_run`` artifact.
"""
from __future__ import annotations

import json
import os
import time
from typing import Any, Callable

from toolkit._quiet import quiet_tensorflow
from toolkit.artifacts import Examples, Model, ModelRun, Schema, TransformGraph
from toolkit.base_component import BaseComponent, ExecutorContext, InputSpec, ExecutionParameter
from toolkit.components._model_io import SERVING_DIR, has_saved_model
from toolkit.components._module import call_user_function, resolve_function, tfx_names
from toolkit.components.fn_args import DataAccessor, FnArgs
from toolkit.errors import InputDataError, UserCodeError


class Trainer(BaseComponent):
    """Trains a model with the ``run_fn`` of a TFX module file.

    Args:
        module_file: Python file defining ``run_fn(fn_args)``.
        examples: Examples to train on (``transformed_examples`` of a Transform, or raw).
        transform_graph: the Transform's graph, given to ``run_fn`` as
            ``fn_args.transform_output``; embed it in the serving signature.
        schema: raw Schema, given as ``fn_args.schema_path``.
        train_args: ``{"num_steps": N, "splits": ["train"]}``.
        eval_args: ``{"num_steps": M, "splits": ["eval"]}``.
        hyperparameters, custom_config: dicts passed through to ``run_fn``.
        run_fn: the function itself (or a dotted path) instead of a module file.

    ``run_fn`` must save a SavedModel in ``fn_args.serving_model_dir``; the Trainer
    fails with a clear message if it does not.
    """

    INPUTS = {"examples": InputSpec(Examples),
              "transform_graph": InputSpec(TransformGraph, optional=True),
              "schema": InputSpec(Schema, optional=True),
              "base_model": InputSpec(Model, optional=True)}
    OUTPUTS = {"model": Model, "model_run": ModelRun}
    PARAMETERS = {"module_file": ExecutionParameter(str, fingerprint="file"),
                  "run_fn": ExecutionParameter(object),
                  "train_args": ExecutionParameter(dict), "eval_args": ExecutionParameter(dict),
                  "hyperparameters": ExecutionParameter(dict), "custom_config": ExecutionParameter(dict)}

    def __init__(self, module_file: str | None = None, examples=None, transform_graph=None,
                 schema=None, train_args: dict | None = None, eval_args: dict | None = None,
                 hyperparameters: dict | None = None, custom_config: dict | None = None,
                 run_fn: Callable | str | None = None, base_model=None):
        super().__init__(module_file=None if module_file is None else os.fspath(module_file),
                         examples=examples, transform_graph=transform_graph, schema=schema,
                         train_args=_args(train_args), eval_args=_args(eval_args),
                         hyperparameters=hyperparameters, custom_config=custom_config,
                         run_fn=run_fn, base_model=base_model)

    def Do(self, input_dict, output_dict, exec_properties, ctx: ExecutorContext) -> None:
        fn, label = resolve_function(module_file=exec_properties.get("module_file"),
                                     function=exec_properties.get("run_fn"),
                                     name="run_fn", owner=self.id)
        examples: Examples = input_dict["examples"][0]
        model: Model = output_dict["model"][0]
        model_run: ModelRun = output_dict["model_run"][0]
        train_args = exec_properties.get("train_args") or {}
        eval_args = exec_properties.get("eval_args") or {}
        graph = (input_dict.get("transform_graph") or [None])[0]
        schema = (input_dict.get("schema") or [None])[0]
        base = (input_dict.get("base_model") or [None])[0]
        serving_dir = os.path.join(model.uri, SERVING_DIR)
        fn_args = FnArgs(
            working_dir=model_run.uri,
            train_files=_patterns(examples, train_args.get("splits") or ["train"]),
            eval_files=_patterns(examples, eval_args.get("splits") or ["eval"]),
            train_steps=train_args.get("num_steps"),
            eval_steps=eval_args.get("num_steps"),
            schema_path=schema.schema_path if schema is not None else None,
            schema_file=schema.schema_path if schema is not None else None,
            transform_graph_path=graph.uri if graph is not None else None,
            transform_output=graph.uri if graph is not None else None,
            data_accessor=DataAccessor(),
            serving_model_dir=serving_dir,
            eval_model_dir=os.path.join(model.uri, "Format-TFMA"),
            model_run_dir=model_run.uri,
            base_model=_base_model_dir(base),
            hyperparameters=dict(exec_properties.get("hyperparameters") or {}),
            custom_config=dict(exec_properties.get("custom_config") or {}))
        import tensorflow as tf

        quiet_tensorflow()
        keras = _keras_flavour(tf)
        ctx.log(f"{label}: train_steps={fn_args.train_steps}, eval_steps={fn_args.eval_steps}, "
                f"tf.keras is {keras}; TensorBoard logs in {model_run.uri}")
        late = _keras_bound_too_early(tf)
        if late:
            ctx.log(late)
        started = time.perf_counter()
        try:
            with tfx_names():
                call_user_function(fn, label, fn_args)
        except UserCodeError as exc:
            if late:  # the likely cause of a Keras 2 module file failing
                raise UserCodeError(f"{exc} ({late})") from None
            raise
        if not has_saved_model(serving_dir):
            found = _listing(model.uri)
            raise UserCodeError(
                f"{label} returned without saving a SavedModel in fn_args.serving_model_dir "
                f"({serving_dir})" + (f"; it wrote {found}" if found else "")
                + (". With Keras 3 use model.export(fn_args.serving_model_dir) or "
                   "tf.saved_model.save" if any(f.endswith(".keras") for f in found.split(", "))
                   else ""))
        signatures = _signatures(serving_dir)
        model.properties["signatures"] = json.dumps(signatures)
        ctx.log(f"trained in {time.perf_counter() - started:.1f} s; SavedModel signatures: "
                f"{', '.join(signatures) or 'none'}")


def _args(value: Any) -> dict | None:
    """TFX's TrainArgs/EvalArgs protos or plain dicts, as a dict."""
    if value is None or isinstance(value, dict):
        return value
    if hasattr(value, "DESCRIPTOR"):
        from google.protobuf import json_format

        return json_format.MessageToDict(value, preserving_proto_field_name=True)
    fields = {k: getattr(value, k) for k in ("num_steps", "splits") if hasattr(value, k)}
    return fields or dict(vars(value))


def _patterns(examples: Examples, splits: list[str]) -> list[str]:
    names = examples.split_names
    out = []
    for split in splits:
        if split not in names:
            raise InputDataError(f"Examples #{examples.id} has no split {split!r} "
                                 f"(it has {', '.join(names) or 'none'})")
        out.append(os.path.join(examples.split_uri(split), "*"))
    return out


def _base_model_dir(base: Model | None) -> str | None:
    if base is None:
        return None
    path = os.path.join(base.uri, SERVING_DIR)
    return path if os.path.isdir(path) else base.uri


def _keras_flavour(tf) -> str:
    """Which Keras ``tf.keras`` is in this process (module files written for one may
    not run on the other)."""
    if tf.keras.__name__.startswith("tf_keras"):
        import tf_keras

        return f"Keras {tf_keras.__version__} (tf_keras)"
    import keras

    return f"Keras {keras.__version__}"


def _keras_bound_too_early(tf) -> str | None:
    """Why ``tf.keras`` is Keras 3 although the toolkit asked for Keras 2, or None.

    ``import toolkit`` sets ``TF_USE_LEGACY_KERAS=1``, but TensorFlow binds ``tf.keras``
    once per process: when TensorFlow Model Analysis (or Keras 3 code) was imported
    first, as TFX's tutorials order their imports, ``tf.keras`` is already Keras 3 and
    module files written for TFX's Keras 2 (``save_format=...``) fail."""
    if tf.keras.__name__.startswith("tf_keras"):
        return None
    if os.environ.get("TF_USE_LEGACY_KERAS", "").strip().lower() not in ("1", "true"):
        return None  # the user chose Keras 3
    return ("tf.keras is Keras 3 in this process because TensorFlow bound it before "
            "`import toolkit` (e.g. `import tensorflow_model_analysis` came first); for a "
            "module file written for Keras 2, import toolkit first and restart the kernel")


def _signatures(path: str) -> list[str]:
    from tensorflow.python.saved_model import loader_impl

    try:
        saved = loader_impl.parse_saved_model(path)
    except (OSError, IOError, ValueError):
        return []
    names = set()
    for graph in saved.meta_graphs:
        names.update(graph.signature_def.keys())
    return sorted(n for n in names if not n.startswith("__"))


def _listing(folder: str) -> str:
    names = []
    for root, _, files in os.walk(folder):
        names += [os.path.relpath(os.path.join(root, f), folder) for f in files]
    return ", ".join(sorted(names)[:5])
