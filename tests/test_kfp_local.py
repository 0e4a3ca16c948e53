"""The compiled taxi pipeline (``export/taxi.kfp.yaml``) runs without a cluster, through
``kfp.local`` with its ``SubprocessRunner(use_venv=False)`` (the project's environment),
as a cluster runs it: ``pipeline_root`` and the serving folder in an S3 bucket (moto's
server on 127.0.0.1), metadata in a MySQL database (a throwaway MariaDB server), each task
in an empty working directory with the sources the pipeline carries, credentials only in
the environment. It gives what ``toolkit run`` of the papermill export gives on local disk.

One pipeline run and one ``toolkit run`` (module fixtures) serve every assertion; the
resume and gate cases run single tasks by the exact command the YAML gives them, on a
copy of the local run's root, as a KFP retry would.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

import object_servers
from datapaths import REPO
from test_kfp_export import TAXI_GATE_WAITS, TAXI_WIRING

sys.path.insert(0, str(Path(__file__).resolve().parent / "mysql"))
from mariadb_server import MariaDBServer, require_server  # noqa: E402

pytestmark = pytest.mark.slow

PIPELINE = Path(REPO) / "export" / "taxi.kfp.yaml"
EXPORT = Path(REPO) / "export" / "taxi.ipynb"
#: the smallest training the taxi notebook offers that still blesses its model; the data
#: by its absolute path, since the pipeline's tasks run where no project folder is
VALUES = {"pipeline_name": "taxi_kfp", "train_steps": 200,
          "data_root": str(Path(REPO) / "notebooks" / "data" / "chicago_taxi")}
OUTPUTS = ("executed_notebook", "run_summary")
BUCKET = "kfp-local"
#: settings a user's shell may hold that would point the tasks elsewhere
FOREIGN = ("AWS_PROFILE", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN", "AWS_REGION")


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


@contextlib.contextmanager
def _on_the_cluster(kfp_run):
    """The settings the pipeline's tasks had (the bucket's endpoint and keys, the MySQL
    database), for reading what they wrote; an ``InteractiveContext`` on their store."""
    from toolkit import InteractiveContext
    from toolkit.metadata_config import mysql_config_from_env

    with pytest.MonkeyPatch.context() as patch:
        for name in FOREIGN:
            patch.delenv(name, raising=False)
        for name, value in kfp_run["env"].items():
            patch.setenv(name, value)
        yield InteractiveContext(pipeline_name=VALUES["pipeline_name"], pipeline_root=kfp_run["pipeline_root"],
                                 metadata_connection_config=mysql_config_from_env())


def _under(uri: str, root: str) -> str:
    assert uri.startswith(root + "/"), (uri, root)
    return uri[len(root) + 1:]


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
def cluster():
    """What a cluster gives its pods, on this machine: an S3 API server with a fresh bucket
    and a MySQL server with a fresh database, named to the tasks only by the environment."""
    from toolkit.metadata_config import mysql_env

    require_server()
    with object_servers.moto_server() as endpoint:
        settings = object_servers.aws_settings(endpoint)
        object_servers.make_s3_bucket(endpoint, BUCKET)
        server = MariaDBServer().start()
        try:
            database = server.new_database("kfp_local")

            def dump() -> str:
                """Every row of every table of the database, as its client prints them."""
                name = database.mysql.database
                tables = server.admin_sql("SELECT table_name FROM information_schema.tables "
                                          f"WHERE table_schema = '{name}'").split()
                return "\n".join(server.admin_sql(f"SELECT * FROM `{name}`.`{table}`") for table in tables)

            yield {"env": {**settings, **mysql_env(database)}, "dump": dump, "secrets": [
                settings["AWS_SECRET_ACCESS_KEY"], mysql_env(database)["TOOLKIT_MYSQL_PASSWORD"]]}
        finally:
            server.stop()


@pytest.fixture(scope="module")
def kfp_run(tmp_path_factory, toolkit_started, cluster):
    """The compiled pipeline run once by kfp.local on a fresh bucket and database, from an
    empty working directory, as in a pod of the generic image: the tasks run the sources the
    pipeline carries (the exported notebook and its module files are nowhere else there)."""
    from kfp import components, local

    root = tmp_path_factory.mktemp("kfp_local")  # kfp.local's own outputs (executed notebooks)
    empty = tmp_path_factory.mktemp("kfp_local_cwd")
    bucket = f"s3://{BUCKET}"
    values = dict(VALUES, pipeline_root=f"{bucket}/toolkit", serving_dir=f"{bucket}/serving")
    env = {**cluster["env"], "TOOLKIT_PUSH_ROOT": bucket}
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(empty)
        for name in FOREIGN:
            patch.delenv(name, raising=False)
        for name, value in env.items():
            patch.setenv(name, value)
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
    return {"root": root, "bucket": bucket, "pipeline_root": values["pipeline_root"], "values": values,
            "env": env, "wall": wall, "summaries": summaries, "cwd": empty, "secrets": cluster["secrets"],
            "dump": cluster["dump"]}


@pytest.fixture(scope="module")
def toolkit_run(toolkit_started):
    """The ``toolkit run`` started beside kfp.local's, finished."""
    root, process = toolkit_started
    code = process.wait(timeout=900)
    assert code == 0, (root / "toolkit-run.log").read_text(encoding="utf-8")[-5000:]
    return {"root": root, "summary": json.loads((root / "run" / "summary.json").read_text())}


def test_same_components_parameters_blessing_and_push_as_toolkit_run(kfp_run, toolkit_run):
    from toolkit import storage

    spec = _spec()
    expected = toolkit_run["summary"]
    run_rows = _executions(toolkit_run["root"] / "toolkit", VALUES["pipeline_name"])
    with _on_the_cluster(kfp_run) as context:
        kfp_rows = list(context.executions())
        pusher_row = next(r for r in kfp_rows if r["component_id"] == "Pusher")
        pushed_from = [a.uri for a in context.store.inputs_of(int(pusher_row["id"]))["model"]]
        serving = kfp_run["values"]["serving_dir"]
        served = sorted(n for n in storage.listdir(serving) if not n.startswith("."))
        pusher, _ = kfp_run["summaries"]["Pusher"]
        pushed_files = storage.glob(f"{serving}/{pusher['pushed_version']}/**/saved_model.pb")
    # the same components; the pipeline ran them in an order its DAG allows
    assert [r["component_id"] for r in run_rows] == [e["component_id"] for e in expected["executions"]]
    order = [r["component_id"] for r in kfp_rows]
    assert sorted(order) == sorted(r["component_id"] for r in run_rows)
    for component, upstream in _upstream(spec).items():
        assert all(order.index(up) < order.index(component) for up in upstream), (component, order)

    # with the same parameters (paths aside: the bucket's, the local folder's) and module files
    def parameters(rows, root):
        return {r["component_id"]: (r["parameters"].replace(root, "ROOT"), r["module_fingerprint"])
                for r in rows}
    assert parameters(kfp_rows, kfp_run["bucket"]) == parameters(run_rows, str(toolkit_run["root"]))
    for summary, _ in kfp_run["summaries"].values():
        given = {k: v for k, v in summary["parameters"].items() if k not in ("pipeline_root", "serving_dir")}
        assert given == {k: v for k, v in expected["parameters"].items()
                         if k not in ("pipeline_root", "serving_dir")}

    # the same blessing, and a pushed model in the bucket, the one this pipeline's Trainer
    # task trained
    evaluator, _ = kfp_run["summaries"]["Evaluator"]
    assert evaluator["blessing"] is expected["blessing"] is True
    assert pusher["push"]["pushed"] and expected["push"]["pushed"]
    assert not pusher["push"]["cached"]
    trainer, _ = kfp_run["summaries"]["Trainer"]
    model_uri = next(a["uri"] for a in trainer["artifacts"] if a["type"] == "Model")
    assert model_uri.startswith(kfp_run["pipeline_root"] + "/Trainer/")
    assert pushed_files
    assert pushed_from == [model_uri]
    assert served == [str(pusher["pushed_version"])]


def test_tasks_ran_the_carried_sources_and_left_their_working_directory_empty(kfp_run):
    assert os.listdir(kfp_run["cwd"]) == []
    for component, (_, task_dir) in kfp_run["summaries"].items():
        executed = (task_dir / "executed_notebook").read_text()
        # the module files the carried notebook names were found: Transform and Trainer ran
        assert '"ename"' not in executed, component


def test_one_execution_per_component_wired_as_the_dag(kfp_run):
    spec = _spec()
    root = kfp_run["pipeline_root"]
    with _on_the_cluster(kfp_run) as context:
        rows = list(context.executions())
        read = {row["component_id"]: [a.uri for arts in context.store.inputs_of(int(row["id"])).values()
                                      for a in arts] for row in rows}
    assert sorted(r["component_id"] for r in rows) == sorted(_tasks(spec))
    assert all(r["state"] == "COMPLETE" and r["cached_from"] in (None, "None", "") for r in rows), rows
    for row in rows:
        # what each execution read came from exactly the components wired to it (its task
        # also waits for the gates of earlier cells, whose outputs it does not read)
        producers = {_under(uri, root).split("/")[0] for uri in read[row["component_id"]]}
        assert producers == TAXI_WIRING[row["component_id"]], row["component_id"]
        assert producers | TAXI_GATE_WAITS.get(row["component_id"], set()) == _upstream(spec)[row["component_id"]]
    # each task did its own component's work, nothing else
    for component, (summary, _) in kfp_run["summaries"].items():
        assert summary["status"] == "succeeded"
        assert [(e["component_id"], e["cached"]) for e in summary["executions"]] == [(component, False)]


def test_metadata_is_in_the_database_and_no_credential_is_written(kfp_run):
    """Nothing of the run lives outside the bucket, the database and kfp.local's own folder,
    and neither secret (the S3 key, the database password) is in any of them: objects,
    executed notebooks, summaries, or any row of any table of the metadata database."""
    from toolkit import storage

    with _on_the_cluster(kfp_run):
        objects = {rel: storage.read_bytes(f"{kfp_run['bucket']}/{rel}") for rel in storage.walk(kfp_run["bucket"])}
    database = kfp_run["dump"]()
    assert not any(rel.endswith((".sqlite", ".db")) for rel in objects)
    assert not any(".staging-" in rel for rel in objects)
    assert f"{kfp_run['pipeline_root']}/Trainer/" in database and len(objects) > 30
    local = {str(path): path.read_bytes() for path in kfp_run["root"].rglob("*") if path.is_file()}
    assert len(local) >= 2 * len(kfp_run["summaries"])
    for secret in kfp_run["secrets"]:
        assert len(secret) >= 16
        assert not [rel for rel, data in objects.items() if secret.encode() in data]
        assert not [path for path, data in local.items() if secret.encode() in data]
        assert secret not in database


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


def _copy_of_the_run(toolkit_run, tmp_path: Path) -> tuple[Path, dict]:
    """The local run's store and artifacts, copied, so that a test adds executions to its own
    copy only (the recorded artifacts stay where the run wrote them, read only)."""
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(toolkit_run["root"] / "toolkit", root / "toolkit")
    return root, dict(VALUES, pipeline_root=str(root / "toolkit"), serving_dir=str(root / "serving"))


def test_a_task_killed_mid_run_resumes_and_completes(toolkit_run, tmp_path):
    """The Trainer task with other training steps (a new cache key; its upstream unchanged)
    is killed, with its kernel, while it trains, then run again by the same command."""
    spec = _spec()
    root, values = _copy_of_the_run(toolkit_run, tmp_path)
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


def test_a_failing_gate_fails_its_task_with_the_gates_line(toolkit_run, tmp_path):
    """A bar the model cannot reach: the Evaluator's task records a model not blessed, and
    the Pusher's task (which reads that blessing from the store) fails with its gate's one
    line, its executed notebook kept with the error."""
    spec = _spec()
    root, values = _copy_of_the_run(toolkit_run, tmp_path)
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
