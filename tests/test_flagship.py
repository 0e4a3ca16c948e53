"""The taxi flagship notebook, executed headless, is a complete offline report."""
from __future__ import annotations

import re

from notebook_checks import assert_ran_clean, assert_views_have_html_and_text, outputs


def test_runs_end_to_end_without_errors(executed_taxi):
    assert_ran_clean(executed_taxi.notebook)


def test_every_view_has_html_and_a_text_fallback(executed_taxi):
    assert_views_have_html_and_text(executed_taxi.notebook, at_least=6)


def test_statistics_view_shows_taxi_features_offline(executed_taxi):
    html = next(o.data["text/html"] for c, o in outputs(executed_taxi.notebook)
                if "StatisticsGen(" in c.source and "text/html" in o.get("data", {}))
    for feature in ("fare", "trip_miles", "payment_type", "company"):
        assert feature in html
    # self-contained: nothing is loaded from elsewhere
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "<svg" not in html.lower()


def test_validation_and_lineage_are_reported(executed_taxi):
    texts = {c.source.splitlines()[0]: o.data.get("text/plain", "") or o.get("text", "")
             for c, o in outputs(executed_taxi.notebook) if o.get("data")}
    anomalies = next(t for s, t in texts.items() if s.startswith("example_validator"))
    assert "none found" in anomalies.lower()
    lineage = next(t for s, t in texts.items() if s.startswith("context.lineage"))
    assert "CsvExampleGen" in lineage and "StatisticsGen" in lineage


def test_no_output_loads_anything_from_the_network(executed_taxi):
    """Not the views, and not a library's own notebook helpers (Beam injects a CDN loader)."""
    for cell, output in outputs(executed_taxi.notebook):
        for mime, payload in output.get("data", {}).items():
            text = payload if isinstance(payload, str) else str(payload)
            assert not re.search(r"https?://", text) or mime == "text/plain", (cell.source, mime)
        assert "application/javascript" not in output.get("data", {}), cell.source
