"""User code travels to Beam's workers: Transform with a module file that imports a
sibling module, on runners whose workers are separate processes, gives the same
transformed examples as the in-process run; a module file that cannot be imported in a
worker fails with one line.

The runner cases start Transform in a child Python process through the public API
(the DoFns then run in that child's Beam workers) and compare its outputs here. The
child leaves with ``os._exit`` once its result is written: TensorFlow, gRPC and Beam's
worker threads can abort the interpreter at exit after a pipeline on these runners,
which must not fail the test run.
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
import zipfile

import numpy as np
import pandas as pd
import pytest

from datapaths import REPO, TAXI_CSV

FIXTURES = os.path.join(REPO, "tests", "fixtures", "beam_module")
MODULE = os.path.join(FIXTURES, "beam_taxi_transform.py")
DRIVER_ONLY = os.path.join(FIXTURES, "driver_only_transform.py")
BIN = os.path.dirname(sys.executable)
MULTI_PROCESSING = ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]
PIPELINE = "beam_user_code"
ROWS = 3000

#: runs in a child process: the data components (cache hits on the parent's runs) and
#: one Transform with the given Beam arguments; the outcome goes to a JSON file
_CHILD = textwrap.dedent("""
    import json, os, sys, types
    root, data, component_id, module, args, out, driver_only = sys.argv[1:]
    if driver_only == "1":
        helper = types.ModuleType("toolkit_test_driver_only_helper")
        helper.SCALE = 2.0
        sys.modules[helper.__name__] = helper
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
                          ).with_id(component_id)
    try:
        result = context.run(transform, beam_pipeline_args=json.loads(args))
        record = {"ok": True, "cached": result.cached,
                  "uri": result.outputs["transformed_examples"][0].uri}
    except ComponentError as exc:
        record = {"ok": False, "message": str(exc)}
    record["upstream_cached"] = upstream_cached
    with open(out, "w") as handle:
        json.dump(record, handle)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
""" % PIPELINE)


def _env() -> dict[str, str]:
    """The venv's bin first on PATH: Beam starts worker processes with the ``python`` there."""
    env = dict(os.environ)
    env["PATH"] = BIN + os.pathsep + env.get("PATH", "")
    return env


@pytest.fixture(scope="module")
def taxi(tmp_path_factory):
    """The data components and the in-process Transform (the reference) on 3,000 taxi rows."""
    from toolkit import InteractiveContext
    from toolkit.components import CsvExampleGen, SchemaGen, StatisticsGen, Transform

    data = tmp_path_factory.mktemp("beam_taxi_data")
    pd.read_csv(TAXI_CSV, nrows=ROWS).to_csv(data / "data.csv", index=False)
    root = str(tmp_path_factory.mktemp("beam_taxi_root"))
    context = InteractiveContext(pipeline_name=PIPELINE, pipeline_root=root)
    example_gen = CsvExampleGen(input_base=str(data))
    statistics = StatisticsGen(examples=example_gen.outputs["examples"])
    schema = SchemaGen(statistics=statistics.outputs["statistics"])
    for component in (example_gen, statistics, schema):
        context.run(component)
    reference = context.run(Transform(examples=example_gen.outputs["examples"],
                                      schema=schema.outputs["schema"], module_file=MODULE))
    return types.SimpleNamespace(
        context=context, root=root, data=str(data), example_gen=example_gen, schema=schema,
        reference=reference.outputs["transformed_examples"][0].uri,
        work=tmp_path_factory.mktemp("beam_children"))


def _run_child(taxi, component_id: str, beam_args: list[str], module: str = MODULE,
               driver_only: bool = False, timeout: int = 900) -> dict:
    out = taxi.work / f"{component_id}.json"
    log = taxi.work / f"{component_id}.log"
    started = time.perf_counter()
    with open(log, "w") as handle:
        process = subprocess.run(
            [sys.executable, "-c", _CHILD, taxi.root, taxi.data, component_id, module,
             json.dumps(beam_args), str(out), "1" if driver_only else "0"],
            cwd=str(taxi.work), env=_env(), stdout=handle, stderr=subprocess.STDOUT,
            timeout=timeout, check=False)
    tail = log.read_text()[-3000:]
    assert out.exists(), f"the child wrote no result (exit {process.returncode}):\n{tail}"
    record = json.loads(out.read_text())
    record["seconds"] = time.perf_counter() - started
    assert record["upstream_cached"], tail
    return record


def _rows(uri: str, split: str) -> pd.DataFrame:
    frame = pd.read_parquet(os.path.join(uri, f"Split-{split}"))
    floats = [c for c in frame.columns if frame[c].dtype.kind == "f"]
    keys = frame.assign(**{c: frame[c].round(4) for c in floats})
    order = keys.sort_values(sorted(frame.columns), kind="mergesort").index
    return frame.loc[order].reset_index(drop=True)[sorted(frame.columns)]


def _assert_same_examples(uri: str, reference: str):
    """Equal multisets of rows, per split: integers (labels, vocabulary ids, the key)
    exactly, z-scores within float32 rounding of a differently ordered combine."""
    for split in ("train", "eval"):
        got, want = _rows(uri, split), _rows(reference, split)
        assert list(got.columns) == list(want.columns)
        assert len(got) == len(want) > 0
        for column in want.columns:
            if want[column].dtype.kind == "f":
                np.testing.assert_allclose(got[column], want[column], rtol=1e-5, atol=1e-5,
                                           err_msg=f"{split}/{column}")
            else:
                assert got[column].tolist() == want[column].tolist(), f"{split}/{column}"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def worker_pool(tmp_path):
    """Beam's SDK worker pool as separate processes (what EXTERNAL environments talk to)."""
    port = _free_port()
    log = open(tmp_path / "worker_pool.log", "w")
    pool = subprocess.Popen(
        [os.path.join(BIN, "python"), "-m", "apache_beam.runners.worker.worker_pool_main",
         f"--service_port={port}"],
        cwd=str(tmp_path), env=_env(), stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True)
    deadline = time.monotonic() + 120
    while True:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                break
        assert pool.poll() is None, (tmp_path / "worker_pool.log").read_text()
        assert time.monotonic() < deadline, "the worker pool did not start"
        time.sleep(0.5)
    try:
        yield port
    finally:
        os.killpg(pool.pid, 15)
        try:
            pool.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(pool.pid, 9)
            pool.wait()
        log.close()


# -- the runner matrix (slow: every worker process imports TensorFlow) ---------------------
@pytest.mark.slow
def test_multi_processing_direct_runner(taxi):
    from toolkit.components import Transform

    record = _run_child(taxi, "TransformMultiProcessing", MULTI_PROCESSING)
    assert record["ok"], record
    _assert_same_examples(record["uri"], taxi.reference)
    # the same module file with the same arguments again: a cache hit (Beam arguments and
    # the shipped package are not part of the key; the module file's content is)
    again = Transform(examples=taxi.example_gen.outputs["examples"],
                      schema=taxi.schema.outputs["schema"], module_file=MODULE
                      ).with_id("TransformMultiProcessing")
    assert taxi.context.run(again, beam_pipeline_args=MULTI_PROCESSING).cached


@pytest.mark.slow
def test_portable_runner_loopback(taxi):
    record = _run_child(taxi, "TransformLoopback", [
        "--runner=PortableRunner", "--job_endpoint=embed", "--environment_type=LOOPBACK"])
    assert record["ok"], record
    _assert_same_examples(record["uri"], taxi.reference)


@pytest.mark.slow
def test_portable_runner_external_worker_pool(taxi, worker_pool):
    record = _run_child(taxi, "TransformExternal", [
        "--runner=PortableRunner", "--job_endpoint=embed", "--environment_type=EXTERNAL",
        f"--environment_config=localhost:{worker_pool}"])
    assert record["ok"], record
    _assert_same_examples(record["uri"], taxi.reference)


@pytest.mark.slow
def test_module_that_cannot_be_imported_in_a_worker(taxi):
    record = _run_child(taxi, "TransformDriverOnly", MULTI_PROCESSING, module=DRIVER_ONLY,
                        driver_only=True)
    assert not record["ok"]
    message = record["message"]
    assert "\n" not in message
    assert message.startswith("TransformDriverOnly: driver_only_transform.py: preprocessing_fn "
                              "cannot be imported in a Beam worker on DirectRunner "
                              "(--direct_running_mode=multi_processing --direct_num_workers=2)")
    assert "module 'toolkit_test_driver_only_helper' is not importable there" in message
    execution = taxi.context.executions("TransformDriverOnly")[-1]
    assert execution["state"] == "FAILED"
    assert not [a for a in taxi.context.store.artifacts() if a.producer == "TransformDriverOnly"]
    folder = os.path.join(taxi.root, "TransformDriverOnly")
    assert not [d for _, dirs, _ in os.walk(folder) for d in dirs
                if d.startswith(".staging") or d.isdigit()]


# -- how the code is shipped (fast) ---------------------------------------------------------
def _user_code(tmp_path):
    """A module file (no TensorFlow) importing a sibling module and a sibling package."""
    folder = tmp_path / "user_code"
    (folder / "shipped_pkg").mkdir(parents=True)
    (folder / "shipped_constants.py").write_text("FACTOR = 3\n")
    (folder / "shipped_pkg" / "__init__.py").write_text("from shipped_pkg.ops import add\n")
    (folder / "shipped_pkg" / "ops.py").write_text("def add(a, b):\n    return a + b\n")
    (folder / "shipped_module.py").write_text(textwrap.dedent("""
        import shipped_constants
        from shipped_pkg import add

        def preprocessing_fn(x):
            return add(x, shipped_constants.FACTOR)
    """))
    return folder


def _forget(names):
    for name in names:
        sys.modules.pop(name, None)


def test_module_file_and_siblings_are_pickled_by_value(tmp_path):
    from apache_beam.internal import pickler

    from toolkit.components._module import resolve_function
    from toolkit.components._shipping import pickled_by_value, user_modules

    folder = _user_code(tmp_path)
    siblings = ["shipped_constants", "shipped_pkg", "shipped_pkg.ops"]
    try:
        fn, _ = resolve_function(module_file=str(folder / "shipped_module.py"), function=None,
                                 name="preprocessing_fn", owner="Transform")
        modules = user_modules(fn)
        assert sorted(m.__name__ for m in modules[1:]) == siblings
        assert modules[0].__name__.startswith("toolkit_user_module_shipped_module_")
        with pickled_by_value(modules):
            payload = pickler.dumps(fn)
        by_reference = pickler.dumps(fn)
    finally:
        _forget(siblings)
    # a fresh process where neither the module file nor its siblings can be imported
    check = ("import sys; from apache_beam.internal import pickler; "
             "fn = pickler.loads(sys.stdin.buffer.read()); print(fn(4))")
    done = subprocess.run([sys.executable, "-c", check], input=payload, capture_output=True,
                          cwd=str(tmp_path), timeout=120, check=False)
    assert done.returncode == 0 and done.stdout.strip() == b"7", done.stderr[-2000:]
    # outside the block, Beam's registry is as before: by reference, unusable in a worker
    failed = subprocess.run([sys.executable, "-c", check], input=by_reference,
                            capture_output=True, cwd=str(tmp_path), timeout=120, check=False)
    assert failed.returncode != 0 and b"No module named 'toolkit_user_module_" in failed.stderr


def test_cluster_runners_get_the_code_as_an_extra_package(tmp_path):
    from toolkit.components._module import resolve_function
    from toolkit.components._shipping import user_modules, with_user_code

    folder = _user_code(tmp_path)
    siblings = ["shipped_constants", "shipped_pkg", "shipped_pkg.ops"]
    try:
        fn, _ = resolve_function(module_file=str(folder / "shipped_module.py"), function=None,
                                 name="preprocessing_fn", owner="Transform")
        modules = user_modules(fn)
    finally:
        _forget(siblings)
    scratch = tmp_path / "tmp"
    for local in ([], MULTI_PROCESSING, ["--runner=DirectRunner"],
                  ["--runner=PortableRunner", "--job_endpoint=embed",
                   "--environment_type=LOOPBACK"],
                  ["--runner=PortableRunner", "--environment_type=EXTERNAL",
                   "--environment_config=localhost:50000"]):
        assert with_user_code(local, modules, str(scratch)) == local
    assert not scratch.exists()
    given = ["--runner=DataflowRunner", "--project=p", "--region=r",
             "--temp_location=gs://b/tmp", "--requirements_file=requirements.txt",
             "--setup_file=./setup.py"]
    args = with_user_code(given, modules, str(scratch))
    assert args[:-1] == given and args[-1].startswith("--extra_package=")
    wheel = args[-1].split("=", 1)[1]
    assert os.path.dirname(wheel) == str(scratch) and wheel.endswith("-py3-none-any.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {"shipped_constants.py", "shipped_pkg/__init__.py", "shipped_pkg/ops.py",
            f"{modules[0].__name__}.py"} <= set(names)
    # the same code gives the same wheel; another runner on the Flink job server too
    assert with_user_code(given, modules, str(tmp_path / "again"))[-1].endswith(
        os.path.basename(wheel))
    flink = ["--runner=PortableRunner", "--job_endpoint=localhost:8099"]
    assert with_user_code(flink, modules, str(scratch))[-1] == args[-1]
    # installable the way Beam's workers install extra packages, then importable by name
    target = tmp_path / "site"
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--no-index", "--no-deps",
                           "--quiet", f"--target={target}", wheel], capture_output=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    check = (f"import sys; sys.path.insert(0, {str(target)!r}); "
             f"import {modules[0].__name__} as m; print(m.preprocessing_fn(1))")
    done = subprocess.run([sys.executable, "-c", check], capture_output=True,
                          cwd=str(tmp_path), timeout=120, check=False)
    assert done.returncode == 0 and done.stdout.strip() == b"4", done.stderr[-2000:]


def test_worker_import_failure_is_one_line():
    from toolkit.components._shipping import worker_import_failure

    inner = ModuleNotFoundError("No module named 'helper_only_here'")
    outer = RuntimeError("Pipeline failed:\n  File x\n" + str(inner) + "\n [while running ...]")
    outer.__cause__ = inner
    line = worker_import_failure(outer, "t.py: preprocessing_fn",
                                 ["--runner=PortableRunner", "--environment_type=EXTERNAL"])
    assert line.startswith("t.py: preprocessing_fn cannot be imported in a Beam worker on "
                           "PortableRunner (--runner=PortableRunner --environment_type=EXTERNAL)")
    assert "module 'helper_only_here' is not importable there" in line and "\n" not in line
    assert worker_import_failure(ValueError("bad value"), "t.py: f", []) is None
