"""Feature names and values made of markup, script, bidi overrides and 1 MB strings.

Fast: every view's HTML is parsed; no element, attribute or stylesheet comes from the
data, the data's text is escaped and truncated, the direction override is shown as
text. Slow (browser): the same views in a trusted JupyterLab notebook, executed live,
and in ``jupyter nbconvert --to html`` opened in headless Chromium: no dialog fires,
no injected element exists, no view is much wider than its cell.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import hostile_data as hostile
from hostile_data import assert_inert
from reliability_helpers import HERE, REPO, child_env

@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return hostile.build(str(tmp_path_factory.mktemp("hostile")))


@pytest.fixture(scope="module")
def views(built) -> dict:
    """Every view of the hostile pipeline, rendered once for the module."""
    import toolkit
    from toolkit.visualize import view_of
    from toolkit.visualize.statistics import statistics_view_of

    views = {
        "examples": view_of(built.examples),
        "statistics": view_of(built.statistics),
        "statistics compared": statistics_view_of(built.statistics, built.drift_statistics),
        "statistics of a DataFrame": statistics_view_of(built.frame),
        "schema": view_of(built.schema),
        "anomalies": view_of(built.anomalies),
        "evaluation dashboard": view_of(built.evaluation),
        "lineage": view_of(built.lineage),
        "executions": view_of(built.executions),
    }
    for result in built.results:
        views[f"result {result.execution_id}"] = view_of(result)
    views["artifact list"] = toolkit.visualize.view_of([built.examples.get()[0],
                                                       built.schema.get()[0]])
    return views


def test_every_view_renders_hostile_data_as_text(views):
    anomalies = views["anomalies"].text
    assert "new " in anomalies and "\\u202e" in views["schema"].html
    for name, view in views.items():
        assert_inert(view.html, name)
        assert "\u202e" not in view.text, name
        assert len(view.text) < 2 * 2**20, name


def test_hostile_text_is_visible_escaped(views):
    html = views["statistics"].html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;" in html
    assert "\\u202egnp.exe" in html
    assert "(1,000,000 chars)" in views["examples"].html
    assert "(100,000 chars)" in html


# -- in a browser (slow) ------------------------------------------------------------------------
NOTEBOOK_CELLS = [
    "import sys\nsys.path.insert(0, {here!r})\nimport hostile_data as hostile\nimport toolkit\n"
    "built = hostile.build('.')",
    "built.results[0]",
    "toolkit.show(built.examples)",
    "toolkit.show(built.statistics)",
    "toolkit.show_statistics(built.statistics, compare_to=built.drift_statistics)",
    "toolkit.show_statistics(built.frame)",
    "toolkit.show(built.schema)",
    "toolkit.show(built.anomalies)",
    "toolkit.show(built.evaluation)",
    "built.lineage",
    "built.executions",
    "raise ValueError(hostile.SCRIPT + hostile.BREAKOUT + hostile.BIDI)",
]

#: Run in the page: injected elements, and the widest view relative to its output area.
_INSPECT_JS = """() => {
  const bad = [];
  document.querySelectorAll('img[src="x"], svg[onload], [onerror], [onload]').forEach(
    (e) => bad.push(e.outerHTML.slice(0, 120)));
  document.querySelectorAll('script').forEach((s) => {
    const type = (s.getAttribute('type') || 'text/javascript').toLowerCase();
    if (type.includes('json')) {
      try { JSON.parse(s.textContent); } catch (e) { bad.push('broken JSON script: ' + e); }
    } else if (s.textContent.includes('alert(1)')) {
      bad.push('script: ' + s.textContent.slice(0, 80));
    }
  });
  const boxes = [];
  document.querySelectorAll('.tkv').forEach((v) => {
    const area = v.closest('.jp-OutputArea-output, .jp-RenderedHTMLCommon, .output_area, '
      + '.jp-Cell-outputArea, .jp-OutputArea') || v.parentElement;
    const r = v.getBoundingClientRect(), a = area.getBoundingClientRect();
    if (r.width > 0) boxes.push([r.width, a.width, r.height]);
  });
  return {bad: bad, boxes: boxes, hidden: getComputedStyle(document.body).display === 'none'};
}"""


def _notebook(path: Path) -> None:
    import nbformat

    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                       "language": "python"}
    notebook.cells = [nbformat.v4.new_code_cell(c.format(here=str(HERE))) for c in NOTEBOOK_CELLS]
    nbformat.write(notebook, path)


def _inspect(page, name: str) -> dict:
    found = page.evaluate(_INSPECT_JS)
    assert found["bad"] == [], (name, found["bad"])
    assert not found["hidden"], f"{name}: a stylesheet from the data hid the page"
    assert found["boxes"], f"{name}: no view rendered"
    for width, cell, height in found["boxes"]:
        assert width <= cell * 1.05 + 2, (name, width, cell)
    return found


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """The hostile notebook run headless by `toolkit run` (its run summary included)."""
    folder = tmp_path_factory.mktemp("hostile_run")
    source = folder / "hostile.ipynb"
    _notebook(source)
    proc = subprocess.run([sys.executable, "-m", "toolkit.cli", "run", str(source), "-o",
                           str(folder / "run"), "--cwd", str(folder), "--quiet"],
                          capture_output=True, text=True, env=child_env(), cwd=REPO,
                          timeout=900)
    assert proc.returncode == 1, proc.stderr[-3000:]
    [line] = [ln for ln in proc.stderr.splitlines() if ln.startswith("toolkit run:")]
    assert "\u202e" not in line and f"cell {len(NOTEBOOK_CELLS)} failed" in line
    summary = json.loads((folder / "run" / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["failing_cell"]["cell"] == len(NOTEBOOK_CELLS)
    assert "\u202e" not in summary["reason"] and "\\u202egnp.exe" in summary["reason"]
    assert len(summary["executions"]) == 6
    return folder / "run" / "hostile.ipynb"


def _canary(page, dialogs: list[str]) -> None:
    """The checks can fail: markup injected on purpose is caught by both."""
    page.evaluate("() => { const d = document.createElement('div');"
                  " d.innerHTML = '<img src=x onerror=alert(1)>'; document.body.appendChild(d); }")
    page.wait_for_timeout(1000)
    assert dialogs, "the dialog watch missed an injected onerror handler"
    assert page.evaluate(_INSPECT_JS)["bad"], "the inspection missed an injected element"


def _watch(page) -> list[str]:
    dialogs: list[str] = []

    def on_dialog(dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    return dialogs


@pytest.mark.slow
@pytest.mark.browser
def test_nbconvert_html_runs_nothing_from_the_data(executed, browser_page, tmp_path):
    out = tmp_path / "html"
    subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "html",
                    "--output-dir", str(out), str(executed)], check=True, capture_output=True,
                   env=child_env(), timeout=300)
    page = browser_page
    dialogs = _watch(page)
    page.goto((out / "hostile.html").as_uri(), wait_until="load")
    page.wait_for_timeout(1500)
    found = _inspect(page, "nbconvert html")
    assert dialogs == []
    assert len(found["boxes"]) >= 8
    _canary(page, dialogs)


@pytest.mark.slow
@pytest.mark.browser
def test_trusted_and_live_notebook_run_nothing_from_the_data(executed, browser_page,
                                                            jupyter_lab):
    from harness import open_notebook, run_all_cells, trust_notebook

    target = Path(jupyter_lab.root_dir, "hostile.ipynb")
    target.write_bytes(executed.read_bytes())
    trust_notebook(jupyter_lab, "hostile.ipynb")
    page = browser_page
    dialogs = _watch(page)
    open_notebook(page, jupyter_lab, "hostile.ipynb")
    page.wait_for_timeout(2000)
    _inspect(page, "trusted notebook")
    assert dialogs == []

    run_all_cells(page, timeout=600_000)
    page.wait_for_timeout(2000)
    found = _inspect(page, "live kernel")
    assert dialogs == []
    widgets = page.locator(".jp-OutputArea-output .widget-dropdown, "
                           ".jp-OutputArea-output .jupyter-widgets").count()
    assert widgets > 0, "the live dashboard widget did not render"
    assert len(found["boxes"]) >= 8
    _canary(page, dialogs)
