"""Hostile parameter values, notebooks, module paths and symlinked destinations and roots.

Each attempt is refused (one line, nothing run or written) or rendered inert (the
value arrives verbatim as data), and a marker file that any injected code would
create never appears.
"""
from __future__ import annotations

import ast
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

from hostile_data import assert_inert
from reliability_helpers import child_env, copy_taxi, fake_model_component

#: every payload tries to create the file ``{mark}`` (its path is filled in per test)
STRING_PAYLOADS = [
    "'); import os; open(r'{mark}', 'w'); ('",
    '"""; import os; open(r"{mark}", "w"); """',
    "\nimport os\nopen(r'{mark}', 'w')\n",
    "{{__import__('os').system('touch {mark}')}}",
    "$(touch {mark}) `touch {mark}`",
    "\\'; open(r'{mark}', 'w') #",
]
SMUGGLING_SOURCE = '''\
name: str = "x\\"\\"\\"\\nimport os\\nopen(r'{mark}', 'w')\\n\\"\\"\\""  # help \\"\\"\\" ) ; open(r'{mark}', 'w') \u2028open(r'{mark}', 'w') | **bold** <img src=x onerror=alert(1)>
title: str = "<script>alert(1)</script> | col | </td></tr></table>"  # <svg onload=alert(1)> `code` [link](javascript:alert(1))
rows: list = ["a\\nb", "'); open(r'{mark}', 'w'); ('"]
options: dict = {{"k\\"": "v\\n", "<b>": 1}}
note: str = ""
output_file: str = "received.json"
'''
RECORD_SOURCE = '''\
import json
from toolkit import InteractiveContext
context = InteractiveContext(pipeline_name="hostile", pipeline_root="pipeline")
with open(output_file, "w") as handle:
    json.dump({"name": name, "title": title, "note": note, "rows": rows, "options": options},
              handle)
'''


def _toolkit(*args: str, cwd: Path, env: dict | None = None, timeout: float = 300):
    return subprocess.run([sys.executable, "-m", "toolkit.cli", *args], capture_output=True,
                          text=True, cwd=cwd, env=env or child_env(), timeout=timeout)


def _source_notebook(folder: Path, mark: Path) -> Path:
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                       "language": "python"}
    parameters = nbformat.v4.new_code_cell(SMUGGLING_SOURCE.format(mark=mark))
    parameters.metadata["tags"] = ["parameters"]
    notebook.cells = [nbformat.v4.new_markdown_cell("# Hostile"), parameters,
                      nbformat.v4.new_code_cell(RECORD_SOURCE)]
    path = folder / "hostile.ipynb"
    nbformat.write(notebook, path)
    return path


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile_export")
    mark = folder / "INJECTED"
    source = _source_notebook(folder, mark)
    proc = _toolkit("export", str(source), "-o", str(folder / "export"), cwd=folder)
    assert proc.returncode == 0, proc.stderr
    declared = {}
    tree = ast.parse(nbformat.read(source, as_version=4).cells[1].source)
    for stmt in tree.body:
        declared[stmt.target.id] = ast.literal_eval(stmt.value)
    return folder, mark, folder / "export" / "hostile.ipynb", declared


def test_export_keeps_smuggled_code_out_of_generated_cells(exported):
    folder, mark, notebook_path, declared = exported
    notebook = nbformat.read(notebook_path, as_version=4)
    header, parameters = notebook.cells[0], notebook.cells[1]
    # the generated parameters cell holds exactly the declarations: no other statement
    tree = ast.parse(parameters.source)
    assert all(isinstance(stmt, ast.AnnAssign) for stmt in tree.body)
    assert {s.target.id: ast.literal_eval(s.value) for s in tree.body} == declared
    assert len(parameters.source.splitlines()) == len(declared) + 1
    # the header renders as a table of one row per parameter, with no element from the data
    import mistune

    html = mistune.html(header.source)
    rows = html.count("<tr>") - 1
    assert rows == len(declared), html
    assert_inert(html, "exported header")
    # the parameters file is plain YAML data with the same values
    schema = yaml.safe_load((folder / "export" / "hostile.params.yaml").read_text())
    assert {p["name"]: p["default"] for p in schema["parameters"]} == declared
    assert "!!" not in (folder / "export" / "hostile.params.yaml").read_text()
    assert not mark.exists()


def test_help_listing_is_one_line_per_parameter(exported):
    folder, mark, notebook_path, declared = exported
    proc = _toolkit("run", "--help-notebook", str(notebook_path), cwd=folder)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == len(declared) + 3
    assert not mark.exists()


def test_values_that_try_code_injection_arrive_verbatim(exported, tmp_path):
    """`toolkit run -p` with code-like strings: received as the same strings; the smuggling
    defaults of the parameters cell (which papermill still runs) stay data too."""
    folder, mark, notebook_path, declared = exported
    values = [payload.format(mark=mark) for payload in STRING_PAYLOADS]
    for index in range(0, len(values), 3):
        name, title, note = values[index:index + 3]
        output = tmp_path / f"received{index}.json"
        proc = _toolkit("run", str(notebook_path), "-o", str(tmp_path / f"run{index}"),
                        "--cwd", str(folder), "-q", "-p", "name", name, "-p", "title", title,
                        "-p", "note", note, "-p", "output_file", str(output), cwd=folder)
        assert proc.returncode == 0, proc.stderr
        received = json.loads(output.read_text())
        assert (received["name"], received["title"], received["note"]) == (name, title, note)
        assert received["rows"] == declared["rows"]
        assert received["options"] == declared["options"]
        assert not mark.exists()


def test_papermill_itself_injects_values_as_literals(exported, tmp_path):
    folder, mark, notebook_path, _ = exported
    value = STRING_PAYLOADS[0].format(mark=mark)
    output = tmp_path / "received.json"
    proc = subprocess.run([sys.executable, "-m", "papermill", str(notebook_path),
                           str(tmp_path / "out.ipynb"), "--cwd", str(folder), "-p", "name", value,
                           "-p", "output_file", str(output), "-y", f"title: {json.dumps(value)}"],
                          capture_output=True, text=True, env=child_env(), timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    received = json.loads(output.read_text())
    assert received["name"] == value and received["title"] == value
    assert not mark.exists()


@pytest.mark.parametrize("args", [
    ["-p", "options", "__import__('os').system('touch {mark}')"],
    ["-p", "rows", "[__import__('os').system('touch {mark}')]"],
    ["-p", "rows", "[open(r'{mark}', 'w')]"],
    ["-p", "name=1;open(r'{mark}','w');x", "v"],
], ids=["dict-expression", "list-expression", "list-call", "name-injection"])
def test_values_that_are_not_literals_are_refused_before_running(exported, args):
    folder, mark, notebook_path, _ = exported
    proc = _toolkit("run", str(notebook_path), "-o", str(folder / "refused"), "--cwd",
                    str(folder), *[a.format(mark=mark) for a in args], cwd=folder)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("toolkit run: error: ")
    assert not (folder / "refused" / "hostile.ipynb").exists(), "the notebook was executed"
    assert not mark.exists()


def test_yaml_tags_in_a_values_file_are_refused(exported, tmp_path):
    folder, mark, notebook_path, _ = exported
    values = tmp_path / "values.yaml"
    values.write_text(f"name: !!python/object/apply:os.system ['touch {mark}']\n")
    proc = _toolkit("run", str(notebook_path), "-f", str(values), "-o", str(tmp_path / "run"),
                    cwd=folder)
    assert proc.returncode == 2
    assert "not valid YAML/JSON" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not mark.exists()


# -- module files given through `..` ----------------------------------------------------------
def test_module_file_through_dotdot_is_resolved_and_fingerprinted(tmp_path, monkeypatch):
    """Allowed: a module file is the user's own code, found like any path from the working
    directory; its content (not its spelling) is what the cache fingerprints."""
    from toolkit.components import Trainer, Transform

    shared = tmp_path / "shared"
    work = tmp_path / "project" / "notebooks"
    shared.mkdir()
    work.mkdir(parents=True)
    module = shared / "module.py"
    module.write_text("def preprocessing_fn(inputs):\n    return inputs\n")
    monkeypatch.chdir(work)
    dotted = os.path.join("..", "..", "shared", "module.py")
    wanted = hashlib.sha256(module.read_bytes()).hexdigest()
    stub = _channels()
    through = Transform(examples=stub["examples"], schema=stub["schema"], module_file=dotted)
    direct = Transform(examples=stub["examples"], schema=stub["schema"], module_file=str(module))
    assert through.fingerprints()["module_file"] == direct.fingerprints()["module_file"] == wanted
    module.write_text("def preprocessing_fn(inputs):\n    return dict(inputs)\n")
    assert through.fingerprints()["module_file"] != wanted
    missing = Trainer(module_file=os.path.join("..", "nowhere", "trainer.py"),
                      examples=stub["examples"])
    assert missing.fingerprints()["module_file"] == "missing"


def _channels():
    from toolkit.artifacts import Examples, Schema
    from toolkit.base_component import Channel

    return {"examples": Channel.from_artifacts([Examples(uri="/nowhere/examples", id=1)]),
            "schema": Channel.from_artifacts([Schema(uri="/nowhere/schema", id=2)])}


# -- push destinations and pipeline roots through symlinks --------------------------------------
@pytest.fixture
def allowed(tmp_path):
    root = tmp_path / "allowed"
    outside = tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "link-out").symlink_to(outside)
    (root / "inside").mkdir()
    (root / "link-in").symlink_to(root / "inside")
    return root, outside


@pytest.mark.parametrize("destination", ["link-out/serving", "../outside/serving",
                                         "inside/../../outside"],
                         ids=["symlink-out", "dotdot", "dotdot-after-inside"])
def test_push_destination_leaving_the_allowed_root_is_refused(tmp_path, allowed, destination):
    from toolkit import InteractiveContext
    from toolkit.components import Pusher
    from toolkit.errors import ComponentError

    root, outside = allowed
    context = InteractiveContext(pipeline_name="push", pipeline_root=str(tmp_path / "pipeline"))
    model = fake_model_component()
    context.run(model)
    pusher = Pusher(model=model.outputs["model"], push_destination=str(root / destination),
                    allowed_root=str(root), require_blessing=False)
    with pytest.raises(ComponentError) as info:
        context.run(pusher)
    message = str(info.value)
    assert "\n" not in message and "outside the allowed root" in message
    assert list(outside.rglob("*")) == []
    assert context.executions("Pusher")[-1]["state"] == "FAILED"


def test_push_through_a_symlink_that_stays_inside_is_allowed(tmp_path, allowed):
    from toolkit import InteractiveContext
    from toolkit.components import Pusher

    root, outside = allowed
    link_to_root = tmp_path / "root-link"
    link_to_root.symlink_to(root)
    context = InteractiveContext(pipeline_name="push", pipeline_root=str(tmp_path / "pipeline"))
    model = fake_model_component()
    context.run(model)
    pusher = Pusher(model=model.outputs["model"], push_destination=str(root / "link-in" / "s"),
                    allowed_root=str(link_to_root), require_blessing=False)
    result = context.run(pusher)
    pushed = result.outputs["pushed_model"][0].properties
    assert pushed["pushed_destination"] == str((root / "inside" / "s").resolve())
    assert (root / "inside" / "s" / pushed["pushed_version"] / "saved_model.pb").is_file()


def test_push_root_from_the_environment_guards_toolkit_run(tmp_path, allowed):
    """`toolkit run -p serving_dir` cannot push outside $TOOLKIT_PUSH_ROOT via a symlink."""
    root, outside = allowed
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                       "language": "python"}
    parameters = nbformat.v4.new_code_cell(f"serving_dir: str = {str(root / 'inside')!r}\n"
                                           f"pipeline_root: str = {str(tmp_path / 'p')!r}")
    parameters.metadata["tags"] = ["parameters"]
    notebook.cells = [parameters, nbformat.v4.new_code_cell(
        "import sys\n"
        # this folder, and tests/ for the shared paths its helpers import
        f"sys.path[:0] = [{str(Path(__file__).parent)!r}, {str(Path(__file__).parents[1])!r}]\n"
        "from reliability_helpers import fake_model_component\n"
        "from toolkit import InteractiveContext\n"
        "from toolkit.components import Pusher\n"
        "context = InteractiveContext(pipeline_name='p', pipeline_root=pipeline_root)\n"
        "model = fake_model_component()\n"
        "context.run(model)\n"
        "context.run(Pusher(model=model.outputs['model'], push_destination=serving_dir,\n"
        "                   require_blessing=False))")]
    path = tmp_path / "push.ipynb"
    nbformat.write(notebook, path)
    env = child_env(TOOLKIT_PUSH_ROOT=str(root))
    proc = _toolkit("run", str(path), "-o", str(tmp_path / "run"), "-q", "-p", "serving_dir",
                    str(root / "link-out" / "serving"), cwd=tmp_path, env=env)
    assert proc.returncode == 1
    [line] = [ln for ln in proc.stderr.splitlines() if ln.startswith("toolkit run:")]
    assert "outside the allowed root" in line
    assert list(outside.rglob("*")) == []


def test_output_folder_symlinked_out_of_the_pipeline_root_is_refused(tmp_path):
    from toolkit import InteractiveContext
    from toolkit.components import CsvExampleGen
    from toolkit.errors import ComponentError

    data = copy_taxi(tmp_path / "data", rows=200)
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "CsvExampleGen").symlink_to(outside)
    context = InteractiveContext(pipeline_name="links", pipeline_root=str(root))
    with pytest.raises(ComponentError) as info:
        context.run(CsvExampleGen(input_base=str(data)))
    message = str(info.value)
    assert "\n" not in message and "outside the pipeline root" in message
    assert [p for p in outside.rglob("*") if p.is_file()] == []
    assert context.executions("CsvExampleGen")[-1]["state"] == "FAILED"


def test_pipeline_root_given_as_a_symlink_is_used_where_it_points(tmp_path):
    """The root itself is the user's choice: a symlinked root works and stays consistent."""
    from toolkit import InteractiveContext
    from toolkit.components import CsvExampleGen

    data = copy_taxi(tmp_path / "data", rows=200)
    real = tmp_path / "real-root"
    real.mkdir()
    (tmp_path / "root-link").symlink_to(real)
    context = InteractiveContext(pipeline_name="links", pipeline_root=str(tmp_path / "root-link"))
    first = context.run(CsvExampleGen(input_base=str(data)))
    again = InteractiveContext(pipeline_name="links", pipeline_root=str(real)).run(
        CsvExampleGen(input_base=str(data)))
    assert (real / "metadata.sqlite").is_file()
    assert again.cached and again.outputs["examples"][0].id == first.outputs["examples"][0].id
    assert Path(first.outputs["examples"][0].uri).resolve().is_relative_to(real)
