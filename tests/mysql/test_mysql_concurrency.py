"""Several processes on one pipeline root and one MySQL store at once: the concurrency
cases of ``tests/reliability/test_concurrency.py``, with its checks, on MariaDB.

Checked: every process exits 0 with no traceback; each execution is recorded once and
claimed by one process, all COMPLETE or CACHED; no two artifacts share a folder and
every registered folder matches its manifest; the pushed versions are distinct and
complete.
"""
from __future__ import annotations

import json
import sys
import textwrap
import time

import pytest

from datapaths import taxi_split_counts
from reliability_helpers import child_args, copy_taxi
from test_concurrency import _assert_store_consistent, _start_all, _wait_all


@pytest.fixture(scope="module")
def taxi_data(tmp_path_factory):
    return copy_taxi(tmp_path_factory.mktemp("taxi") / "data")


def _run_at_once(tmp_path, data, runs: int, pipeline: str, **kwargs) -> list[dict]:
    root = tmp_path / "root"
    start = time.time() + 8  # every child has imported what it needs by then
    reports = [tmp_path / f"report{i}.json" for i in range(runs)]
    commands = [child_args(root, data, pipeline=pipeline, report=r, **kwargs)
                + ["--start-at", str(start)] for r in reports]
    logs = [tmp_path / f"child{i}.log" for i in range(runs)]
    _wait_all(_start_all(commands, logs), logs, timeout=600)
    return [json.loads(r.read_text())["results"] for r in reports]


ROUNDS, PROCESSES, RECORDS = 8, 6, 3


def test_processes_creating_one_store_at_the_same_instant(tmp_path, mysql_store):
    """Six processes open a database that does not exist yet at the same moment (ML
    Metadata creates it and its tables then) and record executions at once; eight rounds,
    each on a new database."""
    script = textwrap.dedent("""
        import os, sys, time
        from toolkit.artifacts import Examples
        from toolkit.metadata import MetadataStore
        from toolkit.metadata_config import mysql_config_from_env
        start, names = float(sys.argv[1]), sys.argv[2:]
        for index, name in enumerate(names):
            time.sleep(max(0.0, start + 1.5 * index - time.time()))
            config = mysql_config_from_env()
            config.mysql.database = name
            store = MetadataStore("race", config)
            for _ in range(%d):
                execution = store.start_execution("Probe", "Probe", "k", "{}", "{}", {})
                store.complete_execution(execution, {"out": [Examples(uri=f"/x/{execution}")]},
                                         0.0)
        print("recorded", flush=True)
    """ % RECORDS)
    names = [f"{mysql_store.mysql.database}_r{i}" for i in range(ROUNDS)]
    start = time.time() + 5
    logs = [tmp_path / f"p{i}.log" for i in range(PROCESSES)]
    command = [sys.executable, "-c", script, str(start)] + names
    _wait_all(_start_all([command] * PROCESSES, logs), logs, timeout=300)
    from toolkit.metadata import MetadataStore

    for name in names:
        config = type(mysql_store)()
        config.CopyFrom(mysql_store)
        config.mysql.database = name
        rows = MetadataStore("race", config).executions()
        assert len(rows) == PROCESSES * RECORDS, name
        assert {r["state"] for r in rows} == {"COMPLETE"}, name


def _assert_pushes(results: list[dict], serving) -> list[str]:
    """Fresh pushes claimed distinct versions, exactly the complete folders in ``serving``."""
    fresh = [r["Pusher"]["properties"]["pushed_model"][0]["pushed_version"]
             for r in results if not r["Pusher"]["cached"]]
    assert fresh and len(fresh) == len(set(fresh)), "two pushes claimed one version"
    versions = sorted(p.name for p in serving.iterdir())
    assert sorted(str(v) for v in fresh) == versions
    for name in versions:
        assert (serving / name / "saved_model.pb").is_file()
        assert any((serving / name / "variables").iterdir())
    return versions


@pytest.mark.slow
def test_four_data_pipelines_at_once(tmp_path, mysql_store, taxi_data):
    results = _run_at_once(tmp_path, taxi_data, 4, "data")
    claimed = [r["execution_id"] for report in results for r in report.values()]
    rows = _assert_store_consistent(tmp_path / "root", "reliability", claimed)
    assert len(rows) == 16
    assert len([r for r in rows if r["state"] == "COMPLETE"]) >= 4
    counts = {json.dumps(r["CsvExampleGen"]["properties"]["examples"][0]["row_counts"])
              for r in results}
    # every process wrote the same splits: those the documented rule (docs/components.md) gives on the raw CSV
    assert [json.loads(json.loads(c)) for c in counts] == [taxi_split_counts()]


@pytest.mark.slow
def test_two_taxi_pipelines_at_once(tmp_path, mysql_store, taxi_data):
    """The whole taxi pipeline (Transform, Trainer, Evaluator, Pusher included), twice at
    once, one root, one destination."""
    serving = tmp_path / "push" / "serving"
    serving.parent.mkdir()
    results = _run_at_once(tmp_path, taxi_data, 2, "taxi", serving=serving)
    claimed = [r["execution_id"] for report in results for r in report.values()]
    rows = _assert_store_consistent(tmp_path / "root", "reliability", claimed)
    assert len(rows) == 16
    assert {r["component_id"] for r in rows if r["state"] == "COMPLETE"} >= {
        "CsvExampleGen", "Transform", "Trainer", "Evaluator", "Pusher"}
    _assert_pushes(results, serving)


@pytest.mark.slow
def test_four_pushes_at_once(tmp_path, mysql_store):
    """A stand-in model and a Pusher, four processes at once, one destination."""
    serving = tmp_path / "push" / "serving"
    serving.parent.mkdir()
    results = _run_at_once(tmp_path, tmp_path, 4, "push", serving=serving)
    claimed = [r["execution_id"] for report in results for r in report.values()]
    rows = _assert_store_consistent(tmp_path / "root", "reliability", claimed)
    assert len(rows) == 8
    for name in _assert_pushes(results, serving):
        assert len(list((serving / name / "variables").iterdir())) == 12
