"""Helpers shared by the benchmarks: the repository root (put first on sys.path, so the
benchmarks import this checkout's ``toolkit``), median timing and a headless Chromium page."""
from __future__ import annotations

import os
import statistics
import sys
import time
from typing import Any, Callable

REPO = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
sys.path.insert(0, REPO)


def median_time(fn: Callable[[], Any], repeat: int = 5) -> tuple[float, Any]:
    """Median wall time of ``repeat`` calls, and the last call's result."""
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


class Browser:
    """Headless Chromium (the browser tests' launcher) timing how long HTML takes to lay out."""

    def __init__(self) -> None:
        from playwright.sync_api import sync_playwright

        sys.path.insert(0, os.path.join(REPO, "tests", "browser"))
        from harness import launch_browser

        self._pw = sync_playwright().start()
        self._browser = launch_browser(self._pw)
        self._page = self._browser.new_page(viewport={"width": 1400, "height": 900})

    def render_time(self, html: str, repeat: int = 3) -> float:
        def load() -> None:
            self._page.set_content(f"<!DOCTYPE html><meta charset='utf-8'><body>{html}</body>",
                                   wait_until="load")
            self._page.evaluate("document.body.getBoundingClientRect().height")

        return median_time(load, repeat)[0]

    def close(self) -> None:
        self._browser.close()
        self._pw.stop()
