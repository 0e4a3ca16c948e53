"""The taxi pipeline with its data, its pipeline root and its serving destination in an
S3 bucket (moto's server on 127.0.0.1), metadata in a local SQLite file, against the same
pipeline on local disk in the same session.

Every artifact the two runs write must be the same bytes, but for the files that name
where they live or when they ran; the evaluations agree metric by metric; the pushed
SavedModels are byte-identical; a second run on the bucket is all cache hits; and a
secret planted in the AWS settings appears in none of the bytes either run wrote."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

import object_servers
from datapaths import REPO
from toolkit import storage

pytestmark = pytest.mark.slow

NOTEBOOKS = os.path.join(REPO, "notebooks")
CSV = os.path.join(NOTEBOOKS, "data", "chicago_taxi", "data.csv")
#: the taxi trainer with Keras seeded, so two runs train the same weights
SEEDED = """
import tensorflow as tf

import taxi_trainer


def run_fn(fn_args):
    tf.keras.utils.set_random_seed(11)
    tf.config.experimental.enable_op_determinism()
    taxi_trainer.run_fn(fn_args)
"""
#: files that say where or when they were written, compared by meaning instead. A
#: SavedModel's graph (and its fingerprint) names its lookup tables after the temporary
#: folder TFT wrote their vocabularies in, and its functions by a per-process counter, so
#: two runs never write the same graph bytes; their weights, assets and answers are
#: compared instead
PLACE_OR_TIME = ("eval_config.json", "toolkit-push.json", "toolkit-report.json",
                 "toolkit-report.html", "events.out.tfevents", ".toolkit-manifest.json",
                 "toolkit-pushed.json", "push.json", "saved_model.pb", "fingerprint.pb")


def taxi_components(data: str, serving: str, work: str) -> list:
    """The taxi pipeline's components, in run order: ``data`` the CSV folder, ``serving``
    the push destination, ``work`` the folder of the module files (a path or a URI).
    ``bench/bench_object_store.py`` times the same pipeline."""
    import tensorflow_model_analysis as tfma

    from toolkit.components import (CsvExampleGen, Evaluator, Pusher, SchemaGen,
                                    StatisticsGen, Trainer, Transform)

    example_gen = CsvExampleGen(input_base=data)
    statistics = StatisticsGen(examples=example_gen.outputs["examples"])
    schema = SchemaGen(statistics=statistics.outputs["statistics"])
    transform = Transform(examples=example_gen.outputs["examples"],
                          schema=schema.outputs["schema"],
                          module_file=os.path.join(work, "taxi_transform.py"))
    trainer = Trainer(module_file=os.path.join(work, "seeded_trainer.py"),
                      examples=transform.outputs["transformed_examples"],
                      transform_graph=transform.outputs["transform_graph"],
                      schema=schema.outputs["schema"],
                      train_args={"num_steps": 60}, eval_args={"num_steps": 5})
    config = tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(label_key="big_tipper", prediction_key="prediction")],
        slicing_specs=[tfma.SlicingSpec(), tfma.SlicingSpec(feature_keys=["payment_type"])],
        metrics_specs=[tfma.MetricsSpec(
            metrics=[tfma.MetricConfig(class_name="ExampleCount"),
                     tfma.MetricConfig(class_name="AUC"),
                     tfma.MetricConfig(class_name="BinaryAccuracy")],
            per_slice_thresholds={"auc": tfma.PerSliceMetricThresholds(thresholds=[
                tfma.PerSliceMetricThreshold(
                    slicing_specs=[tfma.SlicingSpec()],
                    threshold=tfma.MetricThreshold(value_threshold=tfma.GenericValueThreshold(
                        lower_bound={"value": 0.5})))])})])
    evaluator = Evaluator(examples=example_gen.outputs["examples"], model=trainer.outputs["model"],
                          transform_graph=transform.outputs["transform_graph"], eval_config=config)
    pusher = Pusher(model=trainer.outputs["model"], model_blessing=evaluator.outputs["blessing"],
                    push_destination={"filesystem": {"base_directory": serving}})
    return [example_gen, statistics, schema, transform, trainer, evaluator, pusher]


def _pipeline(root: str, data: str, serving: str, metadata: str, work: str) -> list[dict]:
    """The pipeline, run in this process: per component its id, whether it was a cache
    hit, and its outputs' URIs and properties."""
    from toolkit import InteractiveContext
    from toolkit.metadata import sqlite_config

    context = InteractiveContext(pipeline_name="taxi-objects", pipeline_root=root,
                                 metadata_connection_config=sqlite_config(metadata))
    results = []
    for component in taxi_components(data, serving, work):
        result = context.run(component)
        results.append({"id": component.id, "cached": bool(result.cached), "outputs": {
            key: [{"uri": a.uri, "properties": dict(a.properties)} for a in arts]
            for key, arts in result.outputs.items()}})
    return results


def _run_apart(*args: str, env: dict | None = None) -> list[dict]:
    """:func:`_pipeline` in a fresh Python, as two runs on two machines would be (in one
    process, Keras numbers the second model's layers after the first's)."""
    code = ("import json, sys; sys.path.insert(0, sys.argv[1]); "
            "import test_object_store_pipeline as t; "
            "print('RESULTS' + json.dumps(t._pipeline(*sys.argv[2:]), default=str))")
    done = subprocess.run([sys.executable, "-c", code, os.path.dirname(__file__), *args],
                          capture_output=True, text=True, timeout=1200,
                          env={**os.environ, **(env or {})})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    [line] = [x for x in done.stdout.splitlines() if x.startswith("RESULTS")]
    return json.loads(line[len("RESULTS"):]), done.stdout + done.stderr


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("objects")
    work = base / "work"
    work.mkdir()
    for name in ("taxi_transform.py", "taxi_trainer.py"):
        shutil.copy(os.path.join(NOTEBOOKS, name), work / name)
    (work / "seeded_trainer.py").write_text(SEEDED, encoding="utf-8")
    (base / "data").mkdir()
    shutil.copy(CSV, base / "data" / "data.csv")
    with object_servers.moto_server() as endpoint, pytest.MonkeyPatch.context() as mp:
        settings = object_servers.aws_settings(endpoint)
        for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN", "AWS_REGION"):
            mp.delenv(name, raising=False)
        for name, value in settings.items():
            mp.setenv(name, value)
        mp.setenv("TOOLKIT_PUSH_ROOT", "s3://bucket")
        mp.setenv("TMPDIR", str(base / "tmp"))  # where the bucket run stages, searched below
        (base / "tmp").mkdir()
        object_servers.make_s3_bucket(endpoint, "bucket")
        storage.write_bytes("s3://bucket/data/data.csv", (base / "data" / "data.csv").read_bytes())
        # the bucket run's module files are URIs too (the seeded trainer imports the file
        # beside it)
        for module in work.iterdir():
            storage.write_bytes(f"s3://bucket/modules/{module.name}", module.read_bytes())
        on_bucket = ("s3://bucket/root", "s3://bucket/data", "s3://bucket/serving",
                     str(base / "remote.sqlite"), "s3://bucket/modules")
        # the local run, in a process of its own, meanwhile: nothing is shared but the code
        with ThreadPoolExecutor(max_workers=1) as pool:
            on_disk = pool.submit(_run_apart, str(base / "root"), str(base / "data"),
                                  str(base / "serving"), str(base / "local.sqlite"), str(work),
                                  env={"TOOLKIT_PUSH_ROOT": str(base)})
            remote, printed = _run_apart(*on_bucket)
            again, printed_again = _run_apart(*on_bucket)
            local, _ = on_disk.result()
        # toolkit models on the bucket, and every object in it, while the server runs
        from toolkit import models

        listed = models.list_versions("s3://bucket/serving")
        verified = models.verify("s3://bucket/serving")
        views = {"remote": _views("s3://bucket/root", str(base / "remote.sqlite")),
                 "local": _views(str(base / "root"), str(base / "local.sqlite"))}
        bucket = {rel: storage.read_bytes(f"s3://bucket/{rel}") for rel in storage.walk("s3://bucket")}
        yield {"remote": remote, "again": again, "local": local, "bucket": bucket, "base": base,
               "listed": listed, "verified": verified, "views": views,
               "printed": printed + printed_again, "secret": settings["AWS_SECRET_ACCESS_KEY"]}


def _views(root: str, metadata: str) -> dict[str, str]:
    """The HTML view of every output the pipeline computed, read where it was written,
    with the root's own name taken out."""
    from toolkit import InteractiveContext, visualize
    from toolkit.metadata import sqlite_config

    context = InteractiveContext(pipeline_name="taxi-objects", pipeline_root=root,
                                 metadata_connection_config=sqlite_config(metadata))
    views = {}
    for row in context.executions():
        if row["state"] == "COMPLETE":
            for key, artifacts in context.store.outputs_of(int(row["id"])).items():
                for artifact in artifacts:
                    views[f"{row['component_id']}.{key}"] = \
                        visualize.view_of(artifact).html.replace(root, "ROOT")
    return views


def _tree(uri: str, bucket: dict[str, bytes] | None = None) -> dict[str, bytes]:
    if uri.startswith("s3://"):
        prefix = uri[len("s3://bucket/"):] + "/"
        return {rel[len(prefix):]: data for rel, data in bucket.items() if rel.startswith(prefix)}
    return {rel: storage.read_bytes(storage.join(uri, rel)) for rel in storage.walk(uri)}


def _by_id(results: list[dict]) -> dict[str, dict]:
    return {r["id"]: r for r in results}


def _one(result: dict, key: str) -> dict:
    [artifact] = result["outputs"][key]
    return artifact


def _same_content(ours: dict[str, bytes], reference: dict[str, bytes], where) -> list:
    """What differs, but for files that name where or when they were written."""
    def names(tree):  # TensorBoard names its files by time, host and pid
        return sorted(re.sub(r"tfevents\..*", "tfevents", rel) for rel in tree)

    assert names(ours) == names(reference), where
    return [(*where, rel) for rel, data in reference.items()
            if not any(mark in rel for mark in PLACE_OR_TIME) and ours[rel] != data]


def test_the_bucket_run_is_the_local_run_byte_for_byte(runs):
    differ, compared = [], 0
    local = _by_id(runs["local"])
    for remote in runs["remote"]:
        for key, [theirs] in local[remote["id"]]["outputs"].items():
            mine = _one(remote, key)
            assert mine["uri"].startswith("s3://bucket/root/"), mine["uri"]
            ours, reference = _tree(mine["uri"], runs["bucket"]), _tree(theirs["uri"])
            differ += _same_content(ours, reference, (remote["id"], key))
            compared += len(reference)
    assert not differ
    assert compared > 20


def test_every_row_is_read_and_the_metrics_agree(runs):
    import csv

    import pyarrow as pa
    import pyarrow.parquet as pq
    import tensorflow as tf

    from toolkit.evaluation.storage import load_result

    remote, local = _by_id(runs["remote"]), _by_id(runs["local"])
    with open(CSV, newline="", encoding="utf-8") as handle:
        rows = sum(1 for _ in csv.reader(handle)) - 1
    examples = _tree(_one(remote["CsvExampleGen"], "examples")["uri"], runs["bucket"])
    counted = 0
    for rel, data in examples.items():
        if rel.endswith(".parquet"):
            counted += pq.read_metadata(pa.BufferReader(data)).num_rows
        elif rel.endswith(".gz"):
            path = runs["base"] / "count.gz"
            path.write_bytes(data)
            counted += sum(1 for _ in tf.data.TFRecordDataset(str(path), compression_type="GZIP"))
    assert counted == rows
    ours = load_result(storage.local_path(_one(remote["Evaluator"], "evaluation")["uri"]))
    theirs = load_result(_one(local["Evaluator"], "evaluation")["uri"])
    a, b = ours.to_dataframe(), theirs.to_dataframe()
    assert len(a) == len(b) > 3
    for (_, x), (_, y) in zip(a.iterrows(), b.iterrows()):
        assert (x["slice"], x["metric"]) == (y["slice"], y["metric"])
        assert x["value"] == pytest.approx(y["value"], abs=1e-12, rel=0, nan_ok=True), (x["slice"], x["metric"])
    assert _one(remote["Evaluator"], "blessing")["properties"]["blessed"] == \
        _one(local["Evaluator"], "blessing")["properties"]["blessed"] == 1


def test_the_pushed_models_are_the_same_files(runs):
    remote = _one(_by_id(runs["remote"])["Pusher"], "pushed_model")["properties"]
    local = _one(_by_id(runs["local"])["Pusher"], "pushed_model")["properties"]
    pushed = _tree(f"s3://bucket/serving/{remote['pushed_version']}", runs["bucket"])
    reference = _tree(os.path.join(runs["base"], "serving", str(local["pushed_version"])))
    assert "saved_model.pb" in pushed and any(rel.startswith("variables/") for rel in pushed)
    # the weights and assets byte for byte; the answers, through the metrics above
    assert not _same_content(pushed, reference, ("Pusher",))


def test_a_second_run_on_the_bucket_is_all_cache_hits(runs):
    assert [r["cached"] for r in runs["again"]] == [True] * len(runs["again"])
    assert [r["cached"] for r in runs["remote"]] == [False] * len(runs["remote"])


def test_nothing_staged_is_left_and_no_secret_is_written(runs):
    secret = runs["secret"].encode()
    base = runs["base"]
    assert not any(".staging-" in rel for rel in runs["bucket"])
    written = 0
    for here, _, names in os.walk(base):
        for name in names:
            with open(os.path.join(here, name), "rb") as handle:
                assert secret not in handle.read(), os.path.join(here, name)
            written += 1
    for rel, data in runs["bucket"].items():
        assert secret not in data, rel
    assert secret.decode() not in runs["printed"]
    assert written > 20 and len(runs["bucket"]) > 20
    # the bucket run staged under TMPDIR, and left nothing there
    staged = [os.path.join(h, n) for h, _, ns in os.walk(base / "tmp" / "toolkit-staging")
              for n in ns]
    assert not staged, staged[:5]


def test_toolkit_models_lists_and_verifies_the_version_in_the_bucket(runs):
    pushed = _one(_by_id(runs["remote"])["Pusher"], "pushed_model")["properties"]
    assert [row.version for row in runs["listed"]] == [int(pushed["pushed_version"])]
    [checked] = runs["verified"]
    assert checked.ok and checked.files >= 4 and checked.version == int(pushed["pushed_version"])


def test_the_views_read_from_the_bucket_are_those_read_from_disk(runs):
    """Outputs whose files are the same bytes render the same view (but the element ids
    each view makes up); the others (a SavedModel's graph, TensorBoard's file names, the
    push's version and time) list the same files and sections."""
    import re

    remote, local = runs["views"]["remote"], runs["views"]["local"]
    assert sorted(remote) == sorted(local) and len(remote) >= 10, sorted(remote)

    def ids_out(html: str) -> str:
        return re.sub(r"(tkv|tkd-static|tkd)-[0-9a-f]{6,}", r"\1-ID", html)

    same_bytes = {"CsvExampleGen.examples", "StatisticsGen.statistics", "SchemaGen.schema",
                  "Transform.transformed_examples", "Evaluator.evaluation", "Evaluator.blessing"}
    assert same_bytes <= set(remote)
    # the bucket's views show the data itself, not a note that it could not be read
    for key in ("CsvExampleGen.examples", "StatisticsGen.statistics", "SchemaGen.schema"):
        assert "trip_miles" in remote[key], key
    assert "auc" in remote["Evaluator.evaluation"].lower()
    for key in same_bytes:
        assert ids_out(remote[key]) == ids_out(local[key]), \
            (key, _first_difference(ids_out(remote[key]), ids_out(local[key])))

    def listed(html: str) -> list[str]:  # file names and headings, TensorBoard's names aside
        names = re.findall(r"<code>([^<]*)</code>|<h[1-3][^>]*>([^<]*)</h", html)
        return [re.sub(r"\d{9,}", "N", re.sub(r"tfevents\.\d+\.[^.]+\.\d+", "tfevents", a or b))
                for a, b in names]

    serving = (("s3://bucket/serving", "SERVING"), (str(runs["base"] / "serving"), "SERVING"))
    for key in set(remote) - same_bytes:
        ours, theirs = remote[key], local[key]
        for place, name in serving:
            ours, theirs = ours.replace(place, name), theirs.replace(place, name)
        assert listed(ours) == listed(theirs) and listed(ours), key


def _first_difference(a: str, b: str) -> str:
    at = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    return f"{a[max(0, at - 80):at + 80]!r} != {b[max(0, at - 80):at + 80]!r}"
