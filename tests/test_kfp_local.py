"""The compiled taxi pipeline (``export/taxi.kfp.yaml``) runs without a cluster, through
``kfp.local`` with its ``SubprocessRunner(use_venv=False)`` (the project's environment),
on a fresh root, and gives what ``toolkit run`` of the papermill export gives.

One pipeline run and one ``toolkit run`` (module fixtures) serve every assertion; the
resume and gate cases run single tasks by the exact command the YAML gives them, on
the pipeline run's root, as a KFP retry would.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from datapaths import REPO
from test_kfp_export import TAXI_GATE_WAITS, TAXI_WIRING

pytestmark = pytest.mark.slow

PIPELINE = Path(REPO) / "export" / "taxi.kfp.yaml"
EXPORT = Path(REPO) / "export" / "taxi.ipynb"
#: the smallest training the taxi notebook offers that still blesses its model; the data
#: by its absolute path, since the pipeline's tasks run where no project folder is
VALUES = {"pipeline_name": "taxi_kfp", "train_steps": 200,
          "data_root": str(Path(REPO) / "notebooks" / "data" / "chicago_taxi")}
OUTPUTS = ("executed_notebook", "run_summary")


def _spec() -> dict:
    return yaml.safe_load(PIPELINE.read_text())


def _tasks(spec: dict) -> dict[str, dict]:
    return {task["taskInfo"]["name"]: task for task in spec["root"]["dag"]["tasks"].values()}


def _upstream(spec: dict) -> dict[str, set[str]]:
    tasks = spec["root"]["dag"]["tasks"]
    return {t["taskInfo"]["name"]: {tasks[d]["taskInfo"]["name"] for d in t.get("dependentTasks", [])}
            for t in tasks.values()}


def _executions(root: Path, name: str) -> list[dict]:
    from toolkit import InteractiveContext

    return list(InteractiveContext(pipeline_name=name, pipeline_root=str(root)).executions())


@pytest.fixture(scope="module")
def toolkit_started(tmp_path_factory):
    """``toolkit run`` of the papermill export with the same parameters, on its own root,
    started before kfp.local's run so that the two share the machine rather than follow
    each other (kfp.local runs one task at a time)."""
    root = tmp_path_factory.mktemp("toolkit_run")
    args = [os.path.join(os.path.dirname(sys.executable), "toolkit"), "run", str(EXPORT), "-q",
            "-o", str(root / "run")]
    values = dict(VALUES, pipeline_root=str(root / "toolkit"), serving_dir=str(root / "serving"))
    for name, value in values.items():
        args += ["-p", name, str(value)]
    with open(root / "toolkit-run.log", "w", encoding="utf-8") as log:
        process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, text=True,
                                   cwd=REPO, env={**os.environ, "TOOLKIT_PUSH_ROOT": str(root)})
    yield root, process
    if process.poll() is None:
        process.kill()
        process.wait()


@pytest.fixture(scope="module")
def kfp_run(tmp_path_factory, toolkit_started):
    """The compiled pipeline run once by kfp.local on a fresh root, from an empty working
    directory, as in a pod of the generic image: the tasks run the sources the pipeline
    carries (the exported notebook and its module files are nowhere else there)."""
    from kfp import components, local

    root = tmp_path_factory.mktemp("kfp_local")
    empty = tmp_path_factory.mktemp("kfp_local_cwd")
    values = dict(VALUES, pipeline_root=str(root / "toolkit"), serving_dir=str(root / "serving"))
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(empty)
        patch.setenv("TOOLKIT_PUSH_ROOT", str(root))
        local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root / "kfp"))
        pipeline = components.load_component_from_file(str(PIPELINE))
        started = time.perf_counter()
        pipeline(**values)
        wall = time.perf_counter() - started
    [run_dir] = (root / "kfp").iterdir()
    summaries = {}
    for task_dir in run_dir.iterdir():
        summary = json.loads((task_dir / "run_summary").read_text())
        summaries[summary["executions"][-1]["component_id"]] = (summary, task_dir)
    return {"root": root, "values": values, "wall": wall, "summaries": summaries, "cwd": empty}


@pytest.fixture(scope="module")
def toolkit_run(toolkit_started):
    """The ``toolkit run`` started beside kfp.local's, finished."""
    root, process = toolkit_started
    code = process.wait(timeout=900)
    assert code == 0, (root / "toolkit-run.log").read_text(encoding="utf-8")[-5000:]
    return {"root": root, "summary": json.loads((root / "run" / "summary.json").read_text())}


def test_same_components_parameters_blessing_and_push_as_toolkit_run(kfp_run, toolkit_run):
    spec = _spec()
    expected = toolkit_run["summary"]
    kfp_rows = _executions(kfp_run["root"] / "toolkit", VALUES["pipeline_name"])
    run_rows = _executions(toolkit_run["root"] / "toolkit", VALUES["pipeline_name"])
    # the same components; the pipeline ran them in an order its DAG allows
    assert [r["component_id"] for r in run_rows] == [e["component_id"] for e in expected["executions"]]
    order = [r["component_id"] for r in kfp_rows]
    assert sorted(order) == sorted(r["component_id"] for r in run_rows)
    for component, upstream in _upstream(spec).items():
        assert all(order.index(up) < order.index(component) for up in upstream), (component, order)

    # with the same parameters and module files
    def parameters(rows, root):
        return {r["component_id"]: (r["parameters"].replace(str(root), "ROOT"), r["module_fingerprint"])
                for r in rows}
    assert parameters(kfp_rows, kfp_run["root"]) == parameters(run_rows, toolkit_run["root"])
    for summary, _ in kfp_run["summaries"].values():
        given = {k: v for k, v in summary["parameters"].items() if k not in ("pipeline_root", "serving_dir")}
        assert given == {k: v for k, v in expected["parameters"].items()
                         if k not in ("pipeline_root", "serving_dir")}

    # the same blessing, and a pushed model, the one this pipeline's Trainer task trained
    evaluator, _ = kfp_run["summaries"]["Evaluator"]
    assert evaluator["blessing"] is expected["blessing"] is True
    pusher, _ = kfp_run["summaries"]["Pusher"]
    assert pusher["push"]["pushed"] and expected["push"]["pushed"]
    assert not pusher["push"]["cached"]
    trainer, _ = kfp_run["summaries"]["Trainer"]
    model_uri = next(a["uri"] for a in trainer["artifacts"] if a["type"] == "Model")
    pushed = Path(kfp_run["values"]["serving_dir"]) / str(pusher["pushed_version"])
    assert any(pushed.rglob("saved_model.pb"))
    from toolkit import InteractiveContext

    context = InteractiveContext(pipeline_name=VALUES["pipeline_name"],
                                 pipeline_root=str(kfp_run["root"] / "toolkit"))
    pusher_row = next(r for r in kfp_rows if r["component_id"] == "Pusher")
    assert [a.uri for a in context.store.inputs_of(int(pusher_row["id"]))["model"]] == [model_uri]
    served = sorted(p.name for p in Path(kfp_run["values"]["serving_dir"]).iterdir() if not p.name.startswith("."))
    assert served == [str(pusher["pushed_version"])]


def test_tasks_ran_the_carried_sources_and_left_their_working_directory_empty(kfp_run):
    assert os.listdir(kfp_run["cwd"]) == []
    for component, (_, task_dir) in kfp_run["summaries"].items():
        executed = (task_dir / "executed_notebook").read_text()
        # the module files the carried notebook names were found: Transform and Trainer ran
        assert '"ename"' not in executed, component


def test_one_execution_per_component_wired_as_the_dag(kfp_run):
    spec = _spec()
    root = kfp_run["root"] / "toolkit"
    rows = _executions(root, VALUES["pipeline_name"])
    assert sorted(r["component_id"] for r in rows) == sorted(_tasks(spec))
    assert all(r["state"] == "COMPLETE" and r["cached_from"] in (None, "None", "") for r in rows), rows
    from toolkit import InteractiveContext

    store = InteractiveContext(pipeline_name=VALUES["pipeline_name"], pipeline_root=str(root)).store
    for row in rows:
        # what each execution read came from exactly the components wired to it (its task
        # also waits for the gates of earlier cells, whose outputs it does not read)
        producers = {Path(a.uri).relative_to(root).parts[0]
                     for arts in store.inputs_of(int(row["id"])).values() for a in arts}
        assert producers == TAXI_WIRING[row["component_id"]], row["component_id"]
        assert producers | TAXI_GATE_WAITS.get(row["component_id"], set()) == _upstream(spec)[row["component_id"]]
    # each task did its own component's work, nothing else
    for component, (summary, _) in kfp_run["summaries"].items():
        assert summary["status"] == "succeeded"
        assert [(e["component_id"], e["cached"]) for e in summary["executions"]] == [(component, False)]


def test_each_task_keeps_its_executed_notebook(kfp_run):
    summary, task_dir = kfp_run["summaries"]["Trainer"]
    notebook = json.loads((task_dir / "executed_notebook").read_text())
    code = [c for c in notebook["cells"] if c["cell_type"] == "code"]
    assert "context.run(trainer)" in "".join(code[-1]["source"])       # nothing after its cell ran
    text = json.dumps(notebook)
    assert "Transform: cached" in text                                  # read from the store
    assert not any(o.get("output_type") == "error" for c in code for o in c.get("outputs", []))
    assert f'train_steps = {VALUES["train_steps"]}' in text             # the injected parameters
    # a component of an earlier cell that the task does not wait for is skipped, with a note
    _, infra_dir = kfp_run["summaries"]["InfraValidator"]
    infra = (infra_dir / "executed_notebook").read_text()
    assert "Evaluator: skipped: this run is restricted to InfraValidator" in infra


def _task_process(spec: dict, component: str, values: dict, out: Path) -> list[str]:
    """The command the YAML gives ``component``'s task, with its executor input filled in as
    KFP fills it: the pipeline's values (defaults for the rest) and local output paths."""
    task = _tasks(spec)[component]
    label = spec["components"][task["componentRef"]["name"]]["executorLabel"]
    container = spec["deploymentSpec"]["executors"][label]["container"]
    defaults = {k: v.get("defaultValue") for k, v in spec["root"]["inputDefinitions"]["parameters"].items()}
    parameters = {}
    for name, given in task["inputs"]["parameters"].items():
        if "componentInputParameter" in given:
            parameters[name] = {**defaults, **values}[given["componentInputParameter"]]
        else:
            parameters[name] = given["runtimeValue"]["constant"]
    out.mkdir(parents=True, exist_ok=True)
    artifacts = {name: {"artifacts": [{"name": name, "type": {"schemaTitle": "system.Artifact",
                                                               "schemaVersion": "0.0.1"},
                                        "uri": str(out / name), "metadata": {}}]} for name in OUTPUTS}
    executor_input = json.dumps({"inputs": {"parameterValues": parameters},
                                 "outputs": {"artifacts": artifacts,
                                             "outputFile": str(out / "executor_output.json")}})
    return [part.replace("{{$}}", executor_input) for part in container["command"] + container["args"]]


def _task_env(root: Path) -> dict:
    # the YAML's command calls `python3`: the project's environment comes first on PATH
    bin_dir = os.path.dirname(sys.executable)
    return {**os.environ, "PATH": bin_dir + os.pathsep + os.environ["PATH"], "TOOLKIT_PUSH_ROOT": str(root)}


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path("/proc", entry, "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def _copy_of_the_run(kfp_run, tmp_path: Path) -> tuple[Path, dict]:
    """The pipeline run's store and artifacts, copied, so that a test adds executions to its own
    copy only (the recorded artifacts stay where the run wrote them, read only)."""
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(kfp_run["root"] / "toolkit", root / "toolkit")
    return root, dict(kfp_run["values"], pipeline_root=str(root / "toolkit"), serving_dir=str(root / "serving"))


def test_a_task_killed_mid_run_resumes_and_completes(kfp_run, tmp_path):
    """The Trainer task with other training steps (a new cache key; its upstream unchanged)
    is killed, with its kernel, while it trains, then run again by the same command."""
    spec = _spec()
    root, values = _copy_of_the_run(kfp_run, tmp_path)
    values["train_steps"] = VALUES["train_steps"] + 1
    before = _executions(root / "toolkit", VALUES["pipeline_name"])
    command = _task_process(spec, "Trainer", values, tmp_path / "killed")
    staging = root / "toolkit" / "Trainer" / "model"
    staging.mkdir(parents=True, exist_ok=True)
    known = set(os.listdir(staging))
    proc = subprocess.Popen(command, cwd=REPO, env=_task_env(root), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and not (set(os.listdir(staging)) - known):
        assert proc.poll() is None, "the task ended before the Trainer started"
        time.sleep(0.2)
    time.sleep(2)
    for pid in reversed(_descendants(proc.pid)):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait(timeout=60)
    before_ids = {r["id"] for r in before}
    killed = [r for r in _executions(root / "toolkit", VALUES["pipeline_name"]) if r["id"] not in before_ids]
    assert [(r["component_id"], r["state"]) for r in killed] == [("Trainer", "RUNNING")]

    again = subprocess.run(_task_process(spec, "Trainer", values, tmp_path / "retried"), cwd=REPO,
                           env=_task_env(root), capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    after = _executions(root / "toolkit", VALUES["pipeline_name"])
    new = [(r["component_id"], r["state"]) for r in after if r["id"] not in before_ids]
    assert new == [("Trainer", "FAILED"), ("Trainer", "COMPLETE")]      # upstream never recomputed
    abandoned = next(r for r in after if r["id"] == killed[0]["id"])
    assert abandoned["error"].startswith("abandoned")
    summary = json.loads((tmp_path / "retried" / "run_summary").read_text())
    assert summary["status"] == "succeeded" and summary["parameters"]["train_steps"] == 201


def test_a_failing_gate_fails_its_task_with_the_gates_line(kfp_run, tmp_path):
    """A bar the model cannot reach: the Evaluator's task records a model not blessed, and
    the Pusher's task (which reads that blessing from the store) fails with its gate's one
    line, its executed notebook kept with the error."""
    spec = _spec()
    root, values = _copy_of_the_run(kfp_run, tmp_path)
    values["min_auc"] = 0.999
    evaluated = subprocess.run(_task_process(spec, "Evaluator", values, tmp_path / "evaluator"), cwd=REPO,
                               env=_task_env(root), capture_output=True, text=True, timeout=600)
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    assert json.loads((tmp_path / "evaluator" / "run_summary").read_text())["blessing"] is False
    failed = subprocess.run(_task_process(spec, "Pusher", values, tmp_path / "pusher"), cwd=REPO,
                            env=_task_env(root), capture_output=True, text=True, timeout=600)
    assert failed.returncode == 1
    last = failed.stderr.strip().splitlines()[-1]
    assert last.startswith("Pusher task failed: Pusher: "), failed.stderr[-2000:]
    assert "bless" in last
    notebook = json.loads((tmp_path / "pusher" / "executed_notebook").read_text())
    assert any(o.get("ename") == "GateError" for c in notebook["cells"] for o in c.get("outputs", []))
    assert not Path(values["serving_dir"]).exists() or not any(Path(values["serving_dir"]).iterdir())
