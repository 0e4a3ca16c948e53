"""The `toolkit` command: light imports, exit codes, one-line errors."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from datapaths import FIXTURES, REPO
from toolkit.cli import main

HEAVY = ("tensorflow", "apache_beam", "tensorflow_data_validation", "tensorflow_model_analysis",
         "papermill", "nbclient", "nbformat", "IPython")

PROBE = """
import sys
from toolkit.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
heavy = sorted(m for m in sys.modules if m.split(".")[0] in {heavy!r})
print("RESULT", ",".join(heavy), file=sys.stderr)
"""


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def _probe(*argv: str) -> tuple[list[str], str]:
    """The heavy modules a ``toolkit`` command line loads, and its output. (Its time is
    measured by bench/bench_data.py, not asserted here.)"""
    code = PROBE.format(heavy=set(HEAVY))
    proc = subprocess.run(
        [sys.executable, "-c", code, *argv], capture_output=True, text=True, env=_env(), cwd=REPO
    )
    line = next(line for line in proc.stderr.splitlines() if line.startswith("RESULT"))
    heavy = line[len("RESULT"):]
    return [m for m in heavy.strip().split(",") if m], proc.stdout


@pytest.mark.parametrize("argv", [["--help"], ["export", "--help"], ["run", "--help"], ["--version"]])
def test_help_imports_nothing_heavy(argv: list[str]) -> None:
    heavy, stdout = _probe(*argv)
    assert heavy == []
    assert "toolkit" in stdout


@pytest.mark.parametrize("modules, heavy", [
    (["toolkit"], HEAVY),
    (["toolkit.evaluation"], ["tensorflow", "tensorflow_model_analysis"]),
    (["toolkit.visualize", "toolkit.visualize.statistics", "toolkit.visualize.schema"],
     ["tensorflow", "tensorflow_data_validation", "apache_beam", "tensorflow_model_analysis",
      "tfx_bsl", "pyarrow"]),
    (["toolkit.visualize.evaluation"], ["tensorflow", "tensorflow_model_analysis", "ipywidgets"]),
], ids=["toolkit", "evaluation", "views", "dashboard"])
def test_imports_stay_light(modules: list[str], heavy: list[str]) -> None:
    """TensorFlow, Beam, TFDV and TFMA load only inside the functions that need them."""
    code = (f"import sys, {', '.join(modules)}\n"
            f"print(sorted(m for m in sys.modules if m.split('.')[0] in {set(heavy)!r}))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=_env(), cwd=REPO, check=True)
    assert proc.stdout.strip() == "[]"


def test_console_entry_point_runs_as_a_module(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "toolkit.cli", "--version"], capture_output=True, text=True,
                          env=_env(), cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.startswith("toolkit ")


def test_usage_errors_are_one_line_with_exit_2(capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["run"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the following arguments are required: NOTEBOOK" in err


def test_export_then_check(pipeline_notebook: Path, tmp_path: Path, capsys) -> None:
    out = str(tmp_path / "export")
    assert main(["export", str(pipeline_notebook), "-o", out, "--param", "batch_size"]) == 0
    captured = capsys.readouterr()
    assert "wrote" in captured.out and "pipeline.params.yaml (9 parameters)" in captured.out
    assert "note: cell 2: dropped `!pip install --quiet some-package`" in captured.err

    assert main(["export", str(pipeline_notebook), "-o", out, "--param", "batch_size"]) == 0
    assert "unchanged" in capsys.readouterr().out
    assert main(["export", "--check", str(pipeline_notebook), "-o", out]) == 0
    assert "up to date" in capsys.readouterr().out

    text = pipeline_notebook.read_text()
    pipeline_notebook.write_text(text.replace("Number of epochs", "How many epochs"))
    assert main(["export", "--check", str(pipeline_notebook), "-o", out]) == 1
    assert "is stale" in capsys.readouterr().err


def test_export_refusal_is_one_line_with_exit_2(tmp_path: Path, capsys) -> None:
    broken = tmp_path / "broken.ipynb"
    broken.write_text("not json")
    assert main(["export", str(broken), "-o", str(tmp_path / "export")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("toolkit export: error: ") and "broken.ipynb: is not valid JSON" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-p", "epochs", "five"], "parameter 'epochs' expects int, got 'five'"),
        (["-p", "epoch", "5"], "unknown parameter 'epoch'; known parameters: enabled, epochs, fail_with,"),
        (["-p", "enabled", "perhaps"], "parameter 'enabled' expects bool"),
    ],
)
def test_run_validation_errors(tmp_path: Path, capsys, argv: list[str], message: str) -> None:
    run_dir = tmp_path / "run"
    code = main(["run", str(FIXTURES / "runnable.ipynb"), *argv, "-o", str(run_dir)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and message in err
    assert not run_dir.exists()


def test_run_missing_required_parameter(tmp_path: Path, capsys) -> None:
    notebook = tmp_path / "needs.ipynb"
    notebook.write_text(json.dumps({
        "cells": [{"cell_type": "code", "source": "data_root: str  # input folder",
                   "metadata": {"tags": ["parameters"]}, "outputs": [], "execution_count": None}],
        "metadata": {}, "nbformat": 4, "nbformat_minor": 4,
    }))
    assert main(["run", str(notebook), "-o", str(tmp_path / "run")]) == 2
    assert "missing required parameter: data_root (str)" in capsys.readouterr().err


def test_help_notebook_lists_parameters(capsys) -> None:
    assert main(["run", "--help-notebook", str(FIXTURES / "runnable.ipynb")]) == 0
    out = capsys.readouterr().out
    assert "NAME" in out and "TYPE" in out and "DEFAULT" in out and "HELP" in out
    assert "epochs" in out and "int" in out and "number of fake executions" in out


def test_failed_run_exits_1_with_a_one_line_reason(tmp_path: Path, capsys) -> None:
    run_dir = tmp_path / "run"
    code = main(["run", str(FIXTURES / "runnable.ipynb"), "-q", "-p", "fail_with", "error",
                 "-p", "output_file", str(tmp_path / "received.json"), "-o", str(run_dir)])
    captured = capsys.readouterr()
    assert code == 1
    assert captured.err.strip() == "toolkit run: cell 6 failed: ValueError: boom"
    assert f"summary: {run_dir / 'summary.json'}" in captured.out
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["reason"] == "ValueError: boom"
    assert main(["run", str(FIXTURES / "runnable.ipynb"), "-o", str(run_dir)]) == 2
    assert "already holds a run" in capsys.readouterr().err


def test_help_is_fast_enough_in_wall_time() -> None:
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "toolkit.cli", "--help"], capture_output=True, env=_env(), cwd=REPO
    )
    assert proc.returncode == 0
    assert time.perf_counter() - start < 2.0  # interpreter start included; the import itself is checked above
