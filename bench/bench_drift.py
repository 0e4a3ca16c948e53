"""Drift over time view: build time and HTML size at 100 spans x 50 features.

    .venv/bin/python bench/bench_drift.py [--spans 100] [--features 50] [--rows 2000]
                                          [--no-browser] [--save drift.html]

Per-span statistics are computed with TFDV once (not timed) from synthetic frames
whose distributions move slowly, with a jump at one span. Prints the median time to
compute the distances (``compute_drift``), to build the view (``drift_view``), the
HTML and text sizes, and, when Chromium is installed, the time for the browser to
parse and lay it out (median of 3).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import Browser, median_time  # noqa: E402


def _frames(spans: int, features: int, rows: int) -> list[Any]:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    numeric = features * 2 // 3
    frames = []
    for s in range(spans):
        jump = 3.0 if s >= spans * 2 // 3 else 0.0
        columns: dict[str, Any] = {}
        for i in range(numeric):
            values = rng.normal(i + s * 0.01 + (jump if i % 5 == 0 else 0.0), 1 + i % 7, rows)
            values[rng.random(rows) < (i % 10) / 50] = np.nan
            columns[f"num_{i:03d}"] = values
        for i in range(features - numeric):
            vocabulary = np.array([f"value_{k}" for k in range(3 + i * 7 % 40)])
            weights = np.linspace(1.0, 2.0 + (jump if i % 4 == 0 else 0.0), len(vocabulary))
            columns[f"cat_{i:03d}"] = rng.choice(vocabulary, rows, p=weights / weights.sum())
        frames.append(pd.DataFrame(columns))
    return frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=100)
    parser.add_argument("--features", type=int, default=50)
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--no-browser", action="store_true")
    parser.add_argument("--save", help="write the view as a standalone HTML page")
    args = parser.parse_args()

    import tensorflow_data_validation as tfdv

    from toolkit.drift import compute_drift
    from toolkit.visualize.drift import drift_view

    start = time.perf_counter()
    stats = [tfdv.generate_statistics_from_dataframe(f)
             for f in _frames(args.spans, args.features, args.rows)]
    print(f"statistics of {args.spans} spans x {args.features} features "
          f"({args.rows} rows each, TFDV, not timed): {time.perf_counter() - start:.1f} s")

    compute_time, report = median_time(lambda: compute_drift(stats, thresholds=0.1))
    build_time, view = median_time(lambda: drift_view(report))
    html_size = len(view.html.encode("utf-8"))
    text_size = len(view.text.encode("utf-8"))
    flagged = sum(map(len, report.flagged.values()))
    print(f"compute_drift: {compute_time * 1000:.0f} ms (median of 5); "
          f"{flagged} flagged span-features")
    print(f"drift_view:    {build_time * 1000:.0f} ms (median of 5)")
    print(f"HTML: {html_size:,} bytes ({html_size / (args.spans * args.features):.0f} per bar); "
          f"text: {text_size:,} bytes")
    if args.save:
        view.save(args.save)
        print(f"saved {args.save}")
    if args.no_browser:
        return
    try:
        browser = Browser()
    except Exception as exc:  # Chromium or Playwright not installed
        print(f"browser: skipped ({type(exc).__name__}: {exc})"[:200])
        return
    try:
        print(f"browser layout: {browser.render_time(view.html) * 1000:.0f} ms (median of 3)")
    finally:
        browser.close()


if __name__ == "__main__":
    main()
