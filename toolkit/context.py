"""InteractiveContext: the notebook's API for running components inline.

The same object runs in a notebook (rich views) and headless under papermill or
``toolkit run`` (text summaries; production gates are enforced). It offers four things:
``run``, ``show``, ``executions`` and ``lineage``. How a run goes (reuse or compute,
publish, record, and the policies and hooks around it) is the launcher's job,
:mod:`toolkit.launcher`; what it reports is in :mod:`toolkit.records`.
"""
from __future__ import annotations

import os
import tempfile
from typing import Any

from toolkit import storage
from toolkit._mode import get_mode, set_mode  # noqa: F401  set_mode: exports made before toolkit.set_mode
from toolkit.artifacts import Artifact
from toolkit.base_component import BaseComponent, Channel
from toolkit.errors import ToolkitError
from toolkit.launcher import Launcher
from toolkit.metadata import MetadataStore
from toolkit.records import ExecutionResult, ExecutionsTable, Lineage, SkippedRun


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

    Run policies named by the environment (see :mod:`toolkit.launcher.policies`) are
    installed when the context is created.
    """

    def __init__(self, pipeline_name: str | None = None, pipeline_root: str | None = None,
                 metadata_connection_config: Any = None,
                 beam_pipeline_args: list[str] | None = None,
                 lease_seconds: float | None = None):
        name = pipeline_name or "pipeline"
        if pipeline_root is None:
            pipeline_root = tempfile.mkdtemp(prefix=f"toolkit-{name}-")
            print(f"InteractiveContext: pipeline_root not given, using {pipeline_root}")
        root = os.fspath(pipeline_root)
        if storage.scheme_of(root) == "file":
            root = os.path.abspath(storage.local_path(root))
            os.makedirs(root, exist_ok=True)
        else:
            storage.backend_for(root)  # an unknown scheme fails here, naming the known ones
        self._launcher = Launcher(name, root, metadata_connection_config, beam_pipeline_args,
                                  lease_seconds)

    @property
    def pipeline_name(self) -> str:
        return self._launcher.pipeline_name

    @property
    def pipeline_root(self) -> str:
        return self._launcher.pipeline_root

    @property
    def metadata_connection_config(self) -> Any:
        """The store's connection config: the one given, a policy's, or the SQLite file."""
        return self._launcher.metadata_connection_config

    @property
    def beam_pipeline_args(self) -> list[str]:
        """Beam arguments of every run that gives none of its own."""
        return self._launcher.beam_pipeline_args

    @beam_pipeline_args.setter
    def beam_pipeline_args(self, value: list[str] | None) -> None:
        self._launcher.beam_pipeline_args = list(value or [])

    @property
    def lease_seconds(self) -> float:
        return self._launcher.lease_seconds

    @property
    def store(self) -> MetadataStore:
        """The pipeline's metadata store (opened on first use)."""
        return self._launcher.store

    @property
    def production(self) -> bool:
        return get_mode() == "production"

    # -- running ---------------------------------------------------------------
    def run(self, component: BaseComponent, enable_cache: bool = True,
            beam_pipeline_args: list[str] | None = None) -> ExecutionResult | SkippedRun:
        """Execute ``component`` now (or reuse a cached execution) and return the result.

        ``enable_cache=False`` executes it even when an execution with the same inputs,
        parameters and module files exists; ``beam_pipeline_args`` replace the context's
        for this run. A :class:`SkippedRun` comes back when a run policy leaves the
        component out of this run."""
        if not isinstance(component, BaseComponent):
            raise TypeError(f"context.run expects a component, got {type(component).__name__}")
        return self._launcher.launch(component, enable_cache, beam_pipeline_args)

    # -- inspecting ---------------------------------------------------------------
    def show(self, item: Any):
        """Render an artifact, a channel, a result or a list of artifacts."""
        from toolkit.visualize import show

        if isinstance(item, Channel):
            skipped = self._launcher.skipped.get(item.producer_id)
            if skipped is not None:  # its channels are empty on purpose: say why
                print(repr(skipped), flush=True)
                return None
        return show(item)

    def executions(self, component_id: str | None = None) -> ExecutionsTable:
        """Every recorded execution of this pipeline (including earlier sessions)."""
        return ExecutionsTable(self.store.executions(component_id))

    def lineage(self, item: Any) -> Lineage:
        """What produced an artifact (or a channel's artifact), from which inputs, recursively."""
        artifact = _one_artifact(item)
        if artifact.id is None:
            raise ToolkitError("this artifact is not recorded in the metadata store")
        return Lineage(self.store, artifact)

    def __repr__(self) -> str:
        return (f"InteractiveContext(pipeline_name={self.pipeline_name!r}, "
                f"pipeline_root={self.pipeline_root!r}, mode={get_mode()!r})")


def _one_artifact(item: Any) -> Artifact:
    if isinstance(item, Artifact):
        return item
    if isinstance(item, Channel):
        arts = item.get()
        if not arts:
            raise ToolkitError(f"channel from {item.producer_id} has no artifacts yet: run it first")
        return arts[-1]
    raise TypeError(f"expected an artifact or a channel, got {type(item).__name__}")
