"""InteractiveContext: the driver that runs components inline, records them, reuses them.

The same object runs in a notebook (rich views) and headless under papermill or
``toolkit run`` (text summaries; production gates are enforced). It decides
whether to reuse an execution (:mod:`toolkit.cache`), records every execution in
ML Metadata (:mod:`toolkit.metadata`), and lets the executor write only into
folders that are published whole afterwards (:mod:`toolkit.publishing`).

A run can be restricted to one component (each task of a Kubeflow Pipelines export
is): see :class:`Restriction`. Then the components it depends on are only read from
the store, and every other component is skipped.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import traceback
from typing import Any

from toolkit._mode import get_mode, set_mode  # noqa: F401  set_mode: exports made before toolkit.set_mode
from toolkit._process import (
    DEFAULT_LEASE_SECONDS,
    Heartbeat,
    Owner,
    abandoned_reason,
    lease_seconds,
    pid_alive,
)
from toolkit._text import error_line, show_controls
from toolkit.artifacts import Artifact
from toolkit.base_component import BaseComponent, Channel, ExecutorContext
from toolkit.cache import CacheKey, cache_key, unusable_outputs
from toolkit.errors import ComponentError, GateError, ToolkitError, UpstreamNotRunError
from toolkit.metadata import (
    MetadataStore,
    heartbeat_renewer,
    shared_between_processes,
    sqlite_config,
)
from toolkit.publishing import (
    OutputFolders,
    disk_full_message,
    has_artifact_folders,
    is_disk_full,
    remove_abandoned,
    scratch_dir,
)
from toolkit.records import ExecutionResult, ExecutionsTable, Lineage


class InteractiveContext:
    """Runs components one at a time, records every execution in ML Metadata and
    reuses an earlier execution when its inputs, parameters and module files are
    unchanged.

    Args:
        pipeline_name: names the pipeline context in the metadata store.
        pipeline_root: folder for artifacts and (by default) ``metadata.sqlite``;
            a temporary folder when omitted.
        metadata_connection_config: an ``ml_metadata`` ``ConnectionConfig``
            (for example MySQL) used instead of the SQLite file.
        beam_pipeline_args: default Beam arguments for data-heavy components.
        lease_seconds: how long a running execution's heartbeat vouches for it (renewed
            every third of it). Another process on another host declares the execution
            abandoned only once its heartbeat is older than this; on the same host a
            process that is gone is recognised at once. Default ``$TOOLKIT_LEASE_SECONDS``,
            else 120 s: long enough that a busy 2-core machine renews in time, short
            enough that a crashed cluster job is recovered within minutes.
    """

    def __init__(self, pipeline_name: str | None = None, pipeline_root: str | None = None,
                 metadata_connection_config: Any = None,
                 beam_pipeline_args: list[str] | None = None,
                 lease_seconds: float | None = None):
        self.pipeline_name = pipeline_name or "pipeline"
        if pipeline_root is None:
            pipeline_root = tempfile.mkdtemp(prefix=f"toolkit-{self.pipeline_name}-")
            print(f"InteractiveContext: pipeline_root not given, using {pipeline_root}")
        self.pipeline_root = os.path.abspath(os.fspath(pipeline_root))
        os.makedirs(self.pipeline_root, exist_ok=True)
        self._restriction = Restriction.from_env()
        if metadata_connection_config is None and self._restriction is not None:
            from toolkit.metadata_config import mysql_config_from_env

            metadata_connection_config = mysql_config_from_env()
        if metadata_connection_config is None:
            metadata_connection_config = sqlite_config(
                os.path.join(self.pipeline_root, "metadata.sqlite"))
        self.metadata_connection_config = metadata_connection_config
        self.beam_pipeline_args = list(beam_pipeline_args or [])
        self.lease_seconds = _lease_seconds(lease_seconds)
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

    @property
    def production(self) -> bool:
        return get_mode() == "production"

    # -- running ---------------------------------------------------------------
    def run(self, component: BaseComponent, enable_cache: bool = True,
            beam_pipeline_args: list[str] | None = None) -> "ExecutionResult":
        """Execute ``component`` now (or reuse a cached execution) and return the result."""
        if not isinstance(component, BaseComponent):
            raise TypeError(f"context.run expects a component, got {type(component).__name__}")
        started = time.perf_counter()
        role = self._restriction.role(component.id) if self._restriction is not None else "run"
        if role == "skip":
            return self._restriction.skip(component)
        inputs = {key: channel.resolve(component.id, key)
                  for key, channel in component.inputs.items() if channel is not None}
        store = self.store
        if role == "upstream":
            return self._resolve_upstream(component, inputs, started)
        key = cache_key(component, inputs, store.location)
        self._reap_abandoned(component.id)

        replaced = None
        if enable_cache and not component.REFERENCES_EXISTING_ARTIFACTS:
            hit, replaced = self._cached_outputs(component, key.digest)
            if hit is not None:
                source_id, outputs = hit
                execution_id = self._start_execution(component, key, inputs)
                store.complete_execution(execution_id, outputs, time.perf_counter() - started,
                                         cached_from=source_id,
                                         outcome=component.outcome(outputs, cached=True))
                return self._finish(component, execution_id, inputs, outputs, True, started)

        execution_id = self._start_execution(component, key, inputs)
        outputs = self._execute(component, execution_id, inputs, beam_pipeline_args, started,
                                replaced)
        return self._finish(component, execution_id, inputs, outputs, False, started)

    def _resolve_upstream(self, component: BaseComponent, inputs: dict[str, list[Artifact]],
                          started: float) -> "ExecutionResult":
        """In a run restricted to one component, an upstream component is only read from the
        store: its latest reusable execution with the same cache key, recorded by the run
        that computed it. Nothing new is recorded; a miss stops the run with one line."""
        key = cache_key(component, inputs, self.store.location)
        if component.REFERENCES_EXISTING_ARTIFACTS:
            # a resolution (possibly of nothing) is read as its own task recorded it
            rows = [row for row in self.store.executions(component.id)
                    if row["cache_key"] == key.digest and row["state"] == "COMPLETE"]
            hit = (int(rows[-1]["id"]), self.store.outputs_of(int(rows[-1]["id"]))) if rows else None
        else:
            hit, _ = self._cached_outputs(component, key.digest)
        if hit is None:
            raise UpstreamNotRunError(
                f"{component.id}: no completed execution with these inputs and parameters in "
                f"{self.store.location}; this run is restricted to {self._restriction.only}, which "
                f"reads {component.id} from the store (run {component.id}'s own task first)")
        source_id, outputs = hit
        for key_name, channel in component.outputs.items():
            channel.set_artifacts(outputs.get(key_name, []))
        result = ExecutionResult(component, source_id, inputs, outputs, True,
                                 time.perf_counter() - started,
                                 outcome=component.outcome(outputs, True))
        result.gate_failure = component.gate(outputs, component.exec_properties)
        if result.gate_failure and self.production:
            raise GateError(f"{component.id}: {result.gate_failure}")
        return result

    def _start_execution(self, component: BaseComponent, key: CacheKey,
                         inputs: dict[str, list[Artifact]]) -> int:
        return self.store.start_execution(type(component).__name__, component.id, key.digest,
                                          key.parameters, key.module_fingerprint, inputs,
                                          owner=Owner.current(self.lease_seconds))

    def _heartbeat(self, component_id: str, execution_id: int) -> Heartbeat | None:
        """Renews the execution's ``heartbeat_at`` every third of the lease while it runs,
        through a connection of its own, so other hosts see it is alive."""
        if not shared_between_processes(self.metadata_connection_config):
            return None
        renew = heartbeat_renewer(self.metadata_connection_config, execution_id,
                                  retry_budget=self.lease_seconds / 3)
        return Heartbeat(renew, self.lease_seconds / 3, component_id).start()

    def _execute(self, component: BaseComponent, execution_id: int,
                 inputs: dict[str, list[Artifact]], beam_pipeline_args: list[str] | None,
                 started: float, replaced: dict[str, list[Artifact]] | None = None
                 ) -> dict[str, list[Artifact]]:
        """Run the executor into staged folders, publish them and record the execution.

        On any failure nothing it wrote is left behind, the execution is recorded as
        failed with the reason, and a :class:`ComponentError` is raised (interrupts as
        they are)."""
        pid = os.getpid()
        folders = OutputFolders(self.pipeline_root, component.id, execution_id, pid,
                                self.store.location)
        tmp_dir = scratch_dir(self.pipeline_root, execution_id, pid)
        heartbeat = self._heartbeat(component.id, execution_id)
        try:
            try:
                references = component.REFERENCES_EXISTING_ARTIFACTS
                outputs = ({key: [] for key in component.OUTPUTS} if references
                           else folders.stage(component.OUTPUTS))
                os.makedirs(tmp_dir, exist_ok=True)
                ctx = ExecutorContext(
                    component_id=component.id, pipeline_root=self.pipeline_root,
                    execution_id=execution_id, tmp_dir=tmp_dir,
                    beam_pipeline_args=list(beam_pipeline_args if beam_pipeline_args is not None
                                            else self.beam_pipeline_args),
                    production=self.production, log=_logger(component.id),
                    lease_seconds=self.lease_seconds, replaced_outputs=replaced,
                    store=self.store)
                component.Do(inputs, outputs, dict(component.exec_properties), ctx)
                if not references:
                    folders.publish(outputs)
            finally:
                if heartbeat is not None:
                    heartbeat.stop()
            self.store.complete_execution(execution_id, outputs, time.perf_counter() - started,
                                          outcome=component.outcome(outputs, cached=False))
        except BaseException as exc:
            message = _failure_reason(exc)
            folders.discard()
            if is_disk_full(exc):
                message = disk_full_message(self.pipeline_root, message)
                exc = ToolkitError(message)
            try:
                self.store.fail_execution(execution_id,
                                          message + "\n" + traceback.format_exc()[-3000:],
                                          only_if_running=True)
            except Exception:  # the store itself may be what failed; the original error matters
                pass
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            if isinstance(exc, ToolkitError):
                raise ComponentError(component.id, str(exc), execution_id) from None
            raise ComponentError(component.id, message, execution_id) from exc
        finally:
            shutil.rmtree(tmp_dir, ignore_errors=True)
        return outputs

    def _finish(self, component: BaseComponent, execution_id: int,
                inputs: dict[str, list[Artifact]], outputs: dict[str, list[Artifact]],
                cached: bool, started: float) -> "ExecutionResult":
        """Hand the outputs to the component's channels, log the result, apply the gate."""
        for key, channel in component.outputs.items():
            channel.set_artifacts(outputs.get(key, []))
        result = ExecutionResult(component, execution_id, inputs, outputs, cached,
                                 time.perf_counter() - started,
                                 outcome=component.outcome(outputs, cached))
        result.gate_failure = component.gate(outputs, component.exec_properties)
        _append_run_log(result)
        if result.gate_failure and self.production:
            raise GateError(f"{component.id}: {result.gate_failure}")
        return result

    def _cached_outputs(self, component: BaseComponent, digest: str):
        """``(hit, replaced)``: the latest reusable execution with this cache key as
        ``(execution id, outputs)``, or None; and, when that execution's effects outside
        its artifact folders are gone (it is then not reused, but stays a true record of
        what it once did), its outputs, for the executor that replaces it.

        Executions whose outputs were damaged on disk are marked failed and skipped."""
        component_id = component.id
        hit = self.store.find_cached(component_id, digest)
        if hit is None:
            return None, None
        source_id, outputs = hit
        damaged = unusable_outputs(outputs)
        if damaged:
            print(show_controls(f"[{component_id}] cached outputs of execution {source_id} are "
                                f"missing or damaged ({', '.join(a.uri for a in damaged)}); "
                                "recomputing"), flush=True)
            self.store.mark_artifacts_deleted(damaged)
            self.store.fail_execution(source_id, "outputs missing or damaged on disk")
            return self._cached_outputs(component, digest)
        missing = component.missing_external_effects(outputs)
        if missing:
            print(show_controls(f"[{component_id}] {missing}"), flush=True)
            return None, outputs
        return hit, None

    def _reap_abandoned(self, component_id: str) -> None:
        """Executions whose process is provably gone: mark them failed, remove what they
        wrote. An execution recorded with its owner is abandoned only when its process
        ended on this host or its lease expired (:func:`toolkit._process.abandoned_reason`);
        one recorded before owners were (no host) only when its pid is not alive here."""
        for row in self.store.executions(component_id):
            if row["state"] != "RUNNING":
                continue
            reason = _abandonment(row)
            if reason is None:
                continue
            if self.store.fail_execution(row["id"], f"abandoned: {reason}", only_if_running=True):
                remove_abandoned(self.pipeline_root, component_id, row["id"],
                                 int(row["pid"] or 0))

    # -- inspecting ---------------------------------------------------------------
    def show(self, item: Any):
        """Render an artifact, a channel, a result or a list of artifacts."""
        from toolkit.visualize import show

        if self._restriction is not None and isinstance(item, Channel):
            skipped = self._restriction.skipped.get(item.producer_id)
            if skipped is not None:
                print(repr(skipped), flush=True)
                return None

        return show(item)

    def executions(self, component_id: str | None = None) -> "ExecutionsTable":
        """Every recorded execution of this pipeline (including earlier sessions)."""
        return ExecutionsTable(self.store.executions(component_id))

    def lineage(self, item: Any) -> "Lineage":
        """What produced an artifact (or a channel's artifact), from which inputs, recursively."""
        artifact = _one_artifact(item)
        if artifact.id is None:
            raise ToolkitError("this artifact is not recorded in the metadata store")
        return Lineage(self.store, artifact)

    def __repr__(self) -> str:
        return (f"InteractiveContext(pipeline_name={self.pipeline_name!r}, "
                f"pipeline_root={self.pipeline_root!r}, mode={get_mode()!r})")


class SkippedRun:
    """What ``context.run`` returns for a component a restricted run does not execute."""

    def __init__(self, component_id: str, only: str, done: bool):
        self.component_id = component_id
        self.cached = False
        where = "after" if done else "outside the upstream of"
        self.reason = f"skipped: this run is restricted to {only}, and {component_id} is {where} it"

    def __repr__(self) -> str:
        return show_controls(f"{self.component_id}: {self.reason}")


class Restriction:
    """A run restricted to one component (a pipeline task): read from the environment.

    ``TOOLKIT_ONLY_COMPONENT`` names the component this run executes;
    ``TOOLKIT_UPSTREAM_COMPONENTS`` (comma-separated ids) the components it depends on,
    which must be cache hits in the store. Every other component, and anything run after
    the component itself, is skipped: not executed, not recorded.
    """

    #: the variables a pipeline task sets (see :mod:`toolkit.exporter.kfp_task`)
    ONLY_ENV = "TOOLKIT_ONLY_COMPONENT"
    UPSTREAM_ENV = "TOOLKIT_UPSTREAM_COMPONENTS"

    def __init__(self, only: str, upstream: list[str]):
        self.only = only
        self.upstream = set(upstream)
        self.done = False
        self.skipped: dict[str, SkippedRun] = {}

    @classmethod
    def from_env(cls) -> "Restriction | None":
        only = os.environ.get(cls.ONLY_ENV, "").strip()
        if not only:
            return None
        upstream = os.environ.get(cls.UPSTREAM_ENV, "")
        return cls(only, [name.strip() for name in upstream.split(",") if name.strip()])

    def role(self, component_id: str) -> str:
        """``run``, ``upstream`` (read from the store) or ``skip``."""
        if component_id == self.only and not self.done:
            self.done = True
            return "run"
        if component_id in self.upstream and not self.done:
            return "upstream"
        return "skip"

    def skip(self, component: BaseComponent) -> SkippedRun:
        skipped = SkippedRun(component.id, self.only, self.done)
        self.skipped[component.id] = skipped
        for channel in component.outputs.values():
            channel.set_artifacts([])
        print(repr(skipped), flush=True)
        return skipped


# -- helpers -----------------------------------------------------------------------
def _one_artifact(item: Any) -> Artifact:
    if isinstance(item, Artifact):
        return item
    if isinstance(item, Channel):
        arts = item.get()
        if not arts:
            raise ToolkitError(f"channel from {item.producer_id} has no artifacts yet: run it first")
        return arts[-1]
    raise TypeError(f"expected an artifact or a channel, got {type(item).__name__}")


def _lease_seconds(value: float | None) -> float:
    try:
        return lease_seconds(value)
    except ValueError as exc:
        raise ToolkitError(str(exc)) from None


def _abandonment(row: dict[str, Any]) -> str | None:
    """Why a RUNNING execution record is abandoned, or None while it may be alive."""
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


def _failure_reason(exc: BaseException) -> str:
    """Why an execution failed, as recorded and raised: a ToolkitError's message whole (it
    is written for the user and may span lines), any other error as its type and first line."""
    if isinstance(exc, ToolkitError):
        return str(exc).strip() or type(exc).__name__
    return f"{type(exc).__name__}: {error_line(exc)}"


def _logger(component_id: str):
    def log(message: str) -> None:
        print(show_controls(f"[{component_id}] {message}"), flush=True)
    return log


def _append_run_log(result: ExecutionResult) -> None:
    path = os.environ.get("TOOLKIT_RUN_LOG")
    if not path:
        return
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(result.to_dict(), default=str) + "\n")
