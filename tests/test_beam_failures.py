"""Runner failures read alike in every component that runs on Beam: one line naming the
runner and the flag at fault, a FAILED execution in ML Metadata, nothing registered and
no half-written folder left.

- an unknown ``--runner`` is refused before any work;
- a ``--job_endpoint`` (or an EXTERNAL worker pool) that nobody listens on fails at once,
  where Beam itself would wait for minutes;
- a worker process that dies mid-pipeline (user code calling ``os._exit`` in a worker of
  the multi-processing DirectRunner) ends the run with one line instead of hanging.

A module file that a worker cannot import is covered in ``test_beam_user_code.py``.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
import types

import pandas as pd
import pytest

from datapaths import TAXI_CSV
from test_beam_user_code import MULTI_PROCESSING, _env

PIPELINE = "beam_failures"
ROWS = 1000

#: a Transform module file that ends the process when it runs anywhere but in the
#: notebook's process: tf.Transform calls preprocessing_fn again in a Beam worker when it
#: writes the transform graph, so on a runner with worker processes that worker dies
CRASHING_MODULE = '''
import os

import tensorflow as tf
import tensorflow_transform as tft

DRIVER_PID = os.getpid()


def preprocessing_fn(inputs):
    if os.getpid() != DRIVER_PID:
        os._exit(1)
    fare = inputs["fare"]
    if isinstance(fare, tf.sparse.SparseTensor):
        fare = tf.sparse.to_dense(fare)
    return {"fare_xf": tft.scale_to_z_score(tf.cast(tf.reshape(fare, [-1]), tf.float32))}
'''

#: runs in a child process (a crashed pipeline's threads must not outlive the test run):
#: the data components (cache hits on the parent's runs), then Transform with the crashing
#: module on the multi-processing runner; the outcome goes to a JSON file
_CHILD = textwrap.dedent("""
    import json, os, sys, time
    root, data, module, args, out = sys.argv[1:]
    from toolkit import InteractiveContext
    from toolkit.components import CsvExampleGen, SchemaGen, StatisticsGen, Transform
    from toolkit.errors import ComponentError

    context = InteractiveContext(pipeline_name=%r, pipeline_root=root)
    example_gen = CsvExampleGen(input_base=data)
    statistics = StatisticsGen(examples=example_gen.outputs["examples"])
    schema = SchemaGen(statistics=statistics.outputs["statistics"])
    upstream_cached = all(context.run(c).cached for c in (example_gen, statistics, schema))
    transform = Transform(examples=example_gen.outputs["examples"],
                          schema=schema.outputs["schema"], module_file=module
                          ).with_id("TransformCrash")
    started = time.perf_counter()
    try:
        context.run(transform, beam_pipeline_args=json.loads(args))
        record = {"ok": True}
    except ComponentError as exc:
        record = {"ok": False, "message": str(exc), "chained": exc.__cause__ is not None}
    record["seconds"] = time.perf_counter() - started
    record["upstream_cached"] = upstream_cached
    with open(out, "w") as handle:
        json.dump(record, handle)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
""" % PIPELINE)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """CsvExampleGen, StatisticsGen and SchemaGen in process on 1,000 taxi rows."""
    from toolkit import InteractiveContext
    from toolkit.components import CsvExampleGen, SchemaGen, StatisticsGen

    data = tmp_path_factory.mktemp("beam_failures_data")
    pd.read_csv(TAXI_CSV, nrows=ROWS).to_csv(data / "data.csv", index=False)
    root = str(tmp_path_factory.mktemp("beam_failures_root"))
    context = InteractiveContext(pipeline_name=PIPELINE, pipeline_root=root)
    example_gen = CsvExampleGen(input_base=str(data))
    statistics = StatisticsGen(examples=example_gen.outputs["examples"])
    schema = SchemaGen(statistics=statistics.outputs["statistics"])
    for component in (example_gen, statistics, schema):
        context.run(component)
    return types.SimpleNamespace(context=context, root=root, data=str(data),
                                 example_gen=example_gen, schema=schema,
                                 work=tmp_path_factory.mktemp("beam_failures_work"))


def _statistics(pipeline, component_id: str):
    from toolkit.components import StatisticsGen

    return StatisticsGen(examples=pipeline.example_gen.outputs["examples"]).with_id(component_id)


def _transform(pipeline, component_id: str, module_file: str | None = None):
    from toolkit.components import Transform

    module = module_file or os.path.join(os.path.dirname(__file__), "fixtures", "beam_module",
                                         "beam_taxi_transform.py")
    return Transform(examples=pipeline.example_gen.outputs["examples"],
                     schema=pipeline.schema.outputs["schema"], module_file=module
                     ).with_id(component_id)


def _assert_failed_cleanly(context, root: str, component_id: str) -> None:
    """FAILED in ML Metadata, no artifact registered, no staged or output folder left."""
    assert context.executions(component_id)[-1]["state"] == "FAILED"
    assert not [a for a in context.store.artifacts() if a.producer == component_id]
    folder = os.path.join(root, component_id)
    leftovers = [os.path.join(here, d) for here, dirs, _ in os.walk(folder) for d in dirs
                 if d.startswith(".staging") or d.isdigit()]
    assert leftovers == []


def _fails(context, root: str, component, **run_args) -> str:
    from toolkit.errors import ComponentError

    with pytest.raises(ComponentError) as info:
        context.run(component, **run_args)
    message = str(info.value)
    assert "\n" not in message
    _assert_failed_cleanly(context, root, component.id)
    return message


def _closed_port() -> int:
    """A local port nobody listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_unknown_runner_is_refused_before_any_work(pipeline):
    args = ["--runner=NoSuchRunner"]
    message = _fails(pipeline.context, pipeline.root, _statistics(pipeline, "StatsNoRunner"),
                     beam_pipeline_args=args)
    assert message.startswith("StatsNoRunner: TFDV statistics of train, eval: unknown Beam runner "
                              "'NoSuchRunner' (--runner=NoSuchRunner)")
    assert "DirectRunner" in message and "PortableRunner" in message
    message = _fails(pipeline.context, pipeline.root, _transform(pipeline, "TransformNoRunner"),
                     beam_pipeline_args=args)
    assert message.startswith("TransformNoRunner: tf.Transform: unknown Beam runner "
                              "'NoSuchRunner' (--runner=NoSuchRunner)")
    # the context-wide arguments are checked the same way
    from toolkit import InteractiveContext

    context = InteractiveContext(pipeline_name=PIPELINE, pipeline_root=pipeline.root,
                                 beam_pipeline_args=["--runner", "AlsoNoSuchRunner"])
    message = _fails(context, pipeline.root, _statistics(pipeline, "StatsNoRunnerContext"))
    assert "unknown Beam runner 'AlsoNoSuchRunner' (--runner=AlsoNoSuchRunner)" in message


def test_evaluator_checks_the_runner_before_calling_the_model(pipeline):
    """The model here is an empty folder: any work before the check would fail otherwise."""
    from toolkit.artifacts import Model
    from toolkit.components import Evaluator
    from toolkit.custom import OutputArtifact, component

    @component
    def NoModel(model: OutputArtifact[Model]):
        with open(os.path.join(model.uri, "README"), "w") as handle:
            handle.write("not a SavedModel")

    empty = NoModel()
    pipeline.context.run(empty)
    config = {"model_specs": [{"label_key": "tips"}],
              "metrics_specs": [{"metrics": [{"class_name": "ExampleCount"}]}]}
    for engine in ("toolkit", "tfma"):
        evaluator = Evaluator(examples=pipeline.example_gen.outputs["examples"],
                              model=empty.outputs["model"], eval_config=config, engine=engine
                              ).with_id(f"EvaluatorNoRunner_{engine}")
        message = _fails(pipeline.context, pipeline.root, evaluator,
                         beam_pipeline_args=["--runner=NoSuchRunner"])
        assert message.startswith(f"EvaluatorNoRunner_{engine}: the evaluation on Beam: unknown "
                                  "Beam runner 'NoSuchRunner' (--runner=NoSuchRunner)")


def test_unreachable_job_endpoint_fails_at_once(pipeline):
    port = _closed_port()
    args = ["--runner=PortableRunner", f"--job_endpoint=localhost:{port}",
            "--environment_type=LOOPBACK"]
    started = time.perf_counter()
    message = _fails(pipeline.context, pipeline.root, _transform(pipeline, "TransformNoJobServer"),
                     beam_pipeline_args=args)
    # a guard against hanging, not a speed target: Beam alone waits here without end
    assert time.perf_counter() - started < 60
    assert message.startswith(f"TransformNoJobServer: tf.Transform: the job service at "
                              f"--job_endpoint=localhost:{port} cannot be reached")
    assert f"PortableRunner ({' '.join(args)})" in message
    message = _fails(pipeline.context, pipeline.root, _statistics(pipeline, "StatsNoJobServer"),
                     beam_pipeline_args=args)
    assert f"--job_endpoint=localhost:{port} cannot be reached" in message
    # an EXTERNAL worker pool that is not there names its own flag
    pool = ["--runner=PortableRunner", "--job_endpoint=embed", "--environment_type=EXTERNAL",
            f"--environment_config=localhost:{port}"]
    message = _fails(pipeline.context, pipeline.root, _statistics(pipeline, "StatsNoWorkerPool"),
                     beam_pipeline_args=pool)
    assert (f"the EXTERNAL worker pool at --environment_config=localhost:{port} cannot be "
            "reached") in message


def test_the_evaluation_engine_on_beam_reports_runner_failures_alike():
    from toolkit.errors import ToolkitError
    from toolkit.evaluation.beam_engine import evaluate_on_beam

    frame = pd.DataFrame({"label": [0.0, 1.0, 1.0, 0.0], "prediction": [0.1, 0.8, 0.6, 0.3]})
    config = {"model_specs": [{"label_key": "label"}],
              "metrics_specs": [{"metrics": [{"class_name": "ExampleCount"}]}]}
    with pytest.raises(ToolkitError) as info:
        evaluate_on_beam(frame, config, ["--runner=NoSuchRunner"])
    assert str(info.value).startswith("the evaluation on Beam: unknown Beam runner "
                                      "'NoSuchRunner' (--runner=NoSuchRunner)")
    port = _closed_port()
    with pytest.raises(ToolkitError) as info:
        evaluate_on_beam(frame, config, ["--runner=PortableRunner",
                                         f"--job_endpoint=127.0.0.1:{port}"])
    assert f"--job_endpoint=127.0.0.1:{port} cannot be reached" in str(info.value)
    assert "\n" not in str(info.value)


def test_a_worker_that_crashes_mid_pipeline_ends_the_run(pipeline):
    module = pipeline.work / "crashing_transform.py"
    module.write_text(CRASHING_MODULE)
    out = pipeline.work / "crash.json"
    log = pipeline.work / "crash.log"
    with open(log, "w") as handle:
        process = subprocess.run(
            [sys.executable, "-c", _CHILD, pipeline.root, pipeline.data, str(module),
             json.dumps(MULTI_PROCESSING), str(out)],
            cwd=str(pipeline.work), env=_env(), stdout=handle, stderr=subprocess.STDOUT,
            timeout=600, check=False)
    tail = log.read_text()[-3000:]
    assert out.exists(), f"the child wrote no result (exit {process.returncode}):\n{tail}"
    record = json.loads(out.read_text())
    assert record["upstream_cached"], tail
    assert not record["ok"], tail
    message = record["message"]
    assert "\n" not in message
    assert message == (
        "TransformCrash: crashing_transform.py: preprocessing_fn failed on Beam, DirectRunner "
        "(--direct_running_mode=multi_processing --direct_num_workers=2): a Beam worker "
        "process exited with code 1 mid-pipeline (it crashed, was killed or ran out of "
        "memory); nothing of this run is kept")
    _assert_failed_cleanly(pipeline.context, pipeline.root, "TransformCrash")
