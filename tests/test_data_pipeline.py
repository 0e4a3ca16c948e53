"""The data half of a pipeline through the public API: artifacts, metadata, cache, lineage."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pandas as pd
import pytest

from datapaths import REPO, TAXI_CSV, taxi_split_counts


def test_artifacts_follow_tfx_layout(taxi_pipeline):
    examples = taxi_pipeline.example_gen.outputs["examples"].get()[0]
    execution_id = taxi_pipeline.first[0].execution_id
    assert examples.uri == os.path.join(taxi_pipeline.root, "CsvExampleGen", "examples",
                                        str(execution_id))
    assert examples.split_names == ["train", "eval"]
    assert examples.payload_format == "FORMAT_PARQUET"
    for split in ("train", "eval"):
        assert os.path.isfile(os.path.join(examples.uri, f"Split-{split}", "data.parquet"))
    stats = taxi_pipeline.statistics_gen.outputs["statistics"].get()[0]
    assert os.path.isfile(os.path.join(stats.uri, "Split-train", "FeatureStats.pb"))
    schema = taxi_pipeline.schema_gen.outputs["schema"].get()[0]
    assert os.path.isfile(os.path.join(schema.uri, "schema.pbtxt"))
    anomalies = taxi_pipeline.validator.outputs["anomalies"].get()[0]
    assert os.path.isfile(os.path.join(anomalies.uri, "Split-eval", "SchemaDiff.pb"))
    # nothing half-written is left beside the published artifacts
    leftovers = [d for _, dirs, _ in os.walk(taxi_pipeline.root) for d in dirs
                 if d.startswith(".staging")]
    assert leftovers == []


def test_split_is_deterministic_and_about_two_to_one(taxi_pipeline):
    import pyarrow.parquet as pq

    examples = taxi_pipeline.example_gen.outputs["examples"].get()[0]
    counts = json.loads(examples.properties["row_counts"])
    source = pd.read_csv(TAXI_CSV)
    assert counts["train"] + counts["eval"] == len(source) == 15002
    assert 0.62 < counts["train"] / len(source) < 0.71
    assert counts == taxi_split_counts()
    train = pq.read_table(examples.split_uri("train")).to_pandas()
    assert list(train.columns) == list(source.columns)
    assert train["fare"].sum() + pq.read_table(examples.split_uri("eval")).to_pandas()[
        "fare"].sum() == pytest.approx(source["fare"].sum())


def test_tfdv_reads_our_statistics_and_schema(taxi_pipeline):
    import tensorflow_data_validation as tfdv

    examples = taxi_pipeline.example_gen.outputs["examples"].get()[0]
    counts = json.loads(examples.properties["row_counts"])
    stats = taxi_pipeline.statistics_gen.outputs["statistics"].get()[0]
    train_stats = tfdv.load_stats_binary(stats.stats_path("train"))
    dataset = train_stats.datasets[0]
    assert dataset.num_examples == counts["train"]
    fare = next(f for f in dataset.features if f.path.step[0] == "fare")
    train = pd.read_parquet(examples.split_uri("train"))
    assert fare.num_stats.mean == pytest.approx(train["fare"].mean(), rel=1e-9)
    # missing values are missing, not NaN: dropoff_latitude is empty in ~3% of rows
    lat = next(f for f in dataset.features if f.path.step[0] == "dropoff_latitude")
    assert lat.num_stats.common_stats.num_missing == train["dropoff_latitude"].isna().sum() > 0
    schema = tfdv.load_schema_text(taxi_pipeline.schema_gen.outputs["schema"].get()[0].schema_path)
    assert {f.name for f in schema.feature} == set(train.columns)
    payment = tfdv.get_domain(schema, "payment_type")
    assert "Credit Card" in payment.value


def test_metadata_records_types_states_events_and_context(taxi_pipeline):
    from ml_metadata.proto import metadata_store_pb2 as pb

    mlmd = taxi_pipeline.context.store.mlmd
    type_names = {t.name for t in mlmd.get_artifact_types()}
    assert {"Examples", "ExampleStatistics", "Schema", "ExampleAnomalies"} <= type_names
    context = mlmd.get_context_by_type_and_name("pipeline", "taxi")
    executions = {e.id: e for e in mlmd.get_executions_by_context(context.id)}
    # only the fixture's own executions: other tests may add more to this pipeline
    first = [executions[r.execution_id].last_known_state for r in taxi_pipeline.first]
    second = [executions[r.execution_id].last_known_state for r in taxi_pipeline.second]
    assert first == [pb.Execution.COMPLETE] * 4 and second == [pb.Execution.CACHED] * 4
    stats_exec = taxi_pipeline.first[1].execution_id
    [execution] = mlmd.get_executions_by_id([stats_exec])
    assert execution.properties["component_id"].string_value == "StatisticsGen"
    assert json.loads(execution.properties["parameters"].string_value)["exclude_splits"] == []
    events = mlmd.get_events_by_execution_ids([stats_exec])
    kinds = sorted((e.type, e.path.steps[0].key) for e in events)
    assert kinds == [(pb.Event.INPUT, "examples"), (pb.Event.OUTPUT, "statistics")]
    artifact = mlmd.get_artifacts_by_id([e.artifact_id for e in events
                                         if e.type == pb.Event.OUTPUT])[0]
    assert artifact.state == pb.Artifact.LIVE
    assert json.loads(artifact.properties["split_names"].string_value) == ["train", "eval"]


def test_second_run_is_cached_with_same_artifacts(taxi_pipeline):
    assert [r.cached for r in taxi_pipeline.first] == [False] * 4
    assert [r.cached for r in taxi_pipeline.second] == [True] * 4
    for a, b in zip(taxi_pipeline.first, taxi_pipeline.second):
        assert {k: [x.id for x in v] for k, v in a.outputs.items()} == \
               {k: [x.id for x in v] for k, v in b.outputs.items()}
        assert "cached" in repr(b) and "ran" in repr(a)


def test_lineage_walks_back_to_the_csv(taxi_pipeline):
    lineage = taxi_pipeline.context.lineage(taxi_pipeline.validator.outputs["anomalies"])
    components = [e["component_id"] for e in lineage.executions]
    assert components == ["ExampleValidator", "StatisticsGen", "CsvExampleGen", "SchemaGen"]
    text = repr(lineage)
    assert "statistics: ExampleStatistics" in text and "examples: Examples" in text


def test_reopened_root_in_a_new_process_continues(taxi_pipeline):
    script = textwrap.dedent(f"""
        import json
        from toolkit import InteractiveContext
        from toolkit.components import CsvExampleGen, StatisticsGen, SchemaGen, ExampleValidator
        import sys
        ctx = InteractiveContext(pipeline_name="taxi", pipeline_root={taxi_pipeline.root!r})
        earlier = [e["id"] for e in ctx.executions()]
        eg = CsvExampleGen(input_base={taxi_pipeline.data_dir!r})
        sg = StatisticsGen(examples=eg.outputs["examples"])
        sc = SchemaGen(statistics=sg.outputs["statistics"])
        ev = ExampleValidator(statistics=sg.outputs["statistics"], schema=sc.outputs["schema"])
        results = [ctx.run(c) for c in (eg, sg, sc, ev)]
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "tensorflow_data_validation"))
        print(json.dumps({{"earlier": earlier, "cached": [r.cached for r in results],
                          "uri": eg.outputs["examples"].get()[0].uri, "heavy": heavy}}))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True, cwd=REPO)
    report = json.loads(out.stdout.strip().splitlines()[-1])
    fixture_ids = [r.execution_id for r in taxi_pipeline.first + taxi_pipeline.second]
    assert set(fixture_ids) <= set(report["earlier"])
    assert report["cached"] == [True, True, True, True]
    assert report["uri"] == taxi_pipeline.example_gen.outputs["examples"].get()[0].uri
    # the other process never imported TensorFlow or TFDV: everything came from the cache
    assert report["heavy"] == []


def test_parameter_change_misses_the_cache(taxi_pipeline):
    from toolkit.components import SchemaGen

    other = SchemaGen(statistics=taxi_pipeline.statistics_gen.outputs["statistics"],
                      infer_feature_shape=False)
    result = taxi_pipeline.context.run(other)
    assert not result.cached
    assert taxi_pipeline.context.run(other).cached


def test_changed_input_data_misses_the_cache(tmp_path):
    from toolkit import InteractiveContext
    from toolkit.components import CsvExampleGen

    data = tmp_path / "data"
    data.mkdir()
    frame = pd.read_csv(TAXI_CSV, nrows=300)
    frame.to_csv(data / "part.csv", index=False)
    context = InteractiveContext(pipeline_name="p", pipeline_root=str(tmp_path / "root"))
    first = context.run(CsvExampleGen(input_base=str(data)))
    frame.iloc[:200].to_csv(data / "part.csv", index=False)
    second = context.run(CsvExampleGen(input_base=str(data)))
    assert not second.cached
    counts = json.loads(second.outputs["examples"][0].properties["row_counts"])
    assert sum(counts.values()) == 200
    assert first.outputs["examples"][0].uri != second.outputs["examples"][0].uri


def test_schema_file_content_is_part_of_the_cache_key(tmp_path, taxi_pipeline):
    from toolkit import InteractiveContext
    from toolkit.components import ImportSchemaGen

    schema_file = tmp_path / "schema.pbtxt"
    original = open(taxi_pipeline.schema_gen.outputs["schema"].get()[0].schema_path).read()
    schema_file.write_text(original)
    context = InteractiveContext(pipeline_name="p", pipeline_root=str(tmp_path / "root"))
    assert not context.run(ImportSchemaGen(schema_file=str(schema_file))).cached
    assert context.run(ImportSchemaGen(schema_file=str(schema_file))).cached
    schema_file.write_text(original + "\n# curated by hand\n")
    assert not context.run(ImportSchemaGen(schema_file=str(schema_file))).cached


def test_deleted_or_truncated_outputs_are_recomputed(tmp_path):
    from toolkit import InteractiveContext
    from toolkit.components import CsvExampleGen

    data = tmp_path / "data"
    data.mkdir()
    pd.read_csv(TAXI_CSV, nrows=500).to_csv(data / "a.csv", index=False)
    context = InteractiveContext(pipeline_name="p", pipeline_root=str(tmp_path / "root"))
    first = context.run(CsvExampleGen(input_base=str(data)))
    parquet = os.path.join(first.outputs["examples"][0].split_uri("train"), "data.parquet")
    with open(parquet, "r+b") as handle:
        handle.truncate(100)
    second = context.run(CsvExampleGen(input_base=str(data)))
    assert not second.cached
    assert pd.read_parquet(second.outputs["examples"][0].split_uri("train")).shape[0] > 0
    import shutil

    shutil.rmtree(second.outputs["examples"][0].uri)
    third = context.run(CsvExampleGen(input_base=str(data)))
    assert not third.cached
    assert context.run(CsvExampleGen(input_base=str(data))).cached


def test_upstream_not_run_names_the_component(tmp_path):
    from toolkit import InteractiveContext
    from toolkit.components import CsvExampleGen, StatisticsGen
    from toolkit.errors import UpstreamNotRunError

    context = InteractiveContext(pipeline_name="p", pipeline_root=str(tmp_path))
    example_gen = CsvExampleGen(input_base=os.path.dirname(TAXI_CSV))
    with pytest.raises(UpstreamNotRunError, match="CsvExampleGen"):
        context.run(StatisticsGen(examples=example_gen.outputs["examples"]))


def test_wrong_artifact_type_is_refused_at_wiring(taxi_pipeline):
    from toolkit.components import SchemaGen
    from toolkit.errors import WiringError

    with pytest.raises(WiringError, match="expects ExampleStatistics.*CsvExampleGen.*Examples"):
        SchemaGen(statistics=taxi_pipeline.example_gen.outputs["examples"])


def test_production_mode_gate_stops_on_anomalies(tmp_path, taxi_pipeline):
    """Eval data with a new payment type, validated against the train schema, fails the gate."""
    import toolkit
    from toolkit import InteractiveContext
    from toolkit.components import CsvExampleGen, ExampleValidator, StatisticsGen
    from toolkit.errors import GateError

    data = tmp_path / "data"
    data.mkdir()
    import csv

    lines = open(TAXI_CSV).read().splitlines()
    # rows with every pickup field present, so the new payment type is the only anomaly
    lines = [lines[0]] + [line for line in lines[1:]
                          if all(next(csv.reader([line]))[i] for i in (0, 6, 7))][:2000]
    lines[1:400] = [line.replace(",Cash,", ",Bitcoin,") for line in lines[1:400]]
    (data / "a.csv").write_text("\n".join(lines) + "\n")
    context = InteractiveContext(pipeline_name="p", pipeline_root=str(tmp_path / "root"))
    example_gen = CsvExampleGen(input_base=str(data))
    context.run(example_gen)
    stats = StatisticsGen(examples=example_gen.outputs["examples"])
    context.run(stats)
    validator = ExampleValidator(statistics=stats.outputs["statistics"],
                                 schema=taxi_pipeline.schema_gen.outputs["schema"])
    interactive = context.run(validator)
    assert "payment_type" in interactive.gate_failure
    toolkit.set_mode("production")
    try:
        with pytest.raises(GateError, match="payment_type.*ENUM_TYPE_UNEXPECTED_STRING_VALUES"):
            context.run(validator)
        allowed = ExampleValidator(statistics=stats.outputs["statistics"],
                                   schema=taxi_pipeline.schema_gen.outputs["schema"],
                                   allowed_anomalies=["ENUM_TYPE_UNEXPECTED_STRING_VALUES"])
        assert context.run(allowed).gate_failure is None
    finally:
        toolkit.set_mode(None)


def test_drift_comparator_is_honoured_with_baseline(tmp_path, taxi_pipeline):
    import tensorflow_data_validation as tfdv
    from toolkit import InteractiveContext
    from toolkit.components import (CsvExampleGen, ExampleValidator, ImportSchemaGen,
                                    StatisticsGen)

    schema = tfdv.load_schema_text(taxi_pipeline.schema_gen.outputs["schema"].get()[0].schema_path)
    tfdv.get_feature(schema, "payment_type").drift_comparator.infinity_norm.threshold = 0.05
    schema_file = tmp_path / "schema.pbtxt"
    tfdv.write_schema_text(schema, str(schema_file))
    data = tmp_path / "cash"
    data.mkdir()
    lines = open(TAXI_CSV).read().splitlines()
    cash = [lines[0]] + [line for line in lines[1:] if ",Cash," in line]
    (data / "a.csv").write_text("\n".join(cash) + "\n")
    context = InteractiveContext(pipeline_name="p", pipeline_root=str(tmp_path / "root"))
    example_gen = CsvExampleGen(input_base=str(data))
    context.run(example_gen)
    stats = StatisticsGen(examples=example_gen.outputs["examples"])
    context.run(stats)
    curated = ImportSchemaGen(schema_file=str(schema_file))
    context.run(curated)
    without = ExampleValidator(statistics=stats.outputs["statistics"],
                               schema=curated.outputs["schema"])
    context.run(without)
    assert without.outputs["anomalies"].get()[0].properties["anomaly_count"] == 0
    drift = ExampleValidator(statistics=stats.outputs["statistics"],
                             schema=curated.outputs["schema"],
                             baseline_statistics=taxi_pipeline.statistics_gen.outputs["statistics"])
    context.run(drift)
    anomalies = drift.outputs["anomalies"].get()[0].load("train")
    assert "payment_type" in anomalies.anomaly_info
    reasons = [r.description for r in anomalies.anomaly_info["payment_type"].reason]
    assert any("Linfty distance between current and previous" in r for r in reasons), reasons


def test_import_example_gen_reads_tfrecords(tmp_path):
    import tensorflow as tf
    from toolkit import InteractiveContext
    from toolkit.components import ImportExampleGen, StatisticsGen

    frame = pd.read_csv(TAXI_CSV, nrows=600)
    folder = tmp_path / "records"
    folder.mkdir()
    with tf.io.TFRecordWriter(str(folder / "part.tfrecord.gz"), options="GZIP") as writer:
        for _, row in frame.iterrows():
            feature = {
                "fare": tf.train.Feature(float_list=tf.train.FloatList(value=[row["fare"]])),
                "trip_start_hour": tf.train.Feature(
                    int64_list=tf.train.Int64List(value=[int(row["trip_start_hour"])])),
                "payment_type": tf.train.Feature(
                    bytes_list=tf.train.BytesList(value=[row["payment_type"].encode()])),
            }
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature))
                         .SerializeToString())
    context = InteractiveContext(pipeline_name="p", pipeline_root=str(tmp_path / "root"))
    gen = ImportExampleGen(input_base=str(folder))
    context.run(gen)
    examples = gen.outputs["examples"].get()[0]
    counts = json.loads(examples.properties["row_counts"])
    assert sum(counts.values()) == 600
    train = pd.read_parquet(examples.split_uri("train"))
    assert set(train["payment_type"]) <= set(frame["payment_type"])
    stats = StatisticsGen(examples=gen.outputs["examples"])
    context.run(stats)
    assert stats.outputs["statistics"].get()[0].load("train").datasets[0].num_examples == counts["train"]


def test_statistics_on_beam_equal_in_memory(taxi_pipeline):
    """With beam_pipeline_args, StatisticsGen runs as a Beam pipeline with the same result."""
    from toolkit.components import StatisticsGen

    on_beam = StatisticsGen(examples=taxi_pipeline.example_gen.outputs["examples"]).with_id(
        "StatisticsGenBeam")
    result = taxi_pipeline.context.run(
        on_beam, beam_pipeline_args=["--runner=DirectRunner", "--direct_num_workers=1"])
    assert not result.cached
    beam_stats = on_beam.outputs["statistics"].get()[0].load("eval").datasets[0]
    memory = taxi_pipeline.statistics_gen.outputs["statistics"].get()[0].load("eval").datasets[0]
    assert beam_stats.num_examples == memory.num_examples
    by_name = {f.path.step[0]: f for f in memory.features}
    for feature in beam_stats.features:
        twin = by_name[feature.path.step[0]]
        if feature.HasField("num_stats"):
            assert feature.num_stats.mean == pytest.approx(twin.num_stats.mean, rel=1e-9)
            assert feature.num_stats.common_stats.num_missing == \
                twin.num_stats.common_stats.num_missing
        else:
            assert feature.string_stats.unique == twin.string_stats.unique
