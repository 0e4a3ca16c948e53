"""Single flight: two processes that need the same cache key at once compute it once.

Real processes on one metadata store: this file is also the child's script, so both
children define the same tiny component (a class's module and name are part of its
cache key). Its ``Do`` appends the child's pid to a calls file, then takes a few seconds
(or hangs until killed), so the test sees who computed and when."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from datapaths import REPO

from toolkit import _env
from toolkit.artifacts import Examples
from toolkit.base_component import BaseComponent, ExecutionParameter
from toolkit.metadata import MetadataStore, sqlite_config

PIPELINE = "single-flight"


class Slow(BaseComponent):
    """Appends this process's pid to ``calls_file``, works ``seconds`` (forever when
    negative; when NaN, until a file ``go`` appears beside ``calls_file``), then writes its
    one output file."""

    OUTPUTS = {"examples": Examples}
    PARAMETERS = {"text": ExecutionParameter(str, default="row")}
    calls_file = ""
    seconds = 0.0

    def Do(self, input_dict, output_dict, exec_properties, ctx):
        with open(Slow.calls_file, "a") as handle:
            handle.write(f"{os.getpid()}\n")
        if Slow.seconds != Slow.seconds:  # NaN: until the test says go
            go = Path(Slow.calls_file).with_name("go")
            while not go.exists():
                time.sleep(0.1)
        deadline = time.monotonic() + (Slow.seconds if Slow.seconds == Slow.seconds else 0)
        while Slow.seconds < 0 or time.monotonic() < deadline:
            time.sleep(0.1)
        out = output_dict["examples"][0]
        os.makedirs(out.split_uri("train"))
        with open(os.path.join(out.split_uri("train"), "data.txt"), "w") as handle:
            handle.write(exec_properties["text"] + "\n")
        out.split_names = ["train"]


def _child(root: str, calls: str, seconds: str, report: str) -> None:
    from toolkit import InteractiveContext

    Slow.calls_file, Slow.seconds = calls, float(seconds)
    context = InteractiveContext(pipeline_name=PIPELINE, pipeline_root=root)
    result = context.run(Slow(text="same for both"))
    uri = result.outputs["examples"][0].uri
    Path(report).write_text(json.dumps({"execution_id": result.execution_id,
                                        "cached": result.cached, "uri": uri}))


@pytest.fixture(autouse=True)
def this_host(monkeypatch):
    monkeypatch.delenv("TOOLKIT_HOST_ID", raising=False)
    monkeypatch.delenv("TOOLKIT_LEASE_SECONDS", raising=False)


class Child:
    """One child process running ``Slow``, its output in a file the test can read live."""

    def __init__(self, tmp_path: Path, name: str, seconds: float | str):
        self.log = tmp_path / f"{name}.log"
        self.report = tmp_path / f"{name}.json"
        env = dict(os.environ)
        env[_env.SINGLE_FLIGHT] = "1"  # as a sweep sets it for its points
        env["PYTHONPATH"] = os.pathsep.join(
            [os.path.join(REPO, "tests", "unit"), os.path.join(REPO, "tests"), REPO])
        with open(self.log, "w") as out:
            self.proc = subprocess.Popen(
                [sys.executable, __file__, str(tmp_path / "root"), str(tmp_path / "calls.txt"),
                 str(seconds), str(self.report)],
                stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO)

    def output(self) -> str:
        return self.log.read_text()

    def finish(self, timeout: float = 120) -> dict:
        assert self.proc.wait(timeout) == 0, self.output()
        return json.loads(self.report.read_text())


def _until(condition, timeout: float = 60, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _calls(tmp_path: Path) -> list[int]:
    path = tmp_path / "calls.txt"
    return [int(line) for line in path.read_text().split()] if path.exists() else []


def _executions(tmp_path: Path) -> list[dict]:
    store = MetadataStore(PIPELINE, sqlite_config(str(tmp_path / "root" / "metadata.sqlite")))
    return store.executions("Slow")


def test_two_processes_racing_on_one_key_compute_it_once(tmp_path):
    # whoever computes holds on until the other is seen waiting, however late it starts
    first = Child(tmp_path, "first", seconds="nan")
    second = Child(tmp_path, "second", seconds="nan")
    _until(lambda: "waiting for Slow" in first.output() + second.output(), timeout=120,
           what="one of the two to wait for the other")
    (tmp_path / "go").touch()
    reports = [first.finish(), second.finish()]

    calls = _calls(tmp_path)
    assert len(calls) == 1, calls  # one Do in all
    computer = first if calls[0] == first.proc.pid else second
    waiter = second if computer is first else first
    assert "waiting for Slow being computed by" in waiter.output()
    assert f"/{computer.proc.pid} (execution " in waiter.output()
    assert "waiting for" not in computer.output()

    rows = _executions(tmp_path)
    complete = [r for r in rows if r["state"] == "COMPLETE"]
    cached = [r for r in rows if r["state"] == "CACHED"]
    assert len(complete) == 1 and int(complete[0]["pid"]) == computer.proc.pid
    assert len(cached) == 1 and int(cached[0]["pid"]) == waiter.proc.pid
    assert cached[0]["cached_from"] == complete[0]["id"]
    # a claim that lost the race (both looked at the same instant) yielded, nothing else
    assert all(r["error"].startswith("yielded:") for r in rows if r["state"] == "FAILED")
    assert len(rows) - len(complete) - len(cached) <= 1
    # both hand on the one computed output folder
    assert reports[0]["uri"] == reports[1]["uri"]
    assert sorted(r["cached"] for r in reports) == [False, True]
    data = Path(reports[0]["uri"]) / "Split-train" / "data.txt"
    assert data.read_text() == "same for both\n"


def test_a_waiter_takes_over_when_the_owner_is_killed(tmp_path):
    owner = Child(tmp_path, "owner", seconds=-1)  # hangs inside Do
    _until(lambda: _calls(tmp_path) == [owner.proc.pid], what="the owner to start computing")
    waiter = Child(tmp_path, "waiter", seconds=0.5)
    _until(lambda: "waiting for Slow" in waiter.output(), what="the waiter to wait")
    [running] = [r for r in _executions(tmp_path) if r["state"] == "RUNNING"]
    assert f"(execution {running['id']})" in waiter.output()
    time.sleep(1.5)  # it keeps waiting while the owner lives
    assert waiter.proc.poll() is None and _calls(tmp_path) == [owner.proc.pid]

    owner.proc.send_signal(signal.SIGKILL)
    owner.proc.wait()
    report = waiter.finish()

    assert "taking it over" in waiter.output()
    assert _calls(tmp_path) == [owner.proc.pid, waiter.proc.pid]
    rows = {r["id"]: r for r in _executions(tmp_path)}
    killed = rows[running["id"]]
    assert killed["state"] == "FAILED" and killed["error"].startswith("abandoned: process ")
    assert report["cached"] is False
    computed = rows[report["execution_id"]]
    assert computed["state"] == "COMPLETE" and int(computed["pid"]) == waiter.proc.pid
    assert (Path(report["uri"]) / "Split-train" / "data.txt").read_text() == "same for both\n"
    # what the killed owner had staged is gone
    leftovers = [p for p in (tmp_path / "root").rglob("*") if f"-{owner.proc.pid}" in p.name]
    assert leftovers == []


if __name__ == "__main__":
    _child(*sys.argv[1:5])
