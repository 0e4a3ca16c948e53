"""Fixtures for browser tests: one JupyterLab server and one Chromium per session.

Tests here are marked ``browser``. Without Chromium (``/usr/bin/chromium``) they
are skipped, unless ``TOOLKIT_REQUIRE_BROWSER=1`` is set, which makes them fail.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator

import pytest

from harness import CHROMIUM, JupyterServer, RequestLog, chromium_path, launch_browser

HERE = Path(__file__).resolve().parent
VIEWPORT = {"width": 1400, "height": 1000}


def _require_browser() -> bool:
    return os.environ.get("TOOLKIT_REQUIRE_BROWSER", "").strip() not in ("", "0", "false")


def _unavailable(reason: str) -> None:
    if _require_browser():
        pytest.fail(f"{reason} (TOOLKIT_REQUIRE_BROWSER=1 makes this a failure)", pytrace=False)
    pytest.skip(f"{reason}; install it with `apt-get install -y chromium chromium-driver` "
                "or set TOOLKIT_REQUIRE_BROWSER=1 to fail instead of skipping")


def pytest_collection_modifyitems(config: Any, items: list[Any]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def chromium() -> str:
    """Path of the Chromium binary; skips (or fails when required) if it is missing."""
    path = chromium_path()
    if path is None:
        _unavailable(f"Chromium is not installed at {CHROMIUM}")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _unavailable("the playwright Python package is not installed")
    return path


@pytest.fixture(scope="session")
def jupyter_server(chromium: str) -> Iterator[JupyterServer]:
    """``jupyter lab`` on a free 127.0.0.1 port, serving a temporary root directory."""
    server = JupyterServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def browser(chromium: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    instance = launch_browser(playwright)
    try:
        yield instance
    finally:
        instance.close()
        playwright.stop()


@pytest.fixture
def request_log() -> RequestLog:
    """Every URL the test's page requested; ``request_log.external`` must stay empty."""
    return RequestLog()


@pytest.fixture
def page(browser: Any, request_log: RequestLog, request: Any) -> Iterator[Any]:
    """A fresh page in its own browser context, with every request recorded."""
    context = browser.new_context(viewport=VIEWPORT)
    request_log.attach(context)
    tab = context.new_page()
    try:
        yield tab
    finally:
        context.close()
        server = request.getfixturevalue("jupyter_server") \
            if "jupyter_server" in request.fixturenames else None
        if server is not None:
            server.shutdown_kernels()
