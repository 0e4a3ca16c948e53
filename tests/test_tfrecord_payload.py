"""TFX's default payload: ExampleGen writes GZIP TFRecord of tf.Example when asked
(``output_data_format``), and every downstream component reads it as it reads Parquet.

One module-scoped pipeline on the taxi data (TFRecord ExampleGen, StatisticsGen,
Transform, a short Trainer run, Evaluator, BulkInferrer) is compared with the
session's Parquet pipeline (``taxi_pipeline``).
"""
from __future__ import annotations

import glob
import json
import os
import types

import numpy as np
import pytest

from datapaths import REPO

TRANSFORM_MODULE = os.path.join(REPO, "notebooks", "taxi_transform.py")
TRAINER_MODULE = os.path.join(REPO, "notebooks", "taxi_trainer.py")
TF_EXAMPLE = "FORMAT_TF_EXAMPLE"


@pytest.fixture(scope="module")
def tfrecord(taxi_pipeline):
    """The taxi data as TFRecord through the data and model components (trained once)."""
    import tensorflow_model_analysis as tfma

    from toolkit import InteractiveContext
    from toolkit.components import (BulkInferrer, CsvExampleGen, Evaluator, StatisticsGen,
                                    Trainer, Transform)

    context = InteractiveContext(pipeline_name="taxi_tfrecord", pipeline_root=taxi_pipeline.root)
    schema = taxi_pipeline.schema_gen.outputs["schema"]
    # the Parquet pipeline's split (TFX's split of a tf.Example payload: test_tfx_split.py),
    # so the two payloads hold the same rows
    gen = CsvExampleGen(input_base=taxi_pipeline.data_dir, output_data_format=TF_EXAMPLE,
                        split_method="toolkit").with_id("TfExampleGen")
    stats = StatisticsGen(examples=gen.outputs["examples"]).with_id("TfStatisticsGen")
    transform = Transform(examples=gen.outputs["examples"], schema=schema,
                          module_file=TRANSFORM_MODULE).with_id("TfTransform")
    trainer = Trainer(module_file=TRAINER_MODULE,
                      examples=transform.outputs["transformed_examples"],
                      transform_graph=transform.outputs["transform_graph"], schema=schema,
                      train_args={"num_steps": 20}, eval_args={"num_steps": 2}).with_id("TfTrainer")
    config = tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(label_key="big_tipper", prediction_key="prediction")],
        slicing_specs=[tfma.SlicingSpec(), tfma.SlicingSpec(feature_keys=["payment_type"])],
        metrics_specs=[tfma.MetricsSpec(metrics=[tfma.MetricConfig(class_name="ExampleCount"),
                                                 tfma.MetricConfig(class_name="AUC")])])
    evaluators = {}
    for name, examples in (("tfrecord", gen.outputs["examples"]),
                           ("parquet", taxi_pipeline.example_gen.outputs["examples"])):
        evaluators[name] = Evaluator(examples=examples, model=trainer.outputs["model"],
                                     transform_graph=transform.outputs["transform_graph"],
                                     eval_config=config).with_id(f"Evaluator_{name}")
    inferrer = BulkInferrer(examples=gen.outputs["examples"], model=trainer.outputs["model"],
                            data_spec={"example_splits": ["eval"]}).with_id("TfBulkInferrer")
    for component in (gen, stats, transform, trainer, *evaluators.values(), inferrer):
        context.run(component)
    return types.SimpleNamespace(
        context=context, gen=gen, stats=stats, transform=transform, trainer=trainer,
        evaluators=evaluators, inferrer=inferrer, taxi=taxi_pipeline,
        examples=gen.outputs["examples"].get()[0],
        parquet=taxi_pipeline.example_gen.outputs["examples"].get()[0])


def _tutorial_records(uri: str, split: str) -> list:
    """What TFX's tutorials do with an Examples artifact's split."""
    import tensorflow as tf

    split_uri = os.path.join(uri, f"Split-{split}")
    filenames = [os.path.join(split_uri, name) for name in os.listdir(split_uri)]
    dataset = tf.data.TFRecordDataset(filenames, compression_type="GZIP")
    return [tf.train.Example.FromString(record.numpy()) for record in dataset]


def _feature_values(feature):
    kind = feature.WhichOneof("kind")
    return kind, list(getattr(feature, kind).value) if kind else []


# -- ExampleGen ------------------------------------------------------------------------------
def test_examples_are_gzip_tfrecords_named_as_tfx_writes_them(tfrecord):
    examples = tfrecord.examples
    assert examples.payload_format == TF_EXAMPLE
    assert examples.split_names == ["train", "eval"]
    for split in examples.split_names:
        assert os.listdir(examples.split_uri(split)) == ["data_tfrecord-00000-of-00001.gz"]
        with open(os.path.join(examples.split_uri(split), "data_tfrecord-00000-of-00001.gz"),
                  "rb") as handle:
            assert handle.read(2) == b"\x1f\x8b"
    counts = json.loads(examples.properties["row_counts"])
    assert counts == json.loads(tfrecord.parquet.properties["row_counts"])
    # recorded in ML Metadata as TFX records it
    stored = tfrecord.context.store.artifacts()
    mine = [a for a in stored if a.id == examples.id][0]
    assert mine.properties["payload_format"] == TF_EXAMPLE


def test_tutorial_cells_read_the_same_rows_as_the_parquet_payload(tfrecord):
    """Plain tf.data + tf.train.Example, as the tutorials read ExampleGen's output: the same
    rows in the same order as the Parquet path, typed int64/float/bytes, missing = absent."""
    import pyarrow.parquet as pq

    kinds = {"int64": "int64_list", "double": "float_list", "string": "bytes_list"}
    for split in ("train", "eval"):
        records = _tutorial_records(tfrecord.examples.uri, split)
        table = pq.read_table(tfrecord.parquet.split_uri(split))
        assert len(records) == table.num_rows
        for name in table.column_names:
            column = table.column(name).to_pylist()
            got = [_feature_values(r.features.feature[name]) if name in r.features.feature
                   else None for r in records]
            assert [g is None for g in got] == [v is None for v in column], name  # absent
            present = [g for g in got if g is not None]
            assert {kind for kind, _ in present} <= {kinds[str(table.column(name).type)]}, name
            assert all(len(values) == 1 for _, values in present), name
            values = [values[0] for _, values in present]
            expected = [v for v in column if v is not None]
            if kinds[str(table.column(name).type)] == "bytes_list":
                assert [v.decode() for v in values] == expected, name
            elif kinds[str(table.column(name).type)] == "float_list":
                np.testing.assert_array_equal(np.float32(values), np.float32(expected), name)
            else:
                assert values == expected, name


def test_read_split_gives_the_parquet_table(tfrecord):
    """The shared reader (Evaluator, BulkInferrer, InfraValidator) returns the same table."""
    from toolkit.components._io import read_split

    for split in ("train", "eval"):
        ours = read_split(tfrecord.examples, split)
        theirs = read_split(tfrecord.parquet, split)
        assert ours.schema == theirs.schema
        assert ours.num_rows == theirs.num_rows
        for name in theirs.column_names:
            a, b = ours.column(name), theirs.column(name)
            assert a.null_count == b.null_count, name
            if str(b.type) == "double":  # tf.Example floats are float32
                np.testing.assert_array_equal(
                    a.to_numpy(), b.to_numpy().astype(np.float32).astype(np.float64), name)
            else:
                assert a.equals(b), name


def test_streamed_csv_path_writes_the_same_records(tfrecord, monkeypatch, tmp_path):
    from toolkit import InteractiveContext
    from toolkit.components import CsvExampleGen, example_gen
    import tensorflow as tf

    from toolkit.components._io import read_records

    monkeypatch.setattr(example_gen, "STREAM_BYTES", 0)
    context = InteractiveContext(pipeline_name="streamed", pipeline_root=str(tmp_path))
    streamed = CsvExampleGen(input_base=tfrecord.taxi.data_dir, output_data_format=6,
                             split_method="toolkit")
    context.run(streamed)
    artifact = streamed.outputs["examples"].get()[0]
    assert artifact.payload_format == TF_EXAMPLE
    assert artifact.properties["column_types"] == tfrecord.examples.properties["column_types"]
    for split in ("train", "eval"):
        (ours,) = glob.glob(os.path.join(artifact.split_uri(split), "*"))
        (whole,) = glob.glob(os.path.join(tfrecord.examples.split_uri(split), "*"))
        assert os.path.basename(ours) == os.path.basename(whole)
        # protobuf serializes a map in no fixed order: compare the examples, not bytes
        parse = tf.train.Example.FromString
        assert [parse(r) for r in read_records(ours)] == [parse(r) for r in read_records(whole)]


def test_import_example_gen_reads_and_writes_either_payload(tfrecord, tmp_path):
    from toolkit import InteractiveContext
    from toolkit.components import ImportExampleGen
    from toolkit.components._io import read_split

    context = InteractiveContext(pipeline_name="import", pipeline_root=str(tmp_path))
    source = tfrecord.examples.uri
    config = {"splits": [{"name": "train", "pattern": "Split-train/*"},
                         {"name": "eval", "pattern": "Split-eval/*"}]}
    tables = {}
    for fmt in ("FORMAT_PARQUET", TF_EXAMPLE):
        gen = ImportExampleGen(input_base=source, input_config=config,
                               output_data_format=fmt).with_id(f"Import_{fmt}")
        context.run(gen)
        artifact = gen.outputs["examples"].get()[0]
        assert artifact.payload_format == fmt
        tables[fmt] = read_split(artifact, "eval")
    original = read_split(tfrecord.examples, "eval")
    # a feature no example of the split has is not in the files: only ExampleGen's own
    # record of its columns knows it
    common = [n for n in original.column_names if n in tables[TF_EXAMPLE].column_names]
    assert all(original.column(n).null_count == original.num_rows
               for n in original.column_names if n not in common)
    for table in tables.values():
        assert sorted(table.column_names) == sorted(common)
        assert table.select(common).equals(original.select(common))


# -- StatisticsGen ---------------------------------------------------------------------------
def test_statistics_equal_the_parquet_path(tfrecord):
    ours = tfrecord.stats.outputs["statistics"].get()[0]
    theirs = tfrecord.taxi.statistics_gen.outputs["statistics"].get()[0]
    for split in ("train", "eval"):
        a, b = ours.load(split).datasets[0], theirs.load(split).datasets[0]
        assert a.num_examples == b.num_examples
        twins = {f.path.step[0]: f for f in b.features}
        assert sorted(twins) == sorted(f.path.step[0] for f in a.features)
        for feature in a.features:
            twin = twins[feature.path.step[0]]
            name = feature.path.step[0]
            assert feature.type == twin.type, name
            if feature.HasField("num_stats"):
                x, y = feature.num_stats, twin.num_stats
                assert x.common_stats.num_missing == y.common_stats.num_missing, name
                assert x.common_stats.num_non_missing == y.common_stats.num_non_missing, name
                assert x.num_zeros == y.num_zeros, name
                assert x.min == pytest.approx(y.min, rel=1e-6), name
                assert x.max == pytest.approx(y.max, rel=1e-6), name
                assert x.mean == pytest.approx(y.mean, rel=1e-6), name
                assert x.std_dev == pytest.approx(y.std_dev, rel=1e-4, abs=1e-6), name
            else:
                x, y = feature.string_stats, twin.string_stats
                assert x.common_stats == y.common_stats, name
                assert x.unique == y.unique, name
                assert list(x.top_values) == list(y.top_values), name


def test_statistics_on_beam_read_tfrecord(tfrecord):
    from toolkit.components import StatisticsGen

    on_beam = StatisticsGen(examples=tfrecord.gen.outputs["examples"],
                            exclude_splits=["train"]).with_id("TfStatisticsGenBeam")
    tfrecord.context.run(on_beam, beam_pipeline_args=["--runner=DirectRunner",
                                                      "--direct_num_workers=1"])
    beam_stats = on_beam.outputs["statistics"].get()[0].load("eval").datasets[0]
    memory = tfrecord.stats.outputs["statistics"].get()[0].load("eval").datasets[0]
    assert beam_stats.num_examples == memory.num_examples
    twins = {f.path.step[0]: f for f in memory.features}
    for feature in beam_stats.features:
        twin = twins[feature.path.step[0]]
        if feature.HasField("num_stats"):
            assert feature.num_stats.common_stats.num_missing == \
                twin.num_stats.common_stats.num_missing
            assert feature.num_stats.mean == pytest.approx(twin.num_stats.mean, rel=1e-9)
        else:
            assert feature.string_stats.unique == twin.string_stats.unique


# -- Transform, Trainer ------------------------------------------------------------------------
def test_transform_writes_transformed_examples_as_tfrecord(tfrecord):
    import tensorflow_transform as tft

    transformed = tfrecord.transform.outputs["transformed_examples"].get()[0]
    assert transformed.payload_format == TF_EXAMPLE
    counts = json.loads(transformed.properties["row_counts"])
    assert counts == json.loads(tfrecord.examples.properties["row_counts"])
    graph = tft.TFTransformOutput(tfrecord.transform.outputs["transform_graph"].get()[0].uri)
    spec = graph.transformed_feature_spec()
    for split in ("train", "eval"):
        names = os.listdir(transformed.split_uri(split))
        assert names and all(n.startswith("transformed_examples-") and n.endswith(".gz")
                             for n in names), names
        records = _tutorial_records(transformed.uri, split)
        assert len(records) == counts[split]
        assert set(records[0].features.feature) == set(spec)


def test_trainer_trains_on_tfrecord_through_the_data_accessor(tfrecord):
    import tensorflow as tf
    from tfx_bsl.public import tfxio

    from toolkit.components.fn_args import DataAccessor

    model = tfrecord.trainer.outputs["model"].get()[0]
    assert "serving_default" in json.loads(model.properties["signatures"])
    import tensorflow_transform as tft

    graph = tft.TFTransformOutput(tfrecord.transform.outputs["transform_graph"].get()[0].uri)
    transformed = tfrecord.transform.outputs["transformed_examples"].get()[0]
    dataset = DataAccessor().tf_dataset_factory(
        [os.path.join(transformed.split_uri("eval"), "*")],
        tfxio.TensorFlowDatasetOptions(batch_size=32, label_key="big_tipper", num_epochs=1),
        graph.transformed_metadata.schema)
    features, label = next(iter(dataset))
    assert label.shape[0] == 32 and label.dtype == tf.int64
    assert set(features) == set(graph.transformed_feature_spec()) - {"big_tipper"}
    batches = list(DataAccessor().record_batch_factory(
        os.path.join(transformed.split_uri("eval"), "*"), None, graph.transformed_metadata.schema))
    assert sum(b.num_rows for b in batches) == json.loads(
        transformed.properties["row_counts"])["eval"]


# -- Evaluator, BulkInferrer -------------------------------------------------------------------
def test_evaluator_gives_the_same_metrics_on_either_payload(tfrecord):
    results = {name: e.outputs["evaluation"].get()[0].load()
               for name, e in tfrecord.evaluators.items()}
    names = results["parquet"].get_slice_names()
    assert sorted(results["tfrecord"].get_slice_names(), key=str) == sorted(names, key=str)
    for slice_key in names:
        a = results["tfrecord"].get_metrics_for_slice(slice_key)
        b = results["parquet"].get_metrics_for_slice(slice_key)
        assert a["example_count"] == b["example_count"], slice_key
        assert a["auc"]["doubleValue"] == pytest.approx(b["auc"]["doubleValue"], abs=1e-9)


def test_bulk_inferrer_reads_tfrecord(tfrecord):
    import pyarrow.parquet as pq

    result = tfrecord.inferrer.outputs["inference_result"].get()[0]
    written = pq.read_table(result.split_uri("eval"))
    assert written.num_rows == json.loads(tfrecord.examples.properties["row_counts"])["eval"]
    assert "prediction" in written.column_names
    from toolkit.components._io import read_split

    features = read_split(tfrecord.examples, "eval")
    assert written.select(features.column_names).equals(features)


# -- parameters and errors ---------------------------------------------------------------------
def test_output_data_format_takes_tfx_names_and_numbers():
    from toolkit.components import CsvExampleGen, ImportExampleGen
    from toolkit.errors import ToolkitError

    for value, name in (("FORMAT_TF_EXAMPLE", TF_EXAMPLE), (6, TF_EXAMPLE),
                        ("FORMAT_PARQUET", "FORMAT_PARQUET"), (15, "FORMAT_PARQUET"),
                        (None, "FORMAT_PARQUET")):
        gen = CsvExampleGen(input_base="x", output_data_format=value)
        assert gen.exec_properties["output_data_format"] == name
    assert ImportExampleGen(input_base="x").exec_properties["output_data_format"] == \
        "FORMAT_PARQUET"
    with pytest.raises(ToolkitError) as info:
        CsvExampleGen(input_base="x", output_data_format="FORMAT_PROTO")
    message = str(info.value)
    assert "\n" not in message
    assert "output_data_format 'FORMAT_PROTO'" in message and "FORMAT_TF_EXAMPLE" in message


def test_unknown_payload_format_names_the_artifact_and_the_format(tmp_path):
    from toolkit.artifacts import Examples
    from toolkit.components._io import read_split
    from toolkit.errors import ToolkitError

    artifact = Examples(uri=str(tmp_path), id=7,
                        properties={"payload_format": "FORMAT_PROTO",
                                    "split_names": '["train"]'})
    (tmp_path / "Split-train").mkdir()
    with pytest.raises(ToolkitError) as info:
        read_split(artifact, "train")
    message = str(info.value)
    assert "\n" not in message
    assert "Examples #7" in message and "FORMAT_PROTO" in message
