"""``toolkit.compare(...)`` in a real JupyterLab 4 (headless Chromium), live and static.

Live: the widget's controls show and the static metrics section of the same output is
hidden (one metrics table on screen); choosing the other candidate as baseline flips the
sign of the deltas the widget shows, checked against the two evaluations' own numbers;
the filter keeps only the slices whose name contains it. Wherever the widget cannot run
the static comparison shows instead, curves included: papermill's untrusted output, and
the live notebook saved and reopened without its kernel (then with the last baseline and
filter chosen, which is why that check ends the live test rather than running the notebook
a second time). A candidate named like markup stays text, and no request leaves localhost.
"""
from __future__ import annotations

import json
import re
import time
from pathlib import Path

import nbformat
import numpy as np
import pytest

from datapaths import GERMAN_CSV
from harness import (active_panel, open_notebook, python_notebook, run_all_cells, screenshot,
                     write_and_papermill)

pytestmark = pytest.mark.browser

SOURCE = "compare.ipynb"
EXECUTED = "compare_papermill.ipynb"
HOSTILE = "<img src=x onerror=alert(1)>"
METRICS = "Metrics per slice"
#: the slices of the notebook's evaluations, as the view names them and as TFMA keys them
SLICES = {"Overall": (), "sex:female": (("sex", "female"),), "sex:male": (("sex", "male"),)}

SETUP = '''import numpy as np
import pandas as pd
import toolkit

frame = pd.read_csv(csv_path)
z = -0.00025 * frame.credit_amount - 0.03 * frame.duration + 0.02 * frame.age + 0.8
config = {"model_specs": [{"label_key": "risk"}],
          "slicing_specs": [{}, {"feature_keys": ["sex"]}],
          "metrics_specs": [{"metrics": [{"class_name": "ExampleCount"}, {"class_name": "AUC"},
                                         {"class_name": "ConfusionMatrixPlot"},
                                         {"class_name": "CalibrationPlot"}]}]}
first = toolkit.evaluate(frame.assign(prediction=1 / (1 + np.exp(-z))), config)
second = toolkit.evaluate(frame.assign(
    prediction=1 / (1 + np.exp(-(0.8 - 0.0001 * frame.credit_amount)))), config)'''

#: prints each slice's AUC of the two evaluations as JSON, for the test to check the view by
AUC_CELL = """import json
slices = {slices}
print(json.dumps({{name: [r.get_metrics_for_slice(key)["auc"]["doubleValue"]
                          for r in (first, second)] for name, key in slices.items()}}))"""


def _notebook() -> nbformat.NotebookNode:
    return python_notebook(SETUP, f"toolkit.compare(first, second, names=['first', {HOSTILE!r}])",
                           AUC_CELL.format(slices=repr(SLICES)),
                           parameters=f"csv_path = {str(GERMAN_CSV)!r}")


@pytest.fixture(scope="module")
def notebooks(jupyter_server) -> dict[str, str]:
    """The comparison notebook, and the same notebook executed by papermill (untrusted)."""
    root = Path(jupyter_server.root_dir)
    outputs = write_and_papermill(jupyter_server, _notebook(), SOURCE, EXECUTED).cells[2].outputs
    assert [o.output_type for o in outputs] == ["display_data", "display_data"], outputs
    assert "application/vnd.jupyter.widget-view+json" in outputs[0].data
    assert METRICS in outputs[1].data["text/html"]
    return {"source": SOURCE, "executed": EXECUTED, "root": str(root)}


@pytest.fixture(scope="module")
def auc(notebooks) -> dict[str, tuple[float, float]]:
    """AUC per slice of the two candidates, read from the evaluations themselves (not from
    the comparison) by the notebook's last cell: ``{slice: (first, second)}``."""
    printed = nbformat.read(Path(notebooks["root"], EXECUTED), as_version=4).cells[3].outputs
    return {name: tuple(pair) for name, pair in json.loads(printed[0].text).items()}


@pytest.fixture
def dialogs(page) -> list[str]:
    """Messages of every alert/confirm the page tried to open (each one dismissed)."""
    seen: list[str] = []
    page.on("dialog", lambda dialog: (seen.append(dialog.message), dialog.dismiss()))
    return seen


def _compare_cell(page):
    return active_panel(page).locator(".jp-Cell").nth(2)


def _shoot(page, name: str, cell) -> None:
    page.set_viewport_size({"width": 1400, "height": 2200})
    cell.evaluate("e => e.scrollIntoView({block: 'start'})")
    page.wait_for_timeout(300)
    screenshot(page, name)


def _visible_count(scope, text: str) -> int:
    return sum(1 for e in scope.get_by_text(text, exact=True).all() if e.is_visible())


def _table(chart) -> dict[str, list[tuple[float, float | None]]]:
    """The widget's table as ``{slice: [(value, delta or None) per candidate]}``."""
    rows = chart.locator("tbody").first.evaluate(
        "t => Array.from(t.rows).map(r => Array.from(r.cells).map(c => c.innerText))")
    table = {}
    for slice_name, *cells in rows:
        parsed = []
        for cell in cells:
            lines = [line.strip() for line in cell.split("\n") if line.strip()]
            parsed.append((float(lines[0].split()[0]),
                           float(lines[1]) if len(lines) > 1 else None))
        table[slice_name.strip()] = parsed
    return table


def _assert_hostile_is_text(scope, dialogs: list[str]) -> None:
    assert scope.locator("img[src='x']").count() == 0
    assert _visible_count(scope, HOSTILE) >= 1  # its header cells, as written
    assert dialogs == [], dialogs


def test_live_comparison_then_saved_and_reopened(page, jupyter_server, request_log, dialogs,
                                                 notebooks, auc):
    open_notebook(page, jupyter_server, notebooks["source"])
    run_all_cells(page)
    cell = _compare_cell(page)
    selects = cell.locator(".widget-dropdown select")
    selects.first.wait_for(state="visible", timeout=60_000)
    assert selects.count() == 2
    box = cell.locator(".widget-text input")
    assert box.is_visible()
    chart = cell.locator(".widget-html").last
    chart.locator("tbody").first.wait_for(state="visible")

    # The static copy is there (candidates, curves) but its metrics section is hidden.
    static = cell.locator("[class^=tkc-static-]")
    assert static.count() == 1 and not static.is_visible()
    assert _visible_count(cell, METRICS) == 0
    assert _visible_count(cell, "Candidates") == 1
    assert cell.locator("img[src^='data:image/svg+xml']").first.is_visible()
    _assert_hostile_is_text(cell, dialogs)

    # Deltas from the first candidate: under the second one, second minus first.
    before = _table(chart)
    assert set(before) == set(SLICES)
    for name, (first, second) in auc.items():
        (v1, d1), (v2, d2) = before[name]
        assert d1 is None and v1 == pytest.approx(first, abs=1e-4)
        assert v2 == pytest.approx(second, abs=1e-4)
        assert d2 == pytest.approx(second - first, abs=1e-3) and d2 < 0
    _shoot(page, "compare_live_default", cell)

    # The hostile candidate as baseline: the deltas move under the first, with the sign flipped.
    selects.nth(1).select_option(label=HOSTILE)
    page.wait_for_function(
        "el => { const t = el.querySelector('tbody');"
        " return t && t.rows[0].cells[1].querySelector('br') !== null; }",
        arg=chart.element_handle())
    after = _table(chart)
    assert set(after) == set(SLICES)
    for name, (first, second) in auc.items():
        (v1, d1), (v2, d2) = after[name]
        assert v1 == pytest.approx(first, abs=1e-4) and v2 == pytest.approx(second, abs=1e-4)
        assert d2 is None
        assert d1 == pytest.approx(first - second, abs=1e-3) and d1 > 0
        assert np.sign(d1) == -np.sign(before[name][1][1])
    assert _visible_count(cell, METRICS) == 0  # the redrawn static copy stays hidden
    assert _visible_count(cell, f"reference: {HOSTILE}") == 1

    # The filter keeps only slices whose name contains the text ("sex:male" does not).
    box.fill("female")
    page.wait_for_function(
        "el => { const t = el.querySelector('tbody'); return t && t.rows.length === 1; }",
        arg=chart.element_handle())
    assert list(_table(chart)) == ["sex:female"]
    # the static copy (what a saved notebook keeps) was redrawn with the same choices
    kept = static.evaluate("e => e.textContent")
    assert "“female”: 1 of 3" in kept and f"the difference to {HOSTILE}" in kept
    _shoot(page, "compare_live_filtered", cell)
    _assert_hostile_is_text(cell, dialogs)

    # Saved and reopened without its kernel: the static copy shows, with the last choices.
    # (from the File menu: the widget's text box keeps Ctrl+S to itself)
    page.locator(".lm-MenuBar-itemLabel", has_text="File").first.click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile("^Save Notebook$")).click()
    page.wait_for_function(  # saved: the notebook's tab no longer marked as changed
        "() => !document.querySelector('.jp-mod-dirty')")
    assert len(_saved_outputs(Path(jupyter_server.root_dir, notebooks["source"]))) == 2
    jupyter_server.shutdown_kernels()
    open_notebook(page, jupyter_server, notebooks["source"])
    cell = _compare_cell(page)
    _assert_static(cell, dialogs, ["sex:female"])
    assert _visible_count(cell, f"reference: {HOSTILE}") == 1
    _shoot(page, "compare_reopened", cell)
    assert request_log.external == [], request_log.external


def _saved_outputs(path: Path, timeout: float = 15.0) -> list:
    """The comparison cell's outputs in the notebook file, once JupyterLab has written them."""
    deadline = time.monotonic() + timeout
    while True:
        outputs = nbformat.read(path, as_version=4).cells[2].outputs
        if outputs or time.monotonic() > deadline:
            return outputs
        time.sleep(0.2)


def _assert_static(cell, dialogs: list[str], slices: list[str]) -> None:
    """The static comparison shows (its metrics tables listing ``slices`` and no other,
    the curves of every slice) and no widget does."""
    cell.get_by_text(METRICS, exact=True).first.wait_for(state="visible")
    assert cell.locator("select").count() == 0 and cell.locator("input").count() == 0
    assert _visible_count(cell, METRICS) == 1
    assert cell.locator("[class^=tkc-static-]").is_visible()
    listed = cell.locator("[class^=tkc-static-] tbody td:first-child").all_inner_texts()
    assert sorted(set(listed)) == sorted(slices), listed
    for name in slices:
        assert cell.locator("[class^=tkc-static-] td", has_text=name).first.is_visible(), name
    charts = cell.locator("img[src^='data:image/svg+xml']")
    assert charts.count() == 9  # ROC, precision-recall, calibration × 3 slices
    for i in range(charts.count()):
        chart = charts.nth(i)
        chart.scroll_into_view_if_needed()
        assert chart.evaluate("e => e.complete && e.naturalWidth > 0 && e.naturalHeight > 0")
        assert chart.bounding_box()["height"] > 100
    assert cell.locator("script").count() == 0
    _assert_hostile_is_text(cell, dialogs)


def test_papermill_output_shows_the_static_comparison(page, jupyter_server, request_log,
                                                      dialogs, notebooks):
    open_notebook(page, jupyter_server, notebooks["executed"])
    cell = _compare_cell(page)
    _assert_static(cell, dialogs, list(SLICES))
    assert "live kernel" in cell.inner_text()  # where the controls would have been
    _shoot(page, "compare_untrusted", cell)
    assert request_log.external == [], request_log.external

