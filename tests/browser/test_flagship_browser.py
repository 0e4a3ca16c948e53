"""The executed taxi flagship notebook, opened in real JupyterLab 4: the statistics view
is visible and drawn, and nothing is requested from outside localhost."""
from __future__ import annotations

import shutil
from pathlib import Path

from harness import open_notebook, screenshot


def test_flagship_statistics_view_renders_offline(page, jupyter_server, request_log,
                                                  executed_taxi):
    shutil.copy(executed_taxi.path, Path(jupyter_server.root_dir, "taxi_executed.ipynb"))
    panel = open_notebook(page, jupyter_server, "taxi_executed.ipynb")
    views = panel.locator(".jp-OutputArea-output .tkv")
    views.first.wait_for(state="visible")
    stats = next(views.nth(i) for i in range(views.count())
                 if "Feature statistics" in views.nth(i).inner_text())
    stats.scroll_into_view_if_needed()
    text = stats.inner_text()
    for feature in ("fare", "trip_miles", "payment_type", "company", "train", "eval"):
        assert feature in text
    sizes = stats.locator("i[title]").evaluate_all(
        "els => els.map(e => { const r = e.getBoundingClientRect(); return r.width * r.height; })")
    assert sum(1 for s in sizes if s > 0) >= 100
    box = stats.bounding_box()
    assert box and box["width"] > 600 and box["height"] > 300
    screenshot(page, "flagship_taxi_statistics")
    assert request_log.external == [], request_log.external
