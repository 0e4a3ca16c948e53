"""Hooks: the side concerns around the launcher's core loop, and the built-in ones.

The core loop (:class:`toolkit.launcher.Launcher`) only decides, executes, publishes and
records. Everything else a run must honour is a hook, called at named points, as kedro's
``before_node_run``/``after_node_run`` hook specs and TFX's launcher do it. For one
``context.run(component)``:

1. ``before_decide(run)``: before anything is resolved. A *policy* may return a
   :class:`~toolkit.launcher.decision.Ruling` (READ the component from the store, or SKIP
   it); the first ruling counts and is ``run.ruling`` for the hooks after it.
2. ``decide`` (the core) chooses the role: :class:`~toolkit.launcher.decision.Decision`.
3. For a COMPUTE decision, once the execution is recorded as running:
   ``before_execute(run, decision)``, then the executor and publishing, then
   ``after_execute(run, decision, outputs)`` before the execution is recorded complete.
   If the executor, publishing or that record fails: ``on_failure(run, decision, error)``
   instead, before what it wrote is removed and the failure recorded.
4. ``after_run(run, decision, result)`` once the outputs are handed to the channels (also
   for a reuse, a read or a skip). It may stop the pipeline by raising.

And once, when a context is created, ``store_config()``: a policy may name the metadata
store when the user did not.

Hooks run in the order installed: the policies from the environment first (see
:mod:`toolkit.launcher.policies`), then the built-in :class:`Ownership`, :class:`LiveProgress`,
:class:`RunLog` and :class:`ProductionGate`. A hook never calls back into the launcher: all it needs is
on the ``run`` and the ``decision``. :class:`LiveProgress` shows a computed run's stage
while its executor works (:mod:`toolkit.progress`).
"""
from __future__ import annotations

import json
import os
from typing import Any, Iterable

from toolkit import _env, progress
from toolkit._mode import get_mode
from toolkit._process import (
    DEFAULT_LEASE_SECONDS,
    Heartbeat,
    Owner,
    abandoned_reason,
    pid_alive,
)
from toolkit.artifacts import Artifact
from toolkit.errors import GateError
from toolkit.launcher.decision import Decision, Role, Ruling, Run
from toolkit.metadata import heartbeat_renewer, shared_between_processes
from toolkit.publishing import remove_abandoned

#: the file ``toolkit run`` names for the run record: one JSON line per recorded execution
RUN_LOG_ENV = _env.RUN_LOG


class RunHook:
    """The hook protocol: override what you need; every method here does nothing.

    ``result`` is a :class:`toolkit.records.ExecutionResult`, or a
    :class:`toolkit.records.SkippedRun` for a SKIP decision."""

    def store_config(self) -> Any | None:
        """The metadata store's connection config to use when the user gave none, or None."""
        return None

    def before_decide(self, run: Run) -> Ruling | None:
        """Before the inputs, the driver hook and the cache are asked: a policy may rule."""
        return None

    def before_execute(self, run: Run, decision: Decision) -> None:
        """A COMPUTE run is recorded as running (``run.execution_id``); the executor is next."""

    def after_execute(self, run: Run, decision: Decision,
                      outputs: dict[str, list[Artifact]]) -> None:
        """The executor returned and its outputs are published; the record is next."""

    def on_failure(self, run: Run, decision: Decision, error: BaseException) -> None:
        """The executor, publishing or the record of a COMPUTE run failed."""

    def after_run(self, run: Run, decision: Decision, result: Any) -> None:
        """The run is over and its result made; raising stops the pipeline here."""


class Hooks:
    """The installed hooks, called in order."""

    def __init__(self, hooks: Iterable[RunHook]):
        self.hooks = list(hooks)

    def store_config(self) -> Any | None:
        return next((c for c in (h.store_config() for h in self.hooks) if c is not None), None)

    def before_decide(self, run: Run) -> None:
        for hook in self.hooks:
            ruling = hook.before_decide(run)
            if ruling is not None and run.ruling is None:
                run.ruling = ruling

    def before_execute(self, run: Run, decision: Decision) -> None:
        for hook in self.hooks:
            hook.before_execute(run, decision)

    def after_execute(self, run: Run, decision: Decision,
                      outputs: dict[str, list[Artifact]]) -> None:
        for hook in self.hooks:
            hook.after_execute(run, decision, outputs)

    def on_failure(self, run: Run, decision: Decision, error: BaseException) -> None:
        """Every hook hears of the failure, even if one of them fails meanwhile: the
        original error is what the user must see."""
        for hook in self.hooks:
            try:
                hook.on_failure(run, decision, error)
            except Exception:
                pass

    def after_run(self, run: Run, decision: Decision, result: Any) -> None:
        for hook in self.hooks:
            hook.after_run(run, decision, result)


class Ownership(RunHook):
    """Who owns running work, on a store shared by processes and hosts.

    Before deciding, executions of the component that are provably abandoned (their
    process ended on this host, or their lease expired) are marked failed and what they
    wrote is removed, so a crashed run never blocks or pollutes the next one. While an
    executor runs, a heartbeat renews its record's ``heartbeat_at`` every third of the
    lease through a connection of its own, so other hosts see it is alive. A run a policy
    rules on (READ or SKIP) executes nothing, so nothing is reaped for it."""

    def __init__(self, connection_config: Any, lease_seconds: float):
        self.connection_config = connection_config
        self.lease_seconds = lease_seconds
        self._beats: dict[int, Heartbeat] = {}

    def before_decide(self, run: Run) -> None:
        if run.ruling is not None:
            return None
        component_id = run.component.id
        for row in run.store.executions(component_id):
            if row["state"] != "RUNNING":
                continue
            reason = abandonment(row)
            if reason is None:
                continue
            if run.store.fail_execution(row["id"], f"abandoned: {reason}", only_if_running=True):
                remove_abandoned(run.pipeline_root, component_id, row["id"],
                                 int(row["pid"] or 0))
        return None

    def before_execute(self, run: Run, decision: Decision) -> None:
        if not shared_between_processes(self.connection_config):
            return  # an in-memory store is private to this process: no one else looks
        renew = heartbeat_renewer(self.connection_config, run.execution_id,
                                  retry_budget=self.lease_seconds / 3)
        self._beats[run.execution_id] = Heartbeat(renew, self.lease_seconds / 3,
                                                  run.component.id).start()

    def after_execute(self, run: Run, decision: Decision, outputs) -> None:
        self._stop(run)

    def on_failure(self, run: Run, decision: Decision, error: BaseException) -> None:
        self._stop(run)

    def _stop(self, run: Run) -> None:
        beat = self._beats.pop(run.execution_id, None)
        if beat is not None:
            beat.stop()


def abandonment(row: dict[str, Any]) -> str | None:
    """Why a RUNNING execution record is abandoned, or None while it may be alive. One
    recorded with its owner is abandoned only when its process ended on this host or its
    lease expired (:func:`toolkit._process.abandoned_reason`); one recorded before owners
    were (no host) only when its pid is not alive here."""
    pid = int(row["pid"] or 0)
    if not row.get("host"):
        if pid and pid_alive(pid):
            return None
        return f"process {pid} ended before the execution finished"
    owner = Owner(row["host"], pid, row.get("pid_started") or "",
                  _number(row.get("heartbeat_at") or row.get("started_at"), 0.0),
                  _number(row.get("lease_s"), DEFAULT_LEASE_SECONDS))
    return abandoned_reason(owner)


def _number(text: Any, default: float) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return default


class LiveProgress(RunHook):
    """A live line while an executor runs: the component, the stage its executor reports
    (:func:`toolkit.progress.report`) and the elapsed time; started before the executor,
    stopped after it or on its failure. It never fails a run."""

    def __init__(self):
        self._reporters: dict[int, progress.Reporter] = {}

    def before_execute(self, run: Run, decision: Decision) -> None:
        reporter = progress.start(run.component.id)
        if reporter is not None:
            self._reporters[run.execution_id] = reporter

    def after_execute(self, run: Run, decision: Decision, outputs) -> None:
        self._stop(run, ok=True)

    def on_failure(self, run: Run, decision: Decision, error: BaseException) -> None:
        self._stop(run, ok=False)

    def _stop(self, run: Run, ok: bool) -> None:
        reporter = self._reporters.pop(run.execution_id, None)
        if reporter is not None:
            reporter.stop(ok)


class RunLog(RunHook):
    """Appends each recorded execution (computed or reused) as one JSON line to the file
    the run-log variable (:data:`toolkit._env.RUN_LOG`) names: the run record
    ``toolkit run`` and a pipeline step read back. Read at every run, since the runner sets
    it in the kernel's environment."""

    def after_run(self, run: Run, decision: Decision, result: Any) -> None:
        path = os.environ.get(RUN_LOG_ENV)
        if not path or not decision.records:
            return
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(result.to_dict(), default=str) + "\n")


class ProductionGate(RunHook):
    """In production mode (``toolkit.set_mode("production")``, headless runs), a
    component whose gate failed stops the pipeline with :class:`GateError`, after its
    execution is recorded; a notebook shows the failure beside the result instead."""

    def after_run(self, run: Run, decision: Decision, result: Any) -> None:
        failure = getattr(result, "gate_failure", None)
        if failure and decision.role is not Role.SKIP and get_mode() == "production":
            raise GateError(f"{run.component.id}: {failure}")
