"""The comparison page and the versions page in headless Chromium, scripts off: the
tables, the red cell and the curve images show, hostile names stay text, and the pages
request nothing but themselves (the curves are ``data:`` images)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from datapaths import GERMAN_CSV
from harness import ARTIFACTS_DIR

pytestmark = pytest.mark.browser
HOSTILE = "<img src=x onerror=alert(1)>"


@pytest.fixture(scope="module")
def pages(tmp_path_factory) -> dict[str, Path]:
    import toolkit
    from test_versions_view import push_versions
    from toolkit.comparison import write_versions_page

    folder = tmp_path_factory.mktemp("compare_browser")
    frame = pd.read_csv(GERMAN_CSV)
    z = -0.00025 * frame.credit_amount - 0.03 * frame.duration + 0.02 * frame.age + 0.8
    config = {"model_specs": [{"label_key": "risk"}],
              "slicing_specs": [{}, {"feature_keys": ["sex"]}],
              "metrics_specs": [{"metrics": [{"class_name": "ExampleCount"}, {"class_name": "AUC"},
                                             {"class_name": "ConfusionMatrixPlot"},
                                             {"class_name": "CalibrationPlot"}]}]}
    first = toolkit.evaluate(frame.assign(prediction=1 / (1 + np.exp(-z))), config)
    second = toolkit.evaluate(frame.assign(
        prediction=1 / (1 + np.exp(-(0.8 - 0.0001 * frame.credit_amount)))), config)
    compare_page = toolkit.compare(first, second, names=["first", HOSTILE]).write(
        folder / "compare.html")
    serving = str(folder / "serving")
    push_versions(str(folder / "root"), serving)
    versions_page = write_versions_page(serving, metric="binary_accuracy")
    return {"compare": Path(compare_page), "versions": Path(versions_page)}


def _open(browser, request_log, path: Path):
    context = browser.new_context(viewport={"width": 1400, "height": 1000},
                                  java_script_enabled=False)
    request_log.attach(context)
    page = context.new_page()
    page.goto(path.as_uri(), wait_until="load")
    return context, page


def test_compare_page_reads_without_scripts_and_offline(browser, request_log, pages):
    context, page = _open(browser, request_log, pages["compare"])
    try:
        assert page.get_by_text("Comparison of 2 candidates").is_visible()
        assert page.locator("th", has_text=HOSTILE).first.is_visible()  # shown as text
        assert page.locator("img[src^='data:image/svg+xml']").count() == 9  # 3 charts × 3 slices
        chart = page.locator("img[src^='data:image/svg+xml']").first
        assert chart.is_visible() and chart.bounding_box()["height"] > 100
        assert page.locator("td", has_text="sex:female").first.is_visible()
        ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS_DIR / "compare_page.png"), full_page=True)
    finally:
        context.close()
    # the page itself (file:) and its data: images: nothing else, nothing off this machine
    assert [u for u in request_log.urls if not u.startswith("data:")] == [pages["compare"].as_uri()]


def test_versions_page_reads_without_scripts_and_offline(browser, request_log, pages):
    context, page = _open(browser, request_log, pages["versions"])
    try:
        assert page.get_by_text("binary_accuracy across 3 pushed versions").is_visible()
        assert page.locator("td", has_text="group:<script>alert(1)</script>").first.is_visible()
        red = page.locator("div[title^='failed']")
        assert red.count() == 1 and red.is_visible() and "FAILED" in red.inner_text()
        ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS_DIR / "versions_page.png"), full_page=True)
    finally:
        context.close()
    # the page itself (file:) and its data: images: nothing else, nothing off this machine
    assert [u for u in request_log.urls if not u.startswith("data:")] == [pages["versions"].as_uri()]
    assert os.path.isfile(pages["versions"])
