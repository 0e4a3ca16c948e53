"""The fairness dashboard in a real JupyterLab 4 (headless Chromium), live and static.

Live: the widget renders, its dropdowns change the chart, and the static copy of
the chart is hidden so only one shows. Wherever widgets cannot run (papermill's
untrusted output, the saved notebook reopened without its kernel, nbconvert's
HTML offline) the static dashboard shows instead. No request leaves localhost.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from datapaths import GERMAN_CSV
from harness import REPO_ROOT, active_panel, open_notebook, run_all_cells, screenshot

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
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                       "language": "python"}
    parameters = nbformat.v4.new_code_cell(f"csv_path = {str(GERMAN_CSV)!r}")
    parameters.metadata["tags"] = ["parameters"]
    notebook.cells = [parameters, nbformat.v4.new_code_cell(SETUP),
                      nbformat.v4.new_code_cell("toolkit.show(dashboard(result))")]
    return notebook


@pytest.fixture(scope="module")
def notebooks(jupyter_server) -> dict[str, str]:
    """The dashboard notebook, and the same notebook executed by papermill (untrusted)."""
    import papermill

    root = Path(jupyter_server.root_dir)
    nbformat.write(_notebook(), root / SOURCE)
    papermill.execute_notebook(str(root / SOURCE), str(root / EXECUTED), kernel_name="python3",
                               cwd=str(REPO_ROOT), progress_bar=False)
    executed = nbformat.read(root / EXECUTED, as_version=4)
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
