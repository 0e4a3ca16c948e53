"""Benchmark export and `toolkit run`.

Measures, on this machine:
  1. export time per notebook under notebooks/*.ipynb (fixtures when there are none):
     the first export in a fresh process (includes importing IPython's transformer
     when a cell needs it) and the median of warm re-exports; target < 1 s;
  2. `toolkit run` (runner.run_notebook: validation, papermill, run record) against
     the same notebook executed by nbclient directly, alternating, median of
     --repeat runs each; overhead target < 10 %;
  3. a second `toolkit run` on the same pipeline root (served from cache when the
     notebook's components are cached): wall time.

The run benchmark uses a fresh export of the first flagship notebook (a fixture
when there is none); each run gets its own pipeline_root so none is served from
another's cache. Usage:
    python bench/bench_export.py [--repeat 3] [--run-notebook PATH] [--json]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO, median_time

FIXTURES = Path(REPO, "tests", "fixtures", "notebooks")


def export_targets() -> list[tuple[Path, list[str]]]:
    flagships = sorted(Path(REPO, "notebooks").glob("*.ipynb"))
    if flagships:
        return [(path, []) for path in flagships]
    return [(FIXTURES / "pipeline.ipynb", ["batch_size"]), (FIXTURES / "exportable_runnable.ipynb", [])]


def bench_export(repeat: int) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for path, params in export_targets():
            cold = _cold_export(path, params, Path(tmp) / "cold")
            from toolkit.exporter.export import build_export

            warm, _ = median_time(lambda: build_export(path, Path(tmp) / "warm", params),
                                  repeat=max(repeat, 5))
            rows.append({
                "notebook": str(path.relative_to(REPO)),
                "cells": _cell_count(path),
                "first_export_s": round(cold, 3),
                "warm_export_s": round(warm, 4),
            })
    return rows


def _cold_export(path: Path, params: list[str], out: Path) -> float:
    code = (
        "import sys, time; sys.path.insert(0, sys.argv[1]); start = time.perf_counter(); "
        "from toolkit.exporter import export_notebook; "
        "export_notebook(sys.argv[2], sys.argv[3], sys.argv[4:]); print(time.perf_counter() - start)"
    )
    proc = subprocess.run([sys.executable, "-c", code, REPO, str(path), str(out), *params],
                          capture_output=True, text=True, check=True)
    return float(proc.stdout.strip().splitlines()[-1])


def _cell_count(path: Path) -> int:
    return len(json.loads(path.read_text(encoding="utf-8"))["cells"])


def run_target(explicit: str | None, workdir: Path) -> Path:
    """The notebook to run: --run-notebook, else a fresh export of the first flagship notebook."""
    if explicit:
        return Path(explicit).resolve()
    flagships = sorted(Path(REPO, "notebooks").glob("*.ipynb"))
    if flagships:
        from toolkit.exporter import export_notebook

        return export_notebook(flagships[0], workdir / "export").notebook
    return FIXTURES / "runnable.ipynb"


def bench_run(notebook: Path, repeat: int, work: Path) -> dict:
    """Alternate nbclient and `toolkit run` on the same notebook with the same parameters.

    Each run gets a fresh pipeline_root (when the notebook has one), so neither is
    served from the other's cache; the last `toolkit run` root is then re-used.
    """
    import nbformat
    from nbclient import NotebookClient
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    from toolkit import runner
    from toolkit.exporter.inspection import notebook_parameters, source_directory

    declared = {p.name for p in notebook_parameters(notebook)[0]}
    cwd = source_directory(notebook) or work
    baseline, ours = [], []
    root = None
    for index in range(repeat):
        params = {}
        if "pipeline_root" in declared:
            params = {"pipeline_root": str(work / f"nbclient-root-{index}")}
        nb = load_notebook_node(str(notebook))
        if params:
            nb = parameterize_notebook(nb, params, kernel_name="python3")
        with runner.kernel_environment(work / f"nbclient-{index}.jsonl"):
            start = time.perf_counter()
            NotebookClient(nb, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}).execute()
            nbformat.write(nb, work / f"nbclient-{index}.ipynb")
            baseline.append(time.perf_counter() - start)

        root = str(work / f"toolkit-root-{index}")
        params = {"pipeline_root": root} if "pipeline_root" in declared else {}
        start = time.perf_counter()
        result = runner.run_notebook(notebook, params, run_dir=work / f"run-{index}", cwd=cwd)
        ours.append(time.perf_counter() - start)
        if not result.ok:
            raise SystemExit(f"toolkit run failed: {result.reason}")
    params = {"pipeline_root": root} if "pipeline_root" in declared else {}
    start = time.perf_counter()
    cached_result = runner.run_notebook(notebook, params, run_dir=work / "run-cached", cwd=cwd)
    cached = time.perf_counter() - start
    base, mine = statistics.median(baseline), statistics.median(ours)
    return {
        "notebook": str(notebook.relative_to(REPO) if notebook.is_relative_to(REPO) else notebook.name),
        "repeat": repeat,
        "nbclient_s": round(base, 3),
        "toolkit_run_s": round(mine, 3),
        "overhead_pct": round(100 * (mine - base) / base, 1),
        "nbclient_runs_s": [round(t, 3) for t in baseline],
        "toolkit_runs_s": [round(t, 3) for t in ours],
        "cached_rerun_s": round(cached, 3),
        "cached_executions": sum(1 for e in cached_result.summary["executions"] if e.get("cached")),
        "executions": len(cached_result.summary["executions"]),
        "cli_wall_s": round(_cli_wall(notebook, params), 3),
    }


def _cli_wall(notebook: Path, params: dict) -> float:
    """`toolkit run` as a user starts it (fresh interpreter, imports included), on the cached root."""
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, PYTHONPATH=_pythonpath())
        args = [arg for name, value in params.items() for arg in ("-p", name, value)]
        run_dir = str(Path(tmp) / "run")
        command = [sys.executable, "-m", "toolkit.cli", "run", str(notebook), "-q", "-o", run_dir]
        start = time.perf_counter()
        subprocess.run(command + args, check=True, capture_output=True, env=env, cwd=tmp)
        return time.perf_counter() - start


def _pythonpath() -> str:
    return os.pathsep.join(filter(None, [REPO, os.environ.get("PYTHONPATH")]))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--run-notebook", help="notebook to run (default: a fresh export of the first flagship notebook)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        notebook = run_target(args.run_notebook, work)
        report = {"export": bench_export(args.repeat), "run": bench_run(notebook, args.repeat, work)}
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print("export (target < 1 s)")
    for row in report["export"]:
        print(f"  {row['notebook']}: {row['cells']} cells, first export {row['first_export_s']:.3f} s "
              f"(fresh process), warm {row['warm_export_s'] * 1000:.1f} ms")
    run = report["run"]
    print(f"run {run['notebook']} (median of {run['repeat']}, alternating)")
    print(f"  nbclient directly   {run['nbclient_s']:.3f} s")
    print(f"  toolkit run (API)   {run['toolkit_run_s']:.3f} s  "
          f"overhead {run['overhead_pct']:+.1f} % (target < 10 %)")
    print(f"    runs: nbclient {run['nbclient_runs_s']}, toolkit {run['toolkit_runs_s']}")
    print(f"  second run, cache   {run['cached_rerun_s']:.3f} s "
          f"({run['cached_executions']} of {run['executions']} executions from cache)")
    print(f"  toolkit run (CLI)   {run['cli_wall_s']:.3f} s wall on the cached root, "
          "fresh interpreter incl. imports")


if __name__ == "__main__":
    main()
