"""The Kubeflow Pipelines export target: the flagship notebooks compile (with the real
``kfp`` compiler) to a pipeline with one task per component, wired as the components
are; parameters, per-task settings and refusals; and the restriction of a run to one
component that every task relies on (tiny components, no TensorFlow).

The pipelines are run without a cluster in ``tests/test_kfp_local.py`` (slow suite).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from datapaths import REPO
from toolkit.artifacts import Examples, Model
from toolkit.base_component import BaseComponent, ExecutionParameter, InputSpec
from toolkit.errors import ExportError
from toolkit.exporter import export_kfp

NOTEBOOKS = Path(REPO) / "notebooks"
EXPORT = Path(REPO) / "export"

#: the wiring of the taxi notebook, read off its cells by hand: component -> the
#: components whose outputs its constructor takes
TAXI_WIRING = {
    "CsvExampleGen": set(),
    "StatisticsGen": {"CsvExampleGen"},
    "SchemaGen": {"StatisticsGen"},
    "ExampleValidator": {"StatisticsGen", "SchemaGen"},
    "Transform": {"CsvExampleGen", "SchemaGen"},
    "Trainer": {"Transform", "SchemaGen"},
    "Evaluator": {"CsvExampleGen", "Trainer", "Transform"},
    "InfraValidator": {"Trainer", "CsvExampleGen"},
    "Pusher": {"Trainer", "Evaluator", "InfraValidator"},
}
CREDIT_WIRING = {
    "CsvExampleGen": set(),
    "PrepareCredit": {"CsvExampleGen"},
    "StatisticsGen": {"PrepareCredit"},
    "SchemaGen": {"StatisticsGen"},
    "ExampleValidator": {"StatisticsGen", "SchemaGen"},
    "Trainer": {"PrepareCredit", "SchemaGen"},
    "Evaluator": {"PrepareCredit", "Trainer"},
    "Pusher": {"Trainer", "Evaluator"},
}
#: besides, a task waits for the gates of earlier cells (a failing gate stops every later
#: cell of the notebook): Transform (taxi) and Trainer (credit) for ExampleValidator
TAXI_GATE_WAITS = {"Transform": {"ExampleValidator"}}
CREDIT_GATE_WAITS = {"Trainer": {"ExampleValidator"}}
KFP_TYPES = {"str": "STRING", "int": "NUMBER_INTEGER", "float": "NUMBER_DOUBLE", "bool": "BOOLEAN",
             "list": "LIST", "dict": "STRUCT"}


def _toolkit(*args: str, cwd: str = REPO) -> subprocess.CompletedProcess:
    cmd = [os.path.join(os.path.dirname(sys.executable), "toolkit"), *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, timeout=120)


def task_graph(spec: dict) -> dict[str, set[str]]:
    """Component id -> the component ids of the tasks it waits for, from the pipeline."""
    tasks = spec["root"]["dag"]["tasks"]
    names = {key: task["taskInfo"]["name"] for key, task in tasks.items()}
    return {names[key]: {names[d] for d in task.get("dependentTasks", [])} for key, task in tasks.items()}


def task_constant(spec: dict, component: str) -> dict:
    task = next(t for t in spec["root"]["dag"]["tasks"].values() if t["taskInfo"]["name"] == component)
    return task["inputs"]["parameters"]["toolkit_task"]["runtimeValue"]["constant"]


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    """Both flagships exported for KFP into a fresh folder, with settings for two tasks."""
    out = tmp_path_factory.mktemp("kfp_export")
    taxi = export_kfp(NOTEBOOKS / "taxi.ipynb", out,
                      resources=["Trainer=cpu:4,memory:16G,accelerator:nvidia.com/gpu,retries:3,timeout:900",
                                 "Evaluator=memory:8Gi,cache:true"])
    credit = export_kfp(NOTEBOOKS / "credit.ipynb", out, image="registry.example.org/toolkit:1.2")
    return {"taxi": taxi, "credit": credit, "out": out}


def _load(result) -> dict:
    return yaml.safe_load(result.pipeline.read_text())


def _with(wiring: dict, waits: dict) -> dict:
    return {component: upstream | waits.get(component, set()) for component, upstream in wiring.items()}


def test_task_dag_equals_the_component_graph(compiled):
    assert task_graph(_load(compiled["taxi"])) == _with(TAXI_WIRING, TAXI_GATE_WAITS)
    assert task_graph(_load(compiled["credit"])) == _with(CREDIT_WIRING, CREDIT_GATE_WAITS)
    assert compiled["taxi"].graph.wiring() == {(u, c) for c, ups in TAXI_WIRING.items() for u in ups}


def test_each_task_runs_the_exported_notebook_restricted_to_its_component(compiled):
    spec = _load(compiled["taxi"])
    notebook = compiled["out"] / "taxi.ipynb"
    cells = json.loads(notebook.read_text())["cells"]
    trainer = task_constant(spec, "Trainer")
    assert trainer["component"] == "Trainer"
    assert trainer["notebook_sha256"] == __import__("hashlib").sha256(notebook.read_bytes()).hexdigest()
    # the task cuts the notebook after the cell that runs its component
    assert "context.run(trainer)" in "".join(cells[int(trainer["cell"]) - 1]["source"])
    # every component it depends on, directly or not, is read from the store
    assert set(trainer["upstream"]) == {"CsvExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator",
                                        "Transform"}
    assert set(task_constant(spec, "Pusher")["upstream"]) == set(TAXI_WIRING) - {"Pusher"}
    assert set(task_constant(spec, "ExampleValidator")["upstream"]) == {"CsvExampleGen", "StatisticsGen",
                                                                       "SchemaGen"}
    executors = spec["deploymentSpec"]["executors"]
    for executor in executors.values():
        container = executor["container"]
        assert container["image"] == "toolkit:latest"
        program = container["command"][-1]
        assert "from toolkit.exporter.kfp_task import run_task" in program
        assert "kfp.dsl.executor_main" in container["command"][2]
        assert "pip install" not in " ".join(container["command"])  # the image has everything
    credit = _load(compiled["credit"])
    assert {e["container"]["image"] for e in credit["deploymentSpec"]["executors"].values()} == {
        "registry.example.org/toolkit:1.2"}


def test_parameters_are_typed_with_defaults_and_help(compiled):
    for name in ("taxi", "credit"):
        spec = _load(compiled[name])
        declared = yaml.safe_load((compiled["out"] / f"{name}.params.yaml").read_text())["parameters"]
        inputs = spec["root"]["inputDefinitions"]["parameters"]
        assert set(inputs) == {p["name"] for p in declared}
        for param in declared:
            kfp_param = inputs[param["name"]]
            assert kfp_param["parameterType"] == KFP_TYPES[param["type"]]
            assert kfp_param["defaultValue"] == param["default"]
            assert kfp_param["description"] == param["help"]
        # every task receives every parameter from the pipeline
        for task in spec["root"]["dag"]["tasks"].values():
            given = task["inputs"]["parameters"]
            assert {k: v["componentInputParameter"] for k, v in given.items() if k != "toolkit_task"} == {
                p["name"]: p["name"] for p in declared}
    taxi = _load(compiled["taxi"])["root"]["inputDefinitions"]["parameters"]
    assert taxi["train_steps"] == {"defaultValue": 1000.0, "description": "training steps for the Keras model",
                                   "isOptional": True, "parameterType": "NUMBER_INTEGER"}


def test_resources_retries_and_caching_are_applied(compiled):
    spec = _load(compiled["taxi"])
    tasks = {t["taskInfo"]["name"]: t for t in spec["root"]["dag"]["tasks"].values()}
    executors = spec["deploymentSpec"]["executors"]

    def resources(component):
        label = spec["components"][tasks[component]["componentRef"]["name"]]["executorLabel"]
        return executors[label]["container"].get("resources")

    trainer = resources("Trainer")
    assert trainer["resourceCpuLimit"] == "4" and trainer["resourceMemoryLimit"] == "16G"
    assert trainer["accelerator"]["resourceCount"] == "1"
    assert trainer["accelerator"]["resourceType"] == "nvidia.com/gpu"
    assert tasks["Trainer"]["retryPolicy"]["maxRetryCount"] == 3
    assert task_constant(spec, "Trainer")["settings"]["timeout"] == 900
    assert resources("Evaluator") == {"memoryLimit": pytest.approx(8.589934592), "resourceMemoryLimit": "8Gi"}
    assert resources("Pusher") is None and "retryPolicy" not in tasks["Pusher"]
    # KFP's cache is off unless a task asks for it: the toolkit's cache decides
    assert tasks["Evaluator"]["cachingOptions"] == {"enableCache": True}
    assert all(t["cachingOptions"] == {} for name, t in tasks.items() if name != "Evaluator")


def test_a_cell_tag_sets_a_task_and_resources_win_key_by_key(tmp_path):
    nb = json.loads((NOTEBOOKS / "taxi.ipynb").read_text())
    cell = next(c for c in nb["cells"] if "context.run(trainer)" in "".join(c["source"]))
    cell.setdefault("metadata", {})["tags"] = ["kfp:cpu:2,memory:4G,retries:1"]
    source = tmp_path / "taxi.ipynb"
    source.write_text(json.dumps(nb))
    for name in ("taxi_transform.py", "taxi_trainer.py"):
        shutil.copy(NOTEBOOKS / name, tmp_path / name)
    tagged = export_kfp(source, tmp_path / "export")
    assert tagged.settings["Trainer"].cpu == "2" and tagged.settings["Trainer"].retries == 1
    both = export_kfp(source, tmp_path / "export", resources=["Trainer=memory:32G"])
    trainer = both.settings["Trainer"]
    assert (trainer.cpu, trainer.memory, trainer.retries) == ("2", "32G", 1)
    cell["metadata"]["tags"] = ["kfp:cpu:lots"]
    source.write_text(json.dumps(nb))
    with pytest.raises(ExportError, match=r"cell \d+: tag 'kfp:cpu:lots'.*Trainer cpu:lots is not valid"):
        export_kfp(source, tmp_path / "export")


@pytest.mark.parametrize("resources, message", [
    (["Trainer"], "expected COMPONENT=key:value"),
    (["Trainer=gpus:2"], "unknown setting 'gpus'"),
    (["Trainer=memory:lots"], "Trainer memory:lots is not valid; expected a memory amount"),
    (["Trainer=retries:-1"], "Trainer retries:-1 is not valid"),
    (["Trainer=accelerator_count:2"], "accelerator_count needs accelerator:TYPE"),
    (["Tuner=cpu:2"], "--resources names Tuner, which the notebook does not run"),
])
def test_bad_resources_are_refused(tmp_path, resources, message):
    with pytest.raises(ExportError, match=re.escape(message)):
        export_kfp(NOTEBOOKS / "taxi.ipynb", tmp_path, resources=resources)


def test_compiled_yaml_is_deterministic_and_committed_exports_are_current(compiled, tmp_path):
    again = export_kfp(NOTEBOOKS / "taxi.ipynb", compiled["out"],
                       resources=["Trainer=cpu:4,memory:16G,accelerator:nvidia.com/gpu,retries:3,timeout:900",
                                  "Evaluator=memory:8Gi,cache:true"])
    assert not again.changed and again.text == compiled["taxi"].pipeline.read_text()
    from toolkit.exporter import check_export

    for name in ("taxi", "credit"):
        assert (EXPORT / f"{name}.kfp.yaml").exists()
        check = check_export(NOTEBOOKS / f"{name}.ipynb", EXPORT)
        assert not check.stale, str(check)


def test_check_reports_a_stale_pipeline_with_the_command_that_rewrites_it(tmp_path):
    written = _toolkit("export", str(NOTEBOOKS / "taxi.ipynb"), "-o", str(tmp_path), "--target", "kfp",
                       "--resources", "Trainer=cpu:2", "--image", "example.org/toolkit:7")
    assert written.returncode == 0, written.stderr
    assert "taxi.kfp.yaml (9 tasks, 17 edges, image example.org/toolkit:7)" in written.stdout
    from toolkit.exporter import check_export

    assert not check_export(NOTEBOOKS / "taxi.ipynb", tmp_path).stale
    pipeline = tmp_path / "taxi.kfp.yaml"
    pipeline.write_text(pipeline.read_text().replace("cpuLimit: 2.0", "cpuLimit: 3.0"))
    stale = _toolkit("export", "--check", str(NOTEBOOKS / "taxi.ipynb"), "-o", str(tmp_path))
    assert stale.returncode == 1
    assert "taxi.kfp.yaml differs from a fresh compile" in stale.stderr
    assert "--target kfp --image example.org/toolkit:7 --resources Trainer=cpu:2" in stale.stderr
    # a plain re-export recompiles it with the image and settings it was compiled with
    plain = _toolkit("export", str(NOTEBOOKS / "taxi.ipynb"), "-o", str(tmp_path))
    assert plain.returncode == 0 and "wrote" in plain.stdout.splitlines()[-1], plain.stdout
    assert "cpuLimit: 2.0" in pipeline.read_text() and "image: example.org/toolkit:7" in pipeline.read_text()
    refused = _toolkit("export", str(NOTEBOOKS / "taxi.ipynb"), "-o", str(tmp_path), "--image", "x")
    assert refused.returncode == 2 and "--image, --resources, --secret, --volume and --requirements go with --target kfp" in refused.stderr


#: a fresh process (kfp not yet imported) that calls the CLI's main() as a notebook would,
#: then uses kfp's REST client; it prints what it saw as JSON
_IN_PROCESS_EXPORT = """
import json, sys
from toolkit.cli import main
codes = [main(["export", sys.argv[1], "-o", sys.argv[2], "--target", "kfp"]),
         main(["export", sys.argv[1], "-o", sys.argv[2]]),  # recompiles the pipeline beside it
         main(["export", "--check", sys.argv[1], "-o", sys.argv[2]])]
# the commands took the fast path: kfp's REST client (and Kubernetes') was never imported
fast = "kubernetes" not in sys.modules and "kfp.client" not in sys.modules
from kfp import Client
import kfp
from kfp import compiler, dsl
print(json.dumps({"codes": codes, "fast": fast, "client": kfp.Client is Client,
                  "compiler": hasattr(compiler, "Compiler") and hasattr(dsl, "pipeline")}))
"""


def test_kfp_client_works_in_a_process_that_ran_the_export_command(tmp_path):
    """A notebook that calls ``toolkit.cli.main(["export", ..., "--target", "kfp"])`` can use
    ``kfp.Client`` afterwards."""
    done = subprocess.run([sys.executable, "-c", _IN_PROCESS_EXPORT, str(NOTEBOOKS / "taxi.ipynb"),
                           str(tmp_path)], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.splitlines()[-1])
    assert seen == {"codes": [0, 0, 0], "fast": True, "client": True, "compiler": True}, done.stderr
    assert (tmp_path / "taxi.kfp.yaml").exists()


# -- notebooks the export refuses ----------------------------------------------------------

def _notebook(tmp_path: Path, *cells: str, parameters: str = 'pipeline_root: str = "runs/x"') -> Path:
    setup = ("from toolkit import InteractiveContext\n"
             "from toolkit.components import CsvExampleGen, StatisticsGen\n"
             'context = InteractiveContext(pipeline_name="x", pipeline_root=pipeline_root)')
    sources = [(parameters, ["parameters"]), (setup, [])] + [(c, []) for c in cells]
    nb = {"nbformat": 4, "nbformat_minor": 5, "metadata": {},
          "cells": [{"cell_type": "markdown", "metadata": {}, "source": "# A pipeline"}]
          + [{"cell_type": "code", "metadata": {"tags": tags}, "source": text, "outputs": [],
              "execution_count": None} for text, tags in sources]}
    path = tmp_path / "bad.ipynb"
    path.write_text(json.dumps(nb))
    return path


GEN = 'example_gen = CsvExampleGen(input_base="data")\ncontext.run(example_gen)'


@pytest.mark.parametrize("cells, parameters, message", [
    ([GEN, "for split in ['a', 'b']:\n    stats = StatisticsGen(examples=example_gen.outputs['examples'])\n"
           "    context.run(stats)"],
     None, r"cell 5: line 3 runs a component inside a `for` loop"),
    ([GEN, "if pipeline_root.startswith('/'):\n    context.run(StatisticsGen(examples=example_gen.outputs['examples']))"],
     None, r"cell 5: line 2 runs a component inside an `if` whose condition is not a literal"),
    (["gens = []\nfor root in ['a', 'b']:\n    example_gen = CsvExampleGen(input_base=root)", "context.run(example_gen)"],
     None, r"cell 4: line 3 builds 'example_gen' inside a `for` loop"),
    ([GEN, "other = CsvExampleGen(input_base='elsewhere')\n"
           "stats = StatisticsGen(examples=other.outputs['examples'])\ncontext.run(stats)"],
     None, r"cell 5: line 2: an input of StatisticsGen comes from component 'other', which the notebook "
           r"does not run before it"),
    ([GEN, "previous = load_pipeline('yesterday')\n"
           "stats = StatisticsGen(examples=previous.outputs['examples'])\ncontext.run(stats)"],
     None, r"cell 5: line 2: an input of StatisticsGen comes from `previous.outputs`, which is not a "
           r"component this notebook runs"),
    ([GEN, "context.run(example_gen)"], None, r"cell 5: line 1 runs 'example_gen' again \(it first runs "
                                               r"in cell 4, line 2\)"),
    ([GEN, "again = CsvExampleGen(input_base='b')\ncontext.run(again)"], None,
     r"cell 5: line 2 runs a second component with id 'CsvExampleGen' \(the first runs in cell 4\)"),
    ([GEN, "gens = [CsvExampleGen(input_base=r) for r in ['a', 'b']]\n[context.run(g) for g in gens]"],
     None, r"cell 5: line 2 runs a component inside a comprehension"),
    ([GEN], 'pipeline_root: str = "runs/x"\nmodel_dir: Optional[str] = None  # where',
     r"cell 2: parameter 'model_dir' cannot be a KFP pipeline parameter: it is Optional\[str\]"),
    ([GEN], 'pipeline_root: str = "runs/x"\nseed: int = 12345678901234567890',
     r"cell 2: parameter 'seed' cannot be a KFP pipeline parameter: its default holds an integer beyond 2\*\*53"),
    ([GEN], 'pipeline_root: str = "runs/x"\ntoolkit_task: str = "x"',
     r"cell 2: parameter 'toolkit_task' cannot be a KFP pipeline parameter: its name is one the KFP export uses"),
])
def test_what_the_export_cannot_resolve_is_refused_with_cell_and_reason(tmp_path, cells, parameters, message):
    path = _notebook(tmp_path, *cells, **({"parameters": parameters} if parameters else {}))
    with pytest.raises(ExportError, match=message) as caught:
        export_kfp(path, tmp_path / "export")
    assert str(caught.value).startswith("bad.ipynb, cell ")
    assert "\n" not in str(caught.value)


def test_a_literal_condition_is_resolved(tmp_path):
    path = _notebook(tmp_path, GEN, "if True:\n    stats = StatisticsGen(examples=example_gen.outputs['examples'])\n"
                                    "    context.run(stats)")
    result = export_kfp(path, tmp_path / "export")
    assert task_graph(yaml.safe_load(result.text)) == {"CsvExampleGen": set(), "StatisticsGen": {"CsvExampleGen"}}


def test_a_task_waits_for_the_gates_of_earlier_cells(tmp_path):
    """ExampleValidator's outputs feed nothing, but its gate stops the cells after it: the
    components of later cells wait for it (directly only where nothing else makes them)."""
    validate = ("from toolkit.components import SchemaGen, ExampleValidator\n"
                "schema_gen = SchemaGen(statistics=stats.outputs['statistics'])\ncontext.run(schema_gen)\n"
                "validator = ExampleValidator(statistics=stats.outputs['statistics'], "
                "schema=schema_gen.outputs['schema'])\ncontext.run(validator)")
    path = _notebook(tmp_path, GEN, "stats = StatisticsGen(examples=example_gen.outputs['examples'])\n"
                                    "context.run(stats)", validate,
                     "more = StatisticsGen(examples=example_gen.outputs['examples']).with_id('more')\n"
                     "context.run(more)\n"
                     "last = StatisticsGen(examples=more.outputs['statistics']).with_id('last')\ncontext.run(last)")
    result = export_kfp(path, tmp_path / "export")
    assert task_graph(yaml.safe_load(result.text)) == {
        "CsvExampleGen": set(), "StatisticsGen": {"CsvExampleGen"}, "SchemaGen": {"StatisticsGen"},
        "ExampleValidator": {"StatisticsGen", "SchemaGen"}, "more": {"CsvExampleGen", "ExampleValidator"},
        "last": {"more"}}
    assert result.graph.ancestors("last") == ["CsvExampleGen", "StatisticsGen", "SchemaGen",
                                              "ExampleValidator", "more"]


def test_channels_through_names_and_with_id_give_edges_and_ids(tmp_path):
    path = _notebook(tmp_path, GEN, "examples = example_gen.outputs['examples']\n"
                                    "stats = StatisticsGen(examples=examples).with_id('stats_a')\ncontext.run(stats)")
    result = export_kfp(path, tmp_path / "export")
    assert task_graph(yaml.safe_load(result.text)) == {"CsvExampleGen": set(), "stats_a": {"CsvExampleGen"}}


# -- a run restricted to one component (what each task does), with tiny components -----------

class Make(BaseComponent):
    """Writes ``text`` into examples/Split-train/data.txt."""

    OUTPUTS = {"examples": Examples}
    PARAMETERS = {"text": ExecutionParameter(str, default="row")}

    def Do(self, input_dict, output_dict, exec_properties, ctx):
        out = output_dict["examples"][0]
        os.makedirs(out.split_uri("train"))
        Path(out.split_uri("train"), "data.txt").write_text(exec_properties["text"])
        out.split_names = ["train"]


class Use(BaseComponent):
    """Copies the examples' text into a "model"."""

    INPUTS = {"examples": InputSpec(Examples)}
    OUTPUTS = {"model": Model}

    def Do(self, input_dict, output_dict, exec_properties, ctx):
        text = Path(input_dict["examples"][0].split_uri("train"), "data.txt").read_text()
        Path(output_dict["model"][0].uri, "model.txt").write_text(text.upper())


class Pick(BaseComponent):
    """References existing artifacts (as a Resolver does): here, none."""

    OUTPUTS = {"examples": Examples}
    REFERENCES_EXISTING_ARTIFACTS = True

    def Do(self, input_dict, output_dict, exec_properties, ctx):
        output_dict["examples"] = []


def _pipeline(root, text="row"):
    from toolkit import InteractiveContext

    context = InteractiveContext(pipeline_name="restricted", pipeline_root=str(root))
    make = Make(text=text)
    side = Make(text="side").with_id("Side")
    use = Use(examples=make.outputs["examples"])
    return context, make, side, use


def test_a_restricted_run_reads_upstream_from_the_store_runs_its_component_and_skips_the_rest(
        tmp_path, monkeypatch):
    from toolkit.errors import UpstreamNotRunError

    context, make, side, use = _pipeline(tmp_path)
    first = context.run(make)                              # Make's own task, unrestricted here
    monkeypatch.setenv("TOOLKIT_ONLY_COMPONENT", "Use")
    monkeypatch.setenv("TOOLKIT_UPSTREAM_COMPONENTS", "Make")
    context, make, side, use = _pipeline(tmp_path)
    resolved = context.run(make)
    assert resolved.cached and resolved.execution_id == first.execution_id
    skipped = context.run(side)
    assert "Side: skipped: this run is restricted to Use" in repr(skipped)
    assert context.show(side.outputs["examples"]) is None  # a note, not an error
    ran = context.run(use)
    assert not ran.cached
    assert Path(ran.outputs["model"][0].uri, "model.txt").read_text() == "ROW"
    later = context.run(Make(text="later").with_id("Later"))
    assert "Later: skipped" in repr(later) and "after it" in repr(later)
    rows = context.executions()
    assert sorted(r["component_id"] for r in rows) == ["Make", "Use"]  # nothing else recorded
    # a retried task: its component is a cache hit of the attempt that completed
    context, make, side, use = _pipeline(tmp_path)
    context.run(make)
    again = context.run(use)
    assert again.cached and again.outputs["model"][0].uri == ran.outputs["model"][0].uri

    # a resolution that found nothing is read back as its own run recorded it
    monkeypatch.delenv("TOOLKIT_ONLY_COMPONENT")
    context, *_ = _pipeline(tmp_path)
    picked = context.run(Pick())
    monkeypatch.setenv("TOOLKIT_ONLY_COMPONENT", "Use")
    monkeypatch.setenv("TOOLKIT_UPSTREAM_COMPONENTS", "Pick")
    context, *_ = _pipeline(tmp_path)
    read = context.run(Pick())
    assert read.cached and read.execution_id == picked.execution_id and read.outputs.get("examples", []) == []

    # upstream that no task computed (other parameters): the run stops with one line
    monkeypatch.setenv("TOOLKIT_UPSTREAM_COMPONENTS", "Make")
    context, make, side, use = _pipeline(tmp_path, text="other")
    with pytest.raises(UpstreamNotRunError) as caught:
        context.run(make)
    message = str(caught.value)
    assert message.startswith("Make: no completed execution with these inputs and parameters in ")
    assert "restricted to Use" in message and "\n" not in message


# -- the image the tasks run in -------------------------------------------------------------

def test_dockerfile_installs_the_lock_and_the_project():
    """Building the image needs Docker and the network, which the tests do not have: this
    checks what the Dockerfile installs against the lock and what the tasks expect."""
    from toolkit.exporter.kfp import DEFAULT_IMAGE
    from toolkit.exporter.kfp_task import PROJECT_ENV

    lines = []
    for line in (Path(REPO) / "Dockerfile").read_text().replace("\\\n", " ").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            lines.append(" ".join(line.split()))
    instructions = [(line.split()[0], line.split(None, 1)[1]) for line in lines]
    base = next(arg for op, arg in instructions if op == "FROM")
    python = re.search(r'requires-python = ">=(\d+\.\d+)', (Path(REPO) / "pyproject.toml").read_text())
    assert base.startswith(f"python:{python.group(1)}")                 # the Python the lock is for
    copies = [arg.split() for op, arg in instructions if op == "COPY"]
    runs = " && ".join(arg for op, arg in instructions if op == "RUN")
    # the lock goes in first and alone, installed whole; the project after it, without deps
    assert copies[0] == ["requirements.lock", "./"]
    assert "install --system --no-cache -r requirements.lock" in runs
    assert re.search(r"install --system --no-cache --no-deps \.(\s|$)", runs)
    assert not re.search(r"install [^&]*(?<!-r )\b(kfp|tensorflow|papermill)\b", runs)
    # the same uv as scripts/env.sh installs the lock with
    uv = re.search(r"uv==[\d.]+", (Path(REPO) / "scripts" / "env.sh").read_text()).group(0)
    assert uv in runs
    assert ["toolkit", "./toolkit"] in copies
    # one image for every export: nothing of a project (pipelines carry their sources)
    assert not [c for c in copies if c[0] in ("export", "notebooks")]
    env = " ".join(arg for op, arg in instructions if op == "ENV")
    assert PROJECT_ENV not in env
    # the lock holds the kfp the pipelines are compiled with (the tasks run its executor)
    import kfp

    assert f"kfp=={kfp.__version__}\n" in (Path(REPO) / "requirements.lock").read_text()
    assert f"sdkVersion: kfp-{kfp.__version__}" in (EXPORT / "taxi.kfp.yaml").read_text()
    ignored = (Path(REPO) / ".dockerignore").read_text().split()
    assert {".venv", ".git", "runs", "notebooks/runs", "notebooks/serving"} <= set(ignored)
    assert f"docker build -t {DEFAULT_IMAGE} ." in (Path(REPO) / "docs" / "kubeflow.md").read_text()
