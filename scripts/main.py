"""The main job: execute the taxi flagship notebook headless and write its report."""
from __future__ import annotations

import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main() -> int:
    import nbformat
    import papermill
    from nbconvert import HTMLExporter

    source = os.path.join(ROOT, "notebooks", "taxi.ipynb")
    run_dir = os.path.join(ROOT, "runs", "main", time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()))
    os.makedirs(run_dir, exist_ok=True)
    executed = os.path.join(run_dir, "taxi.ipynb")
    started = time.perf_counter()
    print(f"running {os.path.relpath(source, ROOT)} headless ...", flush=True)
    papermill.execute_notebook(
        source, executed, cwd=os.path.dirname(source), kernel_name="python3",
        parameters={"pipeline_root": os.path.join(run_dir, "pipeline")},
        progress_bar=False)
    html, _ = HTMLExporter().from_notebook_node(nbformat.read(executed, as_version=4))
    report = os.path.join(run_dir, "taxi.html")
    with open(report, "w", encoding="utf-8") as handle:
        handle.write(html)
    print(f"done in {time.perf_counter() - started:.1f} s")
    print(f"executed notebook: {os.path.relpath(executed, ROOT)}")
    print(f"report:            {os.path.relpath(report, ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
