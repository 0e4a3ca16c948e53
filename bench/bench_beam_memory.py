"""Benchmark: peak memory of the evaluation engine on Beam (every process) at two sizes,
with the in-memory engine's figure beside it.

The examples (taxi trips sampled with replacement, a synthetic score, 100,000 rows per
Parquet file) are read in the Beam workers, batch by batch, as the Evaluator reads
them; the per-slice statistics are combined by addition, so the pipeline's memory should
not grow with the data. The in-memory engine reads the whole table into one DataFrame.

Each run is a child process; its resident memory, summed over the child and every
process it starts (Beam's workers), is sampled from /proc every 0.1 s. Prints peak
memory, wall time, the ratio of the large run's peak to the small run's, and whether
both engines gave the same example count and AUC.

Usage: python bench/bench_beam_memory.py [--rows 200000,2000000]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from _common import REPO

TAXI_CSV = os.path.join(REPO, "notebooks", "data", "chicago_taxi", "data.csv")
MULTI = ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]
ROWS_PER_FILE = 100_000
CONFIG = {
    "model_specs": [{"label_key": "label", "prediction_key": "prediction"}],
    "slicing_specs": [{}, {"feature_keys": ["payment_type"]}, {"feature_keys": ["trip_start_hour"]}],
    "metrics_specs": [{"metrics": [{"class_name": "ExampleCount"}, {"class_name": "AUC"},
                                   {"class_name": "FairnessIndicators",
                                    "config": '{"thresholds": [0.3, 0.5]}'}]}],
}


def write_data(rows: int, folder: str) -> str:
    """``rows`` sampled taxi trips with a label and a score, as Parquet files in ``folder``."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    source = pd.read_csv(TAXI_CSV)
    os.makedirs(folder, exist_ok=True)
    for index, start in enumerate(range(0, rows, ROWS_PER_FILE)):
        size = min(ROWS_PER_FILE, rows - start)
        df = source.sample(size, replace=True, random_state=index).reset_index(drop=True)
        df["label"] = (df["tips"] > 0.2 * df["fare"]).astype(float)
        z = -2.4 + 3.1 * (df["payment_type"] == "Credit Card") + 0.015 * df["fare"].fillna(0)
        df["prediction"] = 1 / (1 + np.exp(-z))
        table = pa.Table.from_pandas(df[["label", "prediction", "payment_type", "trip_start_hour"]],
                                     preserve_index=False)
        pq.write_table(table, os.path.join(folder, f"part-{index:04d}.parquet"),
                       row_group_size=20_000)
    return os.path.join(folder, "*.parquet")


def child(mode: str, pattern: str) -> None:
    """One evaluation; prints a JSON summary as its last line."""
    import operator

    from toolkit.evaluation import evaluate
    from toolkit.evaluation.beam_engine import evaluate_on_beam

    start = time.perf_counter()
    if mode == "beam":
        def read(pipeline):
            import apache_beam as beam

            return pipeline | "Read" >> beam.io.ReadFromParquetBatched(pattern)

        result = evaluate_on_beam(read, CONFIG, MULTI, prepare=operator.methodcaller("to_pandas"))
    else:
        import pyarrow.parquet as pq

        result = evaluate(pq.read_table(os.path.dirname(pattern)).to_pandas(), CONFIG)
    seconds = time.perf_counter() - start
    overall = {s.key: s for s in result.slices}[()]
    values = {k.name: v.value for k, v in overall.metrics.items()
              if k.name in ("example_count", "auc")}
    print(json.dumps({"seconds": seconds, **{k: float(v) for k, v in values.items()}}))
    sys.stdout.flush()
    os._exit(0)


def _tree_rss(root: int) -> int:
    """Resident bytes of ``root`` and all its descendants (from /proc)."""
    parents: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            parents[int(name)] = int(fields[1])
        except (OSError, IndexError, ValueError):
            continue
    members, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        for child_pid, parent in parents.items():
            if parent == pid and child_pid not in members:
                members.add(child_pid)
                frontier.append(child_pid)
    total = 0
    for pid in members:
        try:
            with open(f"/proc/{pid}/status") as handle:
                for line in handle:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
                        break
        except OSError:
            continue
    return total


def measure(mode: str, pattern: str) -> dict:
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, __file__, "--child", mode, "--pattern", pattern],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
                               cwd=REPO, text=True)
    peak = 0
    while process.poll() is None:
        peak = max(peak, _tree_rss(process.pid))
        time.sleep(0.1)
    output = process.stdout.read().strip().splitlines()
    wall = time.perf_counter() - started
    if process.returncode != 0 or not output:
        raise SystemExit(f"{mode} run failed (exit {process.returncode})")
    return {"peak": peak, "wall": wall, **json.loads(output[-1])}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", default="200000,2000000")
    parser.add_argument("--child", choices=["beam", "memory"])
    parser.add_argument("--pattern")
    options = parser.parse_args()
    if options.child:
        child(options.child, options.pattern)
        return 0
    sizes = [int(s) for s in options.rows.split(",")]
    results: dict[tuple[str, int], dict] = {}
    with tempfile.TemporaryDirectory(prefix="bench-beam-memory-") as folder:
        for rows in sizes:
            pattern = write_data(rows, os.path.join(folder, str(rows)))
            for mode in ("beam", "memory"):
                results[mode, rows] = run = measure(mode, pattern)
                print(f"rows={rows:>9,} {mode:6s} engine: peak RSS (all processes) "
                      f"{run['peak'] / 2**20:8.0f} MB   wall {run['wall']:6.1f} s   "
                      f"examples {run['example_count']:,.0f}   AUC {run['auc']:.12f}", flush=True)
            same = (results["beam", rows]["example_count"] == results["memory", rows]["example_count"]
                    == rows and abs(results["beam", rows]["auc"] - results["memory", rows]["auc"]) <= 1e-12)
            print(f"rows={rows:>9,} same example count and AUC on both engines: {same}", flush=True)
    small, large = min(sizes), max(sizes)
    for mode in ("beam", "memory"):
        ratio = results[mode, large]["peak"] / results[mode, small]["peak"]
        print(f"{mode:6s} engine peak at {large:,} rows / at {small:,} rows: {ratio:.2f}x"
              + (" (target within 1.5x)" if mode == "beam" else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
