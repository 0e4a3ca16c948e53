"""Spans and versions in ExampleGen (TFX's {SPAN}/{VERSION}/date patterns and range
configs), and the resolvers built on them: the latest N spans, and the previous span's
statistics as ExampleValidator's drift baseline."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from datapaths import TAXI_CSV

PATTERN = "span-{SPAN}/ver-{VERSION}/*.csv"


def _rows() -> tuple[str, list[str]]:
    lines = Path(TAXI_CSV).read_text().splitlines()
    return lines[0], lines[1:]


def _write(path: Path, header: str, rows: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([header, *rows]) + "\n")


@pytest.fixture(scope="module")
def span_data(tmp_path_factory) -> Path:
    """Four spans of 1,000 taxi rows each (``span-N/ver-1``); span 4 has a version 2 that
    keeps 800 of its rows."""
    base = tmp_path_factory.mktemp("spans")
    header, rows = _rows()
    for span in range(1, 5):
        chunk = rows[(span - 1) * 1000:span * 1000]
        _write(base / f"span-{span}" / "ver-1" / "data.csv", header, chunk)
    _write(base / "span-4" / "ver-2" / "data.csv", header, rows[3000:3800])
    return base


def _context(tmp_path: Path, name: str = "root"):
    from toolkit import InteractiveContext

    return InteractiveContext(pipeline_name="spans", pipeline_root=str(tmp_path / name))


def _gen(base, pattern=PATTERN, **kwargs):
    from toolkit.components import CsvExampleGen

    return CsvExampleGen(input_base=str(base),
                         input_config={"splits": [{"name": "single_split", "pattern": pattern}]},
                         **kwargs)


def _ingest(context, base, pattern=PATTERN, **kwargs):
    gen = _gen(base, pattern, **kwargs)
    result = context.run(gen)
    return gen.outputs["examples"].get()[0], result


def _rows_of(examples) -> int:
    return sum(json.loads(examples.properties["row_counts"]).values())


def test_latest_span_at_its_latest_version(tmp_path, span_data):
    examples, _ = _ingest(_context(tmp_path), span_data)
    assert examples.properties["span"] == 4
    assert examples.properties["version"] == 2
    assert json.loads(examples.properties["spans"]) == [4]
    assert examples.split_names == ["train", "eval"]  # one pattern: hash-split as before
    assert _rows_of(examples) == 800


def test_static_range_reads_one_span(tmp_path, span_data):
    import toolkit.v1 as tfx

    context = _context(tmp_path)
    examples, _ = _ingest(context, span_data, range_config={
        "static_range": {"start_span_number": 2, "end_span_number": 2}})
    assert (examples.properties["span"], examples.properties["version"]) == (2, 1)
    assert _rows_of(examples) == 1000
    # TFX's messages work as well, and the store keeps the properties
    gen = tfx.components.CsvExampleGen(
        input_base=str(span_data),
        input_config=tfx.proto.Input(splits=[tfx.proto.Input.Split(name="single_split",
                                                                   pattern=PATTERN)]),
        range_config=tfx.proto.RangeConfig(static_range=tfx.proto.StaticRange(
            start_span_number=3, end_span_number=3)))
    context.run(gen)
    stored = context.store.artifact(gen.outputs["examples"].get()[0].id)
    assert (stored.properties["span"], stored.properties["version"]) == (3, 1)


def test_rolling_window_of_two_spans(tmp_path, span_data):
    examples, _ = _ingest(_context(tmp_path), span_data,
                          range_config={"rolling_range": {"num_spans": 2}})
    assert examples.properties["span"] == 4
    assert json.loads(examples.properties["spans"]) == [3, 4]
    assert _rows_of(examples) == 1000 + 800


def test_missing_span_and_empty_pattern_name_the_pattern(tmp_path, span_data):
    from toolkit.errors import ComponentError

    context = _context(tmp_path)
    with pytest.raises(ComponentError) as missing:
        _ingest(context, span_data, range_config={
            "static_range": {"start_span_number": 9, "end_span_number": 9}})
    message = str(missing.value)
    assert "\n" not in message and "span 9" in message and PATTERN in message
    assert str(span_data) in message
    with pytest.raises(ComponentError) as nothing:
        _ingest(context, span_data, pattern="day-{SPAN}/*.csv")
    message = str(nothing.value)
    assert "\n" not in message and "no file matches pattern 'day-{SPAN}/*.csv'" in message
    assert str(span_data) in message


def test_date_patterns(tmp_path):
    from toolkit.components._spans import date_to_span, span_to_date

    header, rows = _rows()
    base = tmp_path / "dated"
    days = ["2024-01-30", "2024-01-31", "2024-02-01"]
    for number, day in enumerate(days):
        _write(base / day / "data.csv", header, rows[number * 500:(number + 1) * 500])
    pattern = "{YYYY}-{MM}-{DD}/*.csv"
    context = _context(tmp_path)
    latest, _ = _ingest(context, base, pattern)
    assert latest.properties["span"] == date_to_span(2024, 2, 1) == 19754
    assert str(span_to_date(latest.properties["span"])) == "2024-02-01"
    assert "version" not in latest.properties
    one_day = date_to_span(2024, 1, 30)
    first, _ = _ingest(context, base, pattern, range_config={
        "static_range": {"start_span_number": one_day, "end_span_number": one_day}})
    assert first.properties["span"] == one_day and _rows_of(first) == 500
    window, _ = _ingest(context, base, pattern, range_config={"rolling_range": {"num_spans": 2}})
    assert json.loads(window.properties["spans"]) == [19753, 19754]


def test_split_patterns_map_to_splits(tmp_path):
    header, rows = _rows()
    base = tmp_path / "presplit"
    for span in (1, 2):
        _write(base / f"span-{span:02d}" / "train" / "a.csv", header, rows[:300])
        _write(base / f"span-{span:02d}" / "eval" / "a.csv", header, rows[300:400])
    from toolkit.components import CsvExampleGen

    gen = CsvExampleGen(input_base=str(base), input_config={"splits": [
        {"name": "train", "pattern": "span-{SPAN:2}/train/*.csv"},
        {"name": "eval", "pattern": "span-{SPAN:2}/eval/*.csv"}]})
    _context(tmp_path).run(gen)
    examples = gen.outputs["examples"].get()[0]
    assert examples.properties["span"] == 2
    assert json.loads(examples.properties["row_counts"]) == {"train": 300, "eval": 100}


def test_cache_follows_the_files_read(tmp_path, span_data):
    base = tmp_path / "data"
    shutil.copytree(span_data, base)
    context = _context(tmp_path)
    static = {"static_range": {"start_span_number": 2, "end_span_number": 2}}
    assert not _ingest(context, base, range_config=static)[1].cached
    assert not _ingest(context, base)[1].cached
    assert _ingest(context, base)[1].cached
    header, rows = _rows()
    _write(base / "span-5" / "ver-1" / "data.csv", header, rows[4000:4400])
    # a new span the static range does not read leaves its cache entry valid ...
    examples, result = _ingest(context, base, range_config=static)
    assert result.cached and examples.properties["span"] == 2
    # ... and is what "the latest span" reads now
    examples, result = _ingest(context, base)
    assert not result.cached
    assert examples.properties["span"] == 5 and _rows_of(examples) == 400


def test_without_span_config_the_cache_key_is_unchanged(tmp_path, taxi_dir):
    from toolkit.cache import cache_key, fingerprint_path
    from toolkit.components import CsvExampleGen

    gen = CsvExampleGen(input_base=taxi_dir)
    assert "range_config" not in gen.exec_properties
    assert gen.fingerprints() == {"input_base": fingerprint_path(taxi_dir, "tree")}
    key = cache_key(gen, {}, "store")
    assert "range_config" not in key.parameters


def test_span_range_strategy_returns_the_latest_spans(tmp_path, span_data):
    import toolkit.v1 as tfx
    from toolkit.artifacts import Examples
    from toolkit.base_component import Channel
    from toolkit.components.resolver import Resolver, SpanRangeStrategy

    context = _context(tmp_path)
    gen = None
    for span in (1, 2, 4, 3):  # ingested out of order: a backfilled span 3
        gen = _gen(span_data, range_config={
            "static_range": {"start_span_number": span, "end_span_number": span}})
        context.run(gen)
    window = Resolver(strategy_class=SpanRangeStrategy, config={"num_spans": 2},
                      examples=gen.outputs["examples"]).with_id("window")
    context.run(window)
    assert [a.properties["span"] for a in window.outputs["examples"].get()] == [4, 3]
    assert window.outputs["examples"].get()[0].properties["version"] == 2
    static = tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.SpanRangeStrategy,
        config={"range_config": tfx.proto.RangeConfig(static_range=tfx.proto.StaticRange(
            start_span_number=1, end_span_number=2))},
        examples=Channel(type=Examples)).with_id("first_two")
    context.run(static)
    assert [a.properties["span"] for a in static.outputs["examples"].get()] == [2, 1]


def test_previous_span_statistics_are_the_drift_baseline(tmp_path):
    import tensorflow_data_validation as tfdv

    from toolkit.components import (
        ExampleValidator,
        ImportSchemaGen,
        SchemaGen,
        StatisticsGen,
    )
    from toolkit.components.resolver import (
        PreviousSpanStrategy,
        Resolver,
        previous_span_statistics,
    )

    header, rows = _rows()
    base = tmp_path / "daily"
    _write(base / "span-1" / "data.csv", header, rows[:1000])
    _write(base / "span-2" / "data.csv", header, rows[1000:2000])
    credit = [r for r in rows[2000:6000] if ",Credit Card," in r][:600]
    _write(base / "span-3" / "data.csv", header, credit)  # everyone pays by card: drift

    context = _context(tmp_path)
    anomalies = {}
    schema = None
    for span in (1, 2, 3):
        gen = _gen(base, "span-{SPAN}/*.csv", range_config={
            "static_range": {"start_span_number": span, "end_span_number": span}})
        context.run(gen)
        stats = StatisticsGen(examples=gen.outputs["examples"])
        context.run(stats)
        if schema is None:
            inferred = SchemaGen(statistics=stats.outputs["statistics"])
            context.run(inferred)
            proto = inferred.outputs["schema"].get()[0].load()
            tfdv.get_feature(proto, "payment_type").drift_comparator.infinity_norm.threshold = 0.2
            tfdv.write_schema_text(proto, str(tmp_path / "schema.pbtxt"))
            schema = ImportSchemaGen(schema_file=str(tmp_path / "schema.pbtxt"))
            context.run(schema)
        previous = Resolver(strategy_class=PreviousSpanStrategy,
                            statistics=stats.outputs["statistics"]).with_id("previous_statistics")
        context.run(previous)
        baseline = previous.outputs["statistics"].get()
        helper = previous_span_statistics(context, stats.outputs["statistics"]).get()
        assert [a.id for a in helper] == [a.id for a in baseline]
        if span == 1:
            assert baseline == []
        else:
            assert context.store.inputs_of(context.store.producer_of(baseline[0].id))[
                "examples"][0].properties["span"] == span - 1
        validator = ExampleValidator(statistics=stats.outputs["statistics"],
                                     schema=schema.outputs["schema"],
                                     baseline_statistics=previous.outputs["statistics"])
        context.run(validator)
        found = validator.outputs["anomalies"].get()[0].load("train")
        anomalies[span] = [r.description for r in found.anomaly_info["payment_type"].reason] \
            if "payment_type" in found.anomaly_info else []
    drift = "Linfty distance between current and previous"
    assert not any(drift in r for r in anomalies[1] + anomalies[2]), anomalies
    assert any(drift in r for r in anomalies[3]), anomalies


def test_import_example_gen_reads_spans(tmp_path, span_data):
    from toolkit.components import ImportExampleGen

    context = _context(tmp_path)
    base = tmp_path / "records"
    for span in (1, 2):
        examples, _ = _ingest(context, span_data, output_data_format="FORMAT_TF_EXAMPLE",
                              range_config={"static_range": {"start_span_number": span,
                                                             "end_span_number": span}})
        shutil.copytree(examples.uri, base / f"span-{span}")
    gen = ImportExampleGen(input_base=str(base), input_config={"splits": [
        {"name": "train", "pattern": "span-{SPAN}/Split-train/*"},
        {"name": "eval", "pattern": "span-{SPAN}/Split-eval/*"}]},
        range_config={"rolling_range": {"num_spans": 2}})
    context.run(gen)
    imported = gen.outputs["examples"].get()[0]
    assert json.loads(imported.properties["spans"]) == [1, 2]
    assert _rows_of(imported) == 2000


def test_a_row_keeps_its_split_whatever_is_read_with_it(tmp_path):
    """A rolling window must never train on a row that another window evaluates. pandas
    holds an integer column as float when any row read with it misses a value, so the
    split hash must not depend on that: span 1 has every ``trip_seconds``, span 2 misses
    some, and span 1's rows fall in the same splits read alone and in the window."""
    from toolkit.components._io import read_split

    header, rows = _rows()
    column = header.split(",").index("trip_seconds")
    complete = [r for r in rows if r.split(",")[column] != ""]
    missing = [r for r in rows if r.split(",")[column] == ""]
    assert missing and len(complete) > 2000
    _write(tmp_path / "data" / "span-1" / "ver-1" / "data.csv", header, complete[:1000])
    _write(tmp_path / "data" / "span-2" / "ver-1" / "data.csv", header,
           complete[1000:1500] + missing)
    context = _context(tmp_path)
    alone, _ = _ingest(context, tmp_path / "data", range_config={
        "static_range": {"start_span_number": 1, "end_span_number": 1}})
    window, _ = _ingest(context, tmp_path / "data", range_config={
        "static_range": {"start_span_number": 1, "end_span_number": 2}})

    def splits(examples) -> dict:
        found = {}
        for split in ("train", "eval"):
            table = read_split(examples, split).to_pandas()
            assert table["trip_seconds"].dtype.kind == ("i" if examples is alone else "f")
            keys = table[["trip_start_timestamp", "fare", "trip_miles", "pickup_latitude",
                          "company"]].astype(str)
            for key in keys.itertuples(index=False):
                found[tuple(key)] = split
        return found

    in_alone, in_window = splits(alone), splits(window)
    assert len(in_alone) > 900 and set(in_alone.values()) == {"train", "eval"}
    assert {key: in_window[key] for key in in_alone} == in_alone
