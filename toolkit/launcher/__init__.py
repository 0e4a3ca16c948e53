"""The launcher: one pass through driver, executor and publisher for each ``context.run``.

Modelled on TFX's ``base_component_launcher.launch()``, :meth:`Launcher.launch` reads top
to bottom once::

    hooks.before_decide → decide → execute (COMPUTE only) → publish → record → hooks.after_run

:meth:`Launcher.decide` is the one place that chooses what a run does (compute, reuse,
read from the store, skip, or wait for another process computing the same key), and
its :class:`Decision` carries the choice, the cache key, the hit or the replaced outputs
and the reason to every later phase. Side concerns (ownership of running work, the run
log, the production gate, a pipeline step's policy) are hooks around this loop
(:mod:`toolkit.launcher.hooks`, :mod:`toolkit.launcher.policies`), not branches in it.

The launcher calls down only: into components (their driver hook and executor), the
cache key, publishing, the metadata store and the hooks; none of them calls back.

Single flight: two processes sharing a metadata store (parallel points of a sweep, or
any runs with ``$TOOLKIT_SINGLE_FLIGHT=1``, which a sweep sets for its points) that need
the same cache key compute it once. Without it, each computes its own, as before. With it,
a cache miss is *claimed* in ``decide``: its execution is recorded RUNNING before the
decision is final, and if another live process holds an earlier RUNNING execution of
the same key, this run yields its claim (recorded FAILED, "yielded") and WAITs: it polls
the store until that execution is recorded, then decides again and REUSEs it. If the
owner dies meanwhile (the ownership rules of :mod:`toolkit._process` prove it), the
waiter reaps it as the reaper would and computes it itself.
"""
from __future__ import annotations

import os
import shutil
import time
import traceback
from typing import Any

from toolkit import _env, progress, storage
from toolkit._mode import get_mode
from toolkit._process import Owner, host_identity, lease_seconds
from toolkit._text import error_line, show_controls
from toolkit.artifacts import Artifact
from toolkit.base_component import BaseComponent, ExecutorContext, ExternalEffects
from toolkit.cache import cache_key, unusable_outputs
from toolkit.errors import ComponentError, ToolkitError, UpstreamNotRunError
from toolkit.launcher.decision import Awaited, Decision, Hit, Role, Ruling, Run
from toolkit.launcher.hooks import (
    Hooks,
    LiveProgress,
    Ownership,
    ProductionGate,
    RunHook,
    RunLog,
    abandonment,
)
from toolkit.launcher.policies import load_policies, register_policy
from toolkit.metadata import MetadataStore, sqlite_config
from toolkit.publishing import (
    OutputFolders,
    disk_full_message,
    has_artifact_folders,
    is_disk_full,
    remove_abandoned,
    scratch_dir,
)
from toolkit.records import ExecutionResult, SkippedRun

__all__ = ["Awaited", "Decision", "Hit", "Launcher", "Role", "Ruling", "Run", "RunHook",
           "register_policy"]

Outputs = dict[str, list[Artifact]]

#: how often a waiting run looks at the execution it waits for (at most a quarter of
#: the lease): often enough that a finished upstream is picked up within a second, and
#: one small query per second is nothing for SQLite or MySQL
WAIT_POLL_SECONDS = 1.0
#: how often a waiting run says it is still waiting
WAIT_NOTE_SECONDS = 60.0


class Launcher:
    """Runs components of one pipeline against one metadata store: see the module's doc.

    ``policies``: the policy hooks to install (default: those the environment names, see
    :mod:`toolkit.launcher.policies`); they come before the built-in hooks."""

    def __init__(self, pipeline_name: str, pipeline_root: str,
                 metadata_connection_config: Any = None,
                 beam_pipeline_args: list[str] | None = None,
                 lease_seconds: float | None = None,
                 policies: list[RunHook] | None = None):
        self.pipeline_name = pipeline_name
        self.pipeline_root = pipeline_root
        policies = load_policies() if policies is None else list(policies)
        if metadata_connection_config is None:
            metadata_connection_config = Hooks(policies).store_config()
        if metadata_connection_config is None:
            if storage.scheme_of(pipeline_root) != "file":
                raise ToolkitError(
                    f"pipeline_root {pipeline_root} is in an object store, where the metadata "
                    "store cannot live: pass metadata_connection_config, a MySQL store "
                    f"(toolkit.metadata_config.mysql_config, or set {_env.MYSQL_HOST}) or a "
                    "local SQLite file (sqlite_metadata_connection_config('metadata.sqlite'))")
            metadata_connection_config = sqlite_config(
                os.path.join(pipeline_root, "metadata.sqlite"))
        self.metadata_connection_config = metadata_connection_config
        self.beam_pipeline_args = list(beam_pipeline_args or [])
        self.lease_seconds = _lease_seconds(lease_seconds)
        self.hooks = Hooks([*policies, Ownership(metadata_connection_config, self.lease_seconds),
                            LiveProgress(), RunLog(), ProductionGate()])
        #: component id -> why it was skipped, for views of its (empty) channels
        self.skipped: dict[str, SkippedRun] = {}
        self._store: MetadataStore | None = None

    @property
    def store(self) -> MetadataStore:
        """The pipeline's metadata store (opened on first use)."""
        if self._store is None:
            self._store = MetadataStore(self.pipeline_name, self.metadata_connection_config)
            if has_artifact_folders(self.pipeline_root) and not self._store.has_executions():
                print(f"InteractiveContext: {self._store.location} records no executions, but "
                      f"{self.pipeline_root} holds artifact folders (the metadata store was "
                      "deleted or replaced?): they are not reused; components run again",
                      flush=True)
        return self._store

    # -- the loop ------------------------------------------------------------------------
    def launch(self, component: BaseComponent, enable_cache: bool = True,
               beam_pipeline_args: list[str] | None = None) -> ExecutionResult | SkippedRun:
        """Run ``component`` once: decide, carry the decision out, hand the outputs over."""
        run = Run(component, self.store, self.pipeline_root, enable_cache, beam_pipeline_args)
        self.hooks.before_decide(run)
        decision = self.decide(run)
        while decision.role is Role.WAIT:  # single flight: then decide again
            self.wait(run, decision)
            decision = self.decide(run)
        if decision.role is Role.SKIP:
            result = self.skip(run, decision)
        else:
            if decision.role is Role.COMPUTE:
                outputs = self.compute(run, decision)  # execute → publish → record
            else:  # REUSE, READ: the outputs recorded earlier
                outputs = decision.hit.outputs
                self.record(run, decision, outputs)
            result = self.hand_over(run, decision, outputs)
        self.hooks.after_run(run, decision, result)
        return result

    def decide(self, run: Run) -> Decision:
        """The one place that chooses what ``run`` does, from the policies' ruling and
        then the cache. Resolves on the way what the run reads: its inputs, its driver
        hook (:meth:`BaseComponent.resolve_exec_properties`) and its cache key."""
        component, ruling = run.component, run.ruling
        if ruling is not None and ruling.role is Role.SKIP:
            return Decision(Role.SKIP, ruling.reason)  # not resolved: it may not be resolvable here
        run.inputs = {key: channel.resolve(component.id, key)
                      for key, channel in component.inputs.items() if channel is not None}
        run.resolved = component.resolve_exec_properties(run.inputs)
        key = cache_key(component, run.inputs, run.store.location, run.resolved)
        if ruling is not None:  # READ: as the process that computed it recorded it
            hit = self._recorded(run, key.digest)
            if hit is None:
                raise UpstreamNotRunError(
                    f"{component.id}: no completed execution with these inputs and parameters "
                    f"in {run.store.location}; {ruling.reason}")
            return Decision(Role.READ, ruling.reason, key, hit)
        if component.REFERENCES_EXISTING_ARTIFACTS:
            return Decision(Role.COMPUTE, "it references artifacts recorded earlier, which are "
                                          "found anew on every run (never cached)", key)
        if not run.enable_cache:
            return Decision(Role.COMPUTE, "the cache is off for this run (enable_cache=False)", key)
        hit, damaged = self._intact_hit(run, key.digest)
        if hit is None:
            if damaged:
                return self._claim(run, Decision(
                    Role.COMPUTE, "the outputs of every completed execution with this cache "
                                  f"key are missing or damaged (execution {', '.join(damaged)})",
                    key))
            return self._claim(run, Decision(Role.COMPUTE,
                                             "no completed execution has this cache key", key))
        missing = component.missing_external_effects(hit.outputs)
        if missing:
            print(show_controls(f"[{component.id}] {missing}"), flush=True)
            return Decision(Role.COMPUTE, missing, key, replaced=hit.outputs)
        return Decision(Role.REUSE, f"execution {hit.execution_id} has this cache key and its "
                                    "outputs are intact", key, hit)

    def _claim(self, run: Run, compute: Decision) -> Decision:
        """Single flight for a cache miss: ``compute`` if no other live process is
        computing this key, else WAIT for it. Only where ``$TOOLKIT_SINGLE_FLIGHT`` is ``1``
        (a sweep sets it for its points): waiting on another host's execution lasts until it
        completes or its lease proves it abandoned, which a run that merely shares a store
        should not be made to do.

        Looking first spares a record in the common case; the claim (this run's RUNNING
        execution, ``run.execution_id``) then settles a race between processes that looked
        at the same moment: each looks again for an *earlier* live claim, so exactly the
        first one computes, whatever the timing. A process that completed the key between
        this run's cache lookup and its claim is found too (its record is no longer
        running), so the claim yields to it as well. A claim that loses is recorded failed
        as "yielded" (the store has no way to delete it) and the run waits, which for a
        completed execution means deciding again at once and reusing it."""
        if os.environ.get(_env.SINGLE_FLIGHT, "") != "1":
            return compute  # computed beside any other process's execution of this key
        digest = compute.key.digest
        elsewhere = self._computing_elsewhere(run, digest)
        if elsewhere is None:
            run.execution_id = self._start_record(run, compute)
            elsewhere = self._computing_elsewhere(run, digest, before=run.execution_id)
            if elsewhere is None:
                found = run.store.find_cached(run.component.id, digest)
                if found is None:
                    return compute
                elsewhere = Awaited(int(found[0]), "a process that completed it meanwhile")
            run.store.fail_execution(
                run.execution_id, f"yielded: execution {elsewhere.execution_id} of "
                f"{elsewhere.owner} claimed the same cache key first (single flight)",
                only_if_running=True)
            run.execution_id = None
        return Decision(Role.WAIT, f"execution {elsewhere.execution_id} of {elsewhere.owner} "
                                   "is computing this cache key now", compute.key,
                        awaited=elsewhere)

    def _computing_elsewhere(self, run: Run, digest: str,
                             before: int | None = None) -> Awaited | None:
        """The earliest RUNNING execution with this cache key (recorded before ``before``,
        if given) that another process owns and that is not provably abandoned."""
        me = (host_identity(), os.getpid())
        for row in run.store.executions(run.component.id):
            if row["state"] != "RUNNING" or row["cache_key"] != digest:
                continue
            if before is not None and int(row["id"]) >= before:
                continue
            pid = int(row["pid"] or 0)
            if (row.get("host"), pid) == me or abandonment(row) is not None:
                continue
            hostname = str(row.get("host") or "?").split("/")[0]
            return Awaited(int(row["id"]), f"{hostname}/{pid}")
        return None

    def wait(self, run: Run, decision: Decision) -> None:
        """Carry a WAIT out: poll the awaited execution until it is no longer running
        (recorded complete or failed), or until it is provably abandoned: then reap it
        as :class:`~toolkit.launcher.hooks.Ownership` does, so this run may take over."""
        awaited, component_id = decision.awaited, run.component.id
        print(show_controls(f"[{component_id}] waiting for {component_id} being computed by "
                            f"{awaited.owner} (execution {awaited.execution_id})"), flush=True)
        interval = min(WAIT_POLL_SECONDS, self.lease_seconds / 4)
        started = last_said = time.monotonic()
        while True:
            row = run.store.execution(awaited.execution_id)
            if row["state"] != "RUNNING":
                print(show_controls(f"[{component_id}] execution {awaited.execution_id} is "
                                    f"{row['state'].lower()}"), flush=True)
                return
            reason = abandonment(row)
            if reason is not None:
                if run.store.fail_execution(row["id"], f"abandoned: {reason}",
                                            only_if_running=True):
                    remove_abandoned(run.pipeline_root, component_id, row["id"],
                                     int(row["pid"] or 0))
                print(show_controls(f"[{component_id}] execution {awaited.execution_id} was "
                                    f"abandoned ({reason}); taking it over"), flush=True)
                return
            if time.monotonic() - last_said >= WAIT_NOTE_SECONDS:  # still alive, still waiting
                last_said = time.monotonic()
                print(show_controls(f"[{component_id}] still waiting for {awaited.owner} "
                                    f"(execution {awaited.execution_id}), "
                                    f"{last_said - started:.0f} s so far"), flush=True)
            time.sleep(interval)

    def _intact_hit(self, run: Run, digest: str) -> tuple[Hit | None, list[str]]:
        """The latest execution with this cache key whose outputs are intact on disk, and
        the ids of later ones whose outputs were not: those are marked failed (their
        artifacts deleted) on the way, so they are never offered again."""
        damaged_ids = []
        while (found := run.store.find_cached(run.component.id, digest)) is not None:
            hit = Hit(*found)
            damaged = unusable_outputs(hit.outputs)
            if not damaged:
                return hit, damaged_ids
            print(show_controls(f"[{run.component.id}] cached outputs of execution "
                                f"{hit.execution_id} are missing or damaged "
                                f"({', '.join(a.uri for a in damaged)}); recomputing"), flush=True)
            run.store.mark_artifacts_deleted(damaged)
            run.store.fail_execution(hit.execution_id, "outputs missing or damaged on disk")
            damaged_ids.append(str(hit.execution_id))
        return None, damaged_ids

    def _recorded(self, run: Run, digest: str) -> Hit | None:
        """For a READ: the execution another process recorded with this key. A resolution
        (possibly of nothing) is read as its own run recorded it; anything else must be a
        cache hit whose outputs and outside effects are intact."""
        if run.component.REFERENCES_EXISTING_ARTIFACTS:
            rows = [row for row in run.store.executions(run.component.id)
                    if row["cache_key"] == digest and row["state"] == "COMPLETE"]
            if not rows:
                return None
            return Hit(int(rows[-1]["id"]), run.store.outputs_of(int(rows[-1]["id"])))
        hit, _ = self._intact_hit(run, digest)
        if hit is None or run.component.missing_external_effects(hit.outputs):
            return None
        return hit

    # -- carrying a decision out ---------------------------------------------------------
    def compute(self, run: Run, decision: Decision) -> Outputs:
        """Record the execution as running, execute into staged folders, publish them,
        record it complete. On any failure nothing it wrote is left behind, the execution
        is recorded as failed with the reason, and a :class:`ComponentError` is raised
        (interrupts as they are)."""
        component = run.component
        if run.execution_id is None:  # a cache miss was claimed by decide already
            run.execution_id = self._start_record(run, decision)
        pid = os.getpid()
        folders = OutputFolders(self.pipeline_root, component.id, run.execution_id, pid,
                                run.store.location)
        tmp_dir = scratch_dir(self.pipeline_root, run.execution_id, pid)
        try:
            self.hooks.before_execute(run, decision)
            outputs = self.execute(run, decision, folders, tmp_dir)
            if not component.REFERENCES_EXISTING_ARTIFACTS:
                folders.publish(outputs)
            self.hooks.after_execute(run, decision, outputs)
            self.record(run, decision, outputs)
            return outputs
        except BaseException as exc:
            self.hooks.on_failure(run, decision, exc)
            message, whole = self._failed(run, folders, exc)
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            if whole:  # written for the user: the message says it all
                raise ComponentError(component.id, message, run.execution_id) from None
            raise ComponentError(component.id, message, run.execution_id) from exc
        finally:
            shutil.rmtree(tmp_dir, ignore_errors=True)

    def execute(self, run: Run, decision: Decision, folders: OutputFolders,
                tmp_dir: str) -> Outputs:
        """The executor: ``Do`` into staged output folders (or, for a component that
        references existing artifacts, into empty lists it fills)."""
        component = run.component
        outputs = ({key: [] for key in component.OUTPUTS}
                   if component.REFERENCES_EXISTING_ARTIFACTS else folders.stage(component.OUTPUTS))
        os.makedirs(tmp_dir, exist_ok=True)
        ctx = ExecutorContext(
            component_id=component.id, pipeline_root=self.pipeline_root,
            execution_id=run.execution_id, tmp_dir=tmp_dir,
            beam_pipeline_args=list(run.beam_pipeline_args if run.beam_pipeline_args is not None
                                    else self.beam_pipeline_args),
            production=get_mode() == "production", log=_logger(component.id), store=run.store)
        extra = ({"effects": ExternalEffects(decision.replaced, self.lease_seconds)}
                 if component.HAS_EXTERNAL_EFFECTS else {})
        component.Do(run.inputs, outputs, run.resolved.exec_properties, ctx, **extra)
        return outputs

    def record(self, run: Run, decision: Decision, outputs: Outputs) -> None:
        """The commit point: the execution recorded complete, computed now or a cache hit of
        ``decision.hit`` (recorded as a new execution that names it). A READ records
        nothing: the process that computed it did."""
        if not decision.records:
            return
        cached = decision.role is Role.REUSE
        if cached:
            run.execution_id = self._start_record(run, decision)
        run.store.complete_execution(
            run.execution_id, outputs, run.elapsed,
            outcome=run.component.outcome(outputs, cached=cached),
            **({"cached_from": decision.hit.execution_id} if cached else {}))

    def hand_over(self, run: Run, decision: Decision, outputs: Outputs) -> ExecutionResult:
        """Give the outputs to the component's channels and make the run's result, with the
        component's gate verdict (which a hook may enforce)."""
        component = run.component
        cached = decision.role is not Role.COMPUTE
        for key, channel in component.outputs.items():
            channel.set_artifacts(outputs.get(key, []))
        execution_id = decision.hit.execution_id if decision.role is Role.READ else run.execution_id
        result = ExecutionResult(component, execution_id, run.inputs, outputs, cached, run.elapsed,
                                 outcome=component.outcome(outputs, cached))
        result.gate_failure = component.gate(outputs, component.exec_properties)
        return result

    def skip(self, run: Run, decision: Decision) -> SkippedRun:
        """Neither executed nor recorded: the channels hold nothing, and say why."""
        skipped = SkippedRun(run.component.id, decision.reason)
        self.skipped[run.component.id] = skipped
        for channel in run.component.outputs.values():
            channel.set_artifacts([])
        print(repr(skipped), flush=True)
        return skipped

    def _start_record(self, run: Run, decision: Decision) -> int:
        key = decision.key
        return run.store.start_execution(type(run.component).__name__, run.component.id,
                                         key.digest, key.parameters, key.module_fingerprint,
                                         run.inputs, owner=Owner.current(self.lease_seconds))

    def _failed(self, run: Run, folders: OutputFolders, exc: BaseException) -> tuple[str, bool]:
        """Remove what the execution wrote and record why it failed: ``(message, whole)``,
        the reason to raise and whether it is a message for the user that needs no
        traceback (a toolkit error, a full disk)."""
        message = _failure_reason(exc)
        folders.discard()
        raised, whole = (str(exc), True) if isinstance(exc, ToolkitError) else (message, False)
        if is_disk_full(exc):
            message = raised = disk_full_message(self.pipeline_root, message)
            whole = True
        try:
            run.store.fail_execution(run.execution_id,
                                     message + "\n" + traceback.format_exc()[-3000:],
                                     only_if_running=True)
        except Exception:  # the store itself may be what failed; the original error matters
            pass
        return raised, whole


def _lease_seconds(value: float | None) -> float:
    try:
        return lease_seconds(value)
    except ValueError as exc:
        raise ToolkitError(str(exc)) from None


def _failure_reason(exc: BaseException) -> str:
    """Why an execution failed, as recorded and raised: a ToolkitError's message whole (it
    is written for the user and may span lines), any other error as its type and first line."""
    if isinstance(exc, ToolkitError):
        return str(exc).strip() or type(exc).__name__
    return f"{type(exc).__name__}: {error_line(exc)}"


def _logger(component_id: str):
    def log(message: str) -> None:
        print(show_controls(f"[{component_id}] {message}"), flush=True)
        progress.note(message)  # the latest log line is the stage a notebook shows
    return log
