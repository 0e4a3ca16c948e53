"""The statistics view in a real JupyterLab, executed headless by papermill.

papermill output is untrusted: JupyterLab sanitizes it (no scripts, no <style>,
no SVG). The view must still be complete there, draw its histograms and make no
request beyond localhost. Signed (trusted) and exported HTML copies also get
the script-driven sort and filter controls.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from datapaths import TAXI_CSV
from harness import (REPO_ROOT, open_notebook, screenshot, trust_notebook)

NOTEBOOK = "taxi_statistics.ipynb"
FEATURES = 18

pytestmark = pytest.mark.browser


def _source_notebook() -> nbformat.NotebookNode:
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                       "language": "python"}
    parameters = nbformat.v4.new_code_cell('csv_path = "data.csv"')
    parameters.metadata["tags"] = ["parameters"]
    notebook.cells = [
        parameters,
        nbformat.v4.new_code_cell("import pandas\nimport toolkit"),
        nbformat.v4.new_code_cell("toolkit.show_statistics(pandas.read_csv(csv_path))"),
    ]
    return notebook


@pytest.fixture(scope="module")
def executed_notebook(jupyter_server, tmp_path_factory) -> str:
    """The taxi statistics notebook executed by papermill into the server's root."""
    import papermill

    source = tmp_path_factory.mktemp("notebooks") / "source.ipynb"
    nbformat.write(_source_notebook(), source)
    target = Path(jupyter_server.root_dir, NOTEBOOK)
    papermill.execute_notebook(str(source), str(target), parameters={"csv_path": str(TAXI_CSV)},
                               kernel_name="python3", cwd=str(REPO_ROOT), progress_bar=False)
    cells = nbformat.read(target, as_version=4).cells
    outputs = next(c for c in cells if "show_statistics" in c.source).outputs
    # show_statistics() as the last line of a cell is displayed once, not echoed again.
    assert [o.output_type for o in outputs] == ["display_data"], outputs
    assert "text/html" in outputs[0].data and "text/plain" in outputs[0].data
    return NOTEBOOK


def _bar_sizes(view) -> list[tuple[float, float]]:
    return view.locator("i[title]").evaluate_all(
        "els => els.map(e => { const r = e.getBoundingClientRect(); return [r.width, r.height]; })")


def test_untrusted_statistics_view_is_complete_and_offline(page, jupyter_server, request_log,
                                                           executed_notebook):
    panel = open_notebook(page, jupyter_server, executed_notebook)
    view = panel.locator(".jp-OutputArea-output .tkv").first
    view.wait_for(state="visible")
    view.scroll_into_view_if_needed()

    text = view.inner_text()
    for expected in ("Feature statistics", "Numeric features", "Categorical features",
                     "fare", "payment_type", "Cash"):
        assert expected in text
    bars = _bar_sizes(view)
    drawn = [(w, h) for w, h in bars if w > 0 and h > 0]
    assert len(drawn) >= 100, f"only {len(drawn)} of {len(bars)} histogram bars have a size"
    box = view.bounding_box()
    assert box and box["width"] > 600 and box["height"] > 300

    # Untrusted: the sanitizer removed the script, the static version is what shows.
    assert view.locator("script").count() == 0
    assert view.locator(".tkv-static-note").is_visible()
    assert view.locator("select").count() == 0
    assert view.locator("details summary").first.is_visible()

    screenshot(page, "statistics_view_untrusted")
    assert request_log.external == [], request_log.external


def test_trusted_statistics_view_sorts_and_filters(page, jupyter_server, request_log,
                                                   executed_notebook):
    trusted = "taxi_statistics_trusted.ipynb"
    shutil.copy(Path(jupyter_server.root_dir, executed_notebook),
                Path(jupyter_server.root_dir, trusted))
    trust_notebook(jupyter_server, trusted)
    panel = open_notebook(page, jupyter_server, trusted)
    view = panel.locator(".jp-OutputArea-output .tkv").first
    view.locator("select").wait_for(state="visible")
    assert view.locator(".tkv-static-note").count() == 0

    view.locator("input[type=search]").fill("fare")
    assert view.locator("tbody[data-f]:visible").count() == 1
    assert f"1 of {FEATURES} features" in view.inner_text()

    view.locator("input[type=search]").fill("")
    view.locator("select").select_option("m")
    first = view.locator("table.tkv-sortable").first.locator("tbody[data-f]").first
    assert first.get_attribute("data-f") == "pickup_census_tract"

    screenshot(page, "statistics_view_trusted")
    assert request_log.external == [], request_log.external


def test_exported_html_keeps_the_view_and_its_controls(page, jupyter_server, request_log,
                                                       executed_notebook, tmp_path):
    subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "html",
                    "--output-dir", str(tmp_path),
                    str(Path(jupyter_server.root_dir, executed_notebook))],
                   check=True, capture_output=True)
    exported = tmp_path / NOTEBOOK.replace(".ipynb", ".html")
    page.goto(exported.as_uri())
    view = page.locator(".tkv").first
    view.wait_for(state="visible")
    view.locator("select").wait_for(state="visible")
    assert len([s for s in _bar_sizes(view) if s[0] > 0 and s[1] > 0]) >= 100
    view.locator("input[type=search]").fill("payment")
    assert view.locator("tbody[data-f]:visible").count() == 1
    screenshot(page, "statistics_view_nbconvert")
    # nbconvert's own page template may reference a CDN (require.js, MathJax);
    # the view itself must not add any request.
    view_html = view.evaluate("e => e.outerHTML")
    assert not [url for url in request_log.external if url in view_html]
    assert "http://" not in view_html and "https://" not in view_html
