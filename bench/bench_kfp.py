"""Benchmark the Kubeflow Pipelines export target.

Measures, on this machine:
  1. export time of `toolkit export --target kfp` per flagship notebook, as a command in a
     fresh process (interpreter start, kfp import, analysis, compile, write; target < 2 s),
     and the median in-process compile once kfp is imported;
  2. the compiled taxi pipeline run by kfp.local (SubprocessRunner, the project's
     environment) against `toolkit run` of the papermill export, same parameters, each
     on a fresh root: wall times, and the per-task overhead
     (pipeline wall - toolkit run wall) / number of tasks, with the median time a task
     spends before its component starts (kernel start, imports, reading upstream from
     the store).

The runs use train_steps=200 (what tests/test_kfp_local.py uses). Usage:
    python bench/bench_kfp.py [--skip-run] [--json]
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

NOTEBOOKS = ("taxi", "credit")
VALUES = {"pipeline_name": "taxi_bench", "train_steps": 200}


def bench_export() -> list[dict]:
    toolkit = os.path.join(os.path.dirname(sys.executable), "toolkit")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in NOTEBOOKS:
            source = os.path.join(REPO, "notebooks", f"{name}.ipynb")
            start = time.perf_counter()
            done = subprocess.run([toolkit, "export", source, "--target", "kfp", "-o", tmp],
                                  capture_output=True, text=True, cwd=REPO)
            command = time.perf_counter() - start
            if done.returncode:
                raise SystemExit(done.stderr)
            from toolkit.exporter.export import build_export
            from toolkit.exporter.kfp import build_kfp

            exported = build_export(Path(source), Path(tmp))
            warm, result = median_time(lambda: build_kfp(exported, {}), repeat=5)
            rows.append({"notebook": name, "command_s": round(command, 3),
                         "compile_warm_s": round(warm, 3), "tasks": len(result.graph.nodes)})
    return rows


def _toolkit_run(root: Path) -> float:
    toolkit = os.path.join(os.path.dirname(sys.executable), "toolkit")
    values = dict(VALUES, pipeline_root=str(root / "toolkit"), serving_dir=str(root / "serving"))
    args = [toolkit, "run", os.path.join(REPO, "export", "taxi.ipynb"), "-q", "-o", str(root / "run")]
    for name, value in values.items():
        args += ["-p", name, str(value)]
    start = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, "TOOLKIT_PUSH_ROOT": str(root)})
    wall = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(done.stderr)
    return wall


def _kfp_run(root: Path) -> tuple[float, list[dict]]:
    from kfp import components, local

    values = dict(VALUES, pipeline_root=str(root / "toolkit"), serving_dir=str(root / "serving"))
    os.environ["TOOLKIT_PUSH_ROOT"] = str(root)
    os.chdir(REPO)
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root / "kfp"))
    pipeline = components.load_component_from_file(os.path.join(REPO, "export", "taxi.kfp.yaml"))
    start = time.perf_counter()
    pipeline(**values)
    wall = time.perf_counter() - start
    tasks = []
    for summary_file in (root / "kfp").glob("*/*/run_summary"):
        summary = json.loads(summary_file.read_text())
        [execution] = summary["executions"]
        tasks.append({"component": execution["component_id"], "notebook_s": summary["duration_s"],
                      "component_s": execution["duration_s"]})
    return wall, tasks


def bench_run() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        toolkit_wall = _toolkit_run(Path(tmp) / "toolkit_run")
        kfp_wall, tasks = _kfp_run(Path(tmp) / "kfp_run")
    before_component = [t["notebook_s"] - t["component_s"] for t in tasks]
    return {
        "toolkit_run_s": round(toolkit_wall, 1),
        "kfp_local_s": round(kfp_wall, 1),
        "ratio": round(kfp_wall / toolkit_wall, 2),
        "tasks": len(tasks),
        "overhead_per_task_s": round((kfp_wall - toolkit_wall) / len(tasks), 1),
        "median_task_time_outside_its_component_s": round(statistics.median(before_component), 1),
        "per_task": tasks,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--skip-run", action="store_true", help="only the export time")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = {"export": bench_export()}
    if not args.skip_run:
        results["run"] = bench_run()
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for row in results["export"]:
        print(f"export --target kfp {row['notebook']}: {row['command_s']:.2f} s as a command "
              f"(target < 2 s), {row['compile_warm_s']:.3f} s to compile in process "
              f"({row['tasks']} tasks)")
    run = results.get("run")
    if run:
        print(f"taxi, train_steps={VALUES['train_steps']}: toolkit run {run['toolkit_run_s']} s, "
              f"kfp.local {run['kfp_local_s']} s ({run['ratio']}x), {run['tasks']} tasks")
        print(f"overhead per task: {run['overhead_per_task_s']} s; median time a task spends outside "
              f"its component (kernel, imports, upstream from the store): "
              f"{run['median_task_time_outside_its_component_s']} s")
        for task in sorted(run["per_task"], key=lambda t: t["component"]):
            print(f"  {task['component']:<18} notebook {task['notebook_s']:6.1f} s, "
                  f"component {task['component_s']:6.1f} s")


if __name__ == "__main__":
    main()
