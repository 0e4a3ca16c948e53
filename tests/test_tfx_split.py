"""ExampleGen splits rows as TFX's ExampleGen does when it writes tf.Example (the default
through ``toolkit.v1``), on TFX's own taxi CSV: each split holds exactly the rows TFX's
algorithm puts there, computed here independently with TensorFlow's protos
(``datapaths.tfx_split_rows``). Parquet keeps the toolkit's own split and cache key."""
from __future__ import annotations

import json
import os
import types
from collections import Counter

import pandas as pd
import pytest

from datapaths import TAXI_CSV, taxi_split_counts, tfx_split_rows


def _typed(rows: list[list[str]], table, float32: bool = True) -> Counter:
    """The CSV text rows as the values the toolkit's table holds (its column types, floats
    as tf.Example's float32 unless ``float32`` is False; an empty cell is a missing value),
    as a multiset to compare row for row."""
    import numpy as np
    import pyarrow as pa

    casts = []
    for field in table.schema:
        if pa.types.is_integer(field.type):
            casts.append(int)
        elif pa.types.is_floating(field.type):
            casts.append((lambda c: float(np.float32(float(c)))) if float32 else float)
        else:
            casts.append(str)
    return Counter(tuple(cast(cell) if cell else None for cast, cell in zip(casts, row))
                   for row in rows)


def _rows(examples, split: str) -> Counter:
    from toolkit.components._io import read_split

    table = read_split(examples, split)
    return Counter(zip(*(table.column(n).to_pylist() for n in table.column_names))), table


@pytest.fixture(scope="module")
def taxi(tmp_path_factory, taxi_dir):
    """The taxi CSV through toolkit.v1's ExampleGen (tf.Example payload) in process,
    StatisticsGen and SchemaGen on its train split; and TFX's split computed independently."""
    from toolkit import InteractiveContext
    from toolkit import v1 as tfx

    root = tmp_path_factory.mktemp("tfx_split")
    context = InteractiveContext(pipeline_name="tfx_split", pipeline_root=str(root))
    gen = tfx.components.CsvExampleGen(input_base=taxi_dir)
    stats = tfx.components.StatisticsGen(examples=gen.outputs["examples"])
    schema = tfx.components.SchemaGen(statistics=stats.outputs["statistics"],
                                      infer_feature_shape=True, exclude_splits=["eval"])
    for component in (gen, stats, schema):
        context.run(component)
    return types.SimpleNamespace(context=context, gen=gen, schema=schema, data=taxi_dir,
                                 examples=gen.outputs["examples"].get()[0],
                                 reference=tfx_split_rows(TAXI_CSV))


def test_v1_splits_hold_the_rows_tfx_puts_there(taxi):
    counts = json.loads(taxi.examples.properties["row_counts"])
    assert counts == {name: len(rows) for name, rows in taxi.reference.items()}
    assert sum(counts.values()) == len(pd.read_csv(TAXI_CSV))
    for split, rows in taxi.reference.items():
        written, table = _rows(taxi.examples, split)
        assert written == _typed(rows, table), split


def test_the_one_pickup_census_tract_row_lands_where_tfx_puts_it(taxi):
    header = open(TAXI_CSV, encoding="utf-8").readline().strip().split(",")
    column = header.index("pickup_census_tract")
    where = {split for split, rows in taxi.reference.items() for row in rows if row[column]}
    assert len(where) == 1
    split = where.pop()
    table = _rows(taxi.examples, split)[1]
    assert table.column("pickup_census_tract").null_count == table.num_rows - 1
    other = "eval" if split == "train" else "train"
    assert _rows(taxi.examples, other)[1].column("pickup_census_tract").null_count == \
        len(taxi.reference[other])


def test_schema_from_the_train_split_has_pickup_census_tract(taxi):
    schema = taxi.schema.outputs["schema"].get()[0]
    with open(schema.schema_path, encoding="utf-8") as handle:
        text = handle.read()
    assert 'name: "pickup_census_tract"' in text
    assert 'name: "dropoff_census_tract"' in text


def test_the_split_is_recorded_in_the_cache_key_only_when_tfx(taxi):
    from toolkit import v1 as tfx
    from toolkit.components import CsvExampleGen

    assert taxi.gen.exec_properties["split_method"] == "tfx"
    # the toolkit's own split keeps the parameters (so the cache key) it always had
    assert "split_method" not in CsvExampleGen(input_base=taxi.data).exec_properties
    assert "split_method" not in tfx.components.CsvExampleGen(
        input_base=taxi.data, split_method="toolkit").exec_properties
    assert CsvExampleGen(input_base=taxi.data,
                         split_method="tfx").exec_properties["split_method"] == "tfx"
    with pytest.raises(Exception, match="split_method 'sha' is not a split method"):
        CsvExampleGen(input_base=taxi.data, split_method="sha")
    again = taxi.context.run(tfx.components.CsvExampleGen(input_base=taxi.data))
    assert again.cached


def test_parquet_keeps_the_toolkits_split_unless_asked(taxi):
    from toolkit.components import CsvExampleGen

    native = CsvExampleGen(input_base=taxi.data).with_id("ParquetGen")
    taxi.context.run(native)
    examples = native.outputs["examples"].get()[0]
    assert examples.payload_format == "FORMAT_PARQUET"
    assert json.loads(examples.properties["row_counts"]) == taxi_split_counts()

    asked = CsvExampleGen(input_base=taxi.data, split_method="tfx").with_id("ParquetTfxGen")
    taxi.context.run(asked)
    examples = asked.outputs["examples"].get()[0]
    for split, rows in taxi.reference.items():
        written, table = _rows(examples, split)
        assert written == _typed(rows, table, float32=False), split


def test_tf_example_with_the_toolkits_split_is_the_old_split(taxi):
    from toolkit import v1 as tfx

    gen = tfx.components.CsvExampleGen(input_base=taxi.data,
                                       split_method="toolkit").with_id("ToolkitSplitGen")
    taxi.context.run(gen)
    assert json.loads(gen.outputs["examples"].get()[0].properties["row_counts"]) == \
        taxi_split_counts()


def test_import_example_gen_hashes_the_records(taxi, tmp_path):
    """TFX's ImportExampleGen hashes each record's bytes as read: importing the train
    split's records splits them by sha256 of those bytes."""
    import hashlib

    from toolkit import v1 as tfx
    from toolkit.components._io import read_records, split_files

    records = [r for path in split_files(taxi.examples, "train") for r in read_records(path)]
    expected: dict[str, Counter] = {"train": Counter(), "eval": Counter()}
    for record in records:
        bucket = int(hashlib.sha256(record).hexdigest(), 16) % 3
        expected["train" if bucket < 2 else "eval"][record] += 1
    source = tmp_path / "records"
    source.mkdir()
    for path in split_files(taxi.examples, "train"):
        os.link(path, source / os.path.basename(path))
    gen = tfx.components.ImportExampleGen(input_base=str(source)).with_id("Import")
    taxi.context.run(gen)
    imported = gen.outputs["examples"].get()[0]
    for split, wanted in expected.items():
        got = Counter(_content(r) for path in split_files(imported, split)
                      for r in read_records(path))
        assert got == Counter({_content(r): n for r, n in wanted.items()}), split


def _content(record: bytes) -> tuple:
    """A tf.Example's features and values, whatever order they were serialized in."""
    import tensorflow as tf

    example = tf.train.Example.FromString(record)
    return tuple(sorted((name, feature.WhichOneof("kind"),
                         tuple(getattr(feature, feature.WhichOneof("kind")).value))
                        for name, feature in example.features.feature.items()
                        if feature.WhichOneof("kind")))


def test_partition_feature_name(tmp_path):
    """Rows sharing the partition feature's value share a split, the one TFX's hash of
    that feature gives; a float feature is refused as TFX refuses it."""
    from toolkit import InteractiveContext
    from toolkit import v1 as tfx

    data = tmp_path / "data"
    data.mkdir()
    lines = ["user,score,weight"] + [f"u{i % 23},{i},{i / 4}" for i in range(90)] + [",61,0.5"]
    csv_path = data / "data.csv"
    csv_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    context = InteractiveContext(pipeline_name="partition", pipeline_root=str(tmp_path / "root"))
    config = tfx.proto.Output(split_config=tfx.proto.SplitConfig(
        splits=[tfx.proto.SplitConfig.Split(name="train", hash_buckets=3),
                tfx.proto.SplitConfig.Split(name="eval", hash_buckets=1)],
        partition_feature_name="user"))
    gen = tfx.components.CsvExampleGen(input_base=str(data), output_config=config)
    context.run(gen)
    examples = gen.outputs["examples"].get()[0]
    reference = tfx_split_rows(str(csv_path), (("train", 3), ("eval", 1)), partition="user")
    for split, rows in reference.items():
        written, table = _rows(examples, split)
        assert written == _typed(rows, table), split
    users = {split: {r[0] for r in rows} for split, rows in reference.items()}
    assert not users["train"] & users["eval"] and users["train"] and users["eval"]

    bad = tfx.components.CsvExampleGen(input_base=str(data), output_config=tfx.proto.Output(
        split_config=tfx.proto.SplitConfig(
            splits=[tfx.proto.SplitConfig.Split(name="train", hash_buckets=1)],
            partition_feature_name="weight"))).with_id("FloatPartition")
    with pytest.raises(Exception, match="'weight' is a float column"):
        context.run(bad)


def test_beam_gives_the_same_rows(taxi, tmp_path):
    from toolkit import v1 as tfx
    from toolkit.components._io import split_files

    beam = ["--runner=DirectRunner", "--direct_num_workers=1"]
    on_beam = tfx.components.CsvExampleGen(input_base=taxi.data).with_id("BeamGen")
    taxi.context.run(on_beam, beam_pipeline_args=beam)
    examples = on_beam.outputs["examples"].get()[0]
    for split in taxi.reference:
        assert _rows(examples, split)[0] == _rows(taxi.examples, split)[0], split

    source = tmp_path / "records"
    source.mkdir()
    for path in split_files(taxi.examples, "eval"):
        os.link(path, source / os.path.basename(path))
    here = tfx.components.ImportExampleGen(input_base=str(source)).with_id("ImportHere")
    there = tfx.components.ImportExampleGen(input_base=str(source)).with_id("ImportBeam")
    taxi.context.run(here)
    taxi.context.run(there, beam_pipeline_args=beam)
    for split in ("train", "eval"):
        assert _rows(there.outputs["examples"].get()[0], split)[0] == \
            _rows(here.outputs["examples"].get()[0], split)[0], split


def test_the_streamed_path_gives_the_same_rows(taxi, monkeypatch):
    """Input read block by block (large CSV) is split as when read whole."""
    from toolkit import v1 as tfx
    from toolkit.components import example_gen

    monkeypatch.setattr(example_gen, "STREAM_BYTES", 0)
    streamed = tfx.components.CsvExampleGen(input_base=taxi.data).with_id("StreamedGen")
    taxi.context.run(streamed)
    for split in taxi.reference:
        assert _rows(streamed.outputs["examples"].get()[0], split)[0] == \
            _rows(taxi.examples, split)[0], split
