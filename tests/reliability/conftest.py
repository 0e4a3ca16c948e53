"""Fixtures of the reliability suite: a JupyterLab server and a Chromium page (through the
browser tests' harness) for the cases that check views in a browser."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "browser"))

from harness import JupyterServer, require_browser, running_browser  # noqa: E402


@pytest.fixture(scope="module")
def chromium_instance() -> Iterator[Any]:
    require_browser()
    with running_browser() as browser:
        yield browser


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
