"""A full disk during an artifact write; very wide, very high-cardinality and very large CSVs.

A full disk fails that execution with one line naming the device's folder, a FAILED
record and no partial output, and leaves earlier artifacts usable. Large inputs are
handled in bounded memory (peak RSS of a child process, bounds stated in the tests and
in docs/reliability.md); CSV inputs above ``STREAM_BYTES`` are read in a stream that
gives the same splits as loading them whole.
"""
from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from reliability_helpers import REPO, TAXI_CSV, child_env, copy_taxi, split_tables, tail

SIZE_CHILD = Path(__file__).resolve().parent / "size_child.py"


def _context(root: Path, metadata: Path | None = None):
    from toolkit import InteractiveContext
    from toolkit.metadata import sqlite_config

    config = sqlite_config(str(metadata)) if metadata is not None else None
    return InteractiveContext(pipeline_name="disk", pipeline_root=str(root),
                              metadata_connection_config=config)


def _random_csv(folder: Path, rows: int) -> Path:
    """Incompressible text: its Parquet is about as large as the CSV."""
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"key": [os.urandom(16).hex() for _ in range(rows)],
                  "other": [os.urandom(8).hex() for _ in range(rows)]}).to_csv(
        folder / "random.csv", index=False)
    return folder


def _assert_clean_failure(context, component_id: str, message: str, device: str) -> None:
    assert "\n" not in message
    assert "no space left on the device holding" in message and device in message
    rows = context.executions(component_id)
    assert rows[-1]["state"] == "FAILED" and "no space left" in rows[-1]["error"]
    assert not any(a.producer == component_id for a in context.store.artifacts())
    leftovers = [p for p in Path(context.pipeline_root, component_id).rglob("*") if p.is_dir()
                 and (p.name.startswith(".staging") or p.name.isdigit())]
    assert leftovers == []


def test_disk_full_while_writing_a_split(tmp_path, monkeypatch):
    """ENOSPC raised by the Parquet writer after its file is opened and partly written
    (simulated)."""
    import pyarrow.parquet as pq

    from toolkit.components import CsvExampleGen
    from toolkit.errors import ComponentError

    small = copy_taxi(tmp_path / "small", rows=300)
    context = _context(tmp_path / "root")
    first = context.run(CsvExampleGen(input_base=str(small)))
    before = split_tables(first.outputs["examples"][0].uri)

    real_write = pq.ParquetWriter.write_table
    calls = []

    def fill_the_disk(writer, table, *args, **kwargs):
        real_write(writer, table.slice(0, 10), *args, **kwargs)  # part of the split lands
        calls.append(writer)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pq.ParquetWriter, "write_table", fill_the_disk)
    other = copy_taxi(tmp_path / "other", rows=500)
    with pytest.raises(ComponentError) as info:
        context.run(CsvExampleGen(input_base=str(other)).with_id("Other"))
    assert calls, "the Parquet writer was never reached"
    _assert_clean_failure(context, "Other", str(info.value), context.pipeline_root)
    monkeypatch.setattr(pq.ParquetWriter, "write_table", real_write)

    again = context.run(CsvExampleGen(input_base=str(small)))
    assert again.cached and again.outputs["examples"][0].uri == first.outputs["examples"][0].uri
    after = split_tables(again.outputs["examples"][0].uri)
    assert all(after[s].equals(before[s]) for s in before)


def _no_small_disk(problem: str) -> None:
    """Fail when ``TOOLKIT_REQUIRE_TMPFS=1`` (set by .ci/run); skip on a developer machine."""
    if os.environ.get("TOOLKIT_REQUIRE_TMPFS", "").strip().lower() not in ("", "0", "false"):
        pytest.fail(f"{problem} (TOOLKIT_REQUIRE_TMPFS=1 makes this a failure)", pytrace=False)
    pytest.skip(f"{problem}; run as root where mount works, or set TOOLKIT_REQUIRE_TMPFS=1 to fail instead")


@pytest.fixture
def small_disk(tmp_path):
    """A 3 MB tmpfs (needs root and mount): a failure under TOOLKIT_REQUIRE_TMPFS=1, else skipped."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0 or not shutil.which("mount"):
        _no_small_disk("mounting a tmpfs needs root and the mount command")
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(disk)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        _no_small_disk(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


@pytest.mark.parametrize("metadata_on_the_full_disk", [False, True],
                         ids=["metadata-elsewhere", "metadata-on-the-full-disk"])
def test_real_full_disk(tmp_path, small_disk, metadata_on_the_full_disk):
    from toolkit.components import CsvExampleGen
    from toolkit.errors import ComponentError

    metadata = (small_disk if metadata_on_the_full_disk else tmp_path) / "metadata.sqlite"
    context = _context(small_disk / "root", metadata)
    small = copy_taxi(tmp_path / "small", rows=300)
    first = context.run(CsvExampleGen(input_base=str(small)))
    before = split_tables(first.outputs["examples"][0].uri)
    big = _random_csv(tmp_path / "big", rows=120_000)
    with pytest.raises(ComponentError) as info:
        context.run(CsvExampleGen(input_base=str(big)).with_id("Big"))
    _assert_clean_failure(context, "Big", str(info.value), str(small_disk))
    assert shutil.disk_usage(small_disk).used < 1 * 2**20, "partial output left on the disk"

    reopened = _context(small_disk / "root", metadata)
    again = reopened.run(CsvExampleGen(input_base=str(small)))
    assert again.cached
    after = split_tables(again.outputs["examples"][0].uri)
    assert all(after[s].equals(before[s]) for s in before)


# -- the streaming reader gives what loading whole gives -----------------------------------
def _both_ways(tmp_path, monkeypatch, folder: Path, **kwargs) -> dict:
    """CsvExampleGen loading whole and streaming in 16 KB blocks: identical splits."""
    import toolkit.components.csv_reader as csv_reader
    import toolkit.components.example_gen as example_gen
    from toolkit.components import CsvExampleGen

    results = []
    for mode in ("whole", "stream"):
        monkeypatch.setattr(example_gen, "STREAM_BYTES", 256 * 2**20 if mode == "whole" else 0)
        monkeypatch.setattr(csv_reader, "STREAM_BLOCK_BYTES", 1 << 14)
        context = _context(tmp_path / f"root-{mode}")
        result = context.run(CsvExampleGen(input_base=str(folder), **kwargs))
        examples = result.outputs["examples"][0]
        results.append((split_tables(examples.uri), examples.properties["row_counts"]))
    (whole, whole_counts), (stream, stream_counts) = results
    assert whole_counts == stream_counts
    assert whole.keys() == stream.keys()
    for split in whole:
        assert stream[split].schema == whole[split].schema, split
        assert stream[split].equals(whole[split]), split
    return whole


def test_streamed_csv_matches_whole_load_on_taxi(tmp_path, monkeypatch):
    folder = tmp_path / "taxi"
    folder.mkdir()
    lines = TAXI_CSV.read_text().splitlines(keepends=True)
    (folder / "a.csv").write_text("".join(lines[:9001]))
    (folder / "b.csv").write_text(lines[0] + "".join(lines[9001:]))
    whole = _both_ways(tmp_path, monkeypatch, folder)
    assert sum(t.num_rows for t in whole.values()) == len(lines) - 1


def test_streamed_csv_matches_whole_load_on_mixed_types(tmp_path, monkeypatch):
    """Per file: ints, floats, booleans, an empty column, zero-padded numbers; across files
    the types widen (int+float -> float, int+text -> text) as the whole-load path does."""
    folder = tmp_path / "mixed"
    folder.mkdir()
    head = "i,f,b,empty,padded,mixed\n"
    (folder / "a.csv").write_text(head + "".join(
        f"{k},{k}.5,{'True' if k % 2 else 'false'},,{k:04d},{k}\n" for k in range(4000))
        + "7,,TRUE,,x,\n")
    (folder / "b.csv").write_text(head + "".join(
        f"{k},{k},{'1' if k % 3 else '0'},,{k},v{k}\n" for k in range(4000)))
    whole = _both_ways(tmp_path, monkeypatch, folder)
    types = {f.name: str(f.type) for f in whole["train"].schema}
    assert types == {"i": "int64", "f": "double", "b": "string", "empty": "string",
                     "padded": "string", "mixed": "string"}


def test_streamed_csv_with_pattern_splits(tmp_path, monkeypatch):
    folder = tmp_path / "presplit"
    for split, rows in (("train", slice(1, 9000)), ("eval", slice(9000, None))):
        (folder / split).mkdir(parents=True)
        lines = TAXI_CSV.read_text().splitlines(keepends=True)
        (folder / split / "data.csv").write_text(lines[0] + "".join(lines[rows]))
    config = {"splits": [{"name": "train", "pattern": "train/*.csv"},
                         {"name": "eval", "pattern": "eval/*.csv"}]}
    whole = _both_ways(tmp_path, monkeypatch, folder, input_config=config)
    assert {k: v.num_rows for k, v in whole.items()} == {"train": 8999, "eval": 6003}


def test_streamed_csv_errors_name_file_and_line(tmp_path, monkeypatch):
    """Errors deep in a streamed file (far beyond the first block) name the right line."""
    import toolkit.components.csv_reader as csv_reader
    import toolkit.components.example_gen as example_gen
    from toolkit.components import CsvExampleGen, ImportSchemaGen
    from toolkit.errors import ComponentError

    monkeypatch.setattr(example_gen, "STREAM_BYTES", 0)
    monkeypatch.setattr(csv_reader, "STREAM_BLOCK_BYTES", 1 << 14)
    lines = TAXI_CSV.read_text().splitlines()
    ragged = tmp_path / "ragged"
    ragged.mkdir()
    bad = list(lines[:3000])
    bad[2500] += ",extra"
    (ragged / "trips.csv").write_text("\n".join(bad) + "\n")
    context = _context(tmp_path / "root")
    with pytest.raises(ComponentError) as info:
        context.run(CsvExampleGen(input_base=str(ragged)))
    assert "trips.csv, line 2501" in str(info.value) and "ragged" in str(info.value)

    typed = tmp_path / "typed"
    typed.mkdir()
    frame = pd.read_csv(TAXI_CSV, nrows=3000)
    frame["trip_seconds"] = frame["trip_seconds"].astype("Int64").astype(str)
    frame.loc[2700, "trip_seconds"] = "12 min"
    frame.to_csv(typed / "trips.csv", index=False)
    schema_file = tmp_path / "schema.pbtxt"
    schema_file.write_text('feature { name: "trip_seconds" type: INT }\n')
    imported = ImportSchemaGen(schema_file=str(schema_file))
    context.run(imported)
    with pytest.raises(ComponentError) as info:
        context.run(CsvExampleGen(input_base=str(typed), schema=imported.outputs["schema"])
                    .with_id("Typed"))
    assert "trips.csv, line 2702, column 'trip_seconds'" in str(info.value)


def test_megabyte_column_name_and_values(tmp_path):
    """1 MB values are data like any other; a 1 MB column name is beyond what the header
    reader takes: refused with one line naming the file, the line and the limit."""
    from toolkit.components import CsvExampleGen
    from toolkit.errors import ComponentError

    values = tmp_path / "values"
    values.mkdir()
    big = "v" * 2**20
    (values / "big.csv").write_text(f"name,x\n{big},1\nsmall,2\n")
    context = _context(tmp_path / "root")
    result = context.run(CsvExampleGen(input_base=str(values)))
    tables = split_tables(result.outputs["examples"][0].uri)
    assert sorted(v for t in tables.values() for v in t.column("name").to_pylist()) == [
        "small", big]

    names = tmp_path / "names"
    names.mkdir()
    (names / "wide.csv").write_text(f"{'n' * 2**20},x\n1,2\n")
    with pytest.raises(ComponentError) as info:
        context.run(CsvExampleGen(input_base=str(names)).with_id("Names"))
    message = str(info.value)
    assert "\n" not in message and len(message) < 500
    assert "wide.csv, line 1: cannot read the header" in message and "131,072" in message


# -- size cases in a child process, peak memory measured (slow) -------------------------------
def _size_child(tmp_path: Path, *args: str, timeout: float = 900) -> dict:
    log = tmp_path / "child.log"
    with open(log, "wb") as out:
        proc = subprocess.run([sys.executable, str(SIZE_CHILD), *args], stdout=subprocess.PIPE,
                              stderr=out, env=child_env(), cwd=REPO, timeout=timeout)
    assert proc.returncode == 0, tail(log)
    report = json.loads(proc.stdout.decode().strip().splitlines()[-1])
    (tmp_path / "report.json").write_text(json.dumps(report, indent=1))
    return report


#: the three size cases, each in a child of its own: (arguments, timeout)
SIZE_CASES = {
    "wide": (("wide",), 900),
    "distinct": (("distinct",), 900),
    "big": (("big", "--gigabytes", "2", "--upto", "CsvExampleGen"), 1200),
}


@pytest.fixture(scope="module")
def size_reports(tmp_path_factory):
    """The three size cases run at once, each in a child process (its peak memory is its
    own ``ru_maxrss``, so running them together changes no bound; each is mostly one
    core's work, so together they take about the time of the longest)."""
    from concurrent.futures import ThreadPoolExecutor

    def one(name: str) -> dict:
        args, timeout = SIZE_CASES[name]
        folder = tmp_path_factory.mktemp(name)
        try:
            return _size_child(folder, *args[:1], str(folder), *args[1:], timeout=timeout)
        finally:
            if name == "big":  # 2 GB of input and its copy: gone as soon as measured
                shutil.rmtree(folder / "data", ignore_errors=True)
                shutil.rmtree(folder / "root", ignore_errors=True)

    with ThreadPoolExecutor(max_workers=len(SIZE_CASES)) as pool:
        futures = {name: pool.submit(one, name) for name in SIZE_CASES}
        return {name: future for name, future in futures.items()}


@pytest.mark.slow
def test_ten_thousand_columns(size_reports):
    """Handled end to end. Peak RSS about 1.5 GB; TFDV's in-memory statistics (~2 min) and
    validate_statistics (~3 min, super-linear in the number of features) dominate."""
    report = size_reports["wide"].result()
    assert "error" not in report, report["error"]
    assert sum(report["row_counts"].values()) == 200
    assert max(report["peak_mb"].values()) < 2500, report["peak_mb"]
    statistics = report["views"]["statistics"]
    assert statistics["capped"] and statistics["html"] < 5 * 2**20, statistics
    assert report["views"]["schema"]["html"] < 8 * 2**20
    # render times stay in report.json; the target for them is bench/bench_views.py --features


@pytest.mark.slow
def test_a_million_distinct_categorical_values(size_reports):
    """Handled end to end; peak RSS under 1.5 GB; the views list top values, not all."""
    report = size_reports["distinct"].result()
    assert "error" not in report, report["error"]
    assert sum(report["row_counts"].values()) == 1_000_000
    assert max(report["peak_mb"].values()) < 1500, report["peak_mb"]
    assert all(v["html"] < 256 * 1024 for v in report["views"].values()), report["views"]


@pytest.mark.slow
def test_two_gigabyte_csv_in_bounded_memory(size_reports):
    """CsvExampleGen streams the 2 GB file: peak RSS under 1.5 GB (about 1 GB measured,
    the same as for 0.5 GB), every row lands in exactly one split."""
    report = size_reports["big"].result()
    assert "error" not in report, report["error"]
    body_rows = len(TAXI_CSV.read_text().splitlines()) - 1
    assert report["input_bytes"] >= 2 * 2**30
    assert sum(report["row_counts"].values()) == report["copies"] * body_rows
    train, evaluation = report["row_counts"]["train"], report["row_counts"]["eval"]
    assert 1.9 < train / evaluation < 2.1
    assert max(report["peak_mb"].values()) < 1500, report["peak_mb"]
    assert report["views"]["examples"]["html"] > 0  # the view renders; its time is a bench target
