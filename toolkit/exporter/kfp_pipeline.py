"""A :class:`~toolkit.pipeline.Pipeline` object compiled to Kubeflow Pipelines (v2) YAML.

The same YAML as ``toolkit export --target kfp`` writes for a notebook (one task per
component, the DAG from the wiring, KFP's caching off so the toolkit's cache decides,
the compile done by :func:`toolkit.exporter.kfp.compile_tasks`), with another source: the
pipeline object, carried to every task as a spec (:mod:`toolkit.pipeline_spec`) in JSON
text: KFP keeps a task's constant as a protobuf ``Struct``, which has no null and turns
every integer into a double, and the rebuilt parameters must be exactly the originals.
The module files travel with it (:mod:`toolkit.exporter.kfp_sources`), so a task that
does not find them in its working directory runs the carried copies.
A task rebuilds its component and the components it reads from and runs them through
:func:`toolkit.exporter.kfp_task.run_pipeline_task`: the same launcher, with the
``pipeline-step`` run policy, as a notebook's task.
"""
from __future__ import annotations

import json
from typing import Any, Mapping

from toolkit.errors import ToolkitError
from toolkit.exporter.graph import ComponentGraph, ComponentNode
from toolkit.exporter.kfp import TASK_FORMAT, TaskEntry, TaskSettings, compile_tasks

#: what a task of a compiled Pipeline runs
PIPELINE_TASK = TaskEntry("toolkit.exporter.kfp_task", "run_pipeline_task", ("run_summary",),
                          job_id=True)


def compile_pipeline_object(pipeline: Any, image: str | Mapping[str, str],
                            description: str | None = None) -> str:
    """KFP v2 YAML text for ``pipeline``; ``image`` is every task's container image, or a
    mapping of component id -> image (with ``default`` for the others)."""
    from toolkit.exporter.kfp_sources import packed_files
    from toolkit.pipeline import upstream_ids
    from toolkit.pipeline_spec import pipeline_to_spec, restrict_spec

    spec = pipeline_to_spec(pipeline)
    components = pipeline.components
    graph = ComponentGraph([ComponentNode(id=c.id, kind=type(c).__name__, variable=c.id, cell=0,
                                          line=0, upstream=tuple(upstream_ids(c)))
                            for c in components])
    restricted = {c.id: restrict_spec(spec, c.id) for c in components}
    tasks = {c.id: {"format": TASK_FORMAT, "component": c.id,
                    "upstream": graph.ancestors(c.id),
                    "pipeline": json.dumps(restricted[c.id], sort_keys=True),
                    "sources": {"files": packed_files(restricted[c.id].get("files") or {})},
                    "settings": {}}
             for c in components}
    images = image if isinstance(image, str) else _images(image, graph.ids)
    return compile_tasks(pipeline.pipeline_name, pipeline.pipeline_name, (), graph,
                    {c.id: TaskSettings() for c in components}, tasks, images,
                    entry=PIPELINE_TASK, description=description)


def _images(images: Mapping[str, str], ids: list[str]) -> dict[str, str]:
    unknown = sorted(set(images) - set(ids) - {"default"})
    if unknown:
        raise ToolkitError(f"default_image names {', '.join(unknown)}, which the pipeline does "
                           f"not have; its components are {', '.join(ids)} (or 'default')")
    missing = [cid for cid in ids if cid not in images and "default" not in images]
    if missing:
        raise ToolkitError(f"default_image gives no image for {', '.join(missing)}: add a "
                           "'default' entry")
    return {cid: images.get(cid) or images["default"] for cid in ids}
