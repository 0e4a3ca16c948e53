"""What one task of a compiled Kubeflow Pipelines pipeline does (the task's entry point).

The task runs the exported notebook headless with ``toolkit``'s runner, restricted
to its own component:

* the notebook is cut after the cell that runs the component, so no later cell runs;
* ``TOOLKIT_ONLY_COMPONENT`` names the component, ``TOOLKIT_UPSTREAM_COMPONENTS`` the
  components it waits for; every context the notebook creates installs the run policy
  :class:`StepPolicy` from them (a standard policy of :mod:`toolkit.launcher.policies`):
  upstream components are read from the store as cache hits (a miss fails the task
  with one line), the component itself runs (or is a cache hit of an earlier attempt,
  so a retried task resumes), and every other component is skipped;
* the executed notebook (the audit record) and the run's ``summary.json`` are
  written to the task's outputs, also when the run failed.

The pipeline carries the exported notebook and the module files it names
(:mod:`toolkit.exporter.kfp_sources`), so one generic image serves every export. A task
runs the project's own files when its working directory (or ``TOOLKIT_PROJECT_DIR``)
holds exactly the compiled ones (same SHA-256: relative data paths then resolve as they
did at export), and otherwise the carried copies, in a folder of its own, whatever its
working directory.

A pipeline compiled from a ``Pipeline`` object (``KubeflowV2DagRunner``) has no notebook:
its task (:func:`run_pipeline_task`) rebuilds the components from the spec it carries
(:mod:`toolkit.pipeline_spec`) and runs them with ``toolkit.pipeline.run_pipeline`` under
the same :class:`StepPolicy`; the module files it names must be the compiled ones.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Mapping

from toolkit import _env
from toolkit._scoped import temporarily
from toolkit._text import show_controls
from toolkit.errors import ToolkitError
from toolkit.launcher.decision import Role, Ruling, Run
from toolkit.launcher.hooks import RunHook

PROJECT_ENV = _env.PROJECT_DIR


def run_task(task: Mapping[str, Any], values: Mapping[str, Any], executed_notebook: str,
             run_summary: str) -> None:
    """Run one task; on failure print one line naming the component and exit with status 1."""
    component = str(task.get("component", "?"))
    try:
        result = _run(task, values, Path(executed_notebook), Path(run_summary))
    except ToolkitError as exc:
        _fail(component, str(exc))
    if not result.ok:
        cell = (result.summary.get("failing_cell") or {}).get("cell")
        where = f" (cell {cell})" if cell else ""
        _fail(component, f"{result.reason}{where}")
    if component not in [e.get("component_id") for e in result.summary.get("executions", [])]:
        _fail(component, f"the notebook ran to cell {task.get('cell')} without running {component}; "
                         "re-export the pipeline from this notebook")
    print(f"{component}: task succeeded; executed notebook {executed_notebook}", flush=True)


def _fail(component: str, reason: str) -> None:
    print(show_controls(f"{component} task failed: {' '.join(reason.split())}"), file=sys.stderr,
          flush=True)
    raise SystemExit(1)


def _run(task: Mapping[str, Any], values: Mapping[str, Any], executed: Path, summary: Path):
    with tempfile.TemporaryDirectory(prefix="toolkit-task-") as folder:
        notebook, cwd = _sources(task, Path(folder))
        return _execute(task, values, notebook, cwd, Path(folder), executed, summary)


def _sources(task: Mapping[str, Any], folder: Path) -> tuple[Path, Path | None]:
    """The notebook to run and its working directory: the project's own files when the
    working directory (or ``TOOLKIT_PROJECT_DIR``) holds exactly the compiled ones, else
    the copies the pipeline carries, written under ``folder``."""
    from toolkit.exporter.inspection import source_directory
    from toolkit.exporter.kfp_sources import materialize, matches

    component = str(task["component"])
    project = Path(os.environ.get(PROJECT_ENV) or ".")
    notebook = project / str(task["notebook"])
    sources = task.get("sources")
    try:
        text = notebook.read_text(encoding="utf-8")
    except OSError as exc:
        text, why = None, f"cannot read {notebook} ({exc.strerror})"
    else:
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        why = (f"{notebook} is not the notebook this pipeline was compiled from (sha256 "
               f"{digest[:12]}, compiled from {str(task['notebook_sha256'])[:12]})")
        if digest == task["notebook_sha256"]:
            cwd = source_directory(notebook)
            if not sources or matches(sources, cwd):
                return notebook, cwd
            why = f"the module files beside {notebook} differ from the compiled ones"
    if not sources:
        hint = (f"; run the task in the project root or set {PROJECT_ENV}" if text is None
                else "; rebuild the image or re-export")
        raise ToolkitError(why + hint)
    print(f"{component}: running the sources the pipeline carries ({why})", flush=True)
    notebook, cwd = materialize(sources, folder / "sources", Path(str(task["notebook"])).name)
    if hashlib.sha256(notebook.read_bytes()).hexdigest() != task["notebook_sha256"]:
        raise ToolkitError("the notebook carried by the pipeline is damaged (sha256 differs); "
                           "compile the pipeline again")
    return notebook, cwd


def _execute(task: Mapping[str, Any], values: Mapping[str, Any], notebook: Path, cwd: Path | None,
             folder: Path, executed: Path, summary: Path):
    from toolkit import runner
    from toolkit.exporter.inspection import notebook_parameters

    declared, _ = notebook_parameters(notebook)
    typed = {p.name: _restore_ints(values[p.name], p.default) for p in declared if p.name in values}
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    nb["cells"] = nb["cells"][: int(task["cell"])]
    timeout = (task.get("settings") or {}).get("timeout")
    cut = folder / notebook.name
    cut.write_text(json.dumps(nb, ensure_ascii=False), encoding="utf-8")
    with temporarily(os.environ, _step_environment(task, str(folder))):
        result = runner.run_notebook(cut, typed, run_dir=folder / "run", cwd=cwd,
                                     execution_timeout=float(timeout) if timeout else None,
                                     progress=runner.print_progress)
    for source, target in ((result.notebook, executed), (result.summary_path, summary)):
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.exists():
            shutil.copyfile(source, target)
    return result


def _step_environment(task: Mapping[str, Any], scratch: str) -> dict[str, str]:
    """The variables that restrict a run to the task's component (:class:`StepPolicy`)."""
    return {StepPolicy.ONLY_ENV: str(task["component"]),
            StepPolicy.UPSTREAM_ENV: ",".join(task.get("upstream") or []),
            StepPolicy.SCRATCH_ENV: scratch}


def _restore_ints(value: Any, default: Any) -> Any:
    """KFP carries numbers inside lists and dicts as doubles: give back an integer where the
    parameter's default holds one at the same place and the value is whole."""
    if isinstance(value, float) and isinstance(default, int) and not isinstance(default, bool):
        return int(value) if value.is_integer() else value
    if isinstance(value, list) and isinstance(default, list):
        return [_restore_ints(v, default[i] if i < len(default) else None) for i, v in enumerate(value)]
    if isinstance(value, dict) and isinstance(default, dict):
        return {k: _restore_ints(v, default.get(k)) for k, v in value.items()}
    return value


class StepPolicy(RunHook):
    """The run policy of one task: a run restricted to one component.

    ``TOOLKIT_ONLY_COMPONENT`` names the component this run executes;
    ``TOOLKIT_UPSTREAM_COMPONENTS`` (comma-separated ids) the components it depends on,
    which are read from the store and must be cache hits there. Every other component,
    and anything run after the component itself, is skipped: not executed, not recorded.
    The tasks share one store: the MySQL database the ``TOOLKIT_MYSQL_*`` variables name,
    unless the notebook gives its context a connection config.
    """

    #: the variables a task sets (see :func:`_run`)
    ONLY_ENV = _env.ONLY_COMPONENT
    UPSTREAM_ENV = _env.UPSTREAM_COMPONENTS
    SCRATCH_ENV = _env.TASK_SCRATCH

    def __init__(self, only: str, upstream: list[str],
                 environ: Mapping[str, str] | None = None, scratch: str = ""):
        self.only = only
        self.upstream = set(upstream)
        self.done = False
        self._environ = environ
        self.scratch = scratch

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "StepPolicy | None":
        env = os.environ if environ is None else environ
        only = env.get(cls.ONLY_ENV, "").strip()
        if not only:
            return None
        upstream = env.get(cls.UPSTREAM_ENV, "")
        return cls(only, [name.strip() for name in upstream.split(",") if name.strip()], env,
                   env.get(cls.SCRATCH_ENV, ""))

    def store_config(self) -> Any | None:
        from toolkit.metadata_config import mysql_config_from_env

        return mysql_config_from_env(self._environ)

    def before_decide(self, run: Run) -> Ruling | None:
        """None for the component itself (the cache decides); READ for its upstream until it
        ran; SKIP for everything else. A root inside the folder a task runs carried
        sources in would be deleted with it, and the next task would find nothing: that
        stops the task."""
        if self.scratch and "://" not in run.pipeline_root:
            root = os.path.realpath(run.pipeline_root)
            if os.path.commonpath([root, os.path.realpath(self.scratch)]) == os.path.realpath(self.scratch):
                raise ToolkitError(f"pipeline_root {run.pipeline_root} is inside the task's temporary "
                                   "folder (it runs the sources the pipeline carries, where relative "
                                   "paths have no project); give pipeline_root as a URI or an "
                                   "absolute path every task can reach")
        component_id = run.component.id
        if component_id == self.only and not self.done:
            self.done = True
            return None
        if component_id in self.upstream and not self.done:
            return Ruling(Role.READ, f"this run is restricted to {self.only}, which reads "
                                     f"{component_id} from the store (run {component_id}'s own "
                                     "task first)")
        where = "after" if self.done else "outside the upstream of"
        return Ruling(Role.SKIP, f"skipped: this run is restricted to {self.only}, and "
                                 f"{component_id} is {where} it")


def step_policy(environ: Mapping[str, str]) -> StepPolicy | None:
    """The policy factory the launcher's registry names (``pipeline-step``): a
    :class:`StepPolicy` when ``environ`` says this process runs a task, else None."""
    return StepPolicy.from_env(environ)


# -- a task of a pipeline compiled from a Pipeline object (KubeflowV2DagRunner) ---------------
def run_pipeline_task(task: Mapping[str, Any], values: Mapping[str, Any], job_id: str,
                      run_summary: str) -> None:
    """Run one component of a ``Pipeline`` compiled by ``KubeflowV2DagRunner``: rebuild the
    pipeline from the spec in ``task`` (that component and what it reads), then run it
    with :func:`toolkit.pipeline.run_pipeline` under :class:`StepPolicy`, so its upstream
    is read from the store and only it runs. ``job_id`` (KFP's pipeline job id) names the
    ``pipeline_run`` its execution joins. Writes ``run_summary`` (JSON); on failure prints
    one line naming the component and exits with status 1."""
    component = str(task.get("component", "?"))
    try:
        summary = _run_pipeline_step(task, job_id)
    except ToolkitError as exc:
        _fail(component, str(exc))
    target = Path(run_summary)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(summary, indent=2, sort_keys=True, default=str),
                      encoding="utf-8")
    print(f"{component}: task succeeded", flush=True)


def _run_pipeline_step(task: Mapping[str, Any], job_id: str) -> dict[str, Any]:
    import contextlib

    from toolkit.pipeline import run_pipeline
    from toolkit.pipeline_spec import check_files, pipeline_from_spec

    component = str(task["component"])
    project = os.environ.get(PROJECT_ENV)
    spec = task["pipeline"]
    spec = json.loads(spec) if isinstance(spec, str) else spec
    with contextlib.ExitStack() as scope:
        if project:
            scope.enter_context(contextlib.chdir(project))
        try:
            check_files(spec.get("files") or {})
        except ToolkitError as exc:
            if not (task.get("sources") or {}).get("files"):
                raise
            from toolkit.exporter.kfp_sources import materialize

            print(f"{component}: running the sources the pipeline carries ({exc})", flush=True)
            folder = Path(scope.enter_context(tempfile.TemporaryDirectory(prefix="toolkit-task-")))
            _, cwd = materialize(task["sources"], folder)
            scope.enter_context(contextlib.chdir(cwd))
            check_files(spec.get("files") or {})
            scratch = str(folder)
        else:
            scratch = ""
        pipeline = pipeline_from_spec(spec)
        with temporarily(os.environ, _step_environment(task, scratch)):
            run = run_pipeline(pipeline, run_id=job_id or None)
    result = run.results.get(component)
    if result is None or not hasattr(result, "execution_id"):
        raise ToolkitError(f"the pipeline ran without running {component}"
                           + (f": {result!r}" if result is not None else ""))
    return {"component_id": component, "pipeline_name": pipeline.pipeline_name,
            "run_id": run.run_id, "execution_id": result.execution_id, "cached": result.cached,
            "outcome": result.outcome, "gate_failure": result.gate_failure,
            "outputs": {key: [{"id": a.id, "type": a.TYPE_NAME, "uri": a.uri} for a in arts]
                        for key, arts in result.outputs.items()}}
