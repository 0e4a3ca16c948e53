"""The fairness dashboard in a real JupyterLab 4 (headless Chromium), live and static.

Live: the widget renders, its dropdowns change the chart, and the static copy of
the chart is hidden so only one shows. Wherever widgets cannot run (papermill's
untrusted output, the saved notebook reopened without its kernel, nbconvert's
HTML offline) the static dashboard shows instead. No request leaves localhost.

A thousand slices: the output opens short (the default rows), live and untrusted;
the live filter narrows the rows and the live header row stays in view; the static
"Show all" reveals every slice inside a scrolling box.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from datapaths import GERMAN_CSV
from harness import (active_panel, open_notebook, python_notebook, run_all_cells,
                     screenshot, write_and_papermill)

SOURCE = "dashboard.ipynb"
EXECUTED = "dashboard_papermill.ipynb"
TITLE = "Fairness indicators:"

SETUP = '''import numpy as np
import pandas as pd
import toolkit
from toolkit.visualize.evaluation import dashboard

df = pd.read_csv(csv_path)
z = -0.00025 * df.credit_amount - 0.03 * df.duration + 0.02 * df.age + 0.8
df["prediction"] = 1 / (1 + np.exp(-z))
df["age_group"] = pd.cut(df.age, [0, 25, 40, 200],
                         labels=["young", "middle", "senior"]).astype(str)
config = {
    "model_specs": [{"label_key": "risk", "prediction_key": "prediction"}],
    "slicing_specs": [{}, {"feature_keys": ["sex"]}, {"feature_keys": ["age_group"]},
                      {"feature_keys": ["sex", "age_group"]}],
    "metrics_specs": [{"metrics": [
        {"class_name": "ExampleCount"}, {"class_name": "AUC"},
        {"class_name": "FairnessIndicators", "config": '{"thresholds": [0.5, 0.7]}'},
        {"class_name": "BinaryAccuracy", "threshold": {"value_threshold": {"lower_bound": 0.6}}},
    ]}],
    "options": {"compute_confidence_intervals": True, "min_slice_size": 70},
}
result = toolkit.evaluate(df, config, random_seed=7)'''

pytestmark = pytest.mark.browser


def _notebook() -> nbformat.NotebookNode:
    return python_notebook(SETUP, "toolkit.show(dashboard(result))",
                           parameters=f"csv_path = {str(GERMAN_CSV)!r}")


@pytest.fixture(scope="module")
def notebooks(jupyter_server) -> dict[str, str]:
    """The dashboard notebook, and the same notebook executed by papermill (untrusted)."""
    executed = write_and_papermill(jupyter_server, _notebook(), SOURCE, EXECUTED)
    outputs = executed.cells[-1].outputs
    assert [o.output_type for o in outputs] == ["display_data", "display_data"], outputs
    assert "application/vnd.jupyter.widget-view+json" in outputs[0].data
    assert TITLE in outputs[1].data["text/html"]
    return {"source": SOURCE, "executed": EXECUTED}


def _dashboard_cell(page):
    return active_panel(page).locator(".jp-Cell").nth(2)


def _shoot(page, name: str, cell) -> None:
    """A screenshot of the page with the dashboard cell at the top (tall viewport)."""
    page.set_viewport_size({"width": 1400, "height": 2200})
    cell.evaluate("e => e.scrollIntoView({block: 'start'})")
    page.wait_for_timeout(300)
    screenshot(page, name)


def _visible_titles(scope) -> int:
    return sum(1 for e in scope.get_by_text(TITLE).all() if e.is_visible())


def _bar_widths(scope) -> list[float]:
    """Widths of the drawn bars (the coloured ``i`` elements) of visible charts."""
    return scope.locator("tbody i").evaluate_all(
        "els => els.filter(e => e.offsetParent !== null && e.style.background)"
        ".map(e => e.getBoundingClientRect().width)")


def test_live_dashboard_controls_change_the_chart(page, jupyter_server, request_log, notebooks):
    open_notebook(page, jupyter_server, notebooks["source"])
    run_all_cells(page)
    cell = _dashboard_cell(page)
    selects = cell.locator(".widget-dropdown select")
    selects.first.wait_for(state="visible", timeout=60_000)
    assert selects.count() == 5
    chart = cell.locator(".widget-html").last
    chart.get_by_text(TITLE).first.wait_for(state="visible")

    # One chart on screen: the widget's; the static copy is hidden, the full table is not.
    assert _visible_titles(cell) == 1
    assert not cell.locator("[class^=tkd-static]").first.is_visible()
    assert cell.get_by_text("Full metrics table").is_visible()
    assert "false_positive_rate @ 0.5" in chart.inner_text()
    before = _bar_widths(chart)
    assert len(before) >= 11 and all(w > 0 for w in before)
    _shoot(page, "dashboard_live_default", cell)

    selects.nth(0).select_option(label="auc")
    chart.get_by_text(f"{TITLE} auc").wait_for(state="visible")
    after = _bar_widths(chart)
    assert after != before and all(w > 0 for w in after)

    selects.nth(3).select_option(label="sex")
    page.wait_for_function(  # the widget replaces its content: watch the widget itself
        "el => { const t = el.querySelector('tbody'); return t && t.rows.length === 3; }",
        arg=chart.element_handle())
    assert _visible_titles(cell) == 1
    _shoot(page, "dashboard_live_changed", cell)
    assert request_log.external == [], request_log.external


def test_saved_notebook_reopened_without_kernel_shows_the_static_dashboard(
        page, jupyter_server, request_log, notebooks):
    open_notebook(page, jupyter_server, notebooks["source"])
    run_all_cells(page)
    cell = _dashboard_cell(page)
    cell.locator(".widget-dropdown select").first.wait_for(state="visible", timeout=60_000)
    page.keyboard.press("Control+s")
    page.wait_for_timeout(1500)
    jupyter_server.shutdown_kernels()

    open_notebook(page, jupyter_server, notebooks["source"])
    cell = _dashboard_cell(page)
    cell.get_by_text(TITLE).first.wait_for(state="visible")
    assert cell.locator(".widget-dropdown select").count() == 0
    assert _visible_titles(cell) == 1
    assert all(w > 0 for w in _bar_widths(cell))
    _shoot(page, "dashboard_reopened", cell)
    assert request_log.external == [], request_log.external


def test_papermill_output_shows_the_static_dashboard(page, jupyter_server, request_log,
                                                     notebooks):
    open_notebook(page, jupyter_server, notebooks["executed"])
    cell = _dashboard_cell(page)
    view = cell.locator(".tkv").first
    view.wait_for(state="visible")
    view.scroll_into_view_if_needed()
    text = cell.inner_text()
    assert "live kernel" in text  # the widget's output says where the controls went
    assert cell.locator("select").count() == 0 and cell.locator("script").count() == 0
    assert _visible_titles(cell) == 1
    for expected in ("false_positive_rate @ 0.5", "baseline Overall", "sex:female",
                     "below min_slice_size", "not blessed", "Full metrics table"):
        assert expected in text, expected
    widths = _bar_widths(view)
    assert len(widths) >= 11 and all(w > 0 for w in widths)
    _shoot(page, "dashboard_untrusted", cell)
    assert request_log.external == [], request_log.external


def test_exported_html_shows_the_static_dashboard_offline(page, jupyter_server, request_log,
                                                          notebooks, tmp_path):
    subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "html",
                    "--output-dir", str(tmp_path),
                    str(Path(jupyter_server.root_dir, notebooks["executed"]))],
                   check=True, capture_output=True)
    page.goto((tmp_path / notebooks["executed"].replace(".ipynb", ".html")).as_uri())
    view = page.locator(".tkv").first
    view.wait_for(state="visible")
    assert _visible_titles(page) == 1
    assert len([w for w in _bar_widths(view) if w > 0]) >= 11
    screenshot(page, "dashboard_nbconvert")
    # nbconvert's page template references CDNs (require.js, MathJax, the widget
    # manager); the dashboard itself must not add any request.
    view_html = view.evaluate("e => e.outerHTML")
    assert "http://" not in view_html and "https://" not in view_html
    assert not [url for url in request_log.external if url in view_html]


# ----------------------------------------------------------------------------- 1,000 slices

BIG_SOURCE = "dashboard_big.ipynb"
BIG_EXECUTED = "dashboard_big_papermill.ipynb"
BIG_SLICES = 1001  # Overall and 1,000 regions
#: The default output: title, a few lines of notes and 21-22 rows. Every slice drawn
#: (the dashboard before it chose its rows) was about 24,000 px tall.
MAX_HEIGHT = 1500

BIG_SETUP = '''import numpy as np
import pandas as pd
import toolkit

rng = np.random.default_rng(3)
region = np.repeat(np.arange(1000), 40)
shift = rng.normal(0, 0.5, 1000)
label = (rng.random(len(region)) < 0.4).astype(int)
z = 1.5 * label - 0.8 + shift[region] + rng.normal(0, 1, len(region))
df = pd.DataFrame({"label": label, "prediction": 1 / (1 + np.exp(-z)),
                   "region": [f"r{i:04d}" for i in region]})
config = {
    "model_specs": [{"label_key": "label", "prediction_key": "prediction"}],
    "slicing_specs": [{}, {"feature_keys": ["region"]}],
    "metrics_specs": [{"metrics": [
        {"class_name": "ExampleCount"}, {"class_name": "AUC"},
        {"class_name": "FairnessIndicators", "config": '{"thresholds": [0.3, 0.5, 0.7]}'},
    ]}],
    "options": {"compute_confidence_intervals": True},
}
result = toolkit.evaluate(df, config, random_seed=0)'''


@pytest.fixture(scope="module")
def big_notebooks(jupyter_server) -> dict[str, str]:
    """A 1,000-slice dashboard notebook, and the same notebook executed by papermill."""
    executed = write_and_papermill(jupyter_server, python_notebook(BIG_SETUP, "toolkit.show(result)"),
                                   BIG_SOURCE, BIG_EXECUTED)
    outputs = executed.cells[-1].outputs
    static = outputs[-1].data["text/html"]
    assert len(static.encode("utf-8")) < 1_000_000, len(static)
    return {"source": BIG_SOURCE, "executed": BIG_EXECUTED}


def _output_height(cell) -> float:
    """Total height of a cell's outputs as laid out (scrollHeight: even if JupyterLab
    made the output area itself scroll)."""
    return cell.locator(".jp-OutputArea-output").evaluate_all(
        "els => els.reduce((sum, e) => sum + e.scrollHeight, 0)")


def _rows(scope) -> int:
    """Rows of the first visible chart table inside ``scope``."""
    return scope.evaluate(
        "el => { const t = Array.from(el.querySelectorAll('tbody'))"
        ".find(b => b.offsetParent !== null); return t ? t.rows.length : -1; }")


def test_thousand_slices_live_open_short_filter_and_keep_the_header_in_view(
        page, jupyter_server, request_log, big_notebooks):
    open_notebook(page, jupyter_server, big_notebooks["source"])
    run_all_cells(page)
    cell = active_panel(page).locator(".jp-Cell").nth(1)
    box = cell.locator(".widget-text input")
    box.wait_for(state="visible", timeout=60_000)
    chart = cell.locator(".widget-html").last
    chart.get_by_text(TITLE).first.wait_for(state="visible")
    assert _visible_titles(cell) == 1
    default_rows = _rows(chart.element_handle())
    assert 21 <= default_rows <= 30, default_rows
    height = _output_height(cell)
    assert height < MAX_HEIGHT, height
    _shoot(page, "dashboard_big_live", cell)

    # The filter narrows the rows as the user types: r0010 ... r0019, and the baseline.
    box.fill("r001")
    page.wait_for_function(
        "el => { const t = el.querySelector('tbody'); return t && t.rows.length === 11; }",
        arg=chart.element_handle())
    assert "10 of 1,001 slices match" in chart.inner_text()
    box.fill("")
    page.wait_for_function(
        f"el => {{ const t = el.querySelector('tbody'); return t && t.rows.length === "
        f"{default_rows}; }}", arg=chart.element_handle())

    # "Show all" lists every slice in a scrolling box whose header row stays in view.
    cell.locator(".widget-checkbox input").check()
    page.wait_for_function(
        f"el => {{ const t = el.querySelector('tbody'); return t && t.rows.length === "
        f"{BIG_SLICES}; }}", arg=chart.element_handle(), timeout=60_000)
    assert _output_height(cell) < MAX_HEIGHT + 300  # the rows scroll inside their box
    header = chart.locator("thead th").first
    assert header.evaluate("e => getComputedStyle(e).position") == "sticky"
    scroller = chart.locator("thead").evaluate_handle(
        "e => e.closest('table').parentElement")
    scroller.evaluate("e => { e.scrollTop = 5000; }")
    page.wait_for_timeout(200)
    top_of_box = scroller.evaluate("e => e.getBoundingClientRect().top")
    scrolled = scroller.evaluate("e => e.scrollTop")
    assert scrolled > 1000
    assert abs(header.evaluate("e => e.getBoundingClientRect().top") - top_of_box) < 2
    assert header.is_visible()
    _shoot(page, "dashboard_big_live_show_all", cell)
    assert request_log.external == [], request_log.external


def test_thousand_slices_untrusted_open_short_and_show_all_reveals_every_slice(
        page, jupyter_server, request_log, big_notebooks):
    open_notebook(page, jupyter_server, big_notebooks["executed"])
    cell = active_panel(page).locator(".jp-Cell").nth(1)
    view = cell.locator(".tkv").first
    view.wait_for(state="visible")
    view.scroll_into_view_if_needed()
    assert cell.locator("select").count() == 0 and cell.locator("script").count() == 0
    assert _visible_titles(cell) == 1
    assert 21 <= _rows(view.element_handle()) <= 30
    height = _output_height(cell)
    assert height < MAX_HEIGHT, height
    text = cell.inner_text()
    assert "of 1,001 slices" in text and "result.to_dataframe()" in text
    _shoot(page, "dashboard_big_untrusted", cell)

    details = view.locator("details")
    assert details.count() == 1 and details.get_attribute("open") is None
    details.locator("summary").click()
    listing = details.locator("tbody tr")
    listing.first.wait_for(state="visible")
    assert listing.count() == BIG_SLICES
    box_height = details.evaluate("e => e.getBoundingClientRect().height")
    assert box_height < 700, box_height  # the list scrolls inside a 600 px box
    assert _output_height(cell) < MAX_HEIGHT + 700
    _shoot(page, "dashboard_big_untrusted_show_all", cell)
    assert request_log.external == [], request_log.external
