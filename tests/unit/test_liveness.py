"""Host-aware liveness: who owns running work, when another process may declare it
abandoned, the heartbeat that keeps a run alive, and the Pusher's hidden copies.

Real processes (``sleep`` children) stand for live and dead owners; host identities are
presented through ``TOOLKIT_HOST_ID``, except where the identity itself is checked: there a
child runs in a PID namespace of its own (``unshare``, see ``tests/pid_namespaces.py``), as
in a container that shares the hostname. The cross-process cases with real runs are in
``tests/reliability/test_cross_host.py``."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from datapaths import REPO
from pid_namespaces import NEW_PID_NAMESPACE, NEW_PID_NAMESPACE_OLD_PROC, require_unshare
from test_cached_claims import StandInModel

from toolkit import InteractiveContext
from toolkit._process import (
    DEFAULT_LEASE_SECONDS,
    Owner,
    abandoned_reason,
    host_identity,
    lease_seconds,
    process_start_time,
)
from toolkit.artifacts import Examples
from toolkit.base_component import BaseComponent
from toolkit.components import Pusher
from toolkit.components.pusher import versions
from toolkit.errors import ComponentError, ToolkitError
from toolkit.metadata import MetadataStore


@pytest.fixture
def sleeper():
    proc = subprocess.Popen(["sleep", "600"])
    yield proc
    proc.kill()
    proc.wait()


@pytest.fixture
def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


@pytest.fixture(autouse=True)
def this_host(monkeypatch):
    monkeypatch.delenv("TOOLKIT_HOST_ID", raising=False)
    monkeypatch.delenv("TOOLKIT_LEASE_SECONDS", raising=False)


def _boot() -> str:
    return Path("/proc/sys/kernel/random/boot_id").read_text().strip()


def test_host_identity_is_hostname_boot_and_pid_namespace_unless_overridden(monkeypatch):
    namespace = os.readlink("/proc/self/ns/pid")
    assert namespace.startswith("pid:[")
    assert host_identity() == f"{socket.gethostname()}/{_boot()}/{namespace}"
    monkeypatch.setenv("TOOLKIT_HOST_ID", "node-7")
    assert host_identity() == "node-7"


IDENTITY_PROBE = ("import os; from toolkit._process import host_identity; "
                  "print(os.getpid(), os.readlink('/proc/self/ns/pid'), host_identity())")


def _identity_in(prefix: list[str]) -> tuple[int, str, str]:
    """(pid, PID namespace, host identity) of a Python process started under ``prefix``."""
    env = {k: v for k, v in os.environ.items() if k != "TOOLKIT_HOST_ID"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (REPO, env.get("PYTHONPATH", "")) if p)
    proc = subprocess.run(prefix + [sys.executable, "-c", IDENTITY_PROBE], capture_output=True,
                          text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    pid, namespace, identity = proc.stdout.split()
    return int(pid), namespace, identity


def test_a_container_sharing_the_hostname_is_another_host():
    """A process in its own PID namespace (its own /proc, as in a container with this
    hostname on this kernel) presents another identity, differing only in the namespace."""
    require_unshare()
    pid, namespace, identity = _identity_in(NEW_PID_NAMESPACE)
    assert pid == 1 and namespace != os.readlink("/proc/self/ns/pid")
    assert identity == f"{socket.gethostname()}/{_boot()}/{namespace}"
    assert identity != host_identity()


def test_a_process_whose_proc_is_another_namespaces_is_a_host_of_its_own():
    """In a new PID namespace that still sees the parent's /proc, start times read there
    belong to other processes: the identity names that one process alone."""
    require_unshare()
    first, second = (_identity_in(NEW_PID_NAMESPACE_OLD_PROC) for _ in range(2))
    for pid, _, identity in (first, second):
        assert pid == 1 and identity.startswith(f"{socket.gethostname()}/{_boot()}/private:1-")
    assert first[2] != second[2]


def test_identity_from_before_pid_namespaces_is_judged_by_its_lease(dead_pid):
    """``<hostname>/<boot id>``, as older versions recorded it, may have come from any PID
    namespace on this kernel: its pid is not looked up here, only its lease counts."""
    old, beat = f"{socket.gethostname()}/{_boot()}", 1_000_000.0
    owner = Owner(old, dead_pid, "", beat, 60)
    assert abandoned_reason(owner, now=beat + 59) is None
    assert abandoned_reason(owner, now=beat + 312) == (
        f"lease expired (no heartbeat from host {old} for 312 s)")


def test_process_start_time_names_one_process(sleeper, dead_pid):
    started = process_start_time(sleeper.pid)
    assert started.isdigit() and started == process_start_time(sleeper.pid)
    assert started != process_start_time(os.getpid())
    assert process_start_time(dead_pid) == ""


def test_lease_length_from_argument_environment_or_default(monkeypatch, tmp_path):
    assert lease_seconds() == DEFAULT_LEASE_SECONDS == 120
    monkeypatch.setenv("TOOLKIT_LEASE_SECONDS", "7.5")
    assert lease_seconds() == 7.5 and lease_seconds(30) == 30
    assert InteractiveContext(pipeline_root=str(tmp_path)).lease_seconds == 7.5
    monkeypatch.setenv("TOOLKIT_LEASE_SECONDS", "soon")
    with pytest.raises(ValueError, match=r"\$TOOLKIT_LEASE_SECONDS must be a number"):
        lease_seconds()
    with pytest.raises(ToolkitError, match="lease_seconds must be a positive number"):
        InteractiveContext(pipeline_root=str(tmp_path), lease_seconds=0)


def test_same_host_owner_is_judged_by_its_process(sleeper, dead_pid):
    here, started = host_identity(), process_start_time(sleeper.pid)
    ancient = time.time() - 10_000
    # alive with its start time: alive, however old its heartbeat (stopped, not dead)
    assert abandoned_reason(Owner(here, sleeper.pid, started, ancient, 60)) is None
    assert abandoned_reason(Owner(here, dead_pid, "1", time.time(), 60)) == (
        f"process {dead_pid} on host {here} ended")
    reused = abandoned_reason(Owner(here, sleeper.pid, str(int(started) + 1), time.time(), 60))
    assert reused == (f"process {sleeper.pid} on host {here} ended (the pid now belongs to "
                      "another process)")


def test_other_host_owner_is_judged_by_its_lease(sleeper, dead_pid):
    beat = 1_000_000.0
    for pid in (sleeper.pid, dead_pid):  # this host's process table says nothing about B's
        owner = Owner("host-b", pid, "1", beat, 60)
        assert abandoned_reason(owner, now=beat + 59) is None
        assert abandoned_reason(owner, now=beat + 312) == (
            "lease expired (no heartbeat from host host-b for 312 s)")


class Idle(BaseComponent):
    OUTPUTS = {"examples": Examples}

    def Do(self, input_dict, output_dict, exec_properties, ctx):
        Path(output_dict["examples"][0].uri, "done").write_text("1")


def _record_running(context: InteractiveContext, owner: Owner) -> int:
    return context.store.start_execution("Idle", "Idle", "k", "{}", "{}", {}, owner=owner)


def test_reaper_follows_host_and_lease(tmp_path, sleeper, dead_pid):
    context = InteractiveContext(pipeline_name="lease", pipeline_root=str(tmp_path / "root"))
    here, now = host_identity(), time.time()
    live_b = _record_running(context, Owner("host-b", dead_pid, "", now, 600))
    expired_b = _record_running(context, Owner("host-b", sleeper.pid, "", now - 312, 60))
    dead_here = _record_running(context, Owner(here, dead_pid, "", now, 600))
    alive_here = _record_running(
        context, Owner(here, sleeper.pid, process_start_time(sleeper.pid), now - 10_000, 60))
    legacy_dead = _record_running(context, Owner(here, dead_pid, "", now, 600))
    _forget_owner(context, legacy_dead)

    context.run(Idle())

    rows = {r["id"]: r for r in context.executions("Idle")}
    assert rows[live_b]["state"] == "RUNNING"
    assert rows[alive_here]["state"] == "RUNNING"
    assert rows[expired_b]["state"] == "FAILED"
    assert rows[expired_b]["error"].startswith(
        "abandoned: lease expired (no heartbeat from host host-b for ")
    assert rows[dead_here]["error"] == f"abandoned: process {dead_pid} on host {here} ended"
    assert rows[legacy_dead]["error"] == (
        f"abandoned: process {dead_pid} ended before the execution finished")
    recorded = rows[alive_here]
    assert (recorded["host"], recorded["pid"], recorded["lease_s"]) == (
        here, str(sleeper.pid), "60")


def _forget_owner(context: InteractiveContext, execution_id: int) -> None:
    """Make a record look like one written before owners were recorded."""
    mlmd = context.store.mlmd
    [execution] = mlmd.get_executions_by_id([execution_id])
    for key in ("host", "pid_started", "heartbeat_at", "lease_s"):
        del execution.properties[key]
    mlmd.put_executions([execution])


class WaitForHeartbeat(BaseComponent):
    """Waits (up to a minute) until its own record's heartbeat moves past its start."""

    OUTPUTS = {"examples": Examples}

    def Do(self, input_dict, output_dict, exec_properties, ctx):
        store = MetadataStore("beat", _config(ctx.pipeline_root))
        first = store.execution(ctx.execution_id)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            row = store.execution(ctx.execution_id)
            if float(row["heartbeat_at"]) > float(first["heartbeat_at"]):
                Path(output_dict["examples"][0].uri, "beats.json").write_text(
                    json.dumps([first["heartbeat_at"], row["heartbeat_at"]]))
                return
            time.sleep(0.05)
        raise RuntimeError("the heartbeat was never renewed")


def _config(root: str):
    from toolkit.metadata import sqlite_config

    return sqlite_config(os.path.join(root, "metadata.sqlite"))


def test_running_execution_renews_its_heartbeat(tmp_path):
    context = InteractiveContext(pipeline_name="beat", pipeline_root=str(tmp_path),
                                 lease_seconds=0.3)
    result = context.run(WaitForHeartbeat())
    first, renewed = json.loads(
        Path(result.outputs["examples"][0].uri, "beats.json").read_text())
    assert float(renewed) > float(first)
    row = context.executions("WaitForHeartbeat")[0]
    assert row["state"] == "COMPLETE" and row["lease_s"] == "0.3"


class ReapedMidway(BaseComponent):
    """Another process declares this execution abandoned while its Do runs."""

    OUTPUTS = {"examples": Examples}

    def Do(self, input_dict, output_dict, exec_properties, ctx):
        other = MetadataStore("reaped", _config(ctx.pipeline_root))
        other.fail_execution(ctx.execution_id, "abandoned: lease expired (no heartbeat from "
                                               "host host-x for 200 s)")
        Path(output_dict["examples"][0].uri, "late.txt").write_text("1")


def test_an_execution_reaped_meanwhile_is_not_brought_back(tmp_path):
    context = InteractiveContext(pipeline_name="reaped", pipeline_root=str(tmp_path))
    with pytest.raises(ComponentError, match="no longer running"):
        context.run(ReapedMidway())
    [row] = context.executions("ReapedMidway")
    assert row["state"] == "FAILED" and row["error"].startswith("abandoned: lease expired")
    assert context.store.artifacts() == []
    assert os.listdir(tmp_path / "ReapedMidway" / "examples") == []


def _hidden_copy(destination: Path, name: str, owner: dict | None) -> Path:
    folder = destination / name
    (folder / "model").mkdir(parents=True)
    (folder / "model" / "saved_model.pb").write_bytes(b"\x08")
    if owner is not None:
        (folder / "owner.json").write_text(json.dumps(owner))
    return folder


def test_pusher_removes_only_provably_abandoned_copies(tmp_path, sleeper, dead_pid):
    context = InteractiveContext(pipeline_name="copies", pipeline_root=str(tmp_path / "root"))
    serving = tmp_path / "serving"
    here, now = host_identity(), time.time()

    def owner(host, pid, started, beat, lease=60):
        return {"host": host, "pid": pid, "pid_started": started, "heartbeat_at": beat,
                "lease_s": lease}

    kept = [
        _hidden_copy(serving, f".pushing-{dead_pid}-1-aa", owner("host-b", dead_pid, "", now)),
        _hidden_copy(serving, f".pushing-{sleeper.pid}-2-bb",
                     owner(here, sleeper.pid, process_start_time(sleeper.pid), now - 10_000)),
        _hidden_copy(serving, f".pushing-{sleeper.pid}-3", None),
        _hidden_copy(serving, f".pushing-{dead_pid}-4-cc", None),  # owner file not yet written
    ]
    removed = [
        _hidden_copy(serving, f".pushing-{sleeper.pid}-5-dd",
                     owner("host-b", sleeper.pid, "", now - 312)),
        _hidden_copy(serving, f".pushing-{dead_pid}-6-ee", owner(here, dead_pid, "", now)),
        _hidden_copy(serving, f".pushing-{sleeper.pid}-7-ff",
                     owner(here, sleeper.pid, "1", now)),  # pid reused
        _hidden_copy(serving, f".pushing-{dead_pid}-8", None),
    ]
    model = StandInModel()
    context.run(model)
    pusher = Pusher(model=model.outputs["model"], push_destination=str(serving),
                    allowed_root=str(tmp_path), require_blessing=False)

    result = context.run(pusher)

    assert result.outcome.startswith("pushed now as version ")
    assert [p.exists() for p in kept] == [True] * len(kept)
    assert [p.exists() for p in removed] == [False] * len(removed)
    assert len(versions(str(serving))) == 1
    assert sorted(p.name for p in serving.iterdir() if p.name.startswith(".")) == sorted(
        p.name for p in kept)
