"""CsvExampleGen, ImportExampleGen and BulkInferrer with ``beam_pipeline_args`` on the
multi-processing DirectRunner (2 worker processes) give what the same component gives in
process, on the taxi data: the same rows in each split (in the same order), the same
column types, payload format and artifact properties, spans resolved alike, the same
predictions; a bad CSV value found by a worker stops the run with the in-process line.

One module-scoped pipeline runs every component both ways (Beam arguments given to
``context.run``, and once as the context's own); the tests assert on it. CSV files of
mixed column kinds are a further case in the long suite.
"""
from __future__ import annotations

import json
import os
import shutil
import types
from pathlib import Path

import pytest
from datapaths import TAXI_CSV

from toolkit.artifacts import Model
from toolkit.custom import OutputArtifact, component

MULTI_PROCESSING = ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]
#: small chunks, so the 1.9 MB taxi file is read as several pieces by the two workers
CHUNK_BYTES = 400_000
SPANS = {"splits": [{"name": "train", "pattern": "span-{SPAN}/*.csv"}]}
ROLLING = {"rolling_range": {"num_spans": 2}}


@component
def TaxiScoresModel(model: OutputArtifact[Model]):
    """A tiny model on raw serialized taxi examples with two outputs: a probability per
    example and three class scores per example."""
    import tensorflow as tf

    weights = tf.Variable([[0.05, -0.1, 0.2], [0.3, 0.02, -0.2]], dtype=tf.float32)
    spec = {"fare": tf.io.FixedLenFeature([1], tf.float32, default_value=[0.0]),
            "trip_miles": tf.io.FixedLenFeature([1], tf.float32, default_value=[0.0])}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve(examples):
        parsed = tf.io.parse_example(examples, spec)
        x = tf.concat([parsed["fare"], parsed["trip_miles"]], axis=1) / 10.0
        scores = tf.nn.softmax(tf.matmul(x, weights))
        return {"probability": tf.sigmoid(x[:, :1] - x[:, 1:]), "scores": scores}

    holder = tf.Module()
    holder.weights = weights
    tf.saved_model.save(holder, os.path.join(model.uri, "Format-Serving"),
                        signatures={"serving_default": serve})


def _write_spans(base: Path) -> None:
    """Three spans of 5,000 taxi rows each (``span-N/data.csv``)."""
    lines = Path(TAXI_CSV).read_text().splitlines()
    for span in range(1, 4):
        folder = base / f"span-{span}"
        folder.mkdir(parents=True)
        rows = lines[1 + (span - 1) * 5000:1 + span * 5000]
        (folder / "data.csv").write_text("\n".join([lines[0], *rows]) + "\n")


def _write_mixed(base: Path) -> None:
    """Taxi-independent CSV files whose column kinds differ between files (int here, float
    there; true/false with gaps here, 1/0 there), a quoted comma, a column empty everywhere
    and a file with only its header: the column types come from all files together."""
    base.mkdir()
    header = "x,y,flag,label,s,empty\n"
    for name, rows in (("a.csv", 3000), ("b.csv", 2500), ("c.csv", 0)):
        lines = [header]
        for i in range(rows):
            x = str(i) if name == "a.csv" else f"{i}.5"
            y = "" if i % 7 == 0 else str(i % 13)
            flag = ("true", "false", "")[i % 3] if name == "a.csv" else str(i % 2)
            lines.append(f'{x},{y},{flag},{i % 2},"q, {i}",\n')
        (base / name).write_text("".join(lines))


def _bad_copy(folder: Path) -> tuple[str, int]:
    """The taxi data with one non-integer trip_start_hour deep in the file; its line."""
    lines = Path(TAXI_CSV).read_text().splitlines(keepends=True)
    header = lines[0].rstrip("\n").split(",")
    line = 11_500
    fields = lines[line - 1].rstrip("\n").split(",")
    fields[header.index("trip_start_hour")] = "late"
    lines[line - 1] = ",".join(fields) + "\n"
    folder.mkdir()
    (folder / "data.csv").write_text("".join(lines))
    return str(folder / "data.csv"), line


def _pair(context, make, name: str, beam_context=None, **kwargs):
    """The component run in process and on Beam: the two components, in that order. The
    Beam arguments are given to ``context.run``, or are ``beam_context``'s own."""
    memory = make(**kwargs).with_id(f"{name}InProcess")
    beam = make(**kwargs).with_id(f"{name}OnBeam")
    context.run(memory)
    if beam_context is not None:
        beam_context.run(beam)
    else:
        context.run(beam, beam_pipeline_args=MULTI_PROCESSING)
    return memory, beam


def _artifacts(pair, key: str = "examples"):
    return tuple(c.outputs[key].get()[0] for c in pair)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from toolkit import InteractiveContext
    from toolkit.components import (
        BulkInferrer,
        CsvExampleGen,
        ImportExampleGen,
        SchemaGen,
        StatisticsGen,
        csv_reader,
    )
    from toolkit.errors import ComponentError

    base = tmp_path_factory.mktemp("beam_components")
    data = base / "taxi"
    data.mkdir()
    shutil.copy(TAXI_CSV, data / "data.csv")
    _write_spans(base / "spans")
    context = InteractiveContext(pipeline_name="beam_components",
                                 pipeline_root=str(base / "root"))
    out = types.SimpleNamespace(context=context)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(csv_reader, "CHUNK_BYTES", CHUNK_BYTES)
        out.parquet = _pair(context, CsvExampleGen, "CsvParquet", input_base=str(data))
        out.tfrecord = _pair(context, CsvExampleGen, "CsvTFRecord", input_base=str(data),
                             output_data_format="FORMAT_TF_EXAMPLE")
        out.spans = _pair(context, CsvExampleGen, "CsvSpans", input_base=str(base / "spans"),
                          input_config=SPANS, range_config=ROLLING)
        # the TFRecord payload written in process, imported again: two files, hash-split
        imported = base / "imported"
        imported.mkdir()
        written = out.tfrecord[0].outputs["examples"].get()[0]
        for split in written.split_names:
            for path in os.listdir(written.split_uri(split)):
                shutil.copy(os.path.join(written.split_uri(split), path), imported / f"{split}.gz")
        out.on_beam = InteractiveContext(pipeline_name="beam_components",
                                         pipeline_root=str(base / "root"),
                                         beam_pipeline_args=MULTI_PROCESSING)
        out.imported = _pair(context, ImportExampleGen, "Import", beam_context=out.on_beam,
                             input_base=str(imported))

        model = TaxiScoresModel()
        context.run(model)
        out.inferred = _pair(context, BulkInferrer, "Inferrer",
                             examples=out.tfrecord[1].outputs["examples"],
                             model=model.outputs["model"])

        statistics = StatisticsGen(examples=out.parquet[0].outputs["examples"])
        schema = SchemaGen(statistics=statistics.outputs["statistics"])
        context.run(statistics)
        context.run(schema)
        out.bad_path, out.bad_line = _bad_copy(base / "bad")
        out.bad = {}
        for name, args in (("InProcess", []), ("OnBeam", MULTI_PROCESSING)):
            bad = CsvExampleGen(input_base=str(base / "bad"),
                                schema=schema.outputs["schema"]).with_id(f"Bad{name}")
            with pytest.raises(ComponentError) as info:
                context.run(bad, beam_pipeline_args=args)
            out.bad[name] = info.value
    return out


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """CSV files of mixed column kinds (``_write_mixed``), in process and on Beam."""
    from toolkit import InteractiveContext
    from toolkit.components import CsvExampleGen, csv_reader

    base = tmp_path_factory.mktemp("beam_mixed")
    _write_mixed(base / "mixed")
    root = str(base / "root")
    context = InteractiveContext(pipeline_name="beam_mixed", pipeline_root=root)
    on_beam = InteractiveContext(pipeline_name="beam_mixed", pipeline_root=root,
                                 beam_pipeline_args=MULTI_PROCESSING)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(csv_reader, "CHUNK_BYTES", 20_000)  # several chunks per file
        return _pair(context, CsvExampleGen, "CsvMixed", beam_context=on_beam,
                     input_base=str(base / "mixed"))


def _tables(artifacts):
    from toolkit.components._io import read_split

    memory, beam = artifacts
    assert beam.split_names == memory.split_names
    return {split: (read_split(memory, split), read_split(beam, split))
            for split in memory.split_names}


def _sorted_rows(table) -> list[tuple]:
    rows = table.to_pylist()
    return sorted(tuple((k, repr(v)) for k, v in row.items()) for row in rows)


@pytest.mark.parametrize("case", ["parquet", "tfrecord", "spans", "imported"])
def test_examples_on_beam_equal_in_process(runs, case):
    _assert_same_examples(getattr(runs, case))


@pytest.mark.slow
def test_mixed_column_kinds_on_beam_equal_in_process(mixed):
    _assert_same_examples(mixed)


def _assert_same_examples(pair) -> None:
    memory, beam = _artifacts(pair)
    assert beam.properties == memory.properties  # payload, counts, column types, spans
    counts = json.loads(beam.properties["row_counts"])
    assert set(counts) == {"train", "eval"} and sum(counts.values()) > 0
    for split, (want, got) in _tables((memory, beam)).items():
        assert got.schema == want.schema, split
        assert got.num_rows == counts[split]
        assert _sorted_rows(got) == _sorted_rows(want), split
        assert got.equals(want), split  # the same order too: parts are named by input place


def test_payload_files_on_beam(runs):
    """Sharded as TFX shards them, several parts per split (the input was read in chunks)."""
    for case, stem, suffix in (("parquet", "data", ".parquet"),
                               ("tfrecord", "data_tfrecord", ".gz")):
        _, beam = _artifacts(getattr(runs, case))
        for split in beam.split_names:
            names = sorted(os.listdir(beam.split_uri(split)))
            assert len(names) > 1, (case, split)
            assert names == [f"{stem}-{i:05d}-of-{len(names):05d}{suffix}"
                             for i in range(len(names))]
    _, beam = _artifacts(runs.tfrecord)
    with open(os.path.join(beam.split_uri("eval"), "data_tfrecord-00000-of-"
                           f"{len(os.listdir(beam.split_uri('eval'))):05d}.gz"), "rb") as handle:
        assert handle.read(2) == b"\x1f\x8b"  # GZIP, as TFX writes it


def test_spans_resolved_alike_on_beam(runs):
    memory, beam = _artifacts(runs.spans)
    assert (beam.properties["span"], json.loads(beam.properties["spans"])) == (3, [2, 3])
    assert sum(json.loads(beam.properties["row_counts"]).values()) == 10_000
    assert memory.properties["spans"] == beam.properties["spans"]


def test_bulk_inferrer_on_beam_equals_in_process(runs):
    memory, beam = _artifacts(runs.inferred, "inference_result")
    assert beam.properties == memory.properties
    for split, (want, got) in _tables((memory, beam)).items():
        assert got.schema == want.schema, split
        assert {"prediction_probability", "scores_scores", "prediction_scores"} <= set(
            got.column_names)
        assert got.equals(want), split


def test_bad_value_on_beam_names_file_line_and_column(runs):
    memory, beam = runs.bad["InProcess"], runs.bad["OnBeam"]
    expected = (f"{runs.bad_path}, line {runs.bad_line}, column 'trip_start_hour': value "
                "'late' does not parse as INT")
    assert expected in str(memory)
    assert str(beam) == str(memory).replace("BadInProcess", "BadOnBeam")
    assert "\n" not in str(beam)
    executions = runs.context.executions("BadOnBeam")
    assert [e["state"] for e in executions] == ["FAILED"]
    assert all(a.producer != "BadOnBeam" for a in runs.context.store.artifacts())
    folder = os.path.join(runs.context.pipeline_root, "BadOnBeam")
    assert not os.path.isdir(folder) or not any(files for _, _, files in os.walk(folder))
