"""The main job, end to end: the taxi flagship notebook run interactively headless,
exported to a parameterized pipeline, and the export run with non-default parameters.

Everything goes under runs/main/<UTC time>/; the paths are printed at the end.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK = os.path.join(ROOT, "notebooks", "taxi.ipynb")


def _step(title: str) -> float:
    print(f"\n== {title}", flush=True)
    return time.perf_counter()


def main() -> int:
    import nbformat
    import papermill
    from nbconvert import HTMLExporter

    from toolkit.runner import kernel_config

    run_dir = os.path.join(ROOT, "runs", "main", time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()))
    interactive_dir = os.path.join(run_dir, "interactive")
    export_dir = os.path.join(run_dir, "export")
    production_dir = os.path.join(run_dir, "production")
    os.makedirs(interactive_dir)
    os.environ["TOOLKIT_PUSH_ROOT"] = run_dir  # models are pushed under this run's folder
    toolkit_cmd = [os.path.join(os.path.dirname(sys.executable), "toolkit")]

    started = _step("1/3 run notebooks/taxi.ipynb headless (interactive mode)")
    executed = os.path.join(interactive_dir, "taxi.ipynb")
    with kernel_config() as config:  # the kernel on private IPC sockets, as toolkit run does
        papermill.execute_notebook(
            NOTEBOOK, executed, cwd=os.path.dirname(NOTEBOOK), kernel_name="python3",
            parameters={"pipeline_root": os.path.join(interactive_dir, "pipeline"),
                        "serving_dir": os.path.join(interactive_dir, "serving")},
            progress_bar=False, config=config)
    html, _ = HTMLExporter().from_notebook_node(nbformat.read(executed, as_version=4))
    report = os.path.join(interactive_dir, "taxi.html")
    with open(report, "w", encoding="utf-8") as handle:
        handle.write(html)
    print(f"   done in {time.perf_counter() - started:.1f} s")

    started = _step("2/3 toolkit export notebooks/taxi.ipynb")
    subprocess.run(toolkit_cmd + ["export", NOTEBOOK, "-o", export_dir], check=True, cwd=ROOT)
    print(f"   done in {time.perf_counter() - started:.1f} s")

    started = _step("3/3 toolkit run the export with non-default parameters")
    run = subprocess.run(toolkit_cmd + [
        "run", os.path.join(export_dir, "taxi.ipynb"),
        "-p", "pipeline_name", "taxi_production",
        "-p", "pipeline_root", os.path.join(production_dir, "pipeline"),
        "-p", "serving_dir", os.path.join(production_dir, "serving"),
        "-p", "train_steps", "600",
        "-o", production_dir], cwd=ROOT)
    print(f"   done in {time.perf_counter() - started:.1f} s (exit {run.returncode})")

    rel = lambda path: os.path.relpath(path, ROOT)  # noqa: E731
    print("\nResults")
    print(f"  interactive notebook: {rel(executed)}")
    print(f"  interactive report:   {rel(report)}")
    print(f"  exported pipeline:    {rel(os.path.join(export_dir, 'taxi.ipynb'))}")
    print(f"  production notebook:  {rel(os.path.join(production_dir, 'taxi.ipynb'))}")
    print(f"  production summary:   {rel(os.path.join(production_dir, 'summary.json'))}")
    print(f"  pushed models:        {rel(os.path.join(production_dir, 'serving'))}")
    return run.returncode


if __name__ == "__main__":
    sys.exit(main())
