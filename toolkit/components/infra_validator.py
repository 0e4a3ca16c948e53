"""InfraValidator: does the SavedModel load and answer in a fresh process?

The model is loaded by a separate Python process, as a server would load it: a
model that only works in the training kernel (a custom op loaded there, a
function defined in the notebook) fails here rather than in production. Real
examples go through the serving signature one request at a time, then as one
batch; the outputs must be finite and have one row per example. As a server's
warm-up request would, a first request (timed separately as
``first_request_ms``) absorbs one-off costs before latencies are measured.
"""
from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import time
from typing import Any

import toolkit
from toolkit import storage
from toolkit.artifacts import Examples, InfraBlessing, Model
from toolkit.base_component import BaseComponent, ExecutorContext, InputSpec, ExecutionParameter
from toolkit.components._io import read_split
from toolkit.components._model_io import (feature_tensor, has_saved_model, serialize_examples,
                                          serialized_input, serving_model_path)
from toolkit._text import error_line
from toolkit.errors import ToolkitError

RESULT_FILE = "infra_validation.json"
LOG_FILE = "serving.log"


class InfraValidator(BaseComponent):
    """Loads the model in a separate process and sends it real requests.

    Args:
        model: the Model to validate.
        examples: Examples to build requests from (optional: without them only
            loading is checked, TFX's LOAD_ONLY mode).
        serving_spec: recorded; the model is always served by a local TensorFlow
            process (TF Serving binaries and Kubernetes are not used).
        request_spec: ``{"tensorflow_serving": {"signature_names": ["serving_default"]},
            "split_name": "eval", "num_examples": 100}`` (these are the defaults).
        validation_spec: ``{"max_loading_time_seconds": 300}``: slower is a failure.

    Outputs ``blessing`` (InfraBlessing): ``blessed`` 1 or 0, and as properties and
    in ``infra_validation.json``: ``load_time_s``, ``latency_p50_ms``,
    ``latency_p99_ms``, ``batch_latency_ms``, ``num_requests`` and, when not
    blessed, ``reason``. An ``INFRA_BLESSED`` or ``INFRA_NOT_BLESSED`` marker file
    is written as TFX does.
    """

    INPUTS = {"model": InputSpec(Model), "examples": InputSpec(Examples, optional=True)}
    OUTPUTS = {"blessing": InfraBlessing}
    PARAMETERS = {"serving_spec": ExecutionParameter(dict), "request_spec": ExecutionParameter(dict),
                  "validation_spec": ExecutionParameter(dict)}

    def __init__(self, model, examples=None, serving_spec: dict | None = None,
                 request_spec: dict | None = None, validation_spec: dict | None = None):
        super().__init__(model=model, examples=examples, serving_spec=serving_spec,
                         request_spec=request_spec, validation_spec=validation_spec)

    def Do(self, input_dict, output_dict, exec_properties, ctx: ExecutorContext) -> None:
        model: Model = input_dict["model"][0]
        examples = (input_dict.get("examples") or [None])[0]
        blessing: InfraBlessing = output_dict["blessing"][0]
        request_spec = exec_properties.get("request_spec") or {}
        validation_spec = exec_properties.get("validation_spec") or {}
        signatures = list((request_spec.get("tensorflow_serving") or {}).get("signature_names")
                          or ["serving_default"])
        timeout = float(validation_spec.get("max_loading_time_seconds", 300))
        request = {"model_dir": None, "signatures": signatures, "examples": None, "columns": None}
        try:
            # the serving process loads it with TensorFlow: a local path
            request["model_dir"] = storage.local_path(serving_model_path(model))
        except ToolkitError as exc:
            self._record(blessing, model, {"error": str(exc)}, ctx)
            return
        if examples is not None:
            split = request_spec.get("split_name") or (
                "eval" if "eval" in examples.split_names else examples.split_names[0])
            table = read_split(examples, split)
            count = int(request_spec.get("num_examples") or 100)
            table = table.slice(0, min(count, table.num_rows))
            request["examples"] = serialize_examples(table)
            request["columns"] = {name: table.column(name).to_pylist()
                                  for name in table.column_names}
            ctx.log(f"sending {table.num_rows} examples from split {split} to "
                    f"{', '.join(signatures)} in a separate process")
        else:
            ctx.log("no examples given: checking that the model loads (LOAD_ONLY)")
        result = _serve(request, ctx, blessing.uri, timeout)
        self._record(blessing, model, result, ctx)

    def _record(self, blessing: InfraBlessing, model: Model, result: dict[str, Any],
                ctx: ExecutorContext) -> None:
        reason = result.get("error")
        figures = _figures(result)
        blessed = reason is None
        blessing.properties.update(blessed=int(blessed), current_model_id=model.id, **figures)
        if reason:
            blessing.properties["reason"] = reason
        storage.write_text(storage.join(blessing.uri, RESULT_FILE), json.dumps(
            {"blessed": blessed, "reason": reason, **figures,
             "outputs": result.get("outputs", {}),
             "latencies_ms": result.get("latencies_ms", [])}, indent=2))
        storage.write_bytes(storage.join(
            blessing.uri, "INFRA_BLESSED" if blessed else "INFRA_NOT_BLESSED"), b"")
        if blessed:
            text = ", ".join(f"{k} {v}" for k, v in figures.items())
            ctx.log(f"blessed: {text}")
        else:
            ctx.log(f"NOT blessed: {reason}")


def _figures(result: dict[str, Any]) -> dict[str, Any]:
    import numpy as np

    out: dict[str, Any] = {}
    for key in ("import_time_s", "load_time_s", "first_request_ms"):
        if result.get(key) is not None:
            out[key] = round(float(result[key]), 3)
    latencies = result.get("latencies_ms") or []
    if latencies:
        out["latency_p50_ms"] = round(float(np.percentile(latencies, 50)), 3)
        out["latency_p99_ms"] = round(float(np.percentile(latencies, 99)), 3)
        out["num_requests"] = len(latencies)
    if result.get("batch_latency_ms") is not None:
        out["batch_latency_ms"] = round(float(result["batch_latency_ms"]), 3)
        out["batch_size"] = int(result.get("batch_size") or 0)
    return out


def _serve(request: dict[str, Any], ctx: ExecutorContext, out_dir: str,
           timeout: float) -> dict[str, Any]:
    """Run the serving check in a child process; its log goes beside the blessing."""
    if not has_saved_model(request["model_dir"]):
        return {"error": f"no SavedModel in {request['model_dir']}"}
    request_path = storage.local_path(storage.join(ctx.tmp_dir, "infra_request.pkl"))
    result_path = storage.local_path(storage.join(ctx.tmp_dir, "infra_result.json"))
    storage.write_bytes(request_path, pickle.dumps(request))
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(toolkit.__file__)))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH")) if p)
    code = f"from {__name__} import _child; _child({request_path!r}, {result_path!r})"
    log_path = storage.join(out_dir, LOG_FILE)
    started = time.perf_counter()
    with storage.open(log_path, "wb") as log:
        child = subprocess.Popen([sys.executable, "-c", code],
                                 stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            exit_code = child.wait(timeout=timeout + 120)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
            return {"error": f"the serving process did not finish within {timeout + 120:.0f} s"}
    elapsed = time.perf_counter() - started
    if not storage.is_file(result_path):
        return {"error": f"the serving process exited with code {exit_code} after {elapsed:.1f} s "
                         f"without a result: {_last_line(log_path)}"}
    result = json.loads(storage.read_text(result_path))
    if result.get("error") is None and result.get("load_time_s", 0) > timeout:
        result["error"] = (f"loading took {result['load_time_s']:.1f} s, more than "
                           f"max_loading_time_seconds={timeout:g}")
    return result


def _last_line(path: str) -> str:
    try:
        lines = [line.strip() for line in storage.read_text(path, errors="replace").split("\n")
                 if line.strip()]
    except OSError:
        return "(no log)"
    errors = [line for line in lines if "Error" in line or "error" in line]
    return (errors or lines or ["(empty log)"])[-1][:300]


# -- the serving process -------------------------------------------------------------------
def _child(request_path: str, result_path: str) -> None:
    """Load the model, answer the requests, write figures (runs in the child process)."""
    request = pickle.loads(storage.read_bytes(request_path))
    result: dict[str, Any] = {"error": None}
    try:
        started = time.perf_counter()
        import tensorflow as tf

        result["import_time_s"] = time.perf_counter() - started
        started = time.perf_counter()
        try:
            loaded = tf.saved_model.load(request["model_dir"])
        except Exception as exc:
            raise _Failure(f"the SavedModel did not load: {type(exc).__name__}: "
                           f"{error_line(exc, 300)}") from None
        result["load_time_s"] = time.perf_counter() - started
        missing = [s for s in request["signatures"] if s not in loaded.signatures]
        if missing:
            raise _Failure(f"the SavedModel has no signature {', '.join(missing)} "
                           f"(it has {', '.join(loaded.signatures) or 'none'})")
        if request["examples"] is not None:
            _answer(tf, loaded, request, result)
    except _Failure as exc:
        result["error"] = str(exc)
    except Exception as exc:
        result["error"] = f"{type(exc).__name__}: {error_line(exc, 300)}"
    storage.write_text(result_path, json.dumps(result))


class _Failure(Exception):
    pass


def _answer(tf, loaded, request: dict[str, Any], result: dict[str, Any]) -> None:
    latencies: list[float] = []
    outputs: dict[str, Any] = {}
    count = len(request["examples"])
    for name in request["signatures"]:
        signature = loaded.signatures[name]
        make = _request_builder(tf, signature, request)
        warmup, result["first_request_ms"] = _call(signature, make(0, 1), name, "example 0")
        _check(warmup, 1, name, "example 0")
        for index in range(count):
            answer, elapsed = _call(signature, make(index, index + 1), name, f"example {index}")
            latencies.append(elapsed)
            _check(answer, 1, name, f"example {index}")
        answer, result["batch_latency_ms"] = _call(signature, make(0, count), name,
                                                   f"a batch of {count}")
        result["batch_size"] = count
        _check(answer, count, name, f"a batch of {count}")
        outputs[name] = {k: {"dtype": v.dtype.name, "shape": [int(d) for d in v.shape]}
                         for k, v in answer.items()}
    result["latencies_ms"] = latencies
    result["outputs"] = outputs


def _call(signature, inputs: dict[str, Any], name: str, what: str) -> tuple[Any, float]:
    """The signature's answer and how long it took, in milliseconds."""
    started = time.perf_counter()
    try:
        answer = signature(**inputs)
    except Exception as exc:
        raise _Failure(f"{name} failed on {what}: {type(exc).__name__}: {error_line(exc, 300)}") from None
    return answer, (time.perf_counter() - started) * 1000


def _request_builder(tf, signature, request: dict[str, Any]):
    """Inputs for rows [start, stop): serialized examples, or one tensor per feature."""
    specs = signature.structured_input_signature[1]
    key = serialized_input(tf, specs, request["columns"])
    if key is not None:
        examples = request["examples"]
        return lambda start, stop: {key: tf.constant(examples[start:stop])}
    columns = request["columns"]
    absent = [k for k in specs if k not in columns]
    if absent:
        raise _Failure(f"the signature takes {', '.join(absent)}, which the examples lack")

    def make(start: int, stop: int):
        return {key: feature_tensor(tf, spec, columns[key][start:stop])
                for key, spec in specs.items()}

    return make


def _check(answer: dict[str, Any], rows: int, name: str, what: str) -> None:
    import numpy as np

    if not answer:
        raise _Failure(f"{name} returned no outputs for {what}")
    for key, tensor in answer.items():
        value = tensor.numpy()
        if value.ndim == 0 or value.shape[0] != rows:
            raise _Failure(f"{name} output {key!r} has shape {list(value.shape)} for {what}; "
                           f"expected {rows} row(s)")
        if value.dtype.kind in "fc" and not np.all(np.isfinite(value)):
            raise _Failure(f"{name} output {key!r} is not finite (NaN or Inf) for {what}")


