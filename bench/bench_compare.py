"""Benchmark ``toolkit.compare`` of many candidates over many slices.

Builds N evaluations of one synthetic frame (a feature with S values, so S + 1 slices;
AUC, binary accuracy and example count, plus the curves' plots) with the real engine,
then times, median of 5:
  1. ``toolkit.compare(*results)`` and its long frame (``to_dataframe()``): the build,
     whose target is under 1 s for 20 candidates × 200 slices;
  2. the notebook view (HTML, bounded: rows per metric and curve slices are capped);
and prints the frame's rows and the HTML size. The evaluations themselves are not timed.

Usage:
    python bench/bench_compare.py [--candidates 20] [--slices 200] [--rows 20000] [--json]
"""
from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import median_time  # noqa: E402

TARGET_S = 1.0


def _results(candidates: int, slices: int, rows: int) -> list:
    import numpy as np
    import pandas as pd

    from toolkit.evaluation import evaluate

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"label": rng.integers(0, 2, rows),
                          "store": rng.integers(0, slices, rows).astype(str)})
    config = {"slicing_specs": [{}, {"feature_keys": ["store"]}],
              "metrics_specs": [{"metrics": [{"class_name": "ExampleCount"},
                                             {"class_name": "AUC"},
                                             {"class_name": "BinaryAccuracy"},
                                             {"class_name": "ConfusionMatrixPlot"},
                                             {"class_name": "CalibrationPlot"}]}]}
    found = []
    for k in range(candidates):
        skill = 0.2 + 0.6 * k / max(candidates - 1, 1)
        score = np.clip(frame["label"] * skill + rng.random(rows) * (1 - skill), 0, 1)
        found.append(evaluate(frame.assign(prediction=score), config))
    return found


def bench(candidates: int, slices: int, rows: int) -> dict:
    import toolkit

    results = _results(candidates, slices, rows)
    names = [f"run {i}" for i in range(candidates)]

    def build():
        comparison = toolkit.compare(*results, names=names)
        return comparison, comparison.to_dataframe()

    build_s, (comparison, frame) = median_time(build)
    view_s, html = median_time(lambda: toolkit.compare(*results, names=names)._repr_html_(),
                               repeat=3)
    return {"candidates": candidates, "slices": slices + 1, "frame_rows": len(frame),
            "build_s": round(build_s, 4), "target_s": TARGET_S, "met": build_s < TARGET_S,
            "view_s": round(view_s, 4), "html_bytes": len(html.encode("utf-8"))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=20)
    parser.add_argument("--slices", type=int, default=199,
                        help="values of the slicing feature (slices = this + Overall)")
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    found = bench(args.candidates, args.slices, args.rows)
    if args.json:
        print(json.dumps(found))
        return
    print(f"toolkit.compare: {found['candidates']} candidates x {found['slices']} slices, "
          f"{found['frame_rows']:,} rows in to_dataframe()")
    print(f"  build (compare + to_dataframe): {found['build_s']:.3f} s "
          f"(target < {TARGET_S:g} s: {'met' if found['met'] else 'MISSED'})")
    print(f"  notebook view: {found['view_s']:.3f} s, {found['html_bytes'] / 1e6:.2f} MB of HTML")


if __name__ == "__main__":
    main()
