"""toolkit run: typed parameters checked before anything runs, papermill execution, summary.json."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import nbformat
import pytest
import yaml

from datapaths import FIXTURES
from toolkit import runner
from toolkit.errors import ParameterError
from toolkit.exporter.inspection import describe_parameters, notebook_parameters, resolve_values
from toolkit.exporter.parameters import NotebookParameter, parse_text

RUNNABLE = FIXTURES / "runnable.ipynb"
DECLARED = [
    NotebookParameter("epochs", "int", 5),
    NotebookParameter("rate", "float", 0.5),
    NotebookParameter("name", "str", "x"),
    NotebookParameter("enabled", "bool", True),
    NotebookParameter("labels", "list", []),
    NotebookParameter("options", "dict", {}),
    NotebookParameter("limit", "int", None, nullable=True),
    NotebookParameter("data_root", "str", None, required=True),
]


def resolve(*pairs: tuple[str, str], values: dict | None = None) -> dict:
    overrides, _ = resolve_values(DECLARED, values, [("data_root", "d"), *pairs])
    return overrides


def test_cli_values_are_converted_by_declared_type() -> None:
    got = resolve(("epochs", "7"), ("rate", "2"), ("enabled", "no"), ("labels", '["a", 1]'),
                  ("options", "{'k': None}"), ("limit", "none"))
    assert got == {"data_root": "d", "epochs": 7, "rate": 2.0, "enabled": False, "labels": ["a", 1],
                   "options": {"k": None}, "limit": None}
    assert type(got["rate"]) is float


@pytest.mark.parametrize("text", ["5", "[1]", "None", "True", "__import__('os')", " padded ", "a\nb"])
def test_str_values_stay_verbatim(text: str) -> None:
    assert resolve(("name", text))["name"] == text


@pytest.mark.parametrize(("text", "expected"), [("true", True), ("1", True), ("YES", True),
                                                ("False", False), ("0", False), ("no", False)])
def test_bool_spellings(text: str, expected: bool) -> None:
    assert resolve(("enabled", text))["enabled"] is expected


@pytest.mark.parametrize(
    ("pair", "message"),
    [
        (("epochs", "five"), "parameter 'epochs' expects int, got 'five'"),
        (("epochs", "1.5"), "parameter 'epochs' expects int, got '1.5'"),
        (("rate", "fast"), "parameter 'rate' expects float, got 'fast'"),
        (("enabled", "maybe"), "parameter 'enabled' expects bool (true/false/1/0/yes/no), got 'maybe'"),
        (("labels", "{'a': 1}"), "parameter 'labels' expects list"),
        (("labels", "[__import__('os')]"), "parameter 'labels' expects list"),
        (("options", "[1]"), "parameter 'options' expects dict"),
        (("epochs", "none"), "parameter 'epochs' expects int, got 'none'"),
        (("epoch", "5"), "unknown parameter 'epoch'; known parameters: data_root, enabled, epochs,"),
    ],
)
def test_bad_cli_values_are_refused(pair: tuple[str, str], message: str) -> None:
    with pytest.raises(ParameterError) as info:
        resolve(pair)
    assert message in str(info.value)


def test_missing_required_and_typed_file_values() -> None:
    with pytest.raises(ParameterError, match=r"missing required parameter: data_root \(str\)"):
        resolve_values(DECLARED, {}, [])
    with pytest.raises(ParameterError, match="parameter 'epochs' expects int, got str 'five'"):
        resolve(values={"epochs": "five"})
    with pytest.raises(ParameterError, match="parameter 'epochs' expects int, got bool True"):
        resolve(values={"epochs": True})
    overrides, effective = resolve_values(DECLARED, {"rate": 1, "data_root": "r"}, [("epochs", "3")])
    assert overrides == {"rate": 1.0, "data_root": "r", "epochs": 3}
    assert effective["name"] == "x" and effective["epochs"] == 3
    assert parse_text(NotebookParameter("s", "str", None, nullable=True), "none") == "none"


def test_help_notebook_reads_the_parameters_cell_without_a_params_file() -> None:
    text = describe_parameters(RUNNABLE)
    assert "the parameters cell of" in text
    assert "message" in text and "str" in text and "'hello'" in text
    assert "text echoed into the run record" in text
    assert "fail_with" in text and "Optional[str]" in text


def test_bad_values_are_refused_before_anything_runs(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match="parameter 'epochs' expects int, got 'five'"):
        runner.run_notebook(RUNNABLE, cli_parameters=[("epochs", "five")], run_dir=tmp_path / "run")
    values = tmp_path / "values.yaml"
    values.write_text("rate: slow\n")
    with pytest.raises(ParameterError, match="parameter 'rate' expects float, got str 'slow'"):
        runner.run_notebook(RUNNABLE, parameter_file=values, run_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_run_passes_typed_values_intact_and_writes_the_summary(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    injection = f"\"); __import__('os').system('touch {marker}'); (\"\nand a 'second' line \\ with \"quotes\""
    values_file = tmp_path / "values.yaml"
    values_file.write_text(yaml.safe_dump({"rate": 2, "options": {"nested": [1, "two"]}}))
    lines: list[str] = []

    result = runner.run_notebook(
        RUNNABLE,
        cli_parameters=[("message", injection), ("epochs", "3"), ("enabled", "false"),
                        ("labels", "['x', 1]"), ("output_file", str(tmp_path / "received.json"))],
        parameter_file=values_file,
        run_dir=tmp_path / "run",
        cwd=tmp_path,
        progress=lines.append,
    )

    assert result.ok, result.reason
    assert not marker.exists()
    received = json.loads((tmp_path / "received.json").read_text())
    assert received["message"] == injection
    assert received["types"] == {"message": "str", "epochs": "int", "rate": "float", "enabled": "bool",
                                 "labels": "list", "options": "dict", "fail_with": "NoneType", "mode": "str"}
    assert (received["epochs"], received["rate"], received["enabled"]) == (3, 2.0, False)
    assert received["options"] == {"nested": [1, "two"]} and received["labels"] == ["x", 1]
    assert received["mode"] == "production"
    assert "TOOLKIT_RUN_LOG" not in os.environ

    summary = json.loads(result.summary_path.read_text())
    assert summary["status"] == "succeeded" and summary["reason"] is None
    assert summary["parameters"]["message"] == injection and summary["parameters"]["fail_with"] is None
    assert [e["component_id"] for e in summary["executions"]] == ["Trainer.0", "Trainer.1", "Trainer.2",
                                                                  "Evaluator", "Pusher"]
    assert [e["cached"] for e in summary["executions"]][:3] == [False, True, True]
    assert {a["type"] for a in summary["artifacts"]} == {"Model", "ModelBlessing", "PushedModel"}
    assert summary["blessing"] is True and summary["pushed_version"] == 7
    assert summary["duration_s"] > 0

    executed = nbformat.read(result.notebook, as_version=4)
    injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1
    assert [line.split()[0:2] for line in lines][:2] == [["cell", "2"], ["cell", "3"]]
    assert any("# Parameters" in line for line in lines)


def test_gate_error_fails_the_run_with_its_message(tmp_path: Path) -> None:
    result = runner.run_notebook(
        RUNNABLE,
        {"fail_with": "gate", "output_file": str(tmp_path / "received.json")},
        run_dir=tmp_path / "run",
    )
    assert not result.ok
    assert result.reason == "Evaluator: model not blessed: auc 0.61 < threshold 0.70"
    summary = json.loads(result.summary_path.read_text())
    assert summary["status"] == "failed"
    assert summary["failing_cell"] == {"cell": 6, "source": 'if fail_with == "gate":', "error": "GateError"}
    assert summary["blessing"] is True and summary["pushed_version"] is None
    assert result.notebook.exists()


def test_the_kernels_own_output_goes_to_its_log_and_is_named_when_it_dies(tmp_path: Path, monkeypatch,
                                                                          capfd) -> None:
    """What the kernel process prints outside any cell (here Python's import timing, which only
    it prints, at its start) lands in the run's kernel.log, never on this process's stderr; a
    kernel that dies mid-run fails the run with a reason naming that log."""
    monkeypatch.setenv("PYTHONPROFILEIMPORTTIME", "1")  # read by the kernel's interpreter only
    result = runner.run_notebook(
        RUNNABLE,
        {"fail_with": "die", "output_file": str(tmp_path / "received.json")},
        run_dir=tmp_path / "run",
    )
    kernel_log = tmp_path / "run" / "kernel.log"
    assert "ipykernel.kernelapp" in kernel_log.read_text()
    assert "ipykernel.kernelapp" not in capfd.readouterr().err
    assert not result.ok
    assert result.reason.endswith(f"(the kernel's own output is in {kernel_log})"), result.reason
    assert "DeadKernelError" in result.reason
    summary = json.loads(result.summary_path.read_text())
    assert summary["kernel_log"] == str(kernel_log)
    assert summary["failing_cell"] == {"cell": 6, "source": "if fail_with == \"gate\":", "error": "DeadKernelError"}


def test_exported_params_file_is_used_and_matches_the_cell(pipeline_notebook: Path,
                                                     tmp_path: Path) -> None:
    from toolkit.exporter import export_notebook

    result = export_notebook(pipeline_notebook, tmp_path / "export", params=["batch_size"])
    from_params_file, origin = notebook_parameters(result.notebook)
    assert origin.endswith("pipeline.params.yaml")
    result.params_file.unlink()
    from_cell, origin = notebook_parameters(result.notebook)
    assert "parameters cell" in origin
    assert from_cell == from_params_file == result.parameters


def test_export_runs_the_same_under_toolkit_run_and_papermill(tmp_path: Path) -> None:
    import papermill

    from toolkit.exporter import export_notebook

    source_dir = tmp_path / "notebooks"
    source_dir.mkdir()
    shutil.copy(FIXTURES / "exportable_runnable.ipynb", source_dir)
    exported = export_notebook(source_dir / "exportable_runnable.ipynb", tmp_path / "export")

    result = runner.run_notebook(
        exported.notebook,
        cli_parameters=[("message", "42"), ("repeat", "3"), ("pipeline_root", str(tmp_path / "root"))],
        run_dir=tmp_path / "run",
    )
    assert result.ok, result.reason
    assert result.summary["working_directory"] == str(source_dir)  # relative paths resolve as in Jupyter
    by_toolkit = json.loads((source_dir / "received.json").read_text())
    assert by_toolkit == {"message": "42", "repeat": 3, "mode": "production"}

    (source_dir / "received.json").unlink()
    papermill.execute_notebook(
        str(exported.notebook), str(tmp_path / "papermill.ipynb"), cwd=str(source_dir), progress_bar=False,
        parameters={"message": "42", "repeat": 3, "pipeline_root": str(tmp_path / "root")},
    )
    assert json.loads((source_dir / "received.json").read_text()) == by_toolkit


def test_which_parameters_are_relative_paths(tmp_path: Path) -> None:
    values = {"pipeline_root": "runs/x", "serving_dir": "serving", "model_file": "m.py", "data_base": "../d",
              "message": "a/b", "name": "taxi", "uri": "gs://bucket/x", "out_path": str(tmp_path),
              "home_dir": "~/data", "empty_root": "", "epochs": 3, "labels": ["a/b"]}
    assert runner.resolved_paths(values, tmp_path / "nb") == {
        "pipeline_root": str(tmp_path / "nb" / "runs" / "x"),
        "serving_dir": str(tmp_path / "nb" / "serving"),
        "model_file": str(tmp_path / "nb" / "m.py"),
        "data_base": str(tmp_path / "d"),
        "message": str(tmp_path / "nb" / "a" / "b"),
    }
