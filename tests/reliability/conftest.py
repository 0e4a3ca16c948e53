"""Fixtures of the reliability suite: a JupyterLab server and a Chromium page (through the
browser tests' harness) for the cases that check views in a browser."""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "browser"))

from harness import CHROMIUM, JupyterServer, chromium_path, launch_browser  # noqa: E402


def _browser_available() -> None:
    required = os.environ.get("TOOLKIT_REQUIRE_BROWSER", "").strip() not in ("", "0", "false")
    problem = None
    if chromium_path() is None:
        problem = f"Chromium is not installed at {CHROMIUM}"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            problem = "the playwright Python package is not installed"
    if problem and required:
        pytest.fail(f"{problem} (TOOLKIT_REQUIRE_BROWSER=1 makes this a failure)", pytrace=False)
    if problem:
        pytest.skip(problem)


@pytest.fixture(scope="module")
def chromium_instance() -> Iterator[Any]:
    _browser_available()
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    browser = launch_browser(playwright)
    try:
        yield browser
    finally:
        browser.close()
        playwright.stop()


@pytest.fixture
def browser_page(chromium_instance) -> Iterator[Any]:
    context = chromium_instance.new_context(viewport={"width": 1200, "height": 900})
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture(scope="module")
def jupyter_lab(chromium_instance) -> Iterator[JupyterServer]:
    server = JupyterServer().start()
    try:
        yield server
    finally:
        server.stop()
