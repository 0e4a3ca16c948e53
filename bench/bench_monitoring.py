"""The monitoring notebook end to end, cold and cached.

    .venv/bin/python bench/bench_monitoring.py [--span 16] [--keep DIR]

Runs ``notebooks/monitoring.ipynb`` headless with papermill, in interactive mode as in
Jupyter: every span up to ``--span`` ingested with its statistics, the drift view, three models (two replayed spans and the
current one) trained, evaluated against the latest blessed model and pushed or refused,
and a rollback.

1. cold: a fresh pipeline root;
2. cached: the same notebook again on that root (every component from the cache except
   the resolver, which always resolves anew, and the rollback, which publishes one more
   version);
3. reference, same run: a notebook with the monitoring notebook's imports only, the fixed
   cost of a kernel that loads TensorFlow, TFDV and TFMA (the faster of two runs).

Prints wall times, the per-section times of the cold run (from papermill's cell
durations), and the ratios cold/reference and cached/reference.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import REPO  # noqa: E402

NOTEBOOK = os.path.join(REPO, "notebooks", "monitoring.ipynb")
#: first line of a cell -> the section it is reported under
SECTIONS = {"import csv": "imports (TensorFlow, TFDV, TFMA)",
            "FIRST_YEAR = ": "cut the CSV into span folders",
            "SPAN_PATTERN = ": "first year: ingest, statistics, schema",
            "schema = ": "curate and import the schema",
            "def ingest(": "ingest and statistics, every span",
            "WATCHED = ": "drift view",
            "statistics_gen = span_statistics": "validate the span against the previous one",
            "for number in range(": "replay: two models",
            "model = retrain(span)": "the span's model",
            "versions = ": "rollback"}


def _run(notebook: str, root: str, executed: str, span: int) -> float:
    """Wall time of one headless run in interactive mode (as in Jupyter: papermill from the
    notebook's folder, the kernel on the toolkit runner's private sockets). ``toolkit run``
    would run it in production mode, where a replayed span's refusal stops the notebook."""
    import papermill

    from toolkit.runner import kernel_config

    started = time.perf_counter()
    with kernel_config() as config:
        papermill.execute_notebook(notebook, executed, cwd=os.path.join(REPO, "notebooks"),
                                   kernel_name="python3", progress_bar=False, config=config,
                                   parameters={"pipeline_root": os.path.join(root, "pipeline"),
                                               "serving_dir": os.path.join(root, "serving"),
                                               "span": span})
    return time.perf_counter() - started


def _executions(root: str) -> list[dict]:
    """Every execution recorded in the run's metadata store, oldest first."""
    from toolkit import InteractiveContext

    return InteractiveContext(pipeline_name="monitoring",
                              pipeline_root=os.path.join(root, "pipeline")).store.executions()


def _imports_only(folder: str) -> str:
    """The monitoring notebook's parameters and import cells, nothing else."""
    import nbformat

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    keep = [c for c in notebook.cells if c.cell_type == "code"
            and ("parameters" in c.metadata.get("tags", []) or c.source.startswith("import csv"))]
    notebook.cells = keep
    path = os.path.join(folder, "imports_only.ipynb")
    nbformat.write(notebook, path)
    return path


def _sections(executed: str) -> list[tuple[str, float]]:
    import nbformat

    notebook = nbformat.read(executed, as_version=4)
    rows = []
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        for start, label in SECTIONS.items():
            if cell.source.startswith(start):
                rows.append((label, float(cell.metadata.get("papermill", {}).get("duration") or 0)))
    return rows


def _outcomes(executed: str) -> list[str]:
    """What the cold run printed about each span's model and the rollback."""
    import nbformat

    lines = []
    for cell in nbformat.read(executed, as_version=4).cells:
        for output in cell.get("outputs", []):
            for line in output.get("text", "").splitlines() if output.get("name") == "stdout" \
                    else []:
                if line.startswith("span ") or "re-published" in line or "nothing older" in line:
                    lines.append(line)
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--span", type=int, default=16)
    parser.add_argument("--keep", help="keep the runs in this folder (default: a temporary one)")
    args = parser.parse_args()

    folder = args.keep or tempfile.mkdtemp(prefix="bench-monitoring-")
    os.makedirs(folder, exist_ok=True)
    os.environ["TOOLKIT_PUSH_ROOT"] = folder
    try:
        cold_notebook = os.path.join(folder, "cold.ipynb")
        cold = _run(NOTEBOOK, folder, cold_notebook, args.span)
        cold_rows = _executions(folder)
        # after the cold run, so that both it and the cached run find the libraries in the
        # page cache, as the cold run did after its first import
        reference = min(_run(_imports_only(folder), os.path.join(folder, "reference"),
                             os.path.join(folder, "reference.ipynb"), args.span)
                        for _ in range(2))
        cached = _run(NOTEBOOK, folder, os.path.join(folder, "cached.ipynb"), args.span)
        last_cold = max(r["id"] for r in cold_rows)
        again = [r for r in _executions(folder) if r["id"] > last_cold]
        from_cache = sum(1 for r in again if r["state"] == "CACHED")
        recomputed = [r["component_id"] for r in again if r["state"] != "CACHED"]
        figures = {
            "span": args.span,
            "executions_cold": len(cold_rows),
            "executions_cached_run": len(again),
            "from_cache_in_cached_run": from_cache,
            "not_from_cache_in_cached_run": recomputed,
            "cold_s": round(cold, 1),
            "cached_s": round(cached, 1),
            "reference_imports_only_s": round(reference, 1),
            "cold_over_reference": round(cold / reference, 2),
            "cached_over_reference": round(cached / reference, 2),
            "cached_over_cold": round(cached / cold, 3),
        }
        print(f"monitoring notebook, spans 1..{args.span}: {len(cold_rows)} executions")
        print(f"  cold run                 {cold:7.1f} s")
        for label, seconds in _sections(cold_notebook):
            print(f"    {label:<44} {seconds:6.1f} s")
        for line in _outcomes(cold_notebook):
            print(f"      {line}")
        print(f"  cached run               {cached:7.1f} s  ({cached / cold:.0%} of cold; "
              f"{from_cache} of {len(again)} executions from the cache; not: "
              f"{', '.join(recomputed) or 'none'})")
        print(f"  imports only (reference) {reference:7.1f} s  "
              f"(cold {cold / reference:.1f}x, cached {cached / reference:.2f}x)")
        print(json.dumps(figures))
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
