"""Tuner: TFX's hyperparameter search component, on KerasTuner.

A module file's ``tuner_fn(fn_args)`` returns ``TunerFnResult(tuner=..., fit_kwargs=...)``;
the Tuner runs ``tuner.search(**fit_kwargs)`` and publishes what TFX's Tuner publishes:
``best_hyperparameters`` (``best_hyperparameters.txt``, the JSON of the best trial's
``HyperParameters.get_config()``) and ``tuner_results`` (``tuner_results.json``, one record
per completed trial, best first). ``Trainer(hyperparameters=tuner.outputs[
"best_hyperparameters"])`` hands that config to ``run_fn``. So TFX's module files (the
penguin example's ``tuner_fn``) run unchanged.

Beyond TFX, whose in-process Tuner refuses ``TuneArgs``, ``tune_args={"num_parallel_trials":
N}`` runs N trials at once in worker processes on this machine, with KerasTuner's
chief/worker mode.

This package: the component and its outputs here; running ``tuner_fn`` and the search in
:mod:`.search`; timing the trials in :mod:`.trials`; parallel trials in :mod:`.parallel`
(the chief) and :mod:`.worker` (a worker process); the import hook that makes KerasTuner use
the Keras ``tf.keras`` is in :mod:`.binding`, registered when this package is imported
(every ``toolkit.components`` import), so that a notebook importing ``keras_tuner`` after
``toolkit.components`` gets it too. The component is defined here, in
``toolkit.components.tuner``, because a component class's module is part of its cache key.
"""
from __future__ import annotations

import json
import math
import os
import time
from typing import Any, Callable

from toolkit import storage
from toolkit._quiet import quiet_tensorflow
from toolkit.artifacts import (BEST_HYPERPARAMETERS_FILE, TUNER_RESULTS_FILE, TUNER_TRIALS_FILE,
                               Examples, HyperParameters, Model, Schema, TransformGraph,
                               TunerResults)
from toolkit.base_component import BaseComponent, ExecutionParameter, ExecutorContext, InputSpec
from toolkit.components._module import resolve_function, tfx_names
from toolkit.components.fn_args import TunerFnResult, args_dict, common_fn_args
from toolkit.components.tuner.binding import install_keras_binding
from toolkit.components.tuner.parallel import ParallelSearch, worker_request
from toolkit.components.tuner.search import (call_tuner_fn, import_keras_tuner, keras_of_tuner,
                                             search_here)
from toolkit.components.tuner.trials import TrialClock, error_of, format_score
from toolkit.errors import ToolkitError, UserCodeError

__all__ = ["Tuner", "TunerFnResult"]


class Tuner(BaseComponent):
    """Searches hyperparameters with the KerasTuner tuner a TFX module file's ``tuner_fn``
    builds, as TFX's Tuner does.

    Args:
        examples: Examples to tune on (``transformed_examples`` of a Transform, or raw).
        schema: raw Schema, given as ``fn_args.schema_path``.
        transform_graph: the Transform's graph, given as ``fn_args.transform_graph_path``.
        base_model: a Model, given as ``fn_args.base_model`` (its SavedModel folder).
        module_file: Python file defining ``tuner_fn(fn_args) -> TunerFnResult``.
        tuner_fn: the function itself (or a dotted path) instead of a module file.
        train_args: ``{"num_steps": N, "splits": ["train"]}`` (``tfx.proto.TrainArgs``).
        eval_args: ``{"num_steps": M, "splits": ["eval"]}`` (``tfx.proto.EvalArgs``).
        tune_args: ``{"num_parallel_trials": N}`` (``tfx.proto.TuneArgs``): N trials at once,
            each in a worker process of this machine; 1 (the default) runs the search in
            this process, as TFX does.
        custom_config: a dict given to ``tuner_fn`` as ``fn_args.custom_config``.

    Outputs ``best_hyperparameters`` (HyperParameters) and ``tuner_results`` (TunerResults),
    TFX's keys, types and files; ``tuner_results`` also holds ``trials.json``, every trial
    with its status, duration and worker, which its view shows.
    """

    INPUTS = {"examples": InputSpec(Examples),
              "schema": InputSpec(Schema, optional=True),
              "transform_graph": InputSpec(TransformGraph, optional=True),
              "base_model": InputSpec(Model, optional=True)}
    OUTPUTS = {"best_hyperparameters": HyperParameters, "tuner_results": TunerResults}
    PARAMETERS = {"module_file": ExecutionParameter(str, fingerprint="file"),
                  "tuner_fn": ExecutionParameter(object),
                  "train_args": ExecutionParameter(dict), "eval_args": ExecutionParameter(dict),
                  "tune_args": ExecutionParameter(dict),
                  "custom_config": ExecutionParameter(dict)}

    def __init__(self, examples=None, schema=None, transform_graph=None, base_model=None,
                 module_file: str | None = None, tuner_fn: Callable | str | None = None,
                 train_args: dict | None = None, eval_args: dict | None = None,
                 tune_args: dict | None = None, custom_config: dict | None = None):
        # bad arguments stop here, as in TFX, not after the upstream components ran
        if (module_file is None) == (tuner_fn is None):
            raise ToolkitError("Tuner: give exactly one of module_file (a Python file defining "
                               "tuner_fn) and tuner_fn (the function or its dotted path)")
        tune_args = args_dict(tune_args)
        parallel_trials(tune_args)
        super().__init__(examples=examples, schema=schema, transform_graph=transform_graph,
                         base_model=base_model,
                         module_file=None if module_file is None else os.fspath(module_file),
                         tuner_fn=tuner_fn, train_args=args_dict(train_args),
                         eval_args=args_dict(eval_args), tune_args=tune_args,
                         custom_config=custom_config)

    def Do(self, input_dict, output_dict, exec_properties, ctx: ExecutorContext) -> None:
        workers = parallel_trials(exec_properties.get("tune_args"))
        import tensorflow  # noqa: F401  (before KerasTuner and the module file)

        quiet_tensorflow()
        keras_tuner = import_keras_tuner(self.id)  # before the module file that imports it
        fn, label = resolve_function(module_file=exec_properties.get("module_file"),
                                     function=exec_properties.get("tuner_fn"),
                                     name="tuner_fn", owner=self.id)
        work_dir = os.path.join(ctx.tmp_dir, "tuning")
        fn_args = common_fn_args(input_dict, exec_properties,
                                 working_dir=os.path.join(work_dir, "chief"))
        where = ("in this process" if workers == 1
                 else f"{workers} trials at once in worker processes")
        ctx.log(f"{label}: train_steps={fn_args.train_steps}, eval_steps={fn_args.eval_steps}, "
                f"{where}; KerasTuner {keras_tuner.__version__} on {keras_of_tuner()}")
        started = time.perf_counter()
        with tfx_names():
            result = call_tuner_fn(fn, label, fn_args)
            clock = TrialClock(result.tuner.oracle, ctx.log, queued=workers > 1)
            if workers == 1:
                result.tuner.oracle = clock
                search_here(result, clock, fn, label)
                worker_records: list[dict[str, Any]] = []
            else:
                request = worker_request(fn, exec_properties.get("module_file"), fn_args,
                                         work_dir)
                search = ParallelSearch(clock, workers, request, work_dir, label, ctx.log)
                worker_records = search.run()
        summary = _write_outputs(clock, output_dict, workers, worker_records, label)
        ctx.log(f"{summary} in {time.perf_counter() - started:.1f} s")


# -- parameters ----------------------------------------------------------------------------------
def parallel_trials(tune_args: dict | None) -> int:
    """``tune_args``' ``num_parallel_trials`` (1 when unset), checked."""
    value = (tune_args or {}).get("num_parallel_trials", 1)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ToolkitError(f"Tuner: tune_args num_parallel_trials={value!r}: give an integer "
                           f">= 1 (1 runs the trials one after another in this process)")
    unknown = sorted(set(tune_args or {}) - {"num_parallel_trials"})
    if unknown:
        raise ToolkitError(f"Tuner: tune_args has no field {unknown[0]!r}; its one field is "
                           f"num_parallel_trials")
    return value



# -- outputs -------------------------------------------------------------------------------------
def _plain(value: Any) -> Any:
    """JSON-able Python values (KerasTuner may hand out numpy scalars)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _write_outputs(clock: TrialClock, output_dict: dict[str, list[Any]], workers: int,
                   worker_records: list[dict[str, Any]], label: str) -> str:
    """TFX's two files, the toolkit's ``trials.json``, and a one-line summary."""
    oracle = clock.oracle
    trials = sorted(oracle.trials.values(), key=lambda t: _order(t.trial_id))
    completed = [t for t in trials if str(t.status) == "COMPLETED"]
    if not completed:
        last = clock.last_error()
        raise UserCodeError(f"{label}: no trial completed ({len(trials)} ran"
                            + (f"; the last failed with: {last}" if last else "") + ")")
    best = oracle.get_best_trials(1)[0]
    best_config = _plain(best.hyperparameters.get_config())
    hyperparameters = output_dict["best_hyperparameters"][0]
    storage.write_text(storage.join(hyperparameters.uri, BEST_HYPERPARAMETERS_FILE),
                       json.dumps(best_config))
    hyperparameters.properties["best_trial_id"] = str(best.trial_id)
    # TFX's records: the completed trials that have values, best first
    records = [{"trial_id": t.trial_id, "score": _plain(t.score),
                **_plain(t.hyperparameters.values)}
               for t in oracle.get_best_trials(len(oracle.trials))
               if str(t.status) == "COMPLETED" and t.hyperparameters.values]
    results = output_dict["tuner_results"][0]
    storage.write_text(storage.join(results.uri, TUNER_RESULTS_FILE), json.dumps(records))
    objective = oracle.objective
    detail = {
        "objective": {"name": getattr(objective, "name", str(objective)),
                      "direction": getattr(objective, "direction", None)},
        "max_trials": oracle.max_trials,
        "num_parallel_trials": workers,
        "best_trial_id": str(best.trial_id),
        "trials": [{"trial_id": str(t.trial_id), "status": str(t.status),
                    "score": _plain(t.score), "values": _plain(t.hyperparameters.values),
                    "best_step": _plain(getattr(t, "best_step", None)),
                    "duration_s": clock.duration(t.trial_id), "worker": clock.worker(t.trial_id),
                    "error": error_of(t.message) if t.message and str(t.status) != "COMPLETED"
                    else None}
                   for t in trials],
        "workers": worker_records,
    }
    storage.write_text(storage.join(results.uri, TUNER_TRIALS_FILE), json.dumps(detail, indent=1))
    results.properties.update({"num_trials": len(trials), "completed_trials": len(completed),
                               "best_trial_id": str(best.trial_id),
                               "objective": detail["objective"]["name"]})
    if best.score is not None and math.isfinite(float(best.score)):
        results.properties["best_score"] = float(best.score)
    return (f"{len(completed)} of {len(trials)} trials completed; best trial {best.trial_id}: "
            f"{detail['objective']['name']} {format_score(best.score)} with "
            + ", ".join(f"{k}={v}" for k, v in best_config.get("values", {}).items()))


def _order(trial_id: Any) -> tuple[int, str]:
    text = str(trial_id)
    return (int(text), text) if text.isdigit() else (1 << 62, text)


install_keras_binding()
