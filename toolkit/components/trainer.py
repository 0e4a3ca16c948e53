"""Trainer: calls a TFX module file's ``run_fn(fn_args)`` and publishes its SavedModel.

``fn_args`` carries the fields TFX documents (``train_files``, ``eval_files``,
``transform_output``, ``serving_model_dir``, ``data_accessor``, ``hyperparameters`` ...),
so a module file written for TFX runs unchanged. The model lands where TFX puts it:
``<model>/Format-Serving/``; TensorBoard logs go to the ``model_run`` artifact. A Tuner's
``best_hyperparameters`` wired in as ``hyperparameters`` reach ``run_fn`` as the KerasTuner
config TFX's Trainer reads from that artifact. While ``run_fn`` trains, the live progress
line (:mod:`toolkit.progress`) says so, and counts the epochs of every ``fit`` it calls
(:class:`toolkit.progress.counting_epochs`).
"""
from __future__ import annotations

import json
import os
import time
from typing import Any, Callable

from toolkit import progress, storage
from toolkit._quiet import quiet_tensorflow
from toolkit.artifacts import (Examples, HyperParameters, Model, ModelRun, Schema,
                               TransformGraph)
from toolkit.base_component import (BaseComponent, Channel, ExecutionParameter, ExecutorContext,
                                    InputSpec)
from toolkit.components._model_io import SERVING_DIR, has_saved_model
from toolkit.components._module import call_user_function, resolve_function, tfx_names
from toolkit.components.fn_args import args_dict, common_fn_args
from toolkit.errors import UserCodeError, WiringError
from toolkit.publishing import final_dir


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
        hyperparameters: a Tuner's ``outputs["best_hyperparameters"]`` (as in TFX; ``run_fn``
            gets its KerasTuner config, so ``keras_tuner.HyperParameters.from_config(
            fn_args.hyperparameters)`` rebuilds it), or a dict passed through as it is.
        custom_config: a dict passed through to ``run_fn``.
        run_fn: the function itself (or a dotted path) instead of a module file.

    ``run_fn`` must save a SavedModel in ``fn_args.serving_model_dir``; the Trainer
    fails with a clear message if it does not.
    """

    INPUTS = {"examples": InputSpec(Examples),
              "transform_graph": InputSpec(TransformGraph, optional=True),
              "schema": InputSpec(Schema, optional=True),
              "base_model": InputSpec(Model, optional=True),
              # a Tuner's output; a dict is the parameter of the same name instead
              "hyperparameters": InputSpec(HyperParameters, optional=True)}
    OUTPUTS = {"model": Model, "model_run": ModelRun}
    PARAMETERS = {"module_file": ExecutionParameter(str, fingerprint="file"),
                  "run_fn": ExecutionParameter(object),
                  "train_args": ExecutionParameter(dict), "eval_args": ExecutionParameter(dict),
                  "hyperparameters": ExecutionParameter(dict), "custom_config": ExecutionParameter(dict)}

    def __init__(self, module_file: str | None = None, examples=None, transform_graph=None,
                 schema=None, train_args: dict | None = None, eval_args: dict | None = None,
                 hyperparameters: dict | None = None, custom_config: dict | None = None,
                 run_fn: Callable | str | None = None, base_model=None):
        # TFX wires hyperparameters as an input channel; the toolkit has always taken a dict
        # parameter too. One name, two roles: a channel becomes the input, anything else the
        # parameter, so a Trainer given a dict keeps the cache key it always had.
        tuned = isinstance(hyperparameters, Channel)
        super().__init__(module_file=None if module_file is None else os.fspath(module_file),
                         examples=examples, transform_graph=transform_graph, schema=schema,
                         train_args=args_dict(train_args), eval_args=args_dict(eval_args),
                         hyperparameters=hyperparameters if tuned else None,
                         custom_config=custom_config, run_fn=run_fn, base_model=base_model)
        if not tuned:
            self.exec_properties["hyperparameters"] = _hyperparameters_dict(hyperparameters)

    def Do(self, input_dict, output_dict, exec_properties, ctx: ExecutorContext) -> None:
        fn, label = resolve_function(module_file=exec_properties.get("module_file"),
                                     function=exec_properties.get("run_fn"),
                                     name="run_fn", owner=self.id)
        model: Model = output_dict["model"][0]
        model_run: ModelRun = output_dict["model_run"][0]
        # run_fn saves with TensorFlow, which needs local paths
        serving_dir = storage.local_path(storage.join(model.uri, SERVING_DIR))
        fn_args = common_fn_args(input_dict, exec_properties,
                                 working_dir=storage.local_path(model_run.uri))
        fn_args.schema_file = fn_args.schema_path
        fn_args.transform_output = fn_args.transform_graph_path
        fn_args.serving_model_dir = serving_dir
        fn_args.eval_model_dir = storage.local_path(storage.join(model.uri, "Format-TFMA"))
        fn_args.model_run_dir = storage.local_path(model_run.uri)
        tuned = (input_dict.get("hyperparameters") or [None])[0]
        fn_args.hyperparameters = (tuned.load() if tuned is not None
                                   else dict(exec_properties.get("hyperparameters") or {}))
        import tensorflow as tf

        quiet_tensorflow()
        keras = _keras_flavour(tf)
        # the staging folder run_fn writes to is renamed when the run succeeds: name the
        # folder the logs will be in, which is the one left to point TensorBoard at
        logs = final_dir(os.path.dirname(model_run.uri), ctx.execution_id)
        ctx.log(f"{label}: train_steps={fn_args.train_steps}, eval_steps={fn_args.eval_steps}, "
                f"tf.keras is {keras}; TensorBoard logs in {logs}")
        late = _keras_bound_too_early(tf)
        if late:
            ctx.log(late)
        started = time.perf_counter()
        # the module file calls fit itself: while it runs, fit reports its epochs
        progress.report(f"running {label}", train_steps=fn_args.train_steps)
        try:
            with tfx_names(), progress.counting_epochs():
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
        progress.report("reading the SavedModel's signatures")
        signatures = _signatures(serving_dir)
        model.properties["signatures"] = json.dumps(signatures)
        ctx.log(f"trained in {time.perf_counter() - started:.1f} s; SavedModel signatures: "
                f"{', '.join(signatures) or 'none'}")


def _hyperparameters_dict(value: Any) -> dict | None:
    """The ``hyperparameters`` parameter: a dict as it is, a ``keras_tuner.HyperParameters``
    object as its config (what a Tuner's artifact holds)."""
    if value is None or isinstance(value, dict):
        return value
    if callable(getattr(value, "get_config", None)):
        return value.get_config()
    raise WiringError(f"Trainer: hyperparameters must be a Tuner's "
                      f"outputs['best_hyperparameters'] or a dict, got {type(value).__name__}")


def tf_keras_is_keras2(tf) -> bool:
    """Whether ``tf.keras`` is Keras 2 (the ``tf_keras`` package) in this process.

    Asked of its classes, not of the module's name: once something runs ``from
    tensorflow.keras import *`` (KerasTuner does), ``tf.keras`` is a module named
    ``tensorflow.keras`` whichever Keras it holds."""
    return tf.keras.Model.__module__.startswith("tf_keras")


def _keras_flavour(tf) -> str:
    """Which Keras ``tf.keras`` is in this process (module files written for one may
    not run on the other)."""
    if tf_keras_is_keras2(tf):
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
    if tf_keras_is_keras2(tf):
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
    return ", ".join(sorted(storage.walk(folder))[:5])
