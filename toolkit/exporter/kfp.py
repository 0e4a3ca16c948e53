"""Export target: a Kubeflow Pipelines (v2) pipeline with one task per component.

``toolkit.exporter.export_kfp("notebooks/taxi.ipynb")`` exports the notebook as the papermill target
does (``export/taxi.ipynb``, ``taxi.params.yaml``) and compiles, from that exported
notebook, ``export/taxi.kfp.yaml`` with the ``kfp`` SDK. Each component the notebook
runs becomes a task; a task's upstream tasks are the components whose outputs its
constructor reads (:mod:`toolkit.exporter.graph`). Every task executes the same
exported notebook headless, restricted to its own component
(:mod:`toolkit.exporter.kfp_task`): upstream components are read from the store as
cache hits, its own runs, the cells after it do not run. The notebook's parameters
become typed pipeline parameters with their defaults and help text.

Per-task settings come from a cell tag on the cell that runs the component
(``kfp:cpu:4,memory:16G,retries:2``) or from ``--resources Trainer=cpu:4,memory:16G``
(which wins, key by key). KFP's own caching is off unless a task says ``cache:true``:
the toolkit's cache decides what is reused.

Each task's code is a Lightweight Python Component, the form KFP's local
``SubprocessRunner`` can run too: a function whose signature lists the notebook's
parameters and which calls :func:`toolkit.exporter.kfp_task.run_task`. That function
is generated from identifiers and type names only; every value (defaults, help text,
the task's settings) reaches the YAML through the SDK's serializer.
"""
from __future__ import annotations

import contextlib
import inspect
import json
import keyword
import linecache
import os
import re
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

from toolkit.errors import CellError, ExportError
from toolkit.exporter.analysis import PARAMETERS_TAG
from toolkit.exporter.graph import ComponentGraph, component_graph
from toolkit.exporter.kfp_platform import Platform
from toolkit.exporter.kfp_sources import carried_sources
from toolkit.exporter.notebook import cell_source, cell_tags, display_path, project_root, write_atomic
from toolkit.exporter.parameters import NotebookParameter

DEFAULT_IMAGE = "toolkit:latest"
KFP_SUFFIX = ".kfp.yaml"
TAG_PREFIX = "kfp:"
TASK_INPUT = "toolkit_task"
OUTPUTS = ("executed_notebook", "run_summary")
TASK_FORMAT = 1
#: the task input that carries KFP's pipeline job id, for tasks that ask for it
JOB_INPUT = "toolkit_job"
#: names the task's code uses besides the parameters
_RESERVED = frozenset({TASK_INPUT, JOB_INPUT, *OUTPUTS, "dict", "run_task", "Output", "Artifact"})
#: KFP passes numbers as doubles: integers beyond this lose digits
_EXACT_INT = 2**53
_KFP_TYPES = {"str": str, "int": int, "float": float, "bool": bool, "list": list, "dict": dict}
#: the forms KFP's set_cpu_limit / set_memory_limit accept
_QUANTITY = {"cpu": (r"([0-9]*[.])?[0-9]+m?", "a CPU amount such as 4, 0.5 or 500m"),
             "memory": (r"[0-9]+(E|Ei|P|Pi|T|Ti|G|Gi|M|Mi|K|Ki)?", "a memory amount such as 16G or 512Mi")}
_SETTING_KEYS = ("cpu", "memory", "accelerator", "accelerator_count", "retries", "timeout", "cache")


@dataclass(frozen=True)
class TaskEntry:
    """The function every task calls, ``module.function(task, values[, job id], *paths)``:
    the task constant, the pipeline parameters' values, KFP's pipeline job id when
    ``job_id``, and the local paths of the task's ``outputs`` (KFP artifacts)."""

    module: str
    function: str
    outputs: tuple[str, ...]
    job_id: bool = False


#: what a task of an exported notebook runs (:func:`toolkit.exporter.kfp_task.run_task`)
NOTEBOOK_TASK = TaskEntry("toolkit.exporter.kfp_task", "run_task", OUTPUTS)


@dataclass(frozen=True)
class TaskSettings:
    """What one task asks of the cluster, and how KFP treats it."""

    cpu: str | None = None
    memory: str | None = None
    accelerator: str | None = None
    accelerator_count: int | None = None
    retries: int | None = None
    timeout: int | None = None
    cache: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in _SETTING_KEYS if getattr(self, key) not in (None, False)}


@dataclass
class KfpExportResult:
    """What a KFP export wrote: the pipeline file, its tasks and their edges."""

    pipeline: Path
    notebook: Path
    graph: ComponentGraph
    settings: dict[str, TaskSettings]
    image: str
    changed: bool = True
    text: str = field(default="", repr=False)

    def __str__(self) -> str:
        return (f"compiled {self.notebook} -> {self.pipeline} ({len(self.graph.nodes)} tasks, "
                f"{len(self.graph.edges())} edges, image {self.image})")


def kfp_pipeline_path(exported_notebook: Path) -> Path:
    """Where the KFP target writes the pipeline compiled from ``exported_notebook``."""
    name = exported_notebook.name.removesuffix(".ipynb")
    return exported_notebook.with_name(name + KFP_SUFFIX)


def parse_resources(items: Iterable[str]) -> dict[str, dict[str, str]]:
    """``["Trainer=cpu:4,memory:16G"]`` -> ``{"Trainer": {"cpu": "4", "memory": "16G"}}``."""
    found: dict[str, dict[str, str]] = {}
    for item in items:
        component, sep, text = item.partition("=")
        if not sep or not component.strip():
            raise ExportError(f"--resources {item!r}: expected COMPONENT=key:value[,key:value], "
                              "e.g. Trainer=cpu:4,memory:16G")
        found.setdefault(component.strip(), {}).update(_pairs(text, f"--resources {item!r}"))
    return found


def _pairs(text: str, where: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition(":")
        key = key.strip()
        if not sep or not value.strip():
            raise ExportError(f"{where}: {part!r} is not key:value")
        if key not in _SETTING_KEYS:
            raise ExportError(f"{where}: unknown setting {key!r}; known: {', '.join(_SETTING_KEYS)}")
        pairs[key] = value.strip()
    return pairs


def _settings(component_id: str, pairs: Mapping[str, tuple[str, str]]) -> TaskSettings:
    """Check each value (``key -> (text, where it was given)``) as KFP will, and say what is
    wrong in one line naming the task and where the value came from."""
    values: dict[str, Any] = {}
    for key, (text, where) in pairs.items():
        problem = None
        if key in ("accelerator_count", "retries", "timeout"):
            if not text.isdigit() or (key != "retries" and int(text) == 0):
                problem = "a whole number" + (" above 0" if key != "retries" else "")
            else:
                values[key] = int(text)
        elif key == "cache":
            if text.lower() not in ("true", "false"):
                problem = "true or false"
            values[key] = text.lower() == "true"
        else:
            if key in _QUANTITY and not re.fullmatch(_QUANTITY[key][0], text):
                problem = _QUANTITY[key][1]
            values[key] = text
        if problem:
            raise ExportError(f"{where}: {component_id} {key}:{text} is not valid; expected {problem}")
    if "accelerator_count" in values and "accelerator" not in values:
        where = pairs["accelerator_count"][1]
        raise ExportError(f"{where}: {component_id} accelerator_count needs accelerator:TYPE "
                          "(e.g. nvidia.com/gpu)")
    return TaskSettings(**values)


def task_settings(graph: ComponentGraph, resources: Mapping[str, Mapping[str, str]],
                  source: str, source_cell: Any = lambda number: number) -> dict[str, TaskSettings]:
    """Each task's settings: its cell's ``kfp:`` tag, overridden key by key by ``resources``."""
    unknown = sorted(set(resources) - set(graph.ids))
    if unknown:
        raise ExportError(f"--resources names {', '.join(unknown)}, which the notebook does not run; "
                          f"its components are {', '.join(graph.ids)}")
    found = {}
    for node in graph.nodes:
        pairs: dict[str, tuple[str, str]] = {}
        for tag in node.tags:
            if tag.startswith(TAG_PREFIX):
                where = f"{source}, cell {source_cell(node.cell)}: tag {tag!r}"
                pairs.update((k, (v, where)) for k, v in _pairs(tag[len(TAG_PREFIX):], where).items())
        pairs.update((k, (v, "--resources")) for k, v in resources.get(node.id, {}).items())
        found[node.id] = _settings(node.id, pairs)
    return found


def check_parameters(parameters: Sequence[NotebookParameter], cell: int | None) -> None:
    """Refuse what a KFP pipeline parameter cannot carry, naming the parameters cell."""
    for param in parameters:
        reason = None
        if param.name in _RESERVED:
            reason = f"its name is one the KFP export uses itself (rename {param.name!r})"
        elif param.nullable:
            reason = (f"it is {param.annotation}: a KFP pipeline parameter cannot be None; "
                      f"declare it {param.type} with a default")
        elif param.type not in _KFP_TYPES:
            reason = f"its type {param.type} has no KFP parameter type"
        elif not param.required and _has_inexact_int(param.default):
            reason = ("its default holds an integer beyond 2**53, which KFP (numbers are doubles) "
                      "cannot carry exactly")
        if reason:
            raise CellError(cell, f"parameter {param.name!r} cannot be a KFP pipeline parameter: {reason}")


def _has_inexact_int(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return abs(value) > _EXACT_INT
    if isinstance(value, list):
        return any(_has_inexact_int(v) for v in value)
    if isinstance(value, dict):
        return any(_has_inexact_int(v) for v in value.values())
    return False


def graph_of_notebook(nb: Mapping[str, Any], shown: Any = lambda number: number) -> ComponentGraph:
    """The component graph of an exported notebook (cells numbered from 1; ``shown`` maps
    a number to the source notebook's, for messages)."""
    cells = [(number, cell_source(cell), cell_tags(cell))
             for number, cell in enumerate(nb.get("cells", []), 1)
             if cell.get("cell_type") == "code" and PARAMETERS_TAG not in cell_tags(cell)]
    graph = component_graph(cells, shown)
    if not graph.nodes:
        raise CellError(None, "the notebook runs no component through `context.run(...)`; a KFP "
                        "pipeline needs at least one task")
    return graph.wait_for_gates({node.id for node in graph.nodes if _has_gate(node.kind)})


def _has_gate(kind: str) -> bool:
    """Whether the toolkit's component class of that name can stop a production run (its
    ``gate``). Classes defined in the notebook are not known here: they count as gateless."""
    import toolkit.components
    from toolkit.base_component import BaseComponent

    cls = getattr(toolkit.components, kind, None)
    return isinstance(cls, type) and issubclass(cls, BaseComponent) and cls.gate is not BaseComponent.gate


def compile_pipeline(notebook_text: str, notebook_path: str, name: str,
                     parameters: Sequence[NotebookParameter], source: str,
                     resources: Mapping[str, Mapping[str, str]] | None = None,
                     image: str = DEFAULT_IMAGE, source_cells: Sequence[int | None] = (),
                     parameters_cell: int | None = None, directory: Path | None = None,
                     platform: Platform | None = None
                     ) -> tuple[str, ComponentGraph, dict[str, TaskSettings]]:
    """Compile the exported notebook ``notebook_text`` to KFP v2 YAML text.

    ``notebook_path`` is where the tasks find the notebook (relative to their working
    directory, the project root in the image); ``source`` names the source notebook in
    errors, and ``source_cells`` maps each exported cell to its number there. The tasks
    carry the notebook and the files it names, read from ``directory`` (the notebook's
    working directory; :mod:`toolkit.exporter.kfp_sources`). ``platform`` adds
    Kubernetes secrets and volumes to every task. Raises :class:`ExportError` naming
    the (source) cell and the reason.
    """
    import hashlib

    nb = json.loads(notebook_text)

    def source_cell(number: int | None) -> int | None:
        if number is not None and 0 < number <= len(source_cells):
            return source_cells[number - 1]
        return number

    try:
        check_parameters(parameters, parameters_cell)
    except CellError as exc:
        raise ExportError(exc.reason, path=source, cell=exc.cell) from None
    try:
        graph = graph_of_notebook(nb, source_cell)
    except CellError as exc:
        raise ExportError(exc.reason, path=source, cell=source_cell(exc.cell)) from None
    settings = task_settings(graph, resources or {}, source, source_cell)
    digest = hashlib.sha256(notebook_text.encode("utf-8")).hexdigest()
    codes = [cell_source(c) if c.get("cell_type") == "code" else "" for c in nb.get("cells", [])]
    try:
        sources = carried_sources(notebook_text, codes, directory)
    except CellError as exc:
        raise ExportError(exc.reason, path=source, cell=source_cell(exc.cell)) from None
    tasks = {
        node.id: {
            "format": TASK_FORMAT,
            "component": node.id,
            "notebook": notebook_path,
            "notebook_sha256": digest,
            "cell": node.cell,
            "upstream": graph.ancestors(node.id),
            "settings": settings[node.id].to_dict(),
            "sources": sources,
        }
        for node in graph.nodes
    }
    text = compile_tasks(name, source, parameters, graph, settings, tasks, image, platform=platform)
    return text, graph, settings


def _function_names(ids: Sequence[str]) -> dict[str, str]:
    """A distinct Python identifier per component id (``CsvExampleGen`` -> ``csv_example_gen``):
    KFP names each task after it."""
    names: dict[str, str] = {}
    for component_id in ids:
        base = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", component_id).lower()
        base = re.sub(r"[^0-9a-z_]+", "_", base).strip("_") or "component"
        if base[0].isdigit() or keyword.iskeyword(base):
            base = "task_" + base
        name, count = base, 2
        while name in names.values():
            name, count = f"{base}_{count}", count + 1
        names[component_id] = name
    return names


def _kfp_sdk() -> tuple[Any, Any]:
    """``(kfp.dsl, kfp.compiler)``."""
    from kfp import compiler, dsl

    return dsl, compiler


@contextlib.contextmanager
def compiler_only_kfp() -> Iterator[None]:
    """For the ``toolkit export`` command, which only compiles: kfp without its REST client
    inside the block, and the whole kfp package again after it.

    ``import kfp`` also imports ``kfp.Client`` and with it the Kubernetes client library,
    over a second on a small machine, and compiling never uses them. kfp skips them when
    ``_KFP_RUNTIME`` is set (its own switch for task containers); it is set only around
    the package's first import, so ``kfp.dsl`` and ``kfp.compiler`` load whole. That kfp
    lacks ``kfp.Client``, so when the block ends, the kfp modules imported in it are
    taken out of ``sys.modules`` again: a process that goes on (a notebook that called
    ``toolkit.cli.main``) gets the whole package, ``kfp.Client`` too, from its next
    ``import kfp``. A kfp imported before the block is used as it is and kept.
    """
    if "kfp" in sys.modules:
        yield
        return
    previous = os.environ.get("_KFP_RUNTIME")
    os.environ["_KFP_RUNTIME"] = "true"
    try:
        import kfp  # noqa: F401
    finally:
        if previous is None:
            del os.environ["_KFP_RUNTIME"]
        else:
            os.environ["_KFP_RUNTIME"] = previous
    try:
        yield
    finally:
        for name in [n for n in sys.modules if n == "kfp" or n.startswith("kfp.")]:
            del sys.modules[name]


def _task_function(name: str, parameters: Sequence[NotebookParameter], pipeline: str,
                   entry: TaskEntry = NOTEBOOK_TASK):
    """The task's Python function, generated from identifiers and type names only, and
    registered with :mod:`linecache` so that KFP can read its source."""
    dsl, _ = _kfp_sdk()

    for identifier in (*entry.module.split("."), entry.function, *entry.outputs):
        if not identifier.isidentifier() or keyword.iskeyword(identifier):
            raise ExportError(f"{identifier!r} in a task's entry point is not an identifier")
    args = [f"{TASK_INPUT}: dict"] + [f"{p.name}: {p.type}" for p in parameters]
    args += [f"{JOB_INPUT}: str"] if entry.job_id else []
    args += [f"{output}: Output[Artifact]" for output in entry.outputs]
    values = ", ".join(f"{p.name}={p.name}" for p in parameters)
    outputs = ", ".join([JOB_INPUT] * entry.job_id + [f"{output}.path" for output in entry.outputs])
    source = (f"def {name}({', '.join(args)}):\n"
              f"    from {entry.module} import {entry.function}\n"
              f"    {entry.function}({TASK_INPUT}, dict({values}), {outputs})\n")
    filename = f"<toolkit kfp task {pipeline}.{name}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace = {"Output": dsl.Output, "Artifact": dsl.Artifact}
    exec(compile(source, filename, "exec", dont_inherit=True), namespace)
    return namespace[name]


def compile_tasks(name: str, source: str, parameters: Sequence[NotebookParameter], graph: ComponentGraph,
             settings: Mapping[str, TaskSettings], tasks: Mapping[str, dict],
             image: str | Mapping[str, str], entry: TaskEntry = NOTEBOOK_TASK,
             description: str | None = None, platform: Platform | None = None) -> str:
    """KFP v2 YAML with one task per node of ``graph``, each calling ``entry`` with its
    constant from ``tasks``, in ``image`` (one for all, or one per component id)."""
    dsl, compiler = _kfp_sdk()
    functions = _function_names(graph.ids)
    components = {
        node.id: dsl.component(_task_function(functions[node.id], parameters, name, entry),
                               base_image=image if isinstance(image, str) else image[node.id],
                               install_kfp_package=False)
        for node in graph.nodes
    }
    names = [p.name for p in parameters]
    job = {JOB_INPUT: dsl.PIPELINE_JOB_ID_PLACEHOLDER} if entry.job_id else {}

    def body(*args: Any) -> None:
        values = dict(zip(names, args))
        made: dict[str, Any] = {}
        for node in graph.nodes:
            task = components[node.id](**{TASK_INPUT: tasks[node.id]}, **values, **job)
            task.set_display_name(node.id)
            _apply(task, settings[node.id])
            if platform:
                platform.apply(task)
            for upstream in (*node.upstream, *node.after):
                task.after(made[upstream])
            made[node.id] = task

    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    body.__signature__ = inspect.Signature([
        inspect.Parameter(p.name, kind, annotation=_KFP_TYPES[p.type],
                          default=inspect.Parameter.empty if p.required else p.default)
        for p in parameters])
    body.__doc__ = ((description or f"Exported from {source} by `toolkit export --target kfp`: "
                                    "one task per component.")
                    + ("\n\nArgs:\n" + "".join(f"    {p.name}: {_help(p)}\n" for p in parameters)
                       if parameters else ""))
    body.__name__ = body.__qualname__ = name
    pipeline = dsl.pipeline(name=name, description=body.__doc__.split("\n")[0])(body)
    with tempfile.TemporaryDirectory(prefix="toolkit-kfp-") as folder:
        path = Path(folder) / "pipeline.yaml"
        compiler.Compiler().compile(pipeline, str(path))
        return path.read_text(encoding="utf-8")


def _help(param: NotebookParameter) -> str:
    return " ".join(param.help.split()) or f"the notebook parameter {param.name}"


def _apply(task: Any, settings: TaskSettings) -> None:
    task.set_caching_options(settings.cache)
    if settings.cpu:
        task.set_cpu_limit(settings.cpu)
    if settings.memory:
        task.set_memory_limit(settings.memory)
    if settings.accelerator:
        task.set_accelerator_type(settings.accelerator)
        task.set_accelerator_limit(settings.accelerator_count or 1)
    if settings.retries:
        task.set_retry(num_retries=settings.retries)


def write_kfp(exported: Any, resources: Iterable[str] = (), image: str = DEFAULT_IMAGE,
              platform: Platform | None = None) -> KfpExportResult:
    """Compile and write the KFP pipeline of an export that
    :func:`toolkit.exporter.export.export_notebook` just wrote.

    ``resources`` are ``COMPONENT=key:value,...`` strings (see :func:`parse_resources`);
    ``image`` is the container image every task runs in; ``platform`` the Kubernetes
    secrets and volumes every task gets. Writing is skipped when the pipeline file is
    unchanged."""
    result = build_kfp(exported, parse_resources(resources), image, platform)
    result.changed = write_atomic(result.pipeline, result.text)
    return result


def build_kfp(exported: Any, resources: Mapping[str, Mapping[str, str]],
              image: str = DEFAULT_IMAGE, platform: Platform | None = None) -> KfpExportResult:
    """Compile the KFP pipeline of an :class:`~toolkit.exporter.export.ExportResult` in memory."""
    from toolkit.exporter.notebook import recorded_metadata

    notebook = Path(exported.notebook)
    base = project_root(notebook)
    notebook_path = display_path(notebook, base)
    name = notebook.name.removesuffix(".ipynb")
    folder = recorded_metadata(exported.notebook_text).get("working_directory")
    directory = notebook.parent / folder if isinstance(folder, str) else None
    text, graph, settings = compile_pipeline(exported.notebook_text, notebook_path, name,
                                             exported.parameters, exported.source, resources, image,
                                             exported.source_cells, exported.parameters_cell,
                                             directory, platform)
    return KfpExportResult(kfp_pipeline_path(notebook), notebook, graph, settings, image, text=text)


def recorded_options(text: str) -> tuple[str, dict[str, dict[str, str]], Platform] | None:
    """The image, per-task settings and platform an existing pipeline file was compiled
    with, or None when ``text`` is not a pipeline written by this target."""
    import yaml

    try:
        documents = list(yaml.safe_load_all(text))
        spec = documents[0]
        executors = spec["deploymentSpec"]["executors"]
        image = next(iter(executors.values()))["container"]["image"]
        resources: dict[str, dict[str, str]] = {}
        for task in spec["root"]["dag"]["tasks"].values():
            constant = task["inputs"]["parameters"][TASK_INPUT]["runtimeValue"]["constant"]
            resources[constant["component"]] = {
                key: _setting_text(value) for key, value in constant.get("settings", {}).items()}
        platform = Platform.recorded(documents[1] if len(documents) > 1 else None)
        return image, resources, platform
    except (yaml.YAMLError, KeyError, TypeError, AttributeError, StopIteration, IndexError):
        return None


def refresh_kfp(exported: Any) -> KfpExportResult | None:
    """Recompile an existing ``<name>.kfp.yaml`` beside a fresh export with the image,
    settings and platform it was compiled with, so that a plain re-export keeps it
    current; None when there is none."""
    pipeline = kfp_pipeline_path(Path(exported.notebook))
    try:
        options = recorded_options(pipeline.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    if options is None:
        return None
    image, resources, platform = options
    result = build_kfp(exported, resources, image, platform)
    result.changed = write_atomic(result.pipeline, result.text)
    return result


def _setting_text(value: Any) -> str:
    """A recorded setting as it was given (KFP stores whole numbers as doubles)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def check_kfp(exported: Any) -> list[str]:
    """Why ``<name>.kfp.yaml`` beside a fresh export is stale (empty when it is current or
    when the notebook has no KFP export)."""
    pipeline = kfp_pipeline_path(Path(exported.notebook))
    try:
        existing = pipeline.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    options = recorded_options(existing)
    if options is None:
        return [f"{pipeline.name} is not a pipeline written by `toolkit export --target kfp`"]
    try:
        image, resources, platform = options
        fresh = build_kfp(exported, resources, image, platform)
    except ExportError as exc:
        return [f"{pipeline.name} cannot be compiled again: {exc}"]
    if fresh.text != existing:
        return [f"{pipeline.name} differs from a fresh compile (re-export with --target kfp)"]
    return []
