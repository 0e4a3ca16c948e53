"""The taxi pipeline from CSV to Evaluator on real Beam runners gives what it gives in
process: the same rows in each split, equal statistics, equal transformed examples and
the in-memory engine's evaluation metrics.

Runners: (a) the multi-processing DirectRunner with 2 workers; (b) Beam's portable runner
with its own Python job service and an EXTERNAL worker pool started as separate processes,
so user code runs in SDK worker processes as it would under Flink, Spark or Dataflow.

The reference pipeline (CsvExampleGen, StatisticsGen, SchemaGen, Transform with a module
file that imports a sibling module, Trainer, Evaluator) runs here in process, once. Each
runner's chain runs in a child Python process through the public API, with the runner's
``beam_pipeline_args`` for the data components and the Evaluator and the reference's
trained model (trained once); it records into the same pipeline root and metadata store,
so running the same chain here afterwards is all cache hits, which hands the child's
artifacts to the assertions.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import types

import numpy as np
import pandas as pd
import pytest

from datapaths import REPO, TAXI_CSV
from test_beam_evaluator import assert_same_result
from test_beam_user_code import MULTI_PROCESSING, _assert_same_examples, _env, worker_pool  # noqa: F401

pytestmark = pytest.mark.slow

FIXTURES = os.path.join(REPO, "tests", "fixtures", "beam_module")
TRANSFORM_MODULE = os.path.join(FIXTURES, "beam_taxi_transform.py")
TRAINER_MODULE = os.path.join(FIXTURES, "beam_taxi_trainer.py")
PIPELINE = "beam_pipeline"
ROWS = 4000
#: TFDV's default quantile sketch error (StatsOptions.epsilon): a quantile boundary's rank
#: in the data may be off by this fraction of the examples
EPSILON = 0.01
EVAL_CONFIG = {
    "model_specs": [{"label_key": "tips_xf", "prediction_key": "prediction"}],
    "slicing_specs": [{}, {"feature_keys": ["payment_type"]},
                      {"feature_keys": ["trip_start_hour"]}],
    "metrics_specs": [{"metrics": [
        {"class_name": "ExampleCount"}, {"class_name": "AUC"},
        {"class_name": "BinaryAccuracy"}, {"class_name": "MeanLabel"},
        {"class_name": "MeanPrediction"},
        {"class_name": "FairnessIndicators", "config": '{"thresholds": [0.3, 0.5]}'}]}],
}

#: the shared declaration of the pipeline, in the parent and in the child processes:
#: ``chain(context, data, suffix)`` returns the data components and the Evaluator of one
#: run, ids ending in ``suffix`` ("" for the reference), plus the reference's Trainer
_DECLARE = textwrap.dedent("""
    def chain(data, suffix, trainer=None):
        from toolkit.components import (CsvExampleGen, Evaluator, SchemaGen, StatisticsGen,
                                        Trainer, Transform)

        example_gen = CsvExampleGen(input_base=data).with_id("CsvExampleGen" + suffix)
        statistics = StatisticsGen(examples=example_gen.outputs["examples"]
                                   ).with_id("StatisticsGen" + suffix)
        schema = SchemaGen(statistics=statistics.outputs["statistics"]
                           ).with_id("SchemaGen" + suffix)
        transform = Transform(examples=example_gen.outputs["examples"],
                              schema=schema.outputs["schema"], module_file=TRANSFORM_MODULE
                              ).with_id("Transform" + suffix)
        if trainer is None:
            trainer = Trainer(module_file=TRAINER_MODULE,
                              examples=transform.outputs["transformed_examples"],
                              transform_graph=transform.outputs["transform_graph"],
                              schema=schema.outputs["schema"], train_args={"num_steps": 30},
                              eval_args={"num_steps": 2})
        evaluator = Evaluator(examples=example_gen.outputs["examples"],
                              model=trainer.outputs["model"],
                              transform_graph=transform.outputs["transform_graph"],
                              eval_config=EVAL_CONFIG).with_id("Evaluator" + suffix)
        return [example_gen, statistics, schema, transform, evaluator], trainer
""")

#: a child process: the reference chain (all cache hits), then the runner's chain with the
#: runner's arguments; the outcome goes to a JSON file
_CHILD = textwrap.dedent("""
    import json, os, sys, time
    root, data, suffix, args, out = sys.argv[1:]
    from toolkit import InteractiveContext
    from toolkit.errors import ComponentError

    context = InteractiveContext(pipeline_name=PIPELINE, pipeline_root=root)
    reference, trainer = chain(data, "")
    cached = all(context.run(c).cached for c in reference[:4] + [trainer])
    components, _ = chain(data, suffix, trainer)
    record = {"reference_cached": cached, "seconds": {}}
    try:
        for component in components:
            started = time.perf_counter()
            result = context.run(component, beam_pipeline_args=json.loads(args))
            record["seconds"][component.id] = round(time.perf_counter() - started, 1)
            assert not result.cached, component.id
        record["ok"] = True
    except ComponentError as exc:
        record.update(ok=False, message=str(exc))
    with open(out, "w") as handle:
        json.dump(record, handle)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
""")

_PRELUDE = (f"PIPELINE = {PIPELINE!r}\nTRANSFORM_MODULE = {TRANSFORM_MODULE!r}\n"
            f"TRAINER_MODULE = {TRAINER_MODULE!r}\nEVAL_CONFIG = {json.dumps(EVAL_CONFIG)}\n")
_namespace: dict = {}
exec(compile(_PRELUDE + _DECLARE, "<pipeline declaration>", "exec"), _namespace)
chain = _namespace["chain"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The whole pipeline in process, once; the trained model is reused by every runner."""
    from toolkit import InteractiveContext

    data = tmp_path_factory.mktemp("beam_pipeline_data")
    pd.read_csv(TAXI_CSV, nrows=ROWS).to_csv(data / "data.csv", index=False)
    root = str(tmp_path_factory.mktemp("beam_pipeline_root"))
    context = InteractiveContext(pipeline_name=PIPELINE, pipeline_root=root)
    components, trainer = chain(str(data), "")
    for component in components[:4] + [trainer] + components[4:]:
        context.run(component)
    return types.SimpleNamespace(context=context, root=root, data=str(data),
                                 components=components, trainer=trainer,
                                 work=tmp_path_factory.mktemp("beam_pipeline_children"))


def _run_on(reference, suffix: str, beam_args: list[str]) -> list:
    """The runner's chain in a child process, then here (cache hits): its components."""
    out = reference.work / f"{suffix}.json"
    log = reference.work / f"{suffix}.log"
    script = _PRELUDE + _DECLARE + _CHILD
    with open(log, "w") as handle:
        process = subprocess.run(
            [sys.executable, "-c", script, reference.root, reference.data, suffix,
             json.dumps(beam_args), str(out)],
            cwd=str(reference.work), env=_env(), stdout=handle, stderr=subprocess.STDOUT,
            timeout=1200, check=False)
    tail = log.read_text()[-3000:]
    assert out.exists(), f"the child wrote no result (exit {process.returncode}):\n{tail}"
    record = json.loads(out.read_text())
    assert record["reference_cached"], tail
    assert record["ok"], f"{record.get('message')}\n{tail}"
    print(f"{suffix}: seconds per component {record['seconds']}")
    components, _ = chain(reference.data, suffix, reference.trainer)
    for component in components:
        # Beam arguments are not part of the cache key: the child's outputs are reused
        assert reference.context.run(component, beam_pipeline_args=beam_args).cached
    return components


def _output(component, key: str):
    return component.outputs[key].get()[0]


def _assert_same_rows(reference_components, components) -> None:
    from toolkit.components._io import read_split

    want, got = _output(reference_components[0], "examples"), _output(components[0], "examples")
    assert got.split_names == want.split_names == ["train", "eval"]
    assert json.loads(got.properties["row_counts"]) == json.loads(want.properties["row_counts"])
    assert got.payload_format == want.payload_format
    for split in want.split_names:
        a, b = read_split(want, split), read_split(got, split)
        assert a.schema == b.schema, split
        rows = [sorted(repr(tuple(r.values())) for r in t.to_pylist()) for t in (a, b)]
        assert rows[0] == rows[1], split


def _assert_quantiles_within_sketch(histogram, values: np.ndarray, where: str) -> None:
    """Each boundary of an equal-mass histogram lies at its quantile within TFDV's error."""
    values = np.sort(values[~np.isnan(values)])
    n = len(values)
    buckets = list(histogram.buckets)
    for i, bucket in enumerate(buckets[:-1], start=1):
        target = i / len(buckets)
        boundary = bucket.high_value
        below = np.searchsorted(values, boundary, side="left") / n
        upto = np.searchsorted(values, boundary, side="right") / n
        assert below - EPSILON <= target <= upto + EPSILON, (where, i, boundary, below, upto)


def _assert_same_statistics(reference_components, components) -> None:
    """Counts, min/max and string statistics exactly; means and deviations to float
    rounding; quantiles within TFDV's sketch error, checked against the data itself."""
    import tensorflow_data_validation as tfdv

    from toolkit.components._io import read_split

    want_artifact = _output(reference_components[1], "statistics")
    got_artifact = _output(components[1], "statistics")
    examples = _output(reference_components[0], "examples")
    assert got_artifact.split_names == want_artifact.split_names
    for split in want_artifact.split_names:
        want = tfdv.load_stats_binary(want_artifact.stats_path(split)).datasets[0]
        got = tfdv.load_stats_binary(got_artifact.stats_path(split)).datasets[0]
        table = read_split(examples, split).to_pandas()
        assert got.num_examples == want.num_examples == len(table)
        features = {f.path.step[0]: f for f in want.features}
        assert sorted(f.path.step[0] for f in got.features) == sorted(features)
        for feature in got.features:
            name = feature.path.step[0]
            expected = features[name]
            where = f"{split}/{name}"
            assert feature.type == expected.type, where
            kind = feature.WhichOneof("stats")
            assert kind == expected.WhichOneof("stats"), where
            stats, reference_stats = getattr(feature, kind), getattr(expected, kind)
            common, reference_common = stats.common_stats, reference_stats.common_stats
            for field in ("num_non_missing", "num_missing", "min_num_values", "max_num_values",
                          "tot_num_values"):
                assert getattr(common, field) == getattr(reference_common, field), (where, field)
            if kind == "num_stats":
                for field in ("min", "max", "num_zeros"):
                    assert getattr(stats, field) == getattr(reference_stats, field), (where, field)
                for field in ("mean", "std_dev"):
                    assert getattr(stats, field) == pytest.approx(
                        getattr(reference_stats, field), rel=1e-9, abs=1e-12), (where, field)
                values = table[name].to_numpy(dtype=float)
                for histogram in stats.histograms:
                    if histogram.type == histogram.QUANTILES:
                        _assert_quantiles_within_sketch(histogram, values, where)
            elif kind == "string_stats":
                assert stats.unique == reference_stats.unique, where
                assert stats.avg_length == pytest.approx(reference_stats.avg_length, rel=1e-12)
                assert ({(v.value, v.frequency) for v in stats.top_values}
                        == {(v.value, v.frequency) for v in reference_stats.top_values}), where


def _sorted_schema(schema):
    """The schema with features and domain values in name order: SchemaGen lists them in
    the order the statistics do, which is not part of their meaning."""
    from tensorflow_metadata.proto.v0 import schema_pb2

    out = schema_pb2.Schema()
    out.CopyFrom(schema)
    features = sorted(out.feature, key=lambda f: f.name)
    del out.feature[:]
    out.feature.extend(features)
    domains = sorted(out.string_domain, key=lambda d: d.name)
    del out.string_domain[:]
    out.string_domain.extend(domains)
    for domain in out.string_domain:
        values = sorted(domain.value)
        del domain.value[:]
        domain.value.extend(values)
    return out


def _assert_same_pipeline(reference, components) -> None:
    expected = reference.components
    _assert_same_rows(expected, components)
    _assert_same_statistics(expected, components)
    schema = [_sorted_schema(_output(c[2], "schema").load()) for c in (expected, components)]
    assert schema[0] == schema[1]
    _assert_same_examples(_output(components[3], "transformed_examples").uri,
                          _output(expected[3], "transformed_examples").uri)
    evaluation = [_output(c[4], "evaluation") for c in (expected, components)]
    assert evaluation[0].properties["engine"] == evaluation[1].properties["engine"] == "toolkit"
    assert_same_result(evaluation[0].load(), evaluation[1].load())


def test_taxi_pipeline_on_multi_processing_direct_runner(reference):
    components = _run_on(reference, "Multi", MULTI_PROCESSING)
    _assert_same_pipeline(reference, components)


def test_taxi_pipeline_on_portable_runner_with_external_workers(reference, worker_pool):
    components = _run_on(reference, "Portable", [
        "--runner=PortableRunner", "--job_endpoint=embed", "--environment_type=EXTERNAL",
        f"--environment_config=localhost:{worker_pool}"])
    _assert_same_pipeline(reference, components)
