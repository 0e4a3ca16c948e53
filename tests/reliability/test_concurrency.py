"""Several processes on one pipeline root and one metadata store at once.

Checked: every process finishes with exit 0; no SQLite "database is locked" (or any
traceback) reaches the user; each execution is recorded once and claimed by one
process; no two artifacts share a folder and every registered folder is complete;
pushed versions are distinct and complete.
"""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from datapaths import taxi_split_counts
from reliability_helpers import (REPO, child_args, child_env, context, copy_taxi, tail)

LOCKED = ("database is locked", "subset of tables", "Traceback")


def _start_all(commands: list[list[str]], logs: list[Path], env=None, cwd=REPO):
    procs = []
    for command, log in zip(commands, logs):
        with open(log, "wb") as out:
            procs.append(subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                          env=env or child_env(), cwd=cwd))
    return procs


def _wait_all(procs, logs, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    try:
        for proc in procs:
            proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    for proc, log in zip(procs, logs):
        text = log.read_text(errors="replace")
        assert proc.returncode == 0, f"{log.name} exited {proc.returncode}:\n{tail(log)}"
        for bad in LOCKED:
            assert bad not in text, f"{bad!r} reached the user in {log.name}:\n{tail(log)}"


def _manifest_ok(uri: str) -> bool:
    try:
        files = json.loads(Path(uri, ".toolkit-manifest.json").read_text())
    except (OSError, ValueError):
        return False
    return all(Path(uri, rel).is_file() and Path(uri, rel).stat().st_size == size
               for rel, size in files.items())


def _assert_store_consistent(root: Path, name: str, claimed: list[int]) -> list[dict]:
    """Each execution recorded once, claimed by exactly one process; artifacts distinct
    and complete."""
    ctx = context(root, name)
    rows = list(ctx.executions())
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids))
    assert sorted(claimed) == sorted(ids), "an execution recorded but not run, or run twice"
    assert {r["state"] for r in rows} <= {"COMPLETE", "CACHED"}, rows
    artifacts = [a for a in ctx.store.artifacts() if a.state == "LIVE"]
    uris = [a.uri for a in artifacts]
    assert len(uris) == len(set(uris)), "two artifacts registered in one folder"
    assert all(_manifest_ok(uri) for uri in uris)
    leftovers = [str(p) for p in root.rglob(".staging-*")]
    assert leftovers == []
    return rows


# -- fast: the store itself, and the four data components -------------------------------------
def test_processes_creating_one_store_at_the_same_instant(tmp_path):
    """Six processes open a store that does not exist yet at the same moment (MLMD says
    "a subset of tables ... please retry" to the losers) and record executions at once."""
    script = textwrap.dedent("""
        import sys, time
        from toolkit.metadata import MetadataStore, sqlite_config
        from toolkit.artifacts import Examples
        time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
        store = MetadataStore("race", sqlite_config(sys.argv[1]))
        for _ in range(20):
            execution = store.start_execution("Probe", "Probe", "k", "{}", "{}", {})
            store.complete_execution(execution, {"out": [Examples(uri=f"/x/{execution}")]}, 0.0)
        print("recorded", flush=True)
    """)
    database = tmp_path / "metadata.sqlite"
    start = time.time() + 6
    logs = [tmp_path / f"p{i}.log" for i in range(6)]
    procs = _start_all([[sys.executable, "-c", script, str(database), str(start)]] * 6, logs)
    _wait_all(procs, logs, timeout=180)
    from toolkit.metadata import MetadataStore, sqlite_config

    rows = MetadataStore("race", sqlite_config(str(database))).executions()
    assert len(rows) == 120 and {r["state"] for r in rows} == {"COMPLETE"}


def test_four_processes_run_the_data_components_on_one_root(tmp_path):
    data = copy_taxi(tmp_path / "data")
    root = tmp_path / "root"
    start = time.time() + 8
    reports = [tmp_path / f"report{i}.json" for i in range(4)]
    commands = [child_args(root, data, report=r) + ["--start-at", str(start)] for r in reports]
    logs = [tmp_path / f"child{i}.log" for i in range(4)]
    _wait_all(_start_all(commands, logs), logs, timeout=400)

    results = [json.loads(r.read_text())["results"] for r in reports]
    claimed = [res["execution_id"] for report in results for res in report.values()]
    rows = _assert_store_consistent(root, "reliability", claimed)
    assert len(rows) == 16
    counts = {json.dumps(r["CsvExampleGen"]["properties"]["examples"][0]["row_counts"])
              for r in results}
    # every process wrote the same splits: those the documented rule (docs/components.md) gives on the raw CSV
    assert [json.loads(json.loads(c)) for c in counts] == [taxi_split_counts()]


# -- slow: the exported taxi pipeline, 2 and 4 headless runs at once --------------------------
@pytest.mark.slow
def test_exported_taxi_pipeline_runs_at_once(tmp_path):
    runs = 4  # (two at once is a case of four: the single flight and cache races are the same)
    root, push_root = tmp_path / "pipeline", tmp_path / "push"
    serving = push_root / "serving"
    push_root.mkdir()
    env = child_env(TOOLKIT_PUSH_ROOT=str(push_root))
    commands = [[sys.executable, "-m", "toolkit.cli", "run", str(REPO / "export" / "taxi.ipynb"),
                 "-p", "pipeline_root", str(root), "-p", "serving_dir", str(serving),
                 "-o", str(tmp_path / f"run{i}"), "--quiet"] for i in range(runs)]
    logs = [tmp_path / f"run{i}.log" for i in range(runs)]
    _wait_all(_start_all(commands, logs, env=env), logs, timeout=1500)

    summaries = [json.loads((tmp_path / f"run{i}" / "summary.json").read_text())
                 for i in range(runs)]
    assert all(s["status"] == "succeeded" for s in summaries)
    for i in range(runs):
        executed = (tmp_path / f"run{i}" / "taxi.ipynb").read_text()
        assert "database is locked" not in executed
    claimed = [e["execution_id"] for s in summaries for e in s["executions"]]
    rows = _assert_store_consistent(root, "taxi", claimed)
    by_id = {r["id"]: r for r in rows}

    pushes = [(s, e) for s in summaries for e in s["executions"] if e["component_id"] == "Pusher"]
    assert len(pushes) == runs
    fresh = [s["pushed_version"] for s, e in pushes if not e["cached"]]
    assert fresh and len(fresh) == len(set(fresh)), "two pushes claimed one version"
    versions = sorted(p.name for p in serving.iterdir())
    assert all(name.isdigit() for name in versions), versions
    assert sorted(fresh) == versions
    for s, e in pushes:
        assert by_id[e["execution_id"]]["state"] in ("COMPLETE", "CACHED")
        assert s["pushed_version"] in versions
    for name in versions:
        assert (serving / name / "saved_model.pb").is_file()
        assert any((serving / name / "variables").iterdir())
