"""Pipelines written TFX's way: ``Pipeline``, ``LocalDagRunner`` and reading results back.

A TFX pipeline file lists its components in a ``Pipeline`` and hands it to a runner. Here
the runner is a thin loop over :class:`toolkit.InteractiveContext`: every component goes
through the same launcher as a notebook cell (the same cache, the same ML Metadata records,
the same gates and logs), so a pipeline file and a notebook built from the same components
share their results. What a pipeline adds is the order (from the wiring, not from cells)
and the records TFX's own tools query: the ``node`` context of each component and the
``pipeline_run`` context of each run (:mod:`toolkit.metadata` records them).

:func:`latest_artifacts` is the public way to read a component's outputs after a run, in
place of the internals (``tfx.orchestration.portable.mlmd``, ``metadata.Metadata``) that
TFX's tutorials use "just for showcase".
"""
from __future__ import annotations

import datetime
import os
from typing import Any, Iterable

from toolkit.artifacts import Artifact
from toolkit.base_component import BaseComponent
from toolkit.errors import ToolkitError

__all__ = ["LocalDagRunner", "Pipeline", "PipelineRun", "latest_artifacts"]

#: TFX's limit on a pipeline name (it becomes part of context names and folder names)
MAX_PIPELINE_NAME_LENGTH = 63


class Pipeline:
    """TFX's ``tfx.dsl.Pipeline``: components in the order their wiring demands.

    ``components`` may come in any order; they are sorted in layers, as TFX sorts them:
    first those that read from no other component, then those that read only from the
    first layer, and so on. Within a layer they keep the order they were given in (TFX
    sorts a layer by id). A component that reads the output of one not
    listed, two components with the same id, or wiring that loops are refused when the
    pipeline is built, naming the components, so nothing starts that cannot finish.

    ``enable_cache`` is off by default, as in TFX: every run executes every component.
    ``metadata_connection_config``: an ML Metadata ``ConnectionConfig`` (for example
    ``tfx.orchestration.metadata.sqlite_metadata_connection_config(path)``); ``None``
    keeps the store in ``<pipeline_root>/metadata.sqlite``, as ``InteractiveContext`` does.
    """

    def __init__(self, pipeline_name: str, pipeline_root: str | os.PathLike = "",
                 metadata_connection_config: Any = None,
                 components: Iterable[BaseComponent] = (), enable_cache: bool = False,
                 beam_pipeline_args: list[str] | None = None):
        if not isinstance(pipeline_name, str) or not pipeline_name:
            raise ToolkitError("Pipeline needs a pipeline_name (a non-empty string)")
        if len(pipeline_name) > MAX_PIPELINE_NAME_LENGTH:
            raise ToolkitError(f"pipeline name {pipeline_name!r} is longer than "
                               f"{MAX_PIPELINE_NAME_LENGTH} characters: shorten it")
        self.pipeline_name = pipeline_name
        self.pipeline_root = os.fspath(pipeline_root) if pipeline_root is not None else ""
        self.metadata_connection_config = metadata_connection_config
        self.enable_cache = bool(enable_cache)
        self._beam_pipeline_args = list(beam_pipeline_args or [])
        self._components: list[BaseComponent] = []
        self.components = list(components)

    @property
    def id(self) -> str:
        return self.pipeline_name

    @property
    def beam_pipeline_args(self) -> list[str]:
        """Beam arguments of every component of the pipeline."""
        return self._beam_pipeline_args

    @property
    def components(self) -> list[BaseComponent]:
        """The components, each after those it reads from (see the class's doc)."""
        return list(self._components)

    @components.setter
    def components(self, components: Iterable[BaseComponent]) -> None:
        self._components = order_by_wiring(components, self.pipeline_name)

    def __repr__(self) -> str:
        return (f"Pipeline(pipeline_name={self.pipeline_name!r}, "
                f"components=[{', '.join(c.id for c in self._components)}])")


def upstream_ids(component: BaseComponent) -> list[str]:
    """The ids of the components whose outputs ``component`` reads, in input order.
    A channel over existing artifacts (``Channel.from_artifacts``, a Resolver's typed
    channel) has no producer and adds nothing."""
    found: list[str] = []
    for channel in component.inputs.values():
        producer = getattr(channel, "producer", None) if channel is not None else None
        if producer is not None and producer.id not in found:
            found.append(producer.id)
    return found


def order_by_wiring(components: Iterable[BaseComponent],
                    pipeline_name: str = "") -> list[BaseComponent]:
    """``components`` in layers, each after the components it reads from; within a layer
    in the given order. Refuses (naming the components) anything not a component,
    a component given twice under one id, one with the pipeline's own name, an input from
    a component not listed, and wiring that loops."""
    given: list[BaseComponent] = []
    for component in components:
        if not isinstance(component, BaseComponent):
            raise ToolkitError(f"Pipeline components must be components, got "
                               f"{type(component).__name__}: {component!r}")
        if any(component is seen for seen in given):
            continue  # the same object twice: once is meant (TFX dedupes too)
        given.append(component)
    by_id: dict[str, BaseComponent] = {}
    for component in given:
        if component.id in by_id:
            raise ToolkitError(f"two components of the pipeline have the id {component.id!r}: "
                               "give one another id with .with_id('...')")
        if pipeline_name and component.id == pipeline_name:
            raise ToolkitError(f"component id {component.id!r} is the pipeline's name: give "
                               "it another id with .with_id('...')")
        by_id[component.id] = component
    upstream = {c.id: upstream_ids(c) for c in given}
    for component in given:  # by id, and the very object: a rebuilt one holds no outputs
        for channel in component.inputs.values():
            producer = getattr(channel, "producer", None) if channel is not None else None
            if producer is not None and by_id.get(producer.id, producer) is not producer:
                raise ToolkitError(
                    f"{component.id} reads from another {producer.id} than the one in "
                    f"components (was {producer.id} made again after {component.id}?): "
                    f"make {component.id} from the listed {producer.id}'s outputs")
    absent = {f"{cid} reads from {up}" for cid, ups in upstream.items() for up in ups
              if up not in by_id}
    if absent:
        raise ToolkitError("components read from components that are not in the pipeline ("
                           + "; ".join(sorted(absent)) + "): add them to components=[...]")
    ordered: list[BaseComponent] = []
    placed: set[str] = set()
    waiting = list(given)
    while waiting:  # layer by layer, as TFX sorts: each layer reads only from earlier ones
        layer = [c for c in waiting if all(up in placed for up in upstream[c.id])]
        if not layer:
            raise ToolkitError("the pipeline's wiring loops, so no order can run it: "
                               + _describe_loop(waiting, upstream))
        ordered.extend(layer)
        placed.update(c.id for c in layer)
        waiting = [c for c in waiting if c.id not in placed]
    return ordered


def _describe_loop(waiting: list[BaseComponent], upstream: dict[str, list[str]]) -> str:
    """One loop among the unplaceable components, as ``A -> B -> A`` (read: A feeds B)."""
    ids = {c.id for c in waiting}
    start = waiting[0].id
    path = [start]
    while True:  # walk upstream inside the unplaceable set until a component repeats
        step = next(up for up in upstream[path[-1]] if up in ids)
        if step in path:
            loop = path[path.index(step):] + [step]
            return " -> ".join(reversed(loop))
        path.append(step)


class PipelineRun:
    """What :meth:`LocalDagRunner.run` returns: the run's id and each component's result
    (``ExecutionResult``, or ``SkippedRun`` when a run policy left it out), in run order."""

    def __init__(self, pipeline_name: str, run_id: str, results: dict[str, Any]):
        self.pipeline_name = pipeline_name
        self.run_id = run_id
        self.results = results

    @property
    def cached(self) -> list[str]:
        """Ids of the components whose results came from the cache."""
        return [cid for cid, r in self.results.items() if getattr(r, "cached", False)]

    def __repr__(self) -> str:  # each component's line was printed as it finished
        return (f"PipelineRun(pipeline {self.pipeline_name!r}, run {self.run_id}: "
                f"{len(self.results)} components, {len(self.cached)} from the cache)")


class LocalDagRunner:
    """TFX's ``tfx.orchestration.LocalDagRunner``: runs a :class:`Pipeline` here, now, one
    component after another, in this process.

    Each component runs through ``InteractiveContext.run`` on a context for the pipeline's
    name, root, store and Beam arguments, so caching, the ML Metadata records, production
    gates and logs are those of a notebook run. The executions of one run also join one
    ``pipeline_run`` context. A failing component stops the run: its one-line error is
    raised, and the components after it do not start.
    """

    def run(self, pipeline: Pipeline) -> PipelineRun:
        return run_pipeline(pipeline)


def run_pipeline(pipeline: Pipeline, run_id: str | None = None) -> PipelineRun:
    """:meth:`LocalDagRunner.run`; ``run_id`` names the ``pipeline_run`` its executions join
    (default: the time now). A Kubeflow task passes its pipeline job's id, so the
    executions of one Kubeflow run, each in its own task, join one ``pipeline_run``."""
    from toolkit.context import InteractiveContext

    if not isinstance(pipeline, Pipeline):
        raise ToolkitError(f"LocalDagRunner.run expects a Pipeline, got "
                           f"{type(pipeline).__name__}")
    if not pipeline.pipeline_root:
        raise ToolkitError(f"pipeline {pipeline.pipeline_name!r} has no pipeline_root: pass "
                           "Pipeline(..., pipeline_root='pipelines/<name>')")
    context = InteractiveContext(
        pipeline_name=pipeline.pipeline_name, pipeline_root=pipeline.pipeline_root,
        metadata_connection_config=pipeline.metadata_connection_config,
        beam_pipeline_args=pipeline.beam_pipeline_args)
    run_id = run_id or datetime.datetime.now(datetime.timezone.utc).isoformat()
    store = context.store
    store.run_id = run_id
    results: dict[str, Any] = {}
    components = pipeline.components
    try:
        for index, component in enumerate(components):
            try:
                result = context.run(component, enable_cache=pipeline.enable_cache)
            except BaseException:
                later = [c.id for c in components[index + 1:]]
                print(f"pipeline {pipeline.pipeline_name}: stopped at {component.id}"
                      + (f"; not started: {', '.join(later)}" if later else ""), flush=True)
                raise
            results[component.id] = result
            print(repr(result).splitlines()[0], flush=True)
    finally:
        store.run_id = None
    return PipelineRun(pipeline.pipeline_name, run_id, results)


def latest_artifacts(metadata_connection_config: Any, pipeline_name: str,
                     component_id: str) -> dict[str, list[Artifact]]:
    """The output artifacts of the latest completed execution (computed or taken from the
    cache) of ``component_id`` in the pipeline ``pipeline_name``: ``{output key: [Artifact]}``.

    ``metadata_connection_config`` is the store's ML Metadata ``ConnectionConfig``, or the
    path of its SQLite file. This is the public form of the ``get_latest_artifacts`` helper
    TFX's tutorials build from non-public modules; the artifacts load with ``.load()`` and
    display with ``toolkit.show``. A failed execution has no outputs, so it is passed over.
    """
    from toolkit.metadata import MetadataStore, sqlite_config

    if isinstance(metadata_connection_config, (str, os.PathLike)):
        metadata_connection_config = sqlite_config(os.fspath(metadata_connection_config))
    if metadata_connection_config is None:
        raise ToolkitError("latest_artifacts needs the pipeline's metadata_connection_config "
                           "(or the path of its SQLite file)")
    _require_pipeline(metadata_connection_config, pipeline_name)
    store = MetadataStore(pipeline_name, metadata_connection_config)
    rows = store.executions()
    done = [r for r in rows if r["component_id"] == component_id
            and r["state"] in ("COMPLETE", "CACHED")]
    if not done:
        known = sorted({r["component_id"] for r in rows if r["state"] in ("COMPLETE", "CACHED")})
        raise ToolkitError(f"pipeline {pipeline_name!r} in {store.location} has no completed "
                           f"execution of {component_id!r}; components with one: "
                           + (", ".join(known) or "none"))
    return store.outputs_of(max(done, key=lambda r: r["id"])["id"])


def _require_pipeline(config: Any, pipeline_name: str) -> None:
    """Refuse, naming what is there, a store (or SQLite file) that has no such pipeline;
    reading must not create an empty store or pipeline."""
    from ml_metadata.metadata_store import metadata_store

    from toolkit.metadata import PIPELINE_CONTEXT_TYPE

    if config.HasField("sqlite"):
        path = config.sqlite.filename_uri
        if path and not path.startswith("file:") and path != ":memory:" \
                and not os.path.isfile(path):
            raise ToolkitError(f"no metadata store at {os.path.abspath(path)}: give the path "
                               "the pipeline's metadata_connection_config names")
    mlmd = metadata_store.MetadataStore(config)
    if mlmd.get_context_by_type_and_name(PIPELINE_CONTEXT_TYPE, pipeline_name) is None:
        names = sorted(c.name for c in mlmd.get_contexts_by_type(PIPELINE_CONTEXT_TYPE))
        raise ToolkitError(f"no pipeline {pipeline_name!r} in this metadata store; pipelines "
                           "there: " + (", ".join(names) or "none"))
