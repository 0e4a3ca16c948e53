"""The report of a pushed version in headless Chromium: the page in the serving directory
opened with scripts disabled (every section renders, and it requests nothing but itself),
and the same report shown inline in a JupyterLab notebook, untrusted (sanitized) and
trusted (signed)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from harness import ARTIFACTS_DIR, open_notebook, trust_notebook

from toolkit.components.pusher import versions
from toolkit.model_report import REPORT_FILE, SECTIONS

pytestmark = pytest.mark.browser


def test_flagship_report_reads_without_scripts_and_offline(browser, request_log, executed_taxi):
    [version] = versions(executed_taxi.serving)
    report = Path(os.path.realpath(executed_taxi.serving), str(version), REPORT_FILE)
    context = browser.new_context(viewport={"width": 1400, "height": 1000},
                                  java_script_enabled=False)
    request_log.attach(context)
    try:
        page = context.new_page()
        url = report.as_uri()
        page.goto(url, wait_until="load")

        assert page.locator("h1").inner_text().startswith(f"Model version {version}")
        assert page.locator("h2").all_inner_texts() == list(SECTIONS)
        for heading in SECTIONS:  # each section shows a table with rows
            table = page.locator(f"h2:text-is('{heading}') ~ table").first
            assert table.locator("tbody tr").count() >= 1, heading
            assert table.is_visible(), heading
            assert table.bounding_box()["height"] > 20, heading
        assert page.get_by_text("payment_type:Credit Card").first.is_visible()
        assert page.locator("td", has_text="passed").first.is_visible()
        assert page.locator("td", has_text="CsvExampleGen").first.is_visible()

        ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS_DIR / "model_report.png"))
        page.locator("h2:text-is('Evaluation')").scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS_DIR / "model_report_evaluation.png"))
        assert request_log.urls == [url]
    finally:
        context.close()


@pytest.mark.parametrize("trust", ["untrusted", "trusted"])
def test_report_view_in_a_notebook(page, jupyter_server, request_log, executed_taxi, trust):
    """``toolkit.show(toolkit.models.show(...))`` saved in a notebook, not trusted (as
    papermill's output is: JupyterLab's sanitizer leaves every section readable) and
    trusted (rendered as written): the same sections, nothing requested outside."""
    import nbformat

    from toolkit import models
    from toolkit.visualize import view_of

    [version] = versions(executed_taxi.serving)
    view = view_of(models.show(executed_taxi.serving, version))
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                       "language": "python"}
    cell = nbformat.v4.new_code_cell("toolkit.show(toolkit.models.show(serving_dir, version))")
    cell.outputs = [nbformat.v4.new_output("display_data", data={"text/html": view.html,
                                                                 "text/plain": view.text})]
    notebook.cells = [cell]
    name = f"report_{trust}.ipynb"
    nbformat.write(notebook, str(Path(jupyter_server.root_dir, name)))
    if trust == "trusted":
        trust_notebook(jupyter_server, name)

    panel = open_notebook(page, jupyter_server, name)
    shown = panel.locator(".jp-OutputArea-output .tkv").first
    shown.wait_for(state="visible")
    assert shown.locator("h2").all_inner_texts() == list(SECTIONS)
    assert shown.locator("td", has_text="payment_type:Credit Card").first.is_visible()
    ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS_DIR / f"model_report_{trust}_notebook.png"))
    assert request_log.external == [], request_log.external
