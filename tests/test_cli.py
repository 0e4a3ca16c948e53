"""The `toolkit` command: light imports, exit codes, one-line errors."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from datapaths import FIXTURES, REPO
from toolkit.cli import main

HEAVY = ("tensorflow", "apache_beam", "tensorflow_data_validation", "tensorflow_model_analysis",
         "papermill", "nbclient", "nbformat", "IPython", "kfp", "keras_tuner")

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


def test_an_unknown_export_target_is_named_with_the_known_ones(capsys) -> None:
    """The registry, asked directly, and the command: one line naming the target and the
    registered ones, exit 2."""
    from toolkit.errors import UnknownNameError
    from toolkit.exporter.targets import TARGETS

    with pytest.raises(UnknownNameError) as info:
        TARGETS.get("airflow")
    assert str(info.value) == "no export target is registered as 'airflow'; known: kfp, papermill"
    with pytest.raises(SystemExit) as exit_info:
        main(["export", "x.ipynb", "--target", "airflow"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--target: invalid choice: 'airflow'" in err
    assert "'papermill'" in err and "'kfp'" in err


def test_a_registered_export_target_joins_the_command_without_touching_it(
        pipeline_notebook: Path, tmp_path: Path, capsys) -> None:
    """A target registered from outside the CLI is a ``--target`` choice with its help and its
    own option; it writes after the export, ``--check`` covers its file, and its option is
    refused with another target."""
    import argparse
    import contextlib

    from toolkit.errors import ToolkitError
    from toolkit.exporter.targets import TARGETS, ExportTarget, TargetOption, register_target

    seen = []

    class Shout(ExportTarget):
        name = "shout"
        help = "also prints the exported notebook's name"
        options = (TargetOption(("--loudness",), dict(default=None, help="with --target shout: how loud")),)

        def prepare(self, scope: contextlib.ExitStack) -> None:
            seen.append("prepare")

        def write(self, exported, args: argparse.Namespace, scope: contextlib.ExitStack) -> str:
            exported.notebook.with_suffix(".shout").write_text(exported.notebook.name.upper())
            return f"shouted {exported.notebook.name} at {args.loudness}"

        def recorded_options(self, exported) -> list[str] | None:
            return ["--target", "shout"] if exported.notebook.with_suffix(".shout").exists() else None

        def check(self, exported) -> list[str]:
            current = exported.notebook.with_suffix(".shout").read_text() == exported.notebook.name.upper()
            return [] if current else ["pipeline.shout is not loud enough"]

    clashing = type("Clash", (ExportTarget,), {"name": "clash", "help": "x", "options": (
        TargetOption(("--volume",), dict(default=None)),)})()
    with pytest.raises(ToolkitError, match=r"register_target\('clash', \.\.\.\): --volume is already "
                                           r"an option of --target kfp; give the option another name"):
        register_target(clashing)
    register_target(Shout())
    try:
        with pytest.raises(SystemExit):
            main(["export", "--help"])
        help_text = " ".join(capsys.readouterr().out.split())
        assert "{papermill,kfp,shout}" in help_text and "--loudness LOUDNESS" in help_text
        assert ("papermill (default): the parameterized notebook; kfp: also <name>.kfp.yaml"
                in help_text and "shout: also prints the exported notebook's name" in help_text)
        out = str(tmp_path / "export")
        assert main(["export", str(pipeline_notebook), "-o", out, "--target", "shout",
                     "--loudness", "11"]) == 0
        assert capsys.readouterr().out.splitlines()[-1] == "shouted pipeline.ipynb at 11"
        assert seen == ["prepare"]
        assert main(["export", "--check", str(pipeline_notebook), "-o", out]) == 0
        (tmp_path / "export" / "pipeline.shout").write_text("psst")
        assert main(["export", "--check", str(pipeline_notebook), "-o", out]) == 1
        err = capsys.readouterr().err
        assert "pipeline.shout is not loud enough" in err and "--target shout`" in err
        assert main(["export", str(pipeline_notebook), "-o", out, "--loudness", "11"]) == 2
        assert "toolkit export: error: --loudness goes with --target shout" in capsys.readouterr().err
    finally:
        TARGETS.unregister("shout")
    assert "shout" not in TARGETS.names()


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


def test_help_as_a_module_imports_nothing_heavy() -> None:
    """``python -m toolkit.cli --help`` (the console entry point's path) loads no heavy module.
    (Its time is measured by bench/, not asserted here.)"""
    code = ("import runpy, sys\n"
            "sys.argv = ['toolkit', '--help']\n"
            "try:\n"
            "    runpy.run_module('toolkit.cli', run_name='__main__', alter_sys=True)\n"
            "except SystemExit as exit:\n"
            "    code = exit.code\n"
            f"heavy = sorted(m for m in sys.modules if m.split('.')[0] in {set(HEAVY)!r})\n"
            "print('RESULT', code, ','.join(heavy), file=sys.stderr)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(), cwd=REPO)
    line = next(line for line in proc.stderr.splitlines() if line.startswith("RESULT"))
    assert line.split(" ", 2)[1:] == ["0", ""], line
    assert "usage: toolkit" in proc.stdout


def _toolkit(*argv: str, cwd: Path, tmpdir: Path | None = None) -> subprocess.CompletedProcess:
    env = _env()
    if tmpdir is not None:  # a temp folder of the run's own, to see what it leaves there
        env["TMPDIR"] = str(tmpdir)
    return subprocess.run([sys.executable, "-m", "toolkit.cli", *argv], capture_output=True, text=True,
                          env=env, cwd=cwd)


def test_headless_run_prints_no_kernel_transport_warning(tmp_path: Path) -> None:
    """The kernel's traffic is private (encrypted TCP where CurveZMQ is there, else IPC
    sockets): no unencrypted-TCP warning and nothing else on stderr, errors still shown.
    Which transport the kernel got, and the IPC fallback without CurveZMQ, are checked in
    ``tests/test_kernel_transport.py``."""
    failed = _toolkit("run", str(FIXTURES / "runnable.ipynb"), "-p", "fail_with", "error",
                      "-p", "output_file", str(tmp_path / "received.json"), "-o", str(tmp_path / "failed"),
                      cwd=tmp_path)
    output = failed.stdout + failed.stderr
    assert failed.returncode == 1
    assert "toolkit run: cell 6 failed: ValueError: boom" in failed.stderr
    assert "without encryption" not in output and "over TCP" not in output
    own_tmp = tmp_path / "tmp"
    own_tmp.mkdir()
    passed = _toolkit("run", str(FIXTURES / "runnable.ipynb"), "-q",
                      "-p", "output_file", str(tmp_path / "received.json"), "-o", str(tmp_path / "passed"),
                      cwd=tmp_path, tmpdir=own_tmp)
    assert passed.returncode == 0, passed.stderr
    assert passed.stderr == ""
    assert not list(own_tmp.glob("toolkit-kernel-*"))  # the kernel's socket folder is removed


def test_relative_path_parameters_say_where_they_go(tmp_path: Path, monkeypatch, capsys) -> None:
    """The kernel runs in the source notebook's folder; a relative path parameter resolves there,
    and the run says so on the terminal and in summary.json."""
    from toolkit.exporter import export_notebook

    source_dir = tmp_path / "notebooks"
    source_dir.mkdir()
    shutil.copy(FIXTURES / "exportable_runnable.ipynb", source_dir)
    exported = export_notebook(source_dir / "exportable_runnable.ipynb", tmp_path / "export")
    monkeypatch.chdir(tmp_path)
    code = main(["run", str(exported.notebook), "-q", "-p", "pipeline_root", "runs/x",
                 "-p", "message", "a/b c", "-o", str(tmp_path / "run")])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    target = source_dir / "runs" / "x"
    assert target.is_dir() and not (tmp_path / "runs" / "x").exists()
    assert (f"parameter pipeline_root: 'runs/x' resolves to {target} "
            f"(relative to the kernel's working directory {source_dir})") in captured.err
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["resolved_paths"] == {"pipeline_root": str(target), "message": str(source_dir / "a/b c")}
    assert summary["working_directory"] == str(source_dir)

    code = main(["run", str(exported.notebook), "-q", "--cwd", str(tmp_path), "-p", "pipeline_root", "runs/y",
                 "-p", "message", "https://example.com/x", "-o", str(tmp_path / "run-cwd")])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert (tmp_path / "runs" / "y").is_dir()
    summary = json.loads((tmp_path / "run-cwd" / "summary.json").read_text())
    assert summary["resolved_paths"] == {"pipeline_root": str(tmp_path / "runs" / "y")}
    assert captured.err.count("resolves to") == 1


def test_not_pushed_run_says_why(tmp_path: Path, monkeypatch, capsys) -> None:
    """A real Pusher refusing an unblessed model: no "pushed version" without a version."""
    monkeypatch.chdir(tmp_path)
    notebook = str(FIXTURES / "push_gate.ipynb")
    assert main(["run", notebook, "-q", "-p", "gates", "false", "-o", str(tmp_path / "ungated")]) == 0
    out = capsys.readouterr().out
    assert "model NOT blessed, not pushed: model_blessing #2 from Bless does not bless the model" in out
    assert "pushed version" not in out
    summary = json.loads((tmp_path / "ungated" / "summary.json").read_text())
    assert summary["pushed_version"] is None
    assert summary["push"] == {"pushed": False, "version": None, "cached": False,
                               "reason": "model_blessing #2 from Bless does not bless the model",
                               "destination": str(tmp_path / "serving")}
    assert not (tmp_path / "serving").exists() or not os.listdir(tmp_path / "serving")

    assert main(["run", notebook, "-q", "-p", "pipeline_root", "gated", "-o", str(tmp_path / "gated")]) == 1
    assert "Pusher" in capsys.readouterr().err
    summary = json.loads((tmp_path / "gated" / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["pushed_version"] is None
    assert summary["push"]["pushed"] is False

    assert main(["run", notebook, "-q", "-p", "pipeline_root", "blessed", "-p", "blessed", "1",
                 "-o", str(tmp_path / "blessed")]) == 0
    out = capsys.readouterr().out
    summary = json.loads((tmp_path / "blessed" / "summary.json").read_text())
    version = summary["pushed_version"]
    assert version and summary["push"]["pushed"] is True and summary["push"]["version"] == version
    assert out.rstrip().endswith(f"model blessed, pushed version {version}")
    assert os.listdir(tmp_path / "serving") == [version]
