"""Benchmark: the evaluation engine on Beam vs in memory (and vs TFMA on the same runner).

Taxi trips sampled to 200,000 rows with a synthetic score, slices overall / payment
type / trip start hour, ExampleCount, AUC and FairnessIndicators at two thresholds.
Prints wall times, the Beam engine's overhead over the in-memory engine, and the
largest difference of any metric (counts must be equal, the rest within 1e-12).

Usage: python bench/bench_beam_evaluator.py [--rows N] [--runner in-memory|multi] [--tfma]
  --runner multi   the multi-processing DirectRunner with 2 workers
  --tfma           also time TFMA's pipeline on the same runner with the same EvalConfig
                   (slow), and print how far its numbers are from the Beam engine's

Memory at 200,000 vs 2,000,000 rows: bench/bench_beam_memory.py.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import pandas as pd

from _common import REPO

TAXI_CSV = os.path.join(REPO, "notebooks", "data", "chicago_taxi", "data.csv")
RUNNERS = {"in-memory": ["--runner=DirectRunner", "--direct_running_mode=in_memory"],
           "multi": ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]}


def frame(rows: int) -> pd.DataFrame:
    df = pd.read_csv(TAXI_CSV).sample(rows, replace=True, random_state=0).reset_index(drop=True)
    df["label"] = (df["tips"] > 0.2 * df["fare"]).astype(float)
    z = -2.4 + 3.1 * (df["payment_type"] == "Credit Card") + 0.015 * df["fare"].fillna(0)
    df["prediction"] = 1 / (1 + np.exp(-z))
    return df[["label", "prediction", "payment_type", "trip_start_hour"]]


CONFIG = {
    "model_specs": [{"label_key": "label", "prediction_key": "prediction"}],
    "slicing_specs": [{}, {"feature_keys": ["payment_type"]}, {"feature_keys": ["trip_start_hour"]}],
    "metrics_specs": [{"metrics": [{"class_name": "ExampleCount"}, {"class_name": "AUC"},
                                   {"class_name": "FairnessIndicators",
                                    "config": '{"thresholds": [0.3, 0.5]}'}]}],
}


def worst_difference(a, b) -> float:
    """The largest difference of any metric both results have (inf when a count differs
    or a slice is missing from ``b``)."""
    worst = 0.0
    by_key = {s.key: s for s in b.slices}
    for sa in a.slices:
        sb = by_key.get(sa.key)
        if sb is None:
            return float("inf")
        for key, value in sa.metrics.items():
            if key not in sb.metrics:
                continue
            x, y = np.asarray(value.value, float), np.asarray(sb.metrics[key].value, float)
            if key.name == "example_count" and not np.array_equal(x, y):
                return float("inf")
            diff = np.abs(x - y)
            if diff.size and np.isfinite(diff).any():
                worst = max(worst, float(np.nanmax(diff)))
    return worst


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--runner", choices=sorted(RUNNERS), default="multi")
    parser.add_argument("--tfma", action="store_true")
    options = parser.parse_args()
    from toolkit.evaluation import evaluate
    from toolkit.evaluation.beam_engine import evaluate_on_beam

    df = frame(options.rows)
    args = RUNNERS[options.runner]
    start = time.perf_counter()
    memory = evaluate(df, CONFIG)
    in_memory = time.perf_counter() - start
    start = time.perf_counter()
    beam = evaluate_on_beam(df, CONFIG, args)
    on_beam = time.perf_counter() - start
    worst = worst_difference(memory, beam)
    print(f"rows={options.rows:,} runner={options.runner} ({' '.join(args)})")
    print(f"in-memory engine   {in_memory:8.2f} s")
    print(f"Beam engine        {on_beam:8.2f} s   overhead {on_beam - in_memory:.2f} s "
          f"({on_beam / in_memory:.0f}x)")
    print(f"largest metric difference {worst:.3g} (counts equal: {worst != float('inf')})")
    if options.tfma:
        from toolkit.evaluation import tfma_adapter

        start = time.perf_counter()
        with tfma_adapter.beam_pipeline_args(args):
            tfma = evaluate(df, CONFIG, engine="tfma")
        tfma_time = time.perf_counter() - start
        tfma_worst = worst_difference(tfma, beam)
        print(f"tfma on the runner {tfma_time:8.2f} s   Beam engine is {tfma_time / on_beam:.1f}x faster "
              "(target 50x)")
        print(f"largest difference Beam engine vs TFMA {tfma_worst:.3g} "
              f"(counts equal: {tfma_worst != float('inf')}, equal within 1e-12: {tfma_worst <= 1e-12})")
    return 0 if worst <= 1e-12 else 1


if __name__ == "__main__":
    sys.exit(main())
