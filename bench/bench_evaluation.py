"""Benchmark: toolkit.evaluate vs tfma.analyze_raw_data on the same config and data.

Taxi trips (15,000 rows, and 200,000 rows sampled with replacement from them),
three slicing specs (overall, payment type, trip start hour), AUC plus FPR and
FNR at two thresholds; then the same with Poisson-bootstrap confidence
intervals. For each size and mode it prints both timings, the speed ratio, and
the largest absolute difference per metric family, and checks them:

- counts exactly, FPR/FNR within 1e-9, AUC within 1e-9 (the engine reproduces
  TFMA's 10,000-bucket AUC estimator, so only summation order differs);
- with intervals, point values as above and interval widths within a factor 3
  of TFMA's (both are random resamples of 20 bootstrap samples).

Usage: python bench/bench_evaluation.py [--quick] [--no-ci]
  --quick   15,000 rows only
  --no-ci   skip the confidence-interval runs (TFMA's are ~20x slower)
Exit status 1 when a tolerance check fails.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time

import numpy as np
import pandas as pd

from _common import REPO

TAXI_CSV = os.path.join(REPO, "notebooks", "data", "chicago_taxi", "data.csv")
TOLERANCES = {"count": 0.0, "rate": 1e-9, "auc": 1e-9}
SPEED_TARGET = 100.0


def taxi_frame(rows: int) -> pd.DataFrame:
    df = pd.read_csv(TAXI_CSV)
    if rows != len(df):
        df = df.sample(n=rows, replace=True, random_state=0).reset_index(drop=True)
    df["label"] = (df["tips"] > 0.2 * df["fare"]).astype(float)
    credit_card = (df["payment_type"] == "Credit Card").astype(float)
    hour = df["trip_start_hour"].to_numpy()
    z = -2.4 + 3.1 * credit_card + 0.015 * df["fare"] - 0.02 * df["trip_miles"] + 0.35 * np.sin(2 * np.pi * hour / 24)
    df["prediction"] = 1.0 / (1.0 + np.exp(-z))
    return df[["label", "prediction", "payment_type", "trip_start_hour"]]


def eval_config(with_ci: bool) -> dict:
    config = {
        "model_specs": [{"label_key": "label", "prediction_key": "prediction"}],
        "slicing_specs": [{}, {"feature_keys": ["payment_type"]}, {"feature_keys": ["trip_start_hour"]}],
        "metrics_specs": [{"metrics": [
            {"class_name": "ExampleCount"},
            {"class_name": "AUC"},
            {"class_name": "FPR", "config": '"thresholds": [0.3, 0.5]'},
            {"class_name": "FNR", "config": '"thresholds": [0.3, 0.5]'},
        ]}],
    }
    if with_ci:
        config["options"] = {"compute_confidence_intervals": True,
                             "confidence_intervals": {"method": "POISSON_BOOTSTRAP"}}
    return config


def family(name: str) -> str:
    if name == "example_count":
        return "count"
    return "auc" if name.startswith("auc") else "rate"


def _numbers(encoded: dict) -> tuple[list[float], tuple[float, float] | None]:
    kind, value = next(iter(encoded.items()))
    if kind == "arrayValue":
        return [float(v) for v in value["float64Values"]], None
    if kind == "boundedValue":
        return [float(value["value"])], (float(value["lowerBound"]), float(value["upperBound"]))
    return [float(value)], None


def compare(engine, reference) -> tuple[dict[str, float], list[float], int]:
    """Largest |engine - TFMA| per family, CI width ratios, and number of compared values."""
    largest = {f: 0.0 for f in TOLERANCES}
    ratios: list[float] = []
    compared = 0
    ours = dict(engine.slicing_metrics)
    for key, by_output in reference.slicing_metrics:
        if key not in ours:
            raise SystemExit(f"FAIL: slice {key} missing from the engine's result")
        got = ours[key][""][""]
        for name, ref in by_output[""][""].items():
            ref_values, ref_bounds = _numbers(ref)
            values, bounds = _numbers(got[name])
            for a, b in zip(values, ref_values):
                if math.isnan(a) or math.isnan(b):
                    if not (family(name) == "auc" and math.isnan(a)):
                        largest[family(name)] = max(largest[family(name)], 0.0 if math.isnan(a) and math.isnan(b)
                                                    else math.inf)
                    continue
                largest[family(name)] = max(largest[family(name)], abs(a - b))
                compared += 1
            if bounds and ref_bounds and ref_bounds[1] > ref_bounds[0] and not math.isnan(bounds[1] - bounds[0]):
                ratios.append((bounds[1] - bounds[0]) / (ref_bounds[1] - ref_bounds[0]))
    return largest, ratios, compared


def run_case(rows: int, with_ci: bool, tfma) -> bool:
    from toolkit.evaluation import evaluate

    df = taxi_frame(rows)
    config = eval_config(with_ci)
    evaluate(df.head(1000), config)  # warm caches, as a notebook session would be
    start = time.perf_counter()
    engine = evaluate(df, config, random_seed=0)
    engine_seconds = time.perf_counter() - start
    proto = engine.eval_config.to_proto()
    with tempfile.TemporaryDirectory() as output:
        start = time.perf_counter()
        reference = tfma.analyze_raw_data(df, proto, output_path=output)
        tfma_seconds = time.perf_counter() - start
    largest, ratios, compared = compare(engine, reference)
    ratio = tfma_seconds / engine_seconds
    label = f"{rows:,} rows, {'with' if with_ci else 'without'} confidence intervals"
    print(f"\n== {label}: {len(engine.get_slice_names())} slices, {compared} values compared")
    print(f"   engine {engine_seconds:8.3f} s   TFMA {tfma_seconds:8.1f} s   speed-up {ratio:,.0f}x")
    ok = True
    for name, tolerance in TOLERANCES.items():
        verdict = "PASS" if largest[name] <= tolerance else "FAIL"
        ok &= verdict == "PASS"
        print(f"   max |engine - TFMA| {name:5s} {largest[name]:.3e}  (tolerance {tolerance:g})  {verdict}")
    if ratios:
        low, high = min(ratios), max(ratios)
        verdict = "PASS" if 1 / 3 < low and high < 3 else "FAIL"
        ok &= verdict == "PASS"
        print(f"   CI width engine/TFMA: median {np.median(ratios):.2f}, range [{low:.2f}, {high:.2f}]"
              f"  (within 1/3..3)  {verdict}")
    if rows >= 200_000:
        verdict = "PASS" if ratio >= SPEED_TARGET else "FAIL"
        ok &= verdict == "PASS"
        print(f"   speed-up target >= {SPEED_TARGET:.0f}x at 200,000 rows: {verdict}")
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="15,000 rows only")
    parser.add_argument("--no-ci", action="store_true", help="skip the confidence-interval runs")
    args = parser.parse_args(argv)
    from toolkit import _quiet

    start = time.perf_counter()
    import tensorflow_model_analysis as tfma

    _quiet.quiet_tensorflow()
    print(f"import tensorflow_model_analysis: {time.perf_counter() - start:.1f} s (not counted below)")
    sizes = [15_000] if args.quick else [15_000, 200_000]
    modes = [False] if args.no_ci else [False, True]
    ok = all([run_case(rows, with_ci, tfma) for with_ci in modes for rows in sizes])
    print("\nOVERALL:", "PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
