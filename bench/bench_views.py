"""Offline statistics view: HTML size and render time, taxi data and a 300-feature table.

    .venv/bin/python bench/bench_views.py [--features 300] [--rows 5000] [--no-browser]

For each case prints the time to build the view in Python (median of 5), the
HTML size, and, when Chromium is installed, the time for the browser to parse
and lay it out (page.set_content + forced layout, median of 3). Statistics are
computed with TFDV once per case and are not part of the timings.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import REPO, Browser, median_time  # noqa: E402
TAXI = os.path.join(REPO, "notebooks", "data", "chicago_taxi", "data.csv")


def _wide_frame(features: int, rows: int) -> Any:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    numeric = features * 2 // 3
    columns: dict[str, Any] = {}
    for i in range(numeric):
        values = rng.gamma(1.0 + i % 5, 10.0, rows) if i % 2 else rng.normal(i, 1 + i % 7, rows)
        values[rng.random(rows) < (i % 10) / 50] = np.nan
        columns[f"num_{i:03d}"] = values
    for i in range(features - numeric):
        vocabulary = np.array([f"value_{k}" for k in range(3 + i * 7 % 200)])
        columns[f"cat_{i:03d}"] = rng.choice(vocabulary, rows)
    return pd.DataFrame(columns)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", type=int, default=300)
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--no-browser", action="store_true")
    args = parser.parse_args()

    import pandas as pd
    import tensorflow_data_validation as tfdv

    from toolkit.visualize import statistics_view

    def stats(frame: Any) -> Any:
        return tfdv.generate_statistics_from_dataframe(frame.reset_index(drop=True))

    def halves(frame: Any) -> dict[str, Any]:
        middle = len(frame) // 2
        return {"train": stats(frame.iloc[:middle]), "eval": stats(frame.iloc[middle:])}

    taxi = pd.read_csv(TAXI)
    wide = _wide_frame(args.features, args.rows)
    cases = {
        "taxi": {"data": stats(taxi)},
        "taxi, train vs eval": halves(taxi),
        f"{args.features} features": {"data": stats(wide)},
        f"{args.features} features, train vs eval": halves(wide),
    }
    browser = None
    if not args.no_browser:
        try:
            browser = Browser()
        except Exception as exc:  # Chromium or Playwright missing: Python figures only
            print(f"(no browser timings: {exc})")
    print(f"{'case':34} {'build':>9} {'HTML':>10} {'browser':>9}")
    for name, by_split in cases.items():
        seconds, view = median_time(lambda: statistics_view(by_split), repeat=5)
        size = len(view.html.encode("utf-8"))
        shown = f"{browser.render_time(view.html):7.3f} s" if browser else "      –"
        print(f"{name:34} {seconds * 1000:7.1f} ms {size / 1024:7.1f} KB {shown}")
    if browser:
        browser.close()


if __name__ == "__main__":
    main()
