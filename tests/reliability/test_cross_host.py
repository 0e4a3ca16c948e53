"""Two processes that present different host identities share one SQLite store and one push
destination: a run on "host B" is frozen inside the Pusher's Do (mid-copy), "host A" runs
the same pipeline beside it.

Checked: B's live execution and its hidden push copy are never reaped by A, however long B
runs (its heartbeats renew the lease); once B is SIGKILLed, A leaves both alone until the
lease expires and removes them after; with the same host identity, a dead process is
reaped at once. Without ``TOOLKIT_HOST_ID``, a run in a PID namespace of its own (a
container sharing this hostname and kernel) is another host to a run outside it. The
in-process rules (pid reuse, records from before owners, the heartbeat thread) are
covered in ``tests/unit/test_liveness.py``.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from child_pipeline import push_components
from pid_namespaces import NEW_PID_NAMESPACE, require_unshare
from reliability_helpers import (
    child_args,
    context,
    executions,
    freeze_at,
    kill,
    leftovers,
    run_child,
    tail,
)

from toolkit._process import host_identity

#: short, so the test waits seconds; long enough that a child started right after the
#: kill (about 2 s on this machine, so 7x headroom for a slow one) still finds the lease alive
LEASE = 15.0
MID_COPY = "shutil:copy2:before@2"  # the Pusher's copy, file by file: one file copied


def _as(host: str, lease: float = LEASE) -> dict[str, str]:
    return {"TOOLKIT_HOST_ID": host, "TOOLKIT_LEASE_SECONDS": str(lease)}


def _row(root: Path, execution_id: int) -> dict:
    return next(r for r in executions(root, "Pusher") if r["id"] == execution_id)


def _copies(serving: Path) -> list[Path]:
    return sorted(p for p in serving.iterdir() if p.name.startswith(".pushing-"))


def _owner(copy: Path) -> dict:
    return json.loads((copy / "owner.json").read_text())


def _versions(serving: Path) -> list[str]:
    return sorted(p.name for p in serving.iterdir() if p.name.isdigit())


def _wait_for(condition, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.1)


def _push_as(host: str, root: Path, tmp_path: Path, serving: Path, name: str) -> dict:
    report = tmp_path / f"{name}.json"
    return run_child(child_args(root, tmp_path, pipeline="push", serving=serving, report=report),
                     tmp_path / f"{name}.log", env=_as(host))


@pytest.mark.slow
def test_other_hosts_run_is_left_alone_while_its_lease_lives(tmp_path):
    root, serving = tmp_path / "root", tmp_path / "push" / "serving"
    b = freeze_at(child_args(root, tmp_path, pipeline="push", serving=serving), "Pusher",
                  MID_COPY, tmp_path, env=_as("host-b"))
    try:
        [running] = [r for r in executions(root, "Pusher") if r["state"] == "RUNNING"]
        assert (running["host"], int(running["pid"]), running["lease_s"]) == (
            "host-b", b.pid, f"{LEASE:g}")
        [copy] = _copies(serving)
        first_beat = _owner(copy)["heartbeat_at"]
        # B outlives its first lease on heartbeats alone (record and copy)
        _wait_for(lambda: float(_row(root, running["id"])["heartbeat_at"])
                  > float(running["started_at"]) + LEASE
                  and _owner(copy)["heartbeat_at"] > first_beat + LEASE, "B's heartbeats")

        a1 = _push_as("host-a", root, tmp_path, serving, "a1")

        assert _row(root, running["id"])["state"] == "RUNNING"
        assert copy.exists()
        assert _versions(serving) == [a1["results"]["Pusher"]["properties"]["pushed_model"][0]
                                      ["pushed_version"]]
    finally:
        kill(b)
    last_beat = max(float(_row(root, running["id"])["heartbeat_at"]),
                    _owner(copy)["heartbeat_at"])

    # killed, but host A cannot see B's processes: nothing is reaped before the lease expires
    a2 = _push_as("host-a", root, tmp_path, serving, "a2")
    _push_as("host-a", tmp_path / "root2", tmp_path, serving, "a2-fresh")
    checked_at = float(_row(root, a2["results"]["Pusher"]["execution_id"])["started_at"])
    assert checked_at - last_beat < LEASE, "too slow to check before the lease expired"
    assert _row(root, running["id"])["state"] == "RUNNING"
    assert copy.exists()

    _wait_for(lambda: time.time() > last_beat + LEASE + 0.5, "the lease to expire")
    _push_as("host-a", root, tmp_path, serving, "a3")
    _push_as("host-a", tmp_path / "root3", tmp_path, serving, "a3-fresh")

    reaped = _row(root, running["id"])
    assert reaped["state"] == "FAILED", tail(tmp_path / "a3.log")
    assert reaped["error"].startswith(
        "abandoned: lease expired (no heartbeat from host host-b for "), reaped["error"]
    assert leftovers(root, "Pusher", running) == []
    assert _copies(serving) == []


@pytest.mark.slow
def test_same_host_dead_process_is_reaped_at_once(tmp_path):
    """A lease of ten minutes does not matter: on its own host the process table proves the
    owner dead."""
    root, serving = tmp_path / "root", tmp_path / "push" / "serving"
    b = freeze_at(child_args(root, tmp_path, pipeline="push", serving=serving), "Pusher",
                  MID_COPY, tmp_path, env=_as("host-a", lease=600))
    [running] = [r for r in executions(root, "Pusher") if r["state"] == "RUNNING"]
    kill(b)

    report = run_child(child_args(root, tmp_path, pipeline="push", serving=serving,
                                  report=tmp_path / "a.json"), tmp_path / "a.log",
                       env=_as("host-a", lease=600))

    reaped = _row(root, running["id"])
    assert reaped["state"] == "FAILED"
    assert reaped["error"].startswith(f"abandoned: process {b.pid} on host host-a ended")
    assert _copies(serving) == []
    assert _versions(serving) == [
        report["results"]["Pusher"]["properties"]["pushed_model"][0]["pushed_version"]]


@pytest.mark.slow
def test_run_in_another_pid_namespace_is_left_alone_while_its_heartbeat_is_fresh(
        tmp_path, monkeypatch):
    """Two containers with one hostname on one kernel: B runs in a PID namespace of its own
    (``unshare --pid --mount-proc``), where it is pid 1, frozen mid-copy with a ten-minute
    lease; A, this process, outside that namespace, runs the same push pipeline on the same
    root and destination. Neither sets ``TOOLKIT_HOST_ID``. Here pid 1 is init, with another
    start time, so a host identity without the namespace would have A reap B at once,
    deleting its folders and its copy."""
    require_unshare()
    monkeypatch.delenv("TOOLKIT_HOST_ID", raising=False)
    monkeypatch.delenv("TOOLKIT_LEASE_SECONDS", raising=False)
    root, serving = tmp_path / "root", tmp_path / "push" / "serving"
    args = NEW_PID_NAMESPACE + child_args(root, tmp_path, pipeline="push", serving=serving)
    b = freeze_at(args, "Pusher", MID_COPY, tmp_path, env={"TOOLKIT_LEASE_SECONDS": "600"})
    try:
        [running] = [r for r in executions(root, "Pusher") if r["state"] == "RUNNING"]
        assert int(running["pid"]) == 1  # B's own pid, in its namespace
        [copy] = _copies(serving)
        folders = leftovers(root, "Pusher", running)
        assert folders, "B has no staging or scratch folder to keep"

        on_a = context(root)
        results = [on_a.run(component) for component in push_components(str(serving))]

        kept = _row(root, running["id"])
        assert (kept["state"], kept["error"]) == ("RUNNING", ""), kept
        assert leftovers(root, "Pusher", running) == folders
        assert _copies(serving) == [copy]
        assert _versions(serving) == [
            str(results[-1].outputs["pushed_model"][0].properties["pushed_version"])]
        assert b.poll() is None, "B died while A ran"
        # what told them apart: the PID namespace in the identity, nothing else
        here = host_identity()
        assert running["host"] != here and _owner(copy)["host"] == running["host"]
        assert running["host"].startswith(f"{here.rsplit('/', 1)[0]}/pid:["), running["host"]
    finally:
        kill(b)
