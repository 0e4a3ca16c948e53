"""The dashboard's ROC, precision-recall and calibration curves in a real JupyterLab 4.

The notebook evaluates the German credit data with a baseline model and TFMA's
ConfusionMatrixPlot and CalibrationPlot, and shows the static dashboard; papermill
executes it (so its output is untrusted: JupyterLab sanitizes it) and headless
Chromium opens it: the three chart images survive the sanitizer, decode and show,
and no request leaves localhost. Their lines and coordinates are checked in
``tests/test_curves.py``.
"""
from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from datapaths import GERMAN_CSV
from harness import REPO_ROOT, active_panel, open_notebook, screenshot

SOURCE = "curves.ipynb"
EXECUTED = "curves_papermill.ipynb"
SETUP = '''import numpy as np
import pandas as pd
import toolkit
from toolkit.visualize.evaluation import evaluation_view

df = pd.read_csv(csv_path)
z = -0.00025 * df.credit_amount - 0.03 * df.duration + 0.02 * df.age + 0.8
df["prediction"] = 1 / (1 + np.exp(-z))
df["baseline"] = 1 / (1 + np.exp(-(0.8 - 0.0001 * df.credit_amount)))
config = {
    "model_specs": [{"label_key": "risk", "prediction_key": "prediction"}],
    "slicing_specs": [{}, {"feature_keys": ["sex"]}],
    "metrics_specs": [{"metrics": [
        {"class_name": "ExampleCount"}, {"class_name": "AUC"},
        {"class_name": "ConfusionMatrixPlot"}, {"class_name": "CalibrationPlot"},
    ]}],
}
result = toolkit.evaluate(df, config, baseline="baseline")'''

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def executed(jupyter_server) -> str:
    import papermill

    root = Path(jupyter_server.root_dir)
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    parameters = nbformat.v4.new_code_cell(f"csv_path = {str(GERMAN_CSV)!r}")
    parameters.metadata["tags"] = ["parameters"]
    notebook.cells = [parameters, nbformat.v4.new_code_cell(SETUP),
                      nbformat.v4.new_code_cell("toolkit.show(evaluation_view(result))")]
    nbformat.write(notebook, root / SOURCE)
    papermill.execute_notebook(str(root / SOURCE), str(root / EXECUTED), kernel_name="python3",
                               cwd=str(REPO_ROOT), progress_bar=False)
    html = nbformat.read(root / EXECUTED, as_version=4).cells[-1].outputs[0].data["text/html"]
    assert html.count('<img src="data:image/svg+xml;base64,') == 3 and "<script" not in html
    return EXECUTED


def test_untrusted_output_shows_the_curves(page, jupyter_server, request_log, executed):
    open_notebook(page, jupyter_server, executed)
    cell = active_panel(page).locator(".jp-Cell").nth(2)
    charts = cell.locator('img[src^="data:image/svg+xml"]')
    charts.first.wait_for(state="visible")
    charts.first.scroll_into_view_if_needed()
    titles = charts.evaluate_all("els => els.map(e => e.getAttribute('alt'))")
    assert titles == ["ROC curve: Overall", "Precision-recall curve: Overall", "Calibration curve: Overall"]
    for i in range(3):
        chart = charts.nth(i)
        chart.wait_for(state="visible")
        box = chart.bounding_box()
        assert box is not None and box["width"] > 100 and box["height"] > 100
        # decoded and drawn: a broken or refused image has no natural size
        assert chart.evaluate("e => e.complete && e.naturalWidth > 0 && e.naturalHeight > 0")
    assert "Curves of slice Overall" in cell.inner_text()
    assert cell.locator("script").count() == 0
    screenshot(page, "curves_untrusted", cell)
    assert request_log.external == [], request_log.external
