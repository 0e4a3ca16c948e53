"""Walkers and checks shared by the tests of executed notebooks."""
from __future__ import annotations


def outputs(notebook):
    """Every (cell, output) pair of an executed notebook, in order."""
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            yield cell, output


def assert_ran_clean(notebook) -> None:
    """No cell raised, and papermill recorded no exception."""
    errors = [o for _, o in outputs(notebook) if o.output_type == "error"]
    assert errors == []
    assert notebook.metadata.papermill.exception is None


def assert_views_have_html_and_text(notebook, at_least: int) -> None:
    """Every displayed result carries HTML and a plain-text fallback."""
    shown = [(c.source, o) for c, o in outputs(notebook)
             if o.output_type in ("display_data", "execute_result")]
    assert len(shown) >= at_least
    for source, output in shown:
        assert output.data.get("text/plain"), source
        assert output.data.get("text/html"), source
