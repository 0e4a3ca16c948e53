"""Damaged state under a pipeline root: artifacts behind cached executions, the metadata store.

Each case: the toolkit notices, says what happened in one line, and recomputes (the
results equal those of the undamaged run) instead of reusing bad data; or, for a store
written by a newer ML Metadata, refuses with one line and touches nothing.
"""
from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from reliability_helpers import copy_taxi, split_tables


def _run(root: Path, data: Path):
    from toolkit import InteractiveContext
    from toolkit.components import CsvExampleGen, StatisticsGen

    context = InteractiveContext(pipeline_name="damaged", pipeline_root=str(root))
    example_gen = CsvExampleGen(input_base=str(data))
    statistics_gen = StatisticsGen(examples=example_gen.outputs["examples"])
    results = [context.run(example_gen), context.run(statistics_gen)]
    return context, results


def _stats(result) -> dict[str, bytes]:
    uri = Path(result.outputs["statistics"][0].uri)
    return {p.parent.name: p.read_bytes() for p in sorted(uri.glob("Split-*/FeatureStats.pb"))}


def _snapshot(results) -> tuple[dict, dict]:
    """What the run produced: split tables and statistics bytes."""
    return split_tables(results[0].outputs["examples"][0].uri), _stats(results[1])


def _same_results(snapshot, second) -> None:
    tables, stats = snapshot
    b = split_tables(second[0].outputs["examples"][0].uri)
    assert tables.keys() == b.keys() and all(tables[s].equals(b[s]) for s in tables)
    assert stats == _stats(second[1])


def _one_line_notices(text: str) -> list[str]:
    return [line for line in text.splitlines() if not line.startswith("[")
            and not line.startswith(("CsvExampleGen", "StatisticsGen"))]


@pytest.fixture
def pipeline(tmp_path):
    data = copy_taxi(tmp_path / "data", rows=1500)
    root = tmp_path / "root"
    context, results = _run(root, data)
    return root, data, results, _snapshot(results)


# -- artifacts behind cached executions ----------------------------------------------------
def _truncate_train_split(results):
    [path] = Path(results[0].outputs["examples"][0].uri, "Split-train").glob("*.parquet")
    with open(path, "r+b") as handle:
        handle.truncate(path.stat().st_size // 2)


def _delete_statistics_folder(results):
    shutil.rmtree(results[1].outputs["statistics"][0].uri)


def _delete_one_file(results):
    Path(results[1].outputs["statistics"][0].uri, "Split-eval", "FeatureStats.pb").unlink()


def _delete_manifest(results):
    Path(results[0].outputs["examples"][0].uri, ".toolkit-manifest.json").unlink()


@pytest.mark.parametrize(("damage", "damaged_component"), [
    (_truncate_train_split, "CsvExampleGen"),
    (_delete_statistics_folder, "StatisticsGen"),
    (_delete_one_file, "StatisticsGen"),
    (_delete_manifest, "CsvExampleGen"),
], ids=["truncated-split", "deleted-folder", "deleted-file", "deleted-manifest"])
def test_damaged_artifact_behind_a_cached_execution(pipeline, capsys, damage,
                                                    damaged_component):
    root, data, first, snapshot = pipeline
    damage(first)
    capsys.readouterr()
    context, second = _run(root, data)
    out = capsys.readouterr().out
    notices = [line for line in out.splitlines() if "missing or damaged" in line]
    assert len(notices) == 1 and notices[0].startswith(f"[{damaged_component}]"), out
    by_id = {r.component_id: r for r in second}
    assert not by_id[damaged_component].cached
    if damaged_component == "StatisticsGen":
        assert by_id["CsvExampleGen"].cached
    else:
        assert not by_id["StatisticsGen"].cached, "statistics of replaced examples reused"
    old = first[0] if damaged_component == "CsvExampleGen" else first[1]
    states = {r["id"]: r for r in context.executions(damaged_component)}
    assert states[old.execution_id]["state"] == "FAILED"
    assert "missing or damaged" in states[old.execution_id]["error"]
    stale = [a for arts in old.outputs.values() for a in arts]
    assert all(context.store.artifact(a.id).state == "DELETED" for a in stale)
    _same_results(snapshot, second)
    _, third = _run(root, data)
    assert all(r.cached for r in third)


# -- the metadata store ----------------------------------------------------------------------
def _version(path: Path) -> int:
    connection = sqlite3.connect(path)
    try:
        return connection.execute("SELECT schema_version FROM MLMDEnv").fetchone()[0]
    finally:
        connection.close()


@pytest.mark.parametrize("old_version", [7, 4])
def test_store_from_an_older_schema_is_upgraded(pipeline, capsys, old_version):
    """A store written by an older ML Metadata (made with MLMD's own downgrade)."""
    from ml_metadata.metadata_store import metadata_store

    from toolkit.metadata import sqlite_config

    root, data, first, snapshot = pipeline
    database = root / "metadata.sqlite"
    current = _version(database)
    metadata_store.downgrade_schema(sqlite_config(str(database)), old_version)
    assert _version(database) == old_version < current
    capsys.readouterr()
    context, second = _run(root, data)
    out = capsys.readouterr().out
    assert f"upgraded from ML Metadata schema version {old_version} to {current}" in out
    assert _version(database) == current
    _same_results(snapshot, second)
    # what the upgrade kept is reused from cache; an execution whose state the old schema
    # did not hold (UNKNOWN) is never reused: its component ran again
    rows = {r["id"]: r for r in context.executions()}
    for result in second:
        row = rows[result.execution_id]
        assert row["state"] in ("COMPLETE", "CACHED")
        if result.cached:
            assert rows[row["cached_from"]]["state"] == "COMPLETE"
    old = [rows[r.execution_id]["state"] for r in first]
    if "UNKNOWN" in old:
        assert not second[0].cached


def test_store_from_a_newer_schema_is_refused(pipeline):
    from toolkit import InteractiveContext
    from toolkit.errors import ToolkitError

    root, _, _, _ = pipeline
    database = root / "metadata.sqlite"
    current = _version(database)
    connection = sqlite3.connect(database)
    connection.execute("UPDATE MLMDEnv SET schema_version = ?", (current + 1,))
    connection.commit()
    connection.close()
    before = database.read_bytes()
    with pytest.raises(ToolkitError) as info:
        InteractiveContext(pipeline_name="damaged", pipeline_root=str(root)).executions()
    message = str(info.value)
    assert "\n" not in message and str(database) in message
    assert f"version {current + 1} is greater than library version {current}" in message
    assert database.read_bytes() == before


def _garbage(database: Path) -> None:
    database.write_bytes(os.urandom(64 * 1024))


def _truncated(database: Path) -> None:
    with open(database, "r+b") as handle:
        handle.truncate(database.stat().st_size // 2)


def _deleted(database: Path) -> None:
    database.unlink()


@pytest.mark.parametrize("damage", [_garbage, _truncated, _deleted],
                         ids=["garbage-bytes", "truncated", "deleted"])
def test_damaged_or_deleted_store_with_artifacts_left(pipeline, capsys, damage):
    root, data, first, snapshot = pipeline
    database = root / "metadata.sqlite"
    damage(database)
    capsys.readouterr()
    context, second = _run(root, data)
    out = capsys.readouterr().out
    notices = _one_line_notices(out)
    if damage is not _deleted:
        [moved] = [line for line in notices if "is damaged" in line]
        aside = moved.split("moved it to ")[1].split(" and ")[0]
        assert Path(aside).is_file() and aside.startswith(str(database) + ".corrupt-")
    assert any("holds artifact folders" in line and "run again" in line for line in notices)
    assert all(not r.cached for r in second)
    for old in first:
        for arts in old.outputs.values():
            for art in arts:
                kept = list(Path(art.uri).parent.glob(f".orphaned-{Path(art.uri).name}-*"))
                assert len(kept) == 1, "the earlier store's artifact was not kept aside"
    _same_results(snapshot, second)
    assert {r["state"] for r in context.executions()} == {"COMPLETE"}
    _, third = _run(root, data)
    assert all(r.cached for r in third)
