"""Processes on different hosts share one MySQL store: they see and reuse each other's
executions, and a running execution is declared abandoned only when that is provable
(same host and process gone, or lease expired).

Each process presents its host through ``TOOLKIT_HOST_ID`` and its lease through
``TOOLKIT_LEASE_SECONDS``. The processes really run on one machine, so the "other host"
cases are those where this machine's process table must NOT be trusted: a pid that is
dead here says nothing about a process on another host.
"""
from __future__ import annotations

import subprocess
import time
import uuid
from pathlib import Path

import pytest

from child_pipeline import data_components
from reliability_helpers import (REPO, assert_abandoned, assert_completed_once, assert_killed,
                                 child_args, child_env, context, copy_taxi, executions, kill_at,
                                 leftovers, run_child, tail)

#: identities presented through TOOLKIT_HOST_ID
HOST_A, HOST_B, HOST_C = "mysql-suite-host-a", "mysql-suite-host-b", "mysql-suite-host-c"
#: freezes StatisticsGen after the train split's statistics are computed: staging written
FREEZE = "toolkit.components.statistics_gen:statistics_of_table:after@1"
#: a lease that cannot run out during a test
LONG_LEASE = 3600
#: a lease short enough to wait out
SHORT_LEASE = 6
#: the lease of a live execution that the test outlives several times over
LIVE_LEASE = 8


@pytest.fixture(scope="module")
def taxi_data(tmp_path_factory) -> Path:
    return copy_taxi(tmp_path_factory.mktemp("taxi") / "data")


def _ids(report: dict) -> list[int]:
    return [result["execution_id"] for result in report["results"].values()]


def _row(root: Path, execution_id: int) -> dict:
    return {r["id"]: r for r in executions(root)}[execution_id]


def test_two_hosts_share_one_store(tmp_path, mysql_store, taxi_data, as_host):
    """Host A runs ExampleGen and StatisticsGen; host B runs the four data components and
    reuses A's two; A runs all four again and reuses B's SchemaGen and ExampleValidator."""
    root = tmp_path / "root"

    def run_on(host: str, name: str, upto: str | None = None) -> dict:
        with as_host(host):
            return run_child(child_args(root, taxi_data, upto=upto,
                                        report=tmp_path / f"{name}.json"),
                             tmp_path / f"{name}.log")

    a1 = run_on(HOST_A, "a1", upto="StatisticsGen")
    b = run_on(HOST_B, "b")
    a2 = run_on(HOST_A, "a2")

    rows = {r["id"]: r for r in executions(root)}
    assert sorted(rows) == sorted(_ids(a1) + _ids(b) + _ids(a2))
    assert {r["state"] for r in rows.values()} == {"COMPLETE", "CACHED"}
    for report, host in ((a1, HOST_A), (b, HOST_B), (a2, HOST_A)):
        for execution_id in _ids(report):
            assert rows[execution_id]["host"] == host
            assert int(rows[execution_id]["pid"]) == report["pid"]
    assert len({a1["pid"], b["pid"], a2["pid"]}) == 3

    assert [r["cached"] for r in a1["results"].values()] == [False, False]
    assert [r["cached"] for r in b["results"].values()] == [True, True, False, False]
    assert [rows[i]["cached_from"] for i in _ids(b)[:2]] == _ids(a1)
    assert [r["cached"] for r in a2["results"].values()] == [True] * 4
    assert [rows[i]["cached_from"] for i in _ids(a2)] == _ids(a1) + _ids(b)[2:]
    for component, result in b["results"].items():
        assert a2["results"][component]["outputs"] == result["outputs"]


@pytest.mark.slow
def test_killed_on_another_host_is_reaped_after_its_lease_and_not_before(
        tmp_path, mysql_store, taxi_data, as_host, monkeypatch):
    """SIGKILL StatisticsGen on host A (lease one hour) and on host C (lease 6 s). Host B,
    whose process table says both pids are dead, leaves both records and their folders
    alone while their leases live (B checks within C's lease, or the test fails saying
    so); once C's lease has run out, B reaps C's execution and not A's. Back on host A,
    A's execution is reaped at once: same host, process gone."""
    root = tmp_path / "root"
    args = child_args(root, taxi_data, upto="StatisticsGen")
    with as_host(HOST_A, lease_seconds=LONG_LEASE):
        pid_a = kill_at(args, "StatisticsGen", FREEZE, tmp_path)
    killed_a = assert_killed(root, "StatisticsGen", pid_a)
    assert killed_a["host"] == HOST_A and float(killed_a["lease_s"]) == LONG_LEASE
    with as_host(HOST_C, lease_seconds=SHORT_LEASE):
        pid_c = kill_at(args, "StatisticsGen", FREEZE, tmp_path)
    killed_c = assert_killed(root, "StatisticsGen", pid_c)
    assert killed_c["host"] == HOST_C and float(killed_c["lease_s"]) == SHORT_LEASE
    assert _row(root, killed_a["id"])["state"] == "RUNNING"  # host C left A's alone

    folders_a = leftovers(root, "StatisticsGen", killed_a)
    folders_c = leftovers(root, "StatisticsGen", killed_c)
    assert folders_a and folders_c, "the killed runs left no folders to keep"
    c_last_beat = float(_row(root, killed_c["id"])["heartbeat_at"])

    monkeypatch.setenv("TOOLKIT_HOST_ID", HOST_B)
    on_b = context(root)
    components = data_components(str(taxi_data))
    example_gen, statistics_gen = [on_b.run(c) for c in components[:2]]
    assert example_gen.cached and not statistics_gen.cached
    # B looked at both before it started its own execution: within C's lease too
    checked_at = float(_row(root, statistics_gen.execution_id)["started_at"])
    assert checked_at - c_last_beat < SHORT_LEASE, (
        f"B checked {checked_at - c_last_beat:.1f} s after C's last heartbeat, too late to "
        f"see C's {SHORT_LEASE} s lease alive: raise SHORT_LEASE")
    for killed, folders in ((killed_a, folders_a), (killed_c, folders_c)):
        after = _row(root, killed["id"])
        assert (after["state"], after["error"]) == ("RUNNING", ""), after
        assert leftovers(root, "StatisticsGen", killed) == folders  # its folders are kept

    # wait out C's lease, counted from its last heartbeat as recorded in the store
    expires = float(_row(root, killed_c["id"])["heartbeat_at"]) + SHORT_LEASE
    time.sleep(max(0.0, expires - time.time()) + 1.0)
    assert on_b.run(components[1]).cached
    assert_abandoned(root, "StatisticsGen", killed_c)
    assert "lease expired" in _row(root, killed_c["id"])["error"]
    assert _row(root, killed_a["id"])["state"] == "RUNNING"
    assert leftovers(root, "StatisticsGen", killed_a) == folders_a

    with as_host(HOST_A):
        report = run_child(args + ["--report", str(tmp_path / "a.json")], tmp_path / "a.log")
    assert report["results"]["StatisticsGen"]["cached"]
    assert_abandoned(root, "StatisticsGen", killed_a)
    assert f"process {pid_a}" in _row(root, killed_a["id"])["error"]
    assert_completed_once(root, "StatisticsGen")


@pytest.mark.slow
def test_live_execution_on_another_host_is_never_reaped(tmp_path, mysql_store, taxi_data,
                                                         as_host, monkeypatch):
    """StatisticsGen frozen, alive, on host A with an 8 s lease. After three lease lengths,
    host B runs the component: A's execution stays RUNNING with a renewed heartbeat and
    its staging and scratch folders still there, and B computes its own result."""
    root = tmp_path / "root"
    marker = tmp_path / f"frozen-{uuid.uuid4().hex[:8]}"
    log = tmp_path / "live.log"
    args = child_args(root, taxi_data, upto="StatisticsGen") + [
        "--pause", f"StatisticsGen={FREEZE}", "--marker", str(marker)]
    with as_host(HOST_A, lease_seconds=LIVE_LEASE), open(log, "wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=child_env(),
                                cwd=REPO)
    try:
        deadline = time.monotonic() + 600
        while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert marker.exists(), f"the child never reached {FREEZE}:\n{tail(log)}"
        live = executions(root, "StatisticsGen")[-1]
        assert live["state"] == "RUNNING" and int(live["pid"]) == proc.pid
        assert live["host"] == HOST_A and float(live["lease_s"]) == LIVE_LEASE
        first_heartbeat = float(live["heartbeat_at"])
        folders = leftovers(root, "StatisticsGen", live)
        assert folders, "the frozen run has no staging or scratch folder to keep"

        time.sleep(3 * LIVE_LEASE)
        monkeypatch.setenv("TOOLKIT_HOST_ID", HOST_B)
        on_b = context(root)
        results = [on_b.run(c) for c in data_components(str(taxi_data))[:2]]
        assert results[0].cached and not results[1].cached

        now = _row(root, live["id"])
        assert now["state"] == "RUNNING" and now["error"] == "", now
        assert float(now["heartbeat_at"]) > first_heartbeat
        assert leftovers(root, "StatisticsGen", live) == folders
        assert proc.poll() is None
    finally:
        proc.kill()
        proc.wait()
