"""A compiled Kubeflow pipeline carries its sources and its Kubernetes settings: the
exported notebook and the module files it names travel in the YAML (so one generic image
serves every export), a task runs them from any working directory, and ``--secret``,
``--volume`` and ``--requirements`` reach the YAML (by name only) and a Dockerfile.

Tasks are called as the compiled YAML calls them (``run_task`` with the task's constant),
in a process of their own; the component is ``ImportSchemaGen``, whose ``schema_file``
is carried like a module file, so no TensorFlow training is needed.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from datapaths import REPO
from toolkit.errors import ExportError
from toolkit.exporter import export_kfp
from toolkit.exporter.kfp_sources import unpack

NOTEBOOKS = Path(REPO) / "notebooks"
SCHEMA = Path(REPO) / "tests" / "fixtures" / "tfx_tutorials" / "data" / "schema.pbtxt"


def _constants(text: str) -> dict[str, dict]:
    spec = next(yaml.safe_load_all(text))
    return {t["taskInfo"]["name"]: t["inputs"]["parameters"]["toolkit_task"]["runtimeValue"]["constant"]
            for t in spec["root"]["dag"]["tasks"].values()}


def test_the_taxi_pipeline_carries_its_notebook_and_module_files(tmp_path):
    result = export_kfp(NOTEBOOKS / "taxi.ipynb", tmp_path / "export")
    exported = (tmp_path / "export" / "taxi.ipynb").read_bytes()
    constants = _constants(result.text)
    assert len(constants) == 9
    for component, task in constants.items():
        sources = task["sources"]
        assert unpack(sources["notebook"]) == exported, component
        assert hashlib.sha256(exported).hexdigest() == task["notebook_sha256"]
        # the two module files the notebook names, byte for byte, with their digests
        assert sorted(sources["files"]) == ["taxi_trainer.py", "taxi_transform.py"]
        for name, entry in sources["files"].items():
            data = (NOTEBOOKS / name).read_bytes()
            assert unpack(entry["content"]) == data
            assert entry["sha256"] == hashlib.sha256(data).hexdigest()


def _project(tmp_path: Path, schema_file: str = '"schema.pbtxt"') -> Path:
    """A project with a notebook that imports a schema file, exported for KFP."""
    project = tmp_path / "project"
    (project / "notebooks").mkdir(parents=True)
    (project / "pyproject.toml").write_text("[project]\nname = 'p'\n")
    shutil.copyfile(SCHEMA, project / "notebooks" / "schema.pbtxt")
    cells = [("pipeline_root: str = 'runs/x'", ["parameters"]),
             ("from toolkit import InteractiveContext\nfrom toolkit.components import ImportSchemaGen\n"
              "context = InteractiveContext(pipeline_name='carried', pipeline_root=pipeline_root)", []),
             (f"schema_gen = ImportSchemaGen(schema_file={schema_file})\ncontext.run(schema_gen)", [])]
    nb = {"nbformat": 4, "nbformat_minor": 5, "metadata": {},
          "cells": [{"cell_type": "code", "metadata": {"tags": tags}, "source": text, "outputs": [],
                     "execution_count": None} for text, tags in cells]}
    (project / "notebooks" / "carried.ipynb").write_text(json.dumps(nb))
    return project


def _run_task(task: dict, values: dict, cwd: Path, out: Path) -> subprocess.CompletedProcess:
    """The task as the YAML runs it: ``run_task`` with its constant, in a process of its own."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "task.json").write_text(json.dumps({"task": task, "values": values}))
    code = ("import json, sys\nfrom toolkit.exporter.kfp_task import run_task\n"
            "given = json.load(open(sys.argv[1]))\n"
            "run_task(given['task'], given['values'], sys.argv[2], sys.argv[3])\n")
    env = {k: v for k, v in os.environ.items() if k != "TOOLKIT_PROJECT_DIR"}
    return subprocess.run([sys.executable, "-c", code, str(out / "task.json"),
                           str(out / "executed_notebook"), str(out / "run_summary")],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_a_task_runs_the_carried_sources_from_an_empty_folder_or_a_project_with_other_files(tmp_path):
    project = _project(tmp_path)
    result = export_kfp(project / "notebooks" / "carried.ipynb", project / "export")
    task = _constants(result.text)["ImportSchemaGen"]
    schema = SCHEMA.read_bytes()

    # (a task run in the project, on its unchanged files, uses them in place: the
    # kfp.local run of tests/test_kfp_local.py)
    # an empty working directory, as a pod of the generic image has: the carried copies
    empty = tmp_path / "empty"
    empty.mkdir()
    (project / "notebooks" / "schema.pbtxt").write_text("not the compiled schema")
    for where, name in ((empty, "empty"), (project, "changed")):
        root = tmp_path / f"root-{name}"
        ran = _run_task(task, {"pipeline_root": str(root)}, where, tmp_path / f"out-{name}")
        assert ran.returncode == 0, ran.stderr
        assert "ImportSchemaGen: running the sources the pipeline carries" in ran.stdout
        summary = json.loads((tmp_path / f"out-{name}" / "run_summary").read_text())
        [artifact] = [a for a in summary["artifacts"] if a["type"] == "Schema"]
        assert (Path(artifact["uri"]) / "schema.pbtxt").read_bytes() == schema
    assert os.listdir(empty) == []                                   # nothing written where it ran

    # the notebook's own relative root would be deleted with the task's folder: refused
    ran = _run_task(task, {}, empty, tmp_path / "out-relative")
    assert ran.returncode == 1
    last = ran.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportSchemaGen task failed: ToolkitError: pipeline_root ")
    assert "/runs/x is inside the" in last and "give pipeline_root as a URI or an absolute path" in last


def test_a_damaged_carried_file_stops_the_task_in_one_line(tmp_path):
    project = _project(tmp_path)
    result = export_kfp(project / "notebooks" / "carried.ipynb", project / "export")
    task = _constants(result.text)["ImportSchemaGen"]
    entry = task["sources"]["files"]["schema.pbtxt"]
    entry["sha256"] = "0" * 64
    empty = tmp_path / "empty"
    empty.mkdir()
    ran = _run_task(task, {"pipeline_root": str(tmp_path / "root")}, empty, tmp_path / "out")
    assert ran.returncode == 1
    assert ran.stderr.strip().splitlines()[-1] == (
        "ImportSchemaGen task failed: schema.pbtxt: the copy carried by the pipeline is damaged "
        "(sha256 differs); compile the pipeline again")


def test_a_path_the_compiler_cannot_read_is_refused(tmp_path):
    project = _project(tmp_path, schema_file="os.path.join('a', 'schema.pbtxt')")
    with pytest.raises(ExportError, match=r"carried\.ipynb, cell 3: schema_file= is not a path the "
                                          r"pipeline can carry") as caught:
        export_kfp(project / "notebooks" / "carried.ipynb", project / "export")
    assert "\n" not in str(caught.value)
    # a URI or an absolute path is not carried: it must resolve where the task runs
    project = _project(tmp_path / "uri", schema_file="'s3://bucket/schema.pbtxt'")
    result = export_kfp(project / "notebooks" / "carried.ipynb", project / "export")
    assert _constants(result.text)["ImportSchemaGen"]["sources"]["files"] == {}


def _toolkit(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    command = [os.path.join(os.path.dirname(sys.executable), "toolkit"), *args]
    return subprocess.run(command, capture_output=True, text=True, cwd=cwd, timeout=120)


def test_secrets_and_volumes_reach_every_task_by_name_and_survive_a_re_export(tmp_path):
    project = _project(tmp_path)
    notebook = project / "notebooks" / "carried.ipynb"
    (project / "requirements.txt").write_text("scikit-learn\n")
    made = _toolkit("export", str(notebook), "--target", "kfp",
                    "--secret", "toolkit-db=TOOLKIT_MYSQL_USER,TOOLKIT_MYSQL_PASSWORD",
                    "--secret", "aws=access-key:AWS_ACCESS_KEY_ID", "--volume", "data:/mnt/data",
                    "--requirements", "requirements.txt", cwd=project)
    assert made.returncode == 0, made.stderr
    pipeline = project / "export" / "carried.kfp.yaml"
    spec, platform = yaml.safe_load_all(pipeline.read_text())
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert sorted(executors) == sorted(spec["deploymentSpec"]["executors"])  # every task
    for executor in executors.values():
        secrets = {s["secretName"]: {k["secretKey"]: k["envVar"] for k in s["keyToEnv"]}
                   for s in executor["secretAsEnv"]}
        assert secrets == {"toolkit-db": {"TOOLKIT_MYSQL_USER": "TOOLKIT_MYSQL_USER",
                                          "TOOLKIT_MYSQL_PASSWORD": "TOOLKIT_MYSQL_PASSWORD"},
                           "aws": {"access-key": "AWS_ACCESS_KEY_ID"}}
        assert [(v["constant"], v["mountPath"]) for v in executor["pvcMount"]] == [("data", "/mnt/data")]
    # the Dockerfile: the toolkit's image plus the project's requirements, from the project
    dockerfile = (project / "export" / "carried.Dockerfile").read_text().splitlines()
    instructions = [line for line in dockerfile if line and not line.startswith("#")]
    assert instructions == ["ARG TOOLKIT_IMAGE=toolkit:latest", "FROM ${TOOLKIT_IMAGE}",
                            "COPY requirements.txt /tmp/project-requirements.txt",
                            "RUN python -m uv pip install --system --no-cache -r "
                            "/tmp/project-requirements.txt"]
    assert "docker build -f export/carried.Dockerfile" in "\n".join(dockerfile)
    # a plain re-export keeps them, and --check names them in its command
    before = pipeline.read_text()
    notebook.write_text(notebook.read_text().replace("'runs/x'", "'runs/y'"))
    plain = _toolkit("export", str(notebook), cwd=project)
    assert plain.returncode == 0, plain.stderr
    assert pipeline.read_text() != before
    assert list(yaml.safe_load_all(pipeline.read_text()))[1] == platform
    notebook.write_text(notebook.read_text().replace("'runs/y'", "'runs/z'"))
    stale = _toolkit("export", "--check", str(notebook), cwd=project)
    assert stale.returncode == 1
    assert ("--secret toolkit-db=TOOLKIT_MYSQL_USER,TOOLKIT_MYSQL_PASSWORD --secret "
            "aws=access-key:AWS_ACCESS_KEY_ID --volume data:/mnt/data") in stale.stderr


@pytest.mark.parametrize("option, value, message", [
    ("--secret", "Bad_Name=X", r"--secret 'Bad_Name=X': expected NAME=KEY\[:VARIABLE\]"),
    ("--secret", "db=KEY:1BAD", r"--secret 'db=KEY:1BAD': 'KEY:1BAD' is not KEY or KEY:VARIABLE"),
    ("--volume", "data:relative/path", r"--volume 'data:relative/path': expected CLAIM:/mount/path"),
    ("--requirements", "missing.txt", r"--requirements missing.txt: no such file"),
])
def test_bad_platform_options_are_refused_in_one_line(tmp_path, option, value, message):
    import re

    project = _project(tmp_path)
    refused = _toolkit("export", str(project / "notebooks" / "carried.ipynb"), "--target", "kfp",
                       option, value, cwd=project)
    assert refused.returncode != 0
    assert re.search(message, refused.stderr), refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
