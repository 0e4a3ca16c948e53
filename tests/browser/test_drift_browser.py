"""The drift-over-time view in a real JupyterLab (headless Chromium), untrusted and trusted.

The taxi trips cut into 16 quarters, with HTML planted in a feature name and in the top
value of ``company``. papermill's output is untrusted (JupyterLab sanitizes it); a signed
copy is trusted. In both the table must be complete (a row per feature, a bar per span,
2016 Q4 flagged for ``company``), the planted HTML must show as text, and no request may
leave localhost. Screenshots go to ``tests/artifacts/``.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest

from datapaths import TAXI_CSV
from harness import REPO_ROOT, open_notebook, screenshot, trust_notebook

NOTEBOOK = "taxi_drift.ipynb"
PLANTED_FEATURE = '<b class="planted">payment_type</b>'
PLANTED_VALUE = '<img class="planted" src="https://planted.invalid/top.png">'
FEATURES = [PLANTED_FEATURE, "company", "fare", "trip_miles", "tips"]
SPANS = 16

SETUP = f'''import pandas as pd
import toolkit

trips = pd.read_csv(csv_path)
when = pd.to_datetime(trips.pop("trip_start_timestamp"), unit="s")
quarter = when.dt.year.astype(str) + " Q" + when.dt.quarter.astype(str)
trips = trips.rename(columns={{"payment_type": {PLANTED_FEATURE!r}}})
trips["company"] = trips["company"].replace("Taxi Affiliation Services", {PLANTED_VALUE!r})
spans = {{label: frame.reset_index(drop=True) for label, frame in trips.groupby(quarter)}}'''

SHOW = (f"toolkit.show_drift(spans, features={FEATURES!r},\n"
        f"                   thresholds={{{PLANTED_FEATURE!r}: 0.1, 'company': 0.1}})")

pytestmark = pytest.mark.browser


def _source_notebook() -> nbformat.NotebookNode:
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                       "language": "python"}
    parameters = nbformat.v4.new_code_cell('csv_path = "data.csv"')
    parameters.metadata["tags"] = ["parameters"]
    notebook.cells = [parameters, nbformat.v4.new_code_cell(SETUP),
                      nbformat.v4.new_code_cell(SHOW)]
    return notebook


@pytest.fixture(scope="module")
def executed_notebook(jupyter_server, tmp_path_factory) -> str:
    """The drift notebook executed by papermill into the server's root (untrusted)."""
    import papermill

    source = tmp_path_factory.mktemp("notebooks") / "source.ipynb"
    nbformat.write(_source_notebook(), source)
    target = Path(jupyter_server.root_dir, NOTEBOOK)
    papermill.execute_notebook(str(source), str(target), parameters={"csv_path": str(TAXI_CSV)},
                               kernel_name="python3", cwd=str(REPO_ROOT), progress_bar=False)
    outputs = nbformat.read(target, as_version=4).cells[-1].outputs
    assert [o.output_type for o in outputs] == ["display_data"], outputs
    html = outputs[0].data["text/html"]
    assert PLANTED_FEATURE not in html and PLANTED_VALUE not in html
    assert "<img" not in html and "<script" not in html and "<svg" not in html
    return NOTEBOOK


def _check_view(page, panel, name: str, request_log) -> None:
    view = panel.locator(".jp-OutputArea-output .tkv").first
    view.wait_for(state="visible")
    view.scroll_into_view_if_needed()
    text = view.inner_text()
    assert "Drift over time" in text
    assert f"{len(FEATURES)} features × {SPANS} spans" in text
    assert "1 of 5 features crossed their threshold against the previous span." in text

    rows = view.locator("tbody tr")
    assert rows.count() == len(FEATURES)
    company = rows.filter(has_text="company").first
    assert "1: 2016 Q4" in company.inner_text()
    planted_row = rows.nth(0)
    assert planted_row.inner_text().startswith(PLANTED_FEATURE)  # shown as text
    assert "none" in planted_row.inner_text()  # payment_type never jumps by 0.1

    sizes = view.locator("tbody i[title]").evaluate_all(
        "els => els.map(e => { const r = e.getBoundingClientRect(); return [r.width, r.height]; })")
    assert len(sizes) == len(FEATURES) * SPANS
    assert all(w > 0 and h > 0 for w, h in sizes), sizes
    last = company.locator("i[title]").nth(SPANS - 1)
    assert "ABOVE THRESHOLD" in last.get_attribute("title")
    # the top value, as text (shortened in the tooltip)
    assert f"top '{PLANTED_VALUE[:40]}" in last.get_attribute("title")

    # the bar keeps its inline style (the sanitizer of an untrusted notebook allows it)
    assert "linear-gradient" in last.evaluate("e => getComputedStyle(e).backgroundImage")

    # nothing planted became an element; nothing was fetched
    assert view.locator(".planted").count() == 0
    assert view.locator("img, script, svg, b.planted").count() == 0
    screenshot(page, name, view)
    # 16 spans make the table wider than the output area: the bars are scrolled into view
    view.evaluate("e => { e.scrollLeft = e.scrollWidth; }")
    screenshot(page, name + "_bars", view)
    assert request_log.external == [], request_log.external


def test_untrusted_drift_view_is_complete_escaped_and_offline(page, jupyter_server, request_log,
                                                              executed_notebook):
    panel = open_notebook(page, jupyter_server, executed_notebook)
    _check_view(page, panel, "drift_view_untrusted", request_log)


def test_trusted_drift_view_is_complete_escaped_and_offline(page, jupyter_server, request_log,
                                                            executed_notebook):
    trusted = "taxi_drift_trusted.ipynb"
    shutil.copy(Path(jupyter_server.root_dir, executed_notebook),
                Path(jupyter_server.root_dir, trusted))
    trust_notebook(jupyter_server, trusted)
    panel = open_notebook(page, jupyter_server, trusted)
    _check_view(page, panel, "drift_view_trusted", request_log)
