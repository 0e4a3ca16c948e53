"""InteractiveContext: run components inline, record them, reuse them from cache.

The same object runs in a notebook (rich views) and headless under papermill or
``toolkit run`` (text summaries; production gates are enforced).
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import traceback
from typing import Any

from toolkit._paths import resolve_within
from toolkit._process import pid_alive
from toolkit._mode import get_mode, set_mode  # noqa: F401  set_mode: exports made before toolkit.set_mode
from toolkit._text import show_controls
from toolkit.artifacts import Artifact
from toolkit.base_component import (BaseComponent, Channel, ExecutorContext, canonical_json,
                               encode_parameter)
from toolkit.errors import ComponentError, GateError, ToolkitError
from toolkit.metadata import MetadataStore, sqlite_config

MANIFEST = ".toolkit-manifest.json"


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
    """

    def __init__(self, pipeline_name: str | None = None, pipeline_root: str | None = None,
                 metadata_connection_config: Any = None,
                 beam_pipeline_args: list[str] | None = None):
        self.pipeline_name = pipeline_name or "pipeline"
        if pipeline_root is None:
            pipeline_root = tempfile.mkdtemp(prefix=f"toolkit-{self.pipeline_name}-")
            print(f"InteractiveContext: pipeline_root not given, using {pipeline_root}")
        self.pipeline_root = os.path.abspath(os.fspath(pipeline_root))
        os.makedirs(self.pipeline_root, exist_ok=True)
        if metadata_connection_config is None:
            metadata_connection_config = sqlite_config(
                os.path.join(self.pipeline_root, "metadata.sqlite"))
        self.metadata_connection_config = metadata_connection_config
        self.beam_pipeline_args = list(beam_pipeline_args or [])
        self._store: MetadataStore | None = None

    @property
    def store(self) -> MetadataStore:
        """The pipeline's metadata store (opened on first use)."""
        if self._store is None:
            self._store = MetadataStore(self.pipeline_name, self.metadata_connection_config)
            if _has_artifact_folders(self.pipeline_root) and not self._store.has_executions():
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
        component_type = type(component).__name__
        inputs = {key: channel.resolve(component.id, key)
                  for key, channel in component.inputs.items() if channel is not None}
        store = self.store
        parameters = canonical_json(encode_parameter(component.exec_properties))
        fingerprints = component.fingerprints()
        module_fingerprint = canonical_json(fingerprints)
        cache_key = _sha256(canonical_json({
            "component_type": f"{type(component).__module__}.{type(component).__qualname__}",
            "executor_version": component.EXECUTOR_VERSION,
            "component_id": component.id,
            "parameters": parameters,
            "fingerprints": fingerprints,
            "inputs": {k: [_identity(a, self.store.location) for a in v]
                       for k, v in sorted(inputs.items())},
        }))
        self._reap_abandoned(component.id)

        if enable_cache:
            hit = self._cached_outputs(component.id, cache_key)
            if hit is not None:
                source_id, outputs = hit
                execution_id = store.start_execution(component_type, component.id, cache_key,
                                                     parameters, module_fingerprint, inputs)
                duration = time.perf_counter() - started
                store.complete_execution(execution_id, outputs, duration, cached_from=source_id)
                return self._finish(component, execution_id, inputs, outputs, True, started,
                                    component.exec_properties)

        execution_id = store.start_execution(component_type, component.id, cache_key,
                                             parameters, module_fingerprint, inputs)
        staging: dict[str, str] = {}
        outputs: dict[str, list[Artifact]] = {}
        finals: dict[str, str] = {}
        published: set[str] = set()
        try:
            for key, art_type in component.OUTPUTS.items():
                parent = os.path.join(self.pipeline_root, component.id, key)
                os.makedirs(parent, exist_ok=True)
                _check_inside(parent, self.pipeline_root)
                staging[key] = os.path.join(parent, f".staging-{execution_id}-{os.getpid()}")
                finals[key] = os.path.join(parent, str(execution_id))
                _move_aside_unknown(finals[key], component.id, self.store.location)
                os.makedirs(staging[key])
                outputs[key] = [art_type(uri=staging[key], producer=component.id)]
            tmp_dir = self._scratch_dir(execution_id, os.getpid())
            os.makedirs(tmp_dir, exist_ok=True)
            ctx = ExecutorContext(
                component_id=component.id, pipeline_root=self.pipeline_root,
                execution_id=execution_id, tmp_dir=tmp_dir,
                beam_pipeline_args=list(beam_pipeline_args if beam_pipeline_args is not None
                                        else self.beam_pipeline_args),
                production=self.production, log=_logger(component.id))
            component.Do(inputs, outputs, dict(component.exec_properties), ctx)
            for key, arts in outputs.items():
                for art in arts:
                    _write_manifest(art.uri)
                os.replace(staging[key], finals[key])
                published.add(key)
                for art in arts:
                    art.uri = finals[key]
            store.complete_execution(execution_id, outputs, time.perf_counter() - started)
        except BaseException as exc:
            message = _one_line(exc)
            for key in component.OUTPUTS:
                for path in (staging.get(key), finals.get(key) if key in published else None):
                    if path and os.path.isdir(path):
                        shutil.rmtree(path, ignore_errors=True)
            if _is_disk_full(exc):
                message = _disk_full_message(self.pipeline_root, exc)
                exc = ToolkitError(message)
            try:
                store.fail_execution(execution_id, message + "\n" + traceback.format_exc()[-3000:])
            except Exception:  # the store itself may be what failed; the original error matters
                pass
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            if isinstance(exc, ToolkitError):
                raise ComponentError(component.id, str(exc), execution_id) from None
            raise ComponentError(component.id, message, execution_id) from exc
        finally:
            shutil.rmtree(self._scratch_dir(execution_id, os.getpid()), ignore_errors=True)
        return self._finish(component, execution_id, inputs, outputs, False, started,
                            component.exec_properties)

    def _finish(self, component: BaseComponent, execution_id: int,
                inputs: dict[str, list[Artifact]], outputs: dict[str, list[Artifact]],
                cached: bool, started: float, params: dict[str, Any]) -> "ExecutionResult":
        for key, channel in component.outputs.items():
            channel._artifacts = list(outputs.get(key, []))
        result = ExecutionResult(component, execution_id, inputs, outputs, cached,
                                 time.perf_counter() - started)
        result.gate_failure = component.gate(outputs, params) if hasattr(component, "gate") else None
        _append_run_log(result)
        if result.gate_failure and self.production:
            raise GateError(f"{component.id}: {result.gate_failure}")
        return result

    def _cached_outputs(self, component_id: str, cache_key: str):
        hit = self.store.find_cached(component_id, cache_key)
        if hit is None:
            return None
        source_id, outputs = hit
        damaged = [a for arts in outputs.values() for a in arts
                   if getattr(a, "state", "LIVE") != "LIVE" or not _manifest_ok(a.uri)]
        if damaged:
            print(show_controls(f"[{component_id}] cached outputs of execution {source_id} are "
                                f"missing or damaged ({', '.join(a.uri for a in damaged)}); "
                                "recomputing"), flush=True)
            self.store.mark_artifacts_deleted(damaged)
            self.store.fail_execution(source_id, "outputs missing or damaged on disk")
            return self._cached_outputs(component_id, cache_key)
        return hit

    def _scratch_dir(self, execution_id: int, pid: int) -> str:
        """The executor's scratch folder (``ExecutorContext.tmp_dir``) for one execution."""
        return os.path.join(self.pipeline_root, ".tmp", f"{execution_id}-{pid}")

    def _reap_abandoned(self, component_id: str) -> None:
        """Executions whose process died mid-run: mark them failed, remove their staging."""
        for row in self.store.executions(component_id):
            if row["state"] != "RUNNING":
                continue
            pid = int(row["pid"] or 0)
            if pid and pid_alive(pid):
                continue
            self.store.fail_execution(row["id"], f"abandoned: process {pid} ended before "
                                                 "the execution finished")
            shutil.rmtree(self._scratch_dir(row["id"], pid), ignore_errors=True)
            component_dir = os.path.join(self.pipeline_root, component_id)
            if os.path.isdir(component_dir):
                for key in os.listdir(component_dir):
                    stage = os.path.join(component_dir, key, f".staging-{row['id']}-{pid}")
                    shutil.rmtree(stage, ignore_errors=True)
                    # published on disk but never registered: no artifact points at it
                    shutil.rmtree(os.path.join(component_dir, key, str(row["id"])),
                                  ignore_errors=True)

    # -- inspecting ---------------------------------------------------------------
    def show(self, item: Any):
        """Render an artifact, a channel, a result or a list of artifacts."""
        from toolkit.visualize import show

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


class ExecutionResult:
    """The outcome of ``context.run``: what ran, on what, what it produced, cached or not."""

    def __init__(self, component: BaseComponent, execution_id: int,
                 inputs: dict[str, list[Artifact]], outputs: dict[str, list[Artifact]],
                 cached: bool, duration_s: float):
        self.component = component
        self.component_id = component.id
        self.execution_id = execution_id
        self.inputs = inputs
        self.outputs = outputs
        self.cached = cached
        self.duration_s = duration_s
        self.gate_failure: str | None = None

    def _status(self) -> str:
        return "cached" if self.cached else "ran"

    def __repr__(self) -> str:
        lines = [f"{self.component_id}: {self._status()} (execution {self.execution_id}, "
                 f"{self.duration_s:.2f} s)"]
        for label, group in (("input", self.inputs), ("output", self.outputs)):
            for key, arts in group.items():
                for art in arts:
                    lines.append(f"  {label} {key}: {art.TYPE_NAME} #{art.id} {art.uri}")
        if self.gate_failure:
            lines.append(f"  GATE: {self.gate_failure}")
        return show_controls("\n".join(lines))

    def _toolkit_view_(self):
        from toolkit.visualize.html import View, escape

        def rows(group: dict[str, list[Artifact]]) -> str:
            return "".join(
                f"<tr><td>{escape(key)}</td><td>{escape(a.TYPE_NAME)}</td>"
                f"<td>#{escape(a.id)}</td><td><code>{escape(a.uri)}</code></td></tr>"
                for key, arts in group.items() for a in arts) or "<tr><td colspan=4>none</td></tr>"

        badge = ("<span style='background:#e7f0ff;color:#1a4d99;padding:1px 6px;"
                 "border-radius:3px'>cached</span>" if self.cached else
                 "<span style='background:#e6f4ea;color:#1e6b34;padding:1px 6px;"
                 "border-radius:3px'>ran</span>")
        gate = (f"<p style='color:#a50e0e'><b>Gate:</b> {escape(self.gate_failure)}</p>"
                if self.gate_failure else "")
        html = (f"<div class='toolkit-result'><p><b>{escape(self.component_id)}</b> {badge} "
                f"execution {escape(self.execution_id)} &middot; {self.duration_s:.2f} s</p>{gate}"
                "<table><thead><tr><th>key</th><th>type</th><th>id</th><th>uri</th></tr></thead>"
                f"<tbody><tr><th colspan=4 style='text-align:left'>inputs</th></tr>{rows(self.inputs)}"
                f"<tr><th colspan=4 style='text-align:left'>outputs</th></tr>{rows(self.outputs)}"
                "</tbody></table></div>")
        return View(html, repr(self), title=self.component_id)

    def _repr_html_(self) -> str:
        return self._toolkit_view_().html

    def to_dict(self) -> dict[str, Any]:
        def arts(group):
            return {k: [{"id": a.id, "type": a.TYPE_NAME, "uri": a.uri,
                         "properties": a.properties} for a in v] for k, v in group.items()}
        return {"component_id": self.component_id,
                "component_type": type(self.component).__name__,
                "execution_id": self.execution_id, "cached": self.cached,
                "duration_s": round(self.duration_s, 4),
                "parameters": encode_parameter(self.component.exec_properties),
                "inputs": arts(self.inputs), "outputs": arts(self.outputs),
                "gate_failure": self.gate_failure}


class ExecutionsTable(list):
    """A list of execution records that renders as a table."""

    COLUMNS = ("id", "component_id", "component_type", "state", "cached_from", "duration_s")

    def __repr__(self) -> str:
        if not self:
            return "no executions recorded"
        widths = [max(len(c), *(len(str(r.get(c) or "")) for r in self)) for c in self.COLUMNS]
        fmt = "  ".join(f"{{:<{w}}}" for w in widths)
        lines = [fmt.format(*self.COLUMNS)]
        lines += [fmt.format(*(str(r.get(c) or "") for c in self.COLUMNS)) for r in self]
        return show_controls("\n".join(lines))

    def _toolkit_view_(self):
        from toolkit.visualize.html import View, escape

        head = "".join(f"<th>{escape(c)}</th>" for c in self.COLUMNS)
        body = "".join("<tr>" + "".join(f"<td>{escape(r.get(c) or '')}</td>" for c in self.COLUMNS)
                       + "</tr>" for r in self)
        return View(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>",
                    repr(self), title="executions")

    def _repr_html_(self) -> str:
        return self._toolkit_view_().html


class Lineage:
    """The chain of executions and artifacts upstream of one artifact."""

    def __init__(self, store: MetadataStore, artifact: Artifact, max_depth: int = 50):
        self.artifact = artifact
        self.nodes = self._walk(store, artifact, max_depth)

    @staticmethod
    def _walk(store: MetadataStore, artifact: Artifact, max_depth: int) -> list[dict[str, Any]]:
        nodes, stack, seen = [], [(artifact, 0, None)], set()
        while stack:  # depth first, so each artifact is listed right under its consumer
            art, depth, via = stack.pop()
            if art.id in seen or depth > max_depth:
                continue
            seen.add(art.id)
            exec_id = store.producer_of(art.id)
            node = {"artifact": art, "depth": depth, "via": via, "execution": None, "inputs": {}}
            if exec_id is not None:
                node["execution"] = store.execution(exec_id)
                node["inputs"] = store.inputs_of(exec_id)
                parents = [(a, depth + 1, key) for key, arts in node["inputs"].items()
                           for a in arts]
                stack.extend(reversed(parents))
            nodes.append(node)
        return nodes

    @property
    def executions(self) -> list[dict[str, Any]]:
        return [n["execution"] for n in self.nodes if n["execution"]]

    def __repr__(self) -> str:
        lines = []
        for n in self.nodes:
            art, ex = n["artifact"], n["execution"]
            pad = "  " * n["depth"]
            via = f"{n['via']}: " if n["via"] else ""
            made = (f" <- {ex['component_id']} (execution {ex['id']}, {ex['state'].lower()})"
                    if ex else " (imported)")
            lines.append(f"{pad}{via}{art.TYPE_NAME} #{art.id}{made}  {art.uri}")
        return show_controls("\n".join(lines))

    def _toolkit_view_(self):
        from toolkit.visualize.html import View, escape

        items = []
        for n in self.nodes:
            art, ex = n["artifact"], n["execution"]
            via = f"<i>{escape(n['via'])}</i>: " if n["via"] else ""
            made = (f" &larr; <b>{escape(ex['component_id'])}</b> (execution {escape(ex['id'])}, "
                    f"{escape(ex['state'].lower())})" if ex else " (imported)")
            items.append(f"<div style='margin-left:{1.5 * n['depth']}em'>{via}"
                         f"{escape(art.TYPE_NAME)} #{escape(art.id)}{made} "
                         f"<code>{escape(art.uri)}</code></div>")
        return View("<div class='toolkit-lineage'>" + "".join(items) + "</div>", repr(self),
                    title="lineage")

    def _repr_html_(self) -> str:
        return self._toolkit_view_().html


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


def _identity(artifact: Artifact, location: str) -> Any:
    """An input's identity for the cache key: its id here, or its uri if it comes from
    another pipeline's store."""
    if getattr(artifact, "store_location", location) == location:
        return artifact.id
    return f"uri:{artifact.uri}"


def _write_manifest(uri: str) -> None:
    files = {}
    for root, _, names in os.walk(uri):
        for name in names:
            full = os.path.join(root, name)
            files[os.path.relpath(full, uri)] = os.path.getsize(full)
    with open(os.path.join(uri, MANIFEST), "w") as handle:
        json.dump(files, handle, sort_keys=True)


def _manifest_ok(uri: str) -> bool:
    """True when every file the execution wrote is still there with its size."""
    try:
        with open(os.path.join(uri, MANIFEST)) as handle:
            files = json.load(handle)
    except (OSError, ValueError):
        return False
    for rel, size in files.items():
        try:
            if os.path.getsize(os.path.join(uri, rel)) != size:
                return False
        except OSError:
            return False
    return True


def _has_artifact_folders(pipeline_root: str) -> bool:
    """True when ``<root>/<component>/<key>/<execution id>`` folders exist."""
    try:
        components = [d for d in os.scandir(pipeline_root)
                      if d.is_dir(follow_symlinks=False) and not d.name.startswith(".")]
        for component in components:
            for key in os.scandir(component.path):
                if key.is_dir() and any(e.name.isdigit() for e in os.scandir(key.path)):
                    return True
    except OSError:
        return False
    return False


def _check_inside(path: str, pipeline_root: str) -> None:
    """Refuse an output folder that a symlink leads out of the pipeline root."""
    real, real_root, inside = resolve_within(path, pipeline_root)
    if not inside:
        raise ToolkitError(f"output folder {path} resolves to {real}, outside the pipeline root "
                           f"{real_root} (a symlink?); refusing to write there")


def _move_aside_unknown(final: str, component_id: str, location: str) -> None:
    """A folder already at an execution's final place was left by another metadata store
    (this store just allotted the id): keep it, but out of the way."""
    if not os.path.lexists(final):
        return
    aside = os.path.join(os.path.dirname(final),
                         f".orphaned-{os.path.basename(final)}-{time.time_ns()}")
    os.replace(final, aside)
    print(show_controls(f"[{component_id}] {final} is not known to {location} (left by an "
                        f"earlier metadata store); moved it to {aside}"), flush=True)


def _is_disk_full(exc: BaseException) -> bool:
    import errno

    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(exc)
    return "No space left on device" in text or "Disk quota exceeded" in text


def _disk_full_message(path: str, exc: BaseException) -> str:
    try:
        usage = shutil.disk_usage(path)
        free = f" ({usage.free / 2**20:,.1f} MB free of {usage.total / 2**20:,.1f} MB now)"
    except OSError:
        free = ""
    return (f"no space left on the device holding {path}{free} while writing this execution's "
            f"outputs; its partial outputs were removed. Free space or choose another "
            f"pipeline_root ({_one_line(exc)})")


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    first = text.splitlines()[0] if text else ""
    if isinstance(exc, ToolkitError):
        return text
    return f"{type(exc).__name__}: {first}"


def _sha256(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()


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
