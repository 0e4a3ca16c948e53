"""Bad input stops with one readable message, a failed execution, and nothing left behind."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pandas as pd
import pytest

from datapaths import REPO, TAXI_CSV


def _context(tmp_path):
    from toolkit import InteractiveContext

    return InteractiveContext(pipeline_name="bad", pipeline_root=str(tmp_path / "root"))


def _assert_failed_cleanly(context, component_id: str):
    executions = context.executions(component_id)
    assert executions and executions[-1]["state"] == "FAILED"
    assert executions[-1]["error"]
    assert context.store.artifacts() == [] or all(
        a.producer != component_id for a in context.store.artifacts())
    folder = os.path.join(context.pipeline_root, component_id)
    leftovers = [os.path.join(r, d) for r, dirs, _ in os.walk(folder) for d in dirs
                 if d.startswith(".staging") or d.isdigit()]
    assert leftovers == []


def _run_csv(tmp_path, folder, schema=None):
    from toolkit.components import CsvExampleGen
    from toolkit.errors import ComponentError

    context = _context(tmp_path)
    with pytest.raises(ComponentError) as info:
        context.run(CsvExampleGen(input_base=str(folder), schema=schema))
    _assert_failed_cleanly(context, "CsvExampleGen")
    message = str(info.value)
    assert "\n" not in message
    assert info.value.__cause__ is None  # our own message, not a chained traceback
    return message


def test_missing_input_folder(tmp_path):
    message = _run_csv(tmp_path, tmp_path / "nowhere")
    assert "nowhere" in message and "does not exist" in message


def test_empty_input_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    message = _run_csv(tmp_path, tmp_path / "empty")
    assert "no CSV files" in message and "empty" in message


def test_ragged_row_names_file_and_line(tmp_path):
    folder = tmp_path / "ragged"
    folder.mkdir()
    lines = open(TAXI_CSV).read().splitlines()[:50]
    lines[37] = lines[37] + ",extra"
    (folder / "trips.csv").write_text("\n".join(lines) + "\n")
    message = _run_csv(tmp_path, folder)
    assert "trips.csv, line 38" in message and "ragged" in message


def test_bytes_that_are_not_utf8(tmp_path):
    folder = tmp_path / "latin1"
    folder.mkdir()
    lines = open(TAXI_CSV).read().splitlines()[:30]
    raw = "\n".join(lines).encode() + b"\n" + lines[5].replace("Cash", "Ca\xe9sh").encode("latin-1") + b"\n"
    (folder / "trips.csv").write_bytes(raw)
    message = _run_csv(tmp_path, folder)
    assert "trips.csv, line 31" in message and "UTF-8" in message


def test_header_differs_between_files(tmp_path):
    folder = tmp_path / "two"
    folder.mkdir()
    frame = pd.read_csv(TAXI_CSV, nrows=40)
    frame.to_csv(folder / "a.csv", index=False)
    frame.rename(columns={"fare": "fare_usd"}).to_csv(folder / "b.csv", index=False)
    message = _run_csv(tmp_path, folder)
    assert "b.csv" in message and "a.csv" in message and "fare_usd" in message


def test_value_that_does_not_parse_as_the_curated_schema_type(tmp_path):
    from toolkit.components import ImportSchemaGen

    folder = tmp_path / "typed"
    folder.mkdir()
    frame = pd.read_csv(TAXI_CSV, nrows=100)
    frame["trip_seconds"] = frame["trip_seconds"].astype("Int64").astype(str)
    frame.loc[62, "trip_seconds"] = "12 min"
    frame.to_csv(folder / "trips.csv", index=False)
    schema_file = tmp_path / "schema.pbtxt"
    schema_file.write_text('feature { name: "trip_seconds" type: INT }\n'
                           'feature { name: "fare" type: FLOAT }\n')
    context = _context(tmp_path)
    imported = ImportSchemaGen(schema_file=str(schema_file))
    context.run(imported)
    from toolkit.components import CsvExampleGen
    from toolkit.errors import ComponentError

    with pytest.raises(ComponentError) as info:
        context.run(CsvExampleGen(input_base=str(folder), schema=imported.outputs["schema"]))
    message = str(info.value)
    assert "trips.csv, line 64, column 'trip_seconds'" in message and "'12 min'" in message
    assert "INT" in message
    _assert_failed_cleanly(context, "CsvExampleGen")


def test_run_killed_halfway_is_not_reused_and_reruns(tmp_path):
    """SIGKILL a process in the middle of writing an artifact, then run again."""
    root = tmp_path / "root"
    marker = tmp_path / "halfway"
    data = tmp_path / "data"
    data.mkdir()
    pd.read_csv(TAXI_CSV, nrows=1000).to_csv(data / "a.csv", index=False)
    script = textwrap.dedent(f"""
        import os, time
        from toolkit import InteractiveContext
        from toolkit.components import CsvExampleGen, _io
        original = _io.write_split
        def slow_write(examples, split, table):
            original(examples, split, table)
            open({str(marker)!r}, "w").close()
            time.sleep(60)
        import toolkit.components.example_gen as eg
        eg.write_split = slow_write
        ctx = InteractiveContext(pipeline_name="k", pipeline_root={str(root)!r})
        ctx.run(CsvExampleGen(input_base={str(data)!r}))
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO)
    deadline = time.time() + 60
    while not marker.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.1)
    assert marker.exists(), "the child never reached the middle of its write"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    from toolkit import InteractiveContext
    from toolkit.components import CsvExampleGen

    context = InteractiveContext(pipeline_name="k", pipeline_root=str(root))
    assert [e["state"] for e in context.executions()] == ["RUNNING"]
    staged = [d for _, dirs, _ in os.walk(root) for d in dirs if d.startswith(".staging")]
    assert staged, "the killed run left its staging folder"
    result = context.run(CsvExampleGen(input_base=str(data)))
    assert not result.cached
    states = [e["state"] for e in context.executions()]
    assert states == ["FAILED", "COMPLETE"]
    assert "abandoned" in context.executions()[0]["error"]
    staged = [d for _, dirs, _ in os.walk(root) for d in dirs if d.startswith(".staging")]
    assert staged == []
    assert sum(pd.read_parquet(result.outputs["examples"][0].split_uri(s)).shape[0]
               for s in ("train", "eval")) == 1000
