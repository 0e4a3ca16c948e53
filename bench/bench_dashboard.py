"""Fairness dashboard: render time and HTML size for 100 slices.

    .venv/bin/python bench/bench_dashboard.py [--slices 100] [--rows 50000] [--no-browser]

One Overall slice plus ``--slices - 1`` values of a ``region`` feature, evaluated
once by ``toolkit.evaluate`` (ExampleCount, AUC, Fairness Indicators at 0.3 and
0.5: 13 metrics) without and with confidence intervals; the evaluation is not
part of the timings. For each case prints, median of 5: the static view
(``evaluation_view``), the interactive dashboard with its widget, one control
change (the chart re-rendered), the HTML sizes (whole static view, chart alone,
text) and, when Chromium is installed, the time for the browser to parse and lay
out the static view (median of 3).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import Browser, median_time  # noqa: E402


def _frame(slices: int, rows: int, seed: int = 0, shift: float = 0.0) -> Any:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    region = rng.integers(0, slices - 1, rows)
    label = (rng.random(rows) < 0.3 + 0.4 * (region % 7) / 7).astype(int)
    score = 1 / (1 + np.exp(-(1.2 * label - 0.6 + 0.02 * (region % 11) + shift
                               + rng.normal(0, 1, rows))))
    return pd.DataFrame({"label": label, "prediction": score,
                         "region": [f"region_{r:03d}" for r in region]})


def _config(ci: bool) -> dict:
    return {
        "model_specs": [{"label_key": "label", "prediction_key": "prediction"}],
        "slicing_specs": [{}, {"feature_keys": ["region"]}],
        "metrics_specs": [{"metrics": [
            {"class_name": "ExampleCount"}, {"class_name": "AUC"},
            {"class_name": "FairnessIndicators", "config": '{"thresholds": [0.3, 0.5]}'},
        ]}],
        "options": {"compute_confidence_intervals": ci, "min_slice_size": 400},
    }


def _kb(text: str) -> str:
    return f"{len(text.encode('utf-8')) / 1024:6.1f} KB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=100)
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--no-browser", action="store_true")
    args = parser.parse_args()

    import toolkit
    from toolkit.visualize.evaluation import EvaluationDashboard, evaluation_view

    browser = None
    if not args.no_browser:
        try:
            browser = Browser()
        except Exception as exc:  # Chromium or Playwright missing: Python figures only
            print(f"(no browser timings: {exc})")
    data = _frame(args.slices, args.rows)
    other = _frame(args.slices, args.rows, shift=0.3)
    print(f"{args.rows:,} rows, {args.slices} slices")
    print(f"{'case':24} {'static view':>11} {'dashboard':>10} {'change':>8} "
          f"{'HTML':>10} {'chart':>10} {'text':>10} {'browser':>9}")
    for ci in (False, True):
        start = time.perf_counter()
        result = toolkit.evaluate(data, _config(ci), random_seed=0)
        evaluated = time.perf_counter() - start
        slices = len(result.to_dataframe()["slice"].unique())
        cases = {"one model": None,
                 "two models (paired)": toolkit.evaluate(other, _config(ci), random_seed=0)}
        for name, compare_to in cases.items():
            label = f"{name}{', CI' if ci else ''}"
            static_s, view = median_time(lambda: evaluation_view(result, compare_to))

            def interactive() -> Any:
                board = EvaluationDashboard(result, compare_to)
                board.widget  # noqa: B018 - builds the ipywidgets
                return board

            board_s, board = median_time(interactive)
            metrics = [value for _, value in board.controls["metric"].options]

            def change() -> None:
                control = board.controls["metric"]
                control.value = metrics[(metrics.index(control.value) + 1) % len(metrics)]

            change_s, _ = median_time(change)
            shown = f"{browser.render_time(view.html):7.3f} s" if browser else "      –"
            print(f"{label:24} {static_s * 1000:8.1f} ms {board_s * 1000:7.1f} ms "
                  f"{change_s * 1000:5.1f} ms {_kb(view.html)} {_kb(board.chart_html)} "
                  f"{_kb(view.text)} {shown}")
        print(f"  ({slices} slices evaluated in {evaluated:.2f} s, not timed above)")
    if browser:
        browser.close()


if __name__ == "__main__":
    main()
