"""Fairness dashboard: build time and HTML size at 30, 300 and 1,000 slices.

    .venv/bin/python bench/bench_dashboard.py [--slices 30,300,1000] [--rows-per-slice 60]
                                              [--no-paired] [--no-browser]

For each count: one Overall slice plus ``slices - 1`` values of a ``region`` feature,
evaluated once by ``toolkit.evaluate`` (ExampleCount, AUC, FairnessIndicators at 0.3,
0.5 and 0.7, confidence intervals on: 33 metric values per slice); the evaluation is
reported but not part of the timings. Then, median of 5: the static view
(``evaluation_view``), the interactive dashboard with its widget (what
``toolkit.show(result)`` builds), one control change (another metric drawn), one
keystroke in the live filter, and the sizes: the dashboard's HTML (what the notebook
stores), the live chart, the text form, whether the CSV download is embedded. With
Chromium installed, the time for the browser to parse and lay out the static view
(median of 3). ``two models`` draws a second evaluation beside the first.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import Browser, median_time  # noqa: E402


def _frame(slices: int, rows_per_slice: int, seed: int = 0, shift: float = 0.0) -> Any:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    rows = (slices - 1) * rows_per_slice
    region = rng.integers(0, slices - 1, rows)
    label = (rng.random(rows) < 0.3 + 0.4 * (region % 7) / 7).astype(int)
    score = 1 / (1 + np.exp(-(1.2 * label - 0.6 + 0.02 * (region % 11) + shift
                               + rng.normal(0, 1, rows))))
    return pd.DataFrame({"label": label, "prediction": score,
                         "region": [f"region_{r:04d}" for r in region]})


CONFIG = {
    "model_specs": [{"label_key": "label", "prediction_key": "prediction"}],
    "slicing_specs": [{}, {"feature_keys": ["region"]}],
    "metrics_specs": [{"metrics": [
        {"class_name": "ExampleCount"}, {"class_name": "AUC"},
        {"class_name": "FairnessIndicators", "config": '{"thresholds": [0.3, 0.5, 0.7]}'},
    ]}],
    "options": {"compute_confidence_intervals": True},
}


def _kb(text: str) -> str:
    return f"{len(text.encode('utf-8')) / 1024:7.1f} KB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", default="30,300,1000",
                        help="comma-separated slice counts (default 30,300,1000)")
    parser.add_argument("--rows-per-slice", type=int, default=60)
    parser.add_argument("--no-paired", action="store_true", help="one model only")
    parser.add_argument("--no-browser", action="store_true")
    args = parser.parse_args()
    counts = [int(n) for n in args.slices.split(",") if n.strip()]

    import toolkit
    from toolkit.visualize import view_of
    from toolkit.visualize.evaluation import EvaluationDashboard, evaluation_view

    browser = None
    if not args.no_browser:
        try:
            browser = Browser()
        except Exception as exc:  # Chromium or Playwright missing: Python figures only
            print(f"(no browser timings: {exc})")
    print(f"{'slices':>6} {'case':11} {'static view':>11} {'dashboard':>10} {'change':>8} "
          f"{'filter':>7} {'HTML':>10} {'live chart':>10} {'text':>10} {'CSV':>4} "
          f"{'rows':>9} {'browser':>9}")
    for count in counts:
        data = _frame(count, args.rows_per_slice)
        start = time.perf_counter()
        result = toolkit.evaluate(data, CONFIG, random_seed=0)
        evaluated = time.perf_counter() - start
        cases = {"one model": None}
        if not args.no_paired:
            cases["two models"] = toolkit.evaluate(_frame(count, args.rows_per_slice, shift=0.3),
                                                   CONFIG, random_seed=0)
        for name, compare_to in cases.items():
            static_s, view = median_time(lambda: evaluation_view(result, compare_to))

            def interactive() -> Any:
                board = (view_of(result) if compare_to is None
                         else EvaluationDashboard(result, compare_to))
                board.widget  # noqa: B018 - builds the ipywidgets
                return board

            board_s, board = median_time(interactive)
            html, live = board.html, board.widget.children[-1].value
            shown = board.html.split("<tbody>", 1)[1].split("</tbody>", 1)[0].count("<tr")
            metrics = [value for _, value in board.controls["metric"].options]

            def change() -> None:
                control = board.controls["metric"]
                control.value = metrics[(metrics.index(control.value) + 1) % len(metrics)]

            change_s, _ = median_time(change)
            letters = iter("region_00012345" * 5)

            def keystroke() -> None:
                box = board.controls["filter"]
                box.value = box.value + next(letters) if len(box.value) < 12 else ""

            filter_s, _ = median_time(keystroke)
            laid_out = f"{browser.render_time(html):7.3f} s" if browser else "      –"
            csv = "yes" if "data:text/csv" in html else "no"
            print(f"{count:>6} {name:11} {static_s * 1000:8.1f} ms {board_s * 1000:7.1f} ms "
                  f"{change_s * 1000:5.1f} ms {filter_s * 1000:4.1f} ms {_kb(html)} "
                  f"{_kb(live)} {_kb(board.text)} {csv:>4} {shown:>4}/{count:<4} {laid_out}")
            del view
        print(f"{'':>6} ({count} slices evaluated in {evaluated:.2f} s, not timed above)")
    if browser:
        browser.close()


if __name__ == "__main__":
    main()
