"""Shared by the reliability tests: child processes, SIGKILL at a hook, store inspection."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import datapaths

HERE = Path(__file__).resolve().parent
REPO = Path(datapaths.REPO)
CHILD = HERE / "child_pipeline.py"
TAXI_CSV = Path(datapaths.TAXI_CSV)
PIPELINE = "reliability"


def child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env.update(extra)
    return env


def child_args(root: Path, data: Path, pipeline: str = "data", upto: str | None = None,
               serving: Path | None = None, report: Path | None = None) -> list[str]:
    args = [sys.executable, str(CHILD), str(root), str(data), "--pipeline", pipeline]
    if upto:
        args += ["--upto", upto]
    if serving is not None:
        args += ["--serving", str(serving)]
    if report is not None:
        args += ["--report", str(report)]
    return args


def run_child(args: list[str], log: Path, timeout: float = 900,
              env: dict[str, str] | None = None) -> dict:
    """Run a child to completion (exit 0 asserted); returns its report when it wrote one.
    ``env``: extra environment variables (a host identity, a lease)."""
    with open(log, "wb") as out:
        proc = subprocess.run(args, stdout=out, stderr=subprocess.STDOUT,
                              env=child_env(**(env or {})), cwd=REPO, timeout=timeout)
    assert proc.returncode == 0, f"child failed ({proc.returncode}):\n{tail(log)}"
    if "--report" in args:
        return json.loads(Path(args[args.index("--report") + 1]).read_text())
    return {}


def kill_at(args: list[str], component: str, spec: str, workdir: Path,
            timeout: float = 600, env: dict[str, str] | None = None) -> int:
    """Start a child that freezes at ``spec`` while ``component`` runs, SIGKILL it there;
    returns the killed process id."""
    proc = freeze_at(args, component, spec, workdir, timeout, env)
    kill(proc)
    return proc.pid


def freeze_at(args: list[str], component: str, spec: str, workdir: Path,
              timeout: float = 600, env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start a child and wait until it is frozen at ``spec`` while ``component`` runs (its
    other threads, such as heartbeats, go on); returns the live process."""
    marker = workdir / f"frozen-{uuid.uuid4().hex[:8]}"
    log = workdir / f"{marker.name}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(args + ["--pause", f"{component}={spec}", "--marker", str(marker)],
                                stdout=out, stderr=subprocess.STDOUT, env=child_env(**(env or {})),
                                cwd=REPO)
    deadline = time.monotonic() + timeout
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    if not marker.exists():
        proc.kill()
        proc.wait()
        raise AssertionError(f"the child never reached {spec} in {component}:\n{tail(log)}")
    return proc


def kill(proc: subprocess.Popen) -> None:
    """SIGKILL a child and reap it."""
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def context(root: Path, name: str = PIPELINE):
    """The pipeline's context as the children open it: the store is the SQLite file under
    ``root``, or the MySQL database named by ``TOOLKIT_MYSQL_*`` when those are set."""
    from toolkit import InteractiveContext
    from toolkit.metadata_config import mysql_config_from_env

    return InteractiveContext(pipeline_name=name, pipeline_root=str(root),
                              metadata_connection_config=mysql_config_from_env())


def executions(root: Path, component: str | None = None) -> list[dict]:
    return list(context(root).executions(component))


def registered_uris(root: Path) -> set[str]:
    return {a.uri for a in context(root).store.artifacts()}


def assert_killed(root: Path, component: str, pid: int) -> dict:
    """The killed execution is recorded as RUNNING by the dead process, never COMPLETE, and
    no artifact is registered from it."""
    rows = executions(root, component)
    assert rows, f"no execution of {component} recorded"
    killed = rows[-1]
    assert killed["state"] == "RUNNING" and int(killed["pid"]) == pid, killed
    produced = [uri for uri in registered_uris(root)
                if f"{os.sep}{component}{os.sep}" in uri
                and Path(uri).name == str(killed["id"])]
    assert produced == []
    return killed


def assert_abandoned(root: Path, component: str, killed: dict) -> None:
    """Once a new process has run the component again: the killed execution is FAILED
    "abandoned" and nothing it left on disk remains."""
    rows = {r["id"]: r for r in executions(root, component)}
    after = rows[killed["id"]]
    assert after["state"] == "FAILED" and "abandoned" in after["error"], after
    assert leftovers(root, component, killed) == []


def assert_completed_once(root: Path, component: str) -> None:
    rows = executions(root, component)
    assert [r for r in rows if r["state"] == "RUNNING"] == []
    assert len([r for r in rows if r["state"] == "COMPLETE"]) == 1, rows


def leftovers(root: Path, component: str, killed: dict) -> list[str]:
    """Staging, final and scratch folders of one execution still on disk."""
    execution_id, found = killed["id"], []
    for parent, dirs, _ in os.walk(root / component):
        for name in dirs:
            if name == str(execution_id) or name.startswith(f".staging-{execution_id}-"):
                found.append(os.path.join(parent, name))
    scratch = root / ".tmp" / f"{execution_id}-{killed['pid']}"
    if scratch.exists():
        found.append(str(scratch))
    return found


def copy_taxi(folder: Path, rows: int | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    if rows is None:
        shutil.copy(TAXI_CSV, folder / "data.csv")
    else:
        with open(TAXI_CSV) as source, open(folder / "data.csv", "w") as target:
            for index, line in enumerate(source):
                if index > rows:
                    break
                target.write(line)
    return folder


def split_tables(examples_uri: str) -> dict:
    import pyarrow.parquet as pq

    folder = Path(examples_uri)
    return {d.name[len("Split-"):]: pq.read_table(d) for d in sorted(folder.glob("Split-*"))}


def fake_model_component():
    """A component whose Model output is a stand-in SavedModel file (no TensorFlow)."""
    from toolkit.artifacts import Model
    from toolkit.custom import OutputArtifact, component

    @component
    def StandInModel(model: OutputArtifact[Model]):
        folder = os.path.join(model.uri, "Format-Serving")
        os.makedirs(folder)
        with open(os.path.join(folder, "saved_model.pb"), "wb") as handle:
            handle.write(b"\x08\x01" * 100)

    return StandInModel()
