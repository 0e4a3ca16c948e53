"""A pipeline root written before the driver was restructured keeps its cache: every
component of ``tests/fixtures/prehouse`` (ExampleGen over spans, the data components,
Transform with a module file, a custom component, a Pusher) is a cache hit of the
execution the fixture recorded, with the recorded outputs. The cache key is part of the
on-disk format; this is what catches a change to it (a component class moved to another
module, a parameter encoded differently, spans resolved into other properties)."""
from __future__ import annotations

import fcntl
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURE = Path(__file__).parent / "fixtures" / "prehouse"
sys.path.insert(0, str(FIXTURE))

import prehouse_components as fixture  # noqa: E402


@pytest.fixture
def prehouse_root():
    """The fixture unpacked where it was made (artifact uris in its store are absolute);
    a lock keeps two test processes from sharing the place."""
    with open(f"{fixture.HOME}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        shutil.rmtree(fixture.HOME, ignore_errors=True)
        subprocess.run(["tar", "-xzf", str(FIXTURE / "prehouse_root.tar.gz"), "-C",
                        os.path.dirname(fixture.HOME)], check=True)
        try:
            yield Path(fixture.ROOT)
        finally:
            shutil.rmtree(fixture.HOME, ignore_errors=True)


def _recorded(root: Path) -> dict[str, tuple[int, str]]:
    """Per component id, the fixture's one execution: (id, cache key), read with sqlite3."""
    with sqlite3.connect(root / "metadata.sqlite") as db:
        rows = db.execute(
            "SELECT e.id, p.name, p.string_value FROM Execution e "
            "JOIN ExecutionProperty p ON p.execution_id = e.id "
            "WHERE p.name IN ('component_id', 'cache_key')").fetchall()
    found: dict[int, dict[str, str]] = {}
    for execution_id, name, value in rows:
        found.setdefault(execution_id, {})[name] = value
    return {v["component_id"]: (k, v["cache_key"]) for k, v in found.items()}


def test_a_root_made_before_the_restructuring_is_all_cache_hits(prehouse_root, capsys):
    from toolkit import InteractiveContext

    recorded = _recorded(prehouse_root)
    components = fixture.pipeline()
    assert sorted(recorded) == sorted(c.id for c in components)
    context = InteractiveContext(pipeline_name="prehouse", pipeline_root=str(prehouse_root))

    results = [context.run(component) for component in components]

    out = capsys.readouterr().out
    for component, result in zip(components, results):
        source_id, key = recorded[component.id]
        row = [r for r in context.executions(component.id) if r["id"] == result.execution_id]
        assert result.cached, (component.id, out)
        assert row[0]["cached_from"] == source_id and row[0]["cache_key"] == key
    assert results[-1].outcome.startswith("already pushed as version ")
    assert "recomputing" not in out and "pushing again" not in out
