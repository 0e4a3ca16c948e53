"""Fixtures for browser tests: one JupyterLab server and one Chromium per session.

Tests here are marked ``browser``. Without Chromium (``/usr/bin/chromium``) they
are skipped, unless ``TOOLKIT_REQUIRE_BROWSER=1`` is set, which makes them fail.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest

from harness import JupyterServer, RequestLog, require_browser, running_browser

HERE = Path(__file__).resolve().parent
VIEWPORT = {"width": 1400, "height": 1000}


def pytest_collection_modifyitems(config: Any, items: list[Any]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def chromium() -> str:
    """Path of the Chromium binary; skips (or fails when required) if it is missing."""
    return require_browser()


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
    with running_browser() as instance:
        yield instance


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
