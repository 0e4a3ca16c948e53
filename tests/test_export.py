"""Export: static analysis of a notebook into a parameterized pipeline notebook + parameters file."""
from __future__ import annotations

import ast
import json
from pathlib import Path

import nbformat
import pytest
import yaml
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

import toolkit
from datapaths import REPO
from toolkit.errors import ExportError, ToolkitError
from toolkit.exporter import check_export, export_notebook
from toolkit.exporter.parameters import NotebookParameter
from toolkit.exporter.params_file import read_params_file

CONTEXT = 'from toolkit import InteractiveContext\ncontext = InteractiveContext(pipeline_root="runs/x")'


def code(source: str, *tags: str):
    cell = new_code_cell(source)
    if tags:
        cell.metadata["tags"] = list(tags)
    return cell


def make_notebook(path: Path, *cells) -> Path:
    nb = new_notebook(cells=list(cells))
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def read(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def sources(nb: dict) -> list[str]:
    return ["".join(cell["source"]) for cell in nb["cells"]]


def export_error(tmp_path: Path, *cells, params=()) -> ExportError:
    path = make_notebook(tmp_path / "nb.ipynb", *cells)
    with pytest.raises(ExportError) as info:
        export_notebook(path, tmp_path / "export", params)
    return info.value


def test_export_writes_clean_parameterized_notebook_and_params_file(pipeline_notebook: Path, tmp_path: Path) -> None:
    result = export_notebook(pipeline_notebook, tmp_path / "export", params=["batch_size"])

    assert result.notebook == tmp_path / "export" / "pipeline.ipynb"
    assert result.params_file == tmp_path / "export" / "pipeline.params.yaml"
    nb = read(result.notebook)
    nbformat.validate(nbformat.reads(result.notebook.read_text(), as_version=4))
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    header, params_cell, mode_cell, *rest = nb["cells"]
    assert header["cell_type"] == "markdown"
    assert params_cell["metadata"]["tags"] == ["parameters"]
    assert "".join(mode_cell["source"]) == (
        'import toolkit as _toolkit\n_toolkit.set_mode("production")'
    )
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None

    text = "".join(header["source"])
    assert "pipeline.ipynb" in text and result.source_sha256 in text
    assert "toolkit run" in text and "papermill" in text

    kept = sources(nb)[3:]
    joined = "\n".join(kept)
    assert "debug_rows" not in joined and "scratch" not in joined  # skip-export, %%skip_for_export
    assert "!pip" not in joined and "listing = !ls" not in joined  # shell escapes dropped
    assert "%matplotlib inline" in joined and "%time total = steps + 1" in joined  # harmless magics kept
    assert "context.show(total)" in kept
    assert "steps = epochs * batch_size" in kept  # lifted assignment removed from its cell
    assert "batch_size = 32" not in joined
    assert any("!pip install" in note for note in result.notes)
    assert any("skip-export" in note for note in result.notes)
    assert any("skip\\_for\\_export" in line for line in text.splitlines())


def test_parameters_types_defaults_help_and_required(pipeline_notebook: Path, tmp_path: Path) -> None:
    result = export_notebook(pipeline_notebook, tmp_path / "export", params=["batch_size"])
    by_name = {p.name: p for p in read_params_file(result.params_file)}

    assert by_name["epochs"] == NotebookParameter("epochs", "int", 5, "Number of epochs")
    assert by_name["learning_rate"] == NotebookParameter("learning_rate", "float", 0.1, "Step size")
    assert by_name["use_gpu"] == NotebookParameter("use_gpu", "bool", False, "")
    assert by_name["model_dir"] == NotebookParameter(
        "model_dir", "str", None, "optional model directory", nullable=True
    )
    assert by_name["data_root"].required and by_name["data_root"].type == "str"
    assert by_name["features"].default == ["fare", "trip_miles"]
    assert by_name["options"] == NotebookParameter("options", "dict", {"depth": 3, "nested": {"a": [1, 2]}}, "")
    assert by_name["batch_size"] == NotebookParameter("batch_size", "int", 32, "rows per batch")
    assert [p.name for p in result.parameters][0] == "data_root"  # required parameters first

    document = yaml.safe_load(result.params_file.read_text())
    assert document["source_sha256"] == result.source_sha256
    assert set(document["parameters"][0]) == {"name", "type", "nullable", "required", "default", "help"}


@pytest.mark.parametrize(
    ("declaration", "expected"),
    [
        ("lr: float = 1", NotebookParameter("lr", "float", 1.0)),
        ("n: Optional[int] = None", NotebookParameter("n", "int", None, nullable=True)),
        ("n: typing.Optional[int] = 3", NotebookParameter("n", "int", 3, nullable=True)),
        ("n: int | None = None", NotebookParameter("n", "int", None, nullable=True)),
        ("n: 'Optional[str]' = None", NotebookParameter("n", "str", None, nullable=True)),
        ("names: list[str] = ['a']  # the names", NotebookParameter("names", "list", ["a"], "the names")),
        ("m: Dict[str, int] = {'a': 1}", NotebookParameter("m", "dict", {"a": 1})),
        ("m = {\n    'a': 1,\n}  # multi-line help", NotebookParameter("m", "dict", {"a": 1}, "multi-line help")),
        ("x = -2", NotebookParameter("x", "int", -2)),
        ("root: str  # where to read", NotebookParameter("root", "str", None, "where to read", required=True)),
    ],
)
def test_annotations_and_help(tmp_path: Path, declaration: str, expected: NotebookParameter) -> None:
    path = make_notebook(tmp_path / "nb.ipynb", code(declaration, "parameters"), code(CONTEXT))
    result = export_notebook(path, tmp_path / "export")
    assert result.parameters == [expected]
    assert read_params_file(result.params_file) == [expected]


def test_export_is_deterministic_and_skips_unchanged_files(pipeline_notebook: Path, tmp_path: Path) -> None:
    first = export_notebook(pipeline_notebook, tmp_path / "export", params=["batch_size"])
    notebook_bytes, params_file_bytes = first.notebook.read_bytes(), first.params_file.read_bytes()
    second = export_notebook(pipeline_notebook, tmp_path / "export", params=["batch_size"])
    assert not second.changed
    assert first.notebook.read_bytes() == notebook_bytes and first.params_file.read_bytes() == params_file_bytes
    first.notebook.unlink()
    export_notebook(pipeline_notebook, tmp_path / "export", params=["batch_size"])
    assert first.notebook.read_bytes() == notebook_bytes


def test_check_reports_stale_exports(pipeline_notebook: Path, tmp_path: Path) -> None:
    out = tmp_path / "export"
    assert check_export(pipeline_notebook, out).stale  # nothing exported yet
    export_notebook(pipeline_notebook, out, params=["batch_size"])
    assert not check_export(pipeline_notebook, out).stale  # lifted parameters are read from the export

    nb = nbformat.read(pipeline_notebook, as_version=4)
    nb.cells[5].outputs = [nbformat.v4.new_output("stream", text="ran\n")]
    nb.cells[5].execution_count = 3
    nbformat.write(nb, pipeline_notebook)
    assert not check_export(pipeline_notebook, out).stale  # running the notebook does not make it stale

    nb.cells[6].source = "batch_size = 64  # rows per batch\nsteps = epochs * batch_size"
    nbformat.write(nb, pipeline_notebook)
    result = check_export(pipeline_notebook, out)
    assert result.stale and "changed since it was exported" in str(result)

    export_notebook(pipeline_notebook, out, params=["batch_size"])
    exported = out / "pipeline.ipynb"
    exported.write_text(exported.read_text().replace("context.show(total)", "print(total)"))
    result = check_export(pipeline_notebook, out)
    assert result.stale and "differs" in str(result)
    assert str(result).endswith(f"re-export with `toolkit export {pipeline_notebook} -o {out} --param batch_size`")


def test_check_tells_to_re_export_an_export_made_with_the_old_production_cell(
    pipeline_notebook: Path, tmp_path: Path
) -> None:
    """Exports made before ``toolkit.set_mode`` was public still run, but --check says to re-export."""
    out = tmp_path / "export"
    result = export_notebook(pipeline_notebook, out, params=["batch_size"])
    nb = read(result.notebook)
    (mode_cell,) = [c for c in nb["cells"] if "toolkit-production-mode" in c["metadata"].get("tags", [])]
    mode_cell["source"] = ["import toolkit.context as _toolkit_context\n",
                           '_toolkit_context.set_mode("production")']
    result.notebook.write_text(json.dumps(nb, sort_keys=True, indent=1, ensure_ascii=False) + "\n")

    check = check_export(pipeline_notebook, out)
    assert check.stale
    assert "older `toolkit export`" in str(check)
    assert f"re-export with `toolkit export {pipeline_notebook} -o {out} --param batch_size`" in str(check)
    export_notebook(pipeline_notebook, out, params=["batch_size"])
    assert not check_export(pipeline_notebook, out).stale


def test_no_parameters_cell_is_refused_unless_a_param_is_lifted(tmp_path: Path) -> None:
    error = export_error(tmp_path, code("epochs = 3"), code(CONTEXT))
    assert "no cell is tagged 'parameters'" in str(error)

    path = make_notebook(
        tmp_path / "nb.ipynb", code("epochs = 3  # passes"), code(CONTEXT + "\nprint(epochs)")
    )
    result = export_notebook(path, tmp_path / "export", params=["epochs"])
    assert result.parameters == [NotebookParameter("epochs", "int", 3, "passes")]
    assert "epochs = 3" not in "".join(sources(read(result.notebook))[3:])


def test_invalid_json_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.ipynb"
    path.write_text('{"cells": [', encoding="utf-8")
    with pytest.raises(ExportError, match=r"broken\.ipynb: is not valid JSON \(line 1"):
        export_notebook(path, tmp_path / "export")
    with pytest.raises(ExportError, match="no such notebook"):
        export_notebook(tmp_path / "missing.ipynb", tmp_path / "export")
    assert issubclass(ExportError, ToolkitError)


@pytest.mark.parametrize(
    ("declaration", "message"),
    [
        ("data_root = os.path.join('a', 'b')", "is not a literal (os.path.join('a', 'b'))"),
        ("epochs: int = '5'", "annotated int but its default is str"),
        ("model = None", "defaults to None without a type"),
        ("shape = (1, 2)", "is a tuple"),
        ("a = b = 1", "only assignments of literal values"),
        ("import os", "only assignments of literal values"),
        ("epochs: Callable = 1", "unsupported annotation"),
        ("n = 1\nn = 2", "assigned twice"),
    ],
)
def test_bad_parameter_declarations_are_refused_with_cell_number(
    tmp_path: Path, declaration: str, message: str
) -> None:
    error = export_error(tmp_path, new_markdown_cell("# t"), code(declaration, "parameters"), code(CONTEXT))
    assert error.cell == 2
    assert "cell 2" in str(error) and message in str(error)


@pytest.mark.parametrize(
    ("cells", "cell", "message"),
    [
        ([code("rows = [1]", "skip-export"), code("total = len(rows)")], 3, "'rows'"),
        ([code("%%skip_for_export\nrows = [1]"), code("total = len(rows)")], 3, "cell 2, which export drops"),
        ([code("files = !ls"), code("print(files)")], 3, "`files = !ls`"),
        ([code("rows = [1]", "skip-export"), code("rows = rows + [2]")], 3, "'rows'"),
        ([code("rows = [1]", "skip-export"), code("def total():\n    return len(rows)")], 3, "'rows'"),
        ([code("print(_)")], 2, "IPython's input/output history"),
    ],
)
def test_interactive_only_names_are_refused(tmp_path: Path, cells, cell: int, message: str) -> None:
    error = export_error(tmp_path, code("n = 1", "parameters"), *cells, code(CONTEXT))
    assert error.cell == cell
    assert "interactive-only name" in str(error) and message in str(error)


def test_names_redefined_in_kept_cells_are_fine(tmp_path: Path) -> None:
    path = make_notebook(
        tmp_path / "nb.ipynb",
        code("n = 1", "parameters"),
        code("rows = [0]", "skip-export"),
        code("rows = [1]\ndef total():\n    return helper(rows)\ndef helper(x):\n    return len(x)"),
        code("for _ in range(2):\n    print(_)\n" + CONTEXT),
    )
    export_notebook(path, tmp_path / "export")


def test_interactive_context_is_required(tmp_path: Path) -> None:
    error = export_error(tmp_path, code("n = 1", "parameters"), code("print(n)"))
    assert "no InteractiveContext is constructed" in str(error)
    error = export_error(tmp_path, code("n = 1", "parameters"), code(CONTEXT, "skip-export"))
    assert error.cell == 2 and "which export drops" in str(error)
    path = make_notebook(
        tmp_path / "alias.ipynb",
        code("n = 1", "parameters"),
        code("from toolkit import InteractiveContext as IC\nctx = IC()"),
    )
    export_notebook(path, tmp_path / "export")


def test_structural_refusals(tmp_path: Path) -> None:
    error = export_error(tmp_path, code("n = 1", "parameters"), code("m = 2", "parameters"), code(CONTEXT))
    assert "both tagged 'parameters'" in str(error)
    error = export_error(tmp_path, code("n = 5"), code("n = 1", "parameters"), code(CONTEXT))
    assert error.cell == 1 and "before the parameters cell" in str(error)
    error = export_error(tmp_path, code("n = 1", "parameters"), code("def f(:\n  pass"), code(CONTEXT))
    assert error.cell == 2 and "syntax error on line 1" in str(error)


@pytest.mark.parametrize(
    ("cells", "param", "message"),
    [
        ([code("k = 1"), code("k = 2")], "k", "assigned more than once"),
        ([code("k = len('ab')")], "k", "is not a literal"),
        ([code("for k in range(2):\n    pass")], "k", "no top-level assignment"),
        ([code("k = 1; j = 2")], "k", "on a line of its own"),
        ([], "missing", "no top-level assignment of 'missing'"),
    ],
)
def test_lifting_refusals(tmp_path: Path, cells, param: str, message: str) -> None:
    error = export_error(tmp_path, code("n = 1", "parameters"), *cells, code(CONTEXT), params=[param])
    assert message in str(error)


def test_magics_are_kept_or_dropped_with_notes(tmp_path: Path) -> None:
    path = make_notebook(
        tmp_path / "nb.ipynb",
        code("n = 1", "parameters"),
        code("%load_ext autoreload\n%pip install foo\nimport os\nif n:\n    !echo hi\n" + CONTEXT),
        code("%%bash\necho hi"),
        code("%%writefile module_file.py\ndef run_fn(fn_args):\n    pass"),
        code("%%time\n!ls\nvalue = n + 1"),
        code("print(value)"),
    )
    result = export_notebook(path, tmp_path / "export")
    kept = sources(read(result.notebook))[3:]
    assert kept[0].startswith("%load_ext autoreload\nimport os\nif n:\n    pass\n")
    assert not any("%%bash" in source for source in kept)
    assert kept[1].startswith("%%writefile module_file.py")
    assert kept[2] == "%%time\nvalue = n + 1"
    notes = "\n".join(result.notes)
    assert "cell 2: dropped `%pip install foo`" in notes and "cell 2: dropped `!echo hi`" in notes
    assert "cell 3: dropped the cell: `%%bash`" in notes
    assert "cell 5: dropped `!ls`" in notes


def test_header_and_params_file_cannot_be_smuggled_into(tmp_path: Path) -> None:
    evil = "<script>alert(1)</script> | `x` [link](javascript:alert(1))"
    path = make_notebook(
        tmp_path / "nb.ipynb",
        code(
            f"greeting = 'it\\'s \"quoted\"\\nsecond line'  # {evil}\n"
            f"payload = '\"); __import__(\"os\").system(\"touch pwned\"); (\"'",
            "parameters",
        ),
        code(f"!echo {evil}\n" + CONTEXT),
    )
    result = export_notebook(path, tmp_path / "export")
    nb = read(result.notebook)
    header = "".join(nb["cells"][0]["source"])
    assert "<script" not in header and "](javascript" not in header
    assert "&lt;script&gt;" in header

    tree = ast.parse("".join(nb["cells"][1]["source"]))
    assert all(isinstance(stmt, ast.AnnAssign) and isinstance(stmt.value, ast.Constant) for stmt in tree.body)
    values = {stmt.target.id: ast.literal_eval(stmt.value) for stmt in tree.body}
    assert values["greeting"] == "it's \"quoted\"\nsecond line"
    assert values["payload"] == '"); __import__("os").system("touch pwned"); ("'
    assert read_params_file(result.params_file) == result.parameters
    assert result.parameters[0].help == evil
    assert not (tmp_path / "pwned").exists()


def test_export_never_runs_notebook_code(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    path = make_notebook(
        tmp_path / "nb.ipynb",
        code("n = 1", "parameters"),
        code(f"open({str(marker)!r}, 'w').close()\n" + CONTEXT),
    )
    export_notebook(path, tmp_path / "export")
    assert not marker.exists()


def test_export_notebook_is_exposed_on_the_package(pipeline_notebook: Path, tmp_path: Path) -> None:
    result = toolkit.export_notebook(pipeline_notebook, output_dir=tmp_path / "out", params=("batch_size",))
    assert result.notebook.exists()
    assert "note: cell 2" in str(result)


FLAGSHIPS = sorted((Path(REPO) / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("notebook", FLAGSHIPS, ids=[path.stem for path in FLAGSHIPS])
def test_flagship_notebooks_export_and_committed_exports_are_fresh(notebook: Path, tmp_path: Path) -> None:
    first = export_notebook(notebook, tmp_path / "export")
    again = export_notebook(notebook, tmp_path / "export")
    assert not again.changed and first.notebook_text == again.notebook_text
    committed = notebook.parents[1] / "export"
    assert (committed / notebook.name).exists(), f"no committed export of {notebook.name}"
    result = check_export(notebook, committed)
    assert not result.stale, str(result)
