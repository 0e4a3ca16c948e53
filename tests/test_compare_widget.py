"""The comparison's live widget on real German credit evaluations: what is displayed with
and without a kernel, the metric / baseline / filter controls, and escaping.

Three candidates are ``toolkit.evaluate`` results of three prediction columns of the same
frame (seconds, no pipeline). Expected values are computed here with pandas from the frame
(binary accuracy per slice, and its differences between candidates) and, for the "intervals
do not overlap" flag, from each candidate's own result frame."""
from __future__ import annotations

import re
import types

import numpy as np
import pandas as pd
import pytest

import toolkit
from datapaths import GERMAN_CSV
from toolkit.errors import ToolkitError

PLANTED = "<script>alert(1)</script>"
NAMES = ["steady", PLANTED, "inverted"]
ACCURACY = "binary_accuracy at threshold 0.5"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def _frame() -> pd.DataFrame:
    frame = pd.read_csv(GERMAN_CSV)
    frame["label"] = frame["risk"].astype(float)
    frame["branch"] = np.where(np.arange(len(frame)) % 3 == 0, PLANTED, "north")
    z = -0.00025 * frame.credit_amount - 0.03 * frame.duration + 0.02 * frame.age + 0.8
    frame["p_steady"] = 1.0 / (1.0 + np.exp(-z))
    frame["p_hostile"] = 1.0 / (1.0 + np.exp(-(0.5 * z + 0.4)))
    frame["p_inverted"] = 1.0 - frame["p_steady"]
    return frame


def _config(prediction: str) -> dict:
    return {"model_specs": [{"label_key": "label", "prediction_key": prediction}],
            "slicing_specs": [{}, {"feature_keys": ["housing"]}, {"feature_keys": ["branch"]}],
            "metrics_specs": [{"metrics": [{"class_name": "ExampleCount"},
                                           {"class_name": "AUC"},
                                           {"class_name": "BinaryAccuracy"}]}],
            "options": {"compute_confidence_intervals": True}}


@pytest.fixture(scope="module")
def runs():
    frame = _frame()
    columns = ["p_steady", "p_hostile", "p_inverted"]
    results = [toolkit.evaluate(frame, _config(c), random_seed=3) for c in columns]
    # Binary accuracy per slice, from the frame: prediction and label on the same side of 0.5.
    slices = {"Overall": np.ones(len(frame), bool)}
    for feature in ("housing", "branch"):
        for value in frame[feature].unique():
            slices[f"{feature}:{value}"] = (frame[feature] == value).to_numpy()
    accuracy = {name: {s: float(((frame[c] > 0.5) == (frame["label"] > 0.5))[rows].mean())
                       for s, rows in slices.items()}
                for name, c in zip(NAMES, columns)}
    intervals = {}
    for name, result in zip(NAMES, results):
        tidy = result.to_dataframe()
        tidy = tidy[tidy["metric"] == "binary_accuracy"]
        intervals[name] = {r.slice: (r.lower, r.upper) for r in tidy.itertuples()}
    return types.SimpleNamespace(results=results, accuracy=accuracy, intervals=intervals,
                                 slices=list(slices))


@pytest.fixture
def comparison(runs):
    return toolkit.compare(*runs.results, names=NAMES)


class Front:
    """What a notebook front end receives: displays and in-place updates, in order."""

    def __init__(self, monkeypatch, kernel: bool):
        import IPython
        import IPython.display

        self.shown: list[tuple[str, dict]] = []
        shell = types.SimpleNamespace(kernel=object(), execution_count=5) if kernel else None
        monkeypatch.setattr(IPython, "get_ipython", lambda: shell)
        monkeypatch.setattr(IPython.display, "display", self.display)

    def display(self, obj, raw=False, display_id=None):
        self.shown.append(("display", obj))
        front = self

        class Handle:
            def update(self, obj, raw=False):
                front.shown.append(("update", obj))

        return Handle() if display_id else None


def _same_markup(html: str) -> str:
    """``html`` without its random view id."""
    return re.sub(r"(tkv-|tkc-static-)[0-9a-f]{10}", r"\1X", html)


def _tables(html: str) -> dict[str, dict[str, list[str]]]:
    """Each metric table of ``html`` by heading: its rows by slice name (cells as markup)."""
    found = {}
    for heading, body in re.findall(
            r'<div style="font-weight:600(?:;margin:8px 0 0 0)?">([^<]+)</div>'
            r'(?:<div style="color:[^"]*">[^<]*</div>)?(?:<div style="max-height[^"]*">)?'
            r'<table.*?<tbody>(.*?)</tbody>', html):
        rows = {}
        for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body):
            cells = re.findall(r"<td[^>]*>(.*?)</td>", row)
            rows[cells[0]] = cells[1:]
        found[heading] = rows
    return found


def _escaped(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _value(cell: str) -> str:
    return cell.split("<", 1)[0]


def _delta(cell: str) -> tuple[str, bool] | None:
    """The difference under a value and whether it is bold (intervals apart), or None."""
    match = re.search(r"<br>(<b>|<span[^>]*>)([^<]+)<", cell)
    return None if match is None else (match.group(2), match.group(1) == "<b>")


def _apart(runs, slice_name: str, one: str, other: str) -> bool:
    (lo1, hi1), (lo2, hi2) = runs.intervals[one][slice_name], runs.intervals[other][slice_name]
    return bool(lo1 > hi2 or hi1 < lo2)


def test_without_a_kernel_only_the_static_comparison_is_displayed(runs, comparison,
                                                                  monkeypatch):
    from toolkit.visualize.compare import comparison_view

    front = Front(monkeypatch, kernel=False)
    comparison._ipython_display_()
    [(kind, bundle)] = front.shown
    assert kind == "display" and set(bundle) == {"text/html", "text/plain"}
    page_view = comparison_view(comparison)
    assert _same_markup(bundle["text/html"]) == _same_markup(comparison._repr_html_()) \
        == _same_markup(page_view.html)
    assert bundle["text/plain"] == comparison.text() and "<style" not in bundle["text/html"]
    # The static tables measure from the first candidate, as before.
    table = _tables(bundle["text/html"])[ACCURACY]
    assert set(table) == {_escaped(s) for s in runs.slices}
    for slice_name in runs.slices:
        cells = table[_escaped(slice_name)]
        assert _delta(cells[0]) is None
        for cell, name in zip(cells[1:], NAMES[1:]):
            expected = runs.accuracy[name][slice_name] - runs.accuracy[NAMES[0]][slice_name]
            assert _delta(cell) == (f"{expected:+.3g}", _apart(runs, slice_name, name, NAMES[0]))


def test_with_a_kernel_the_widget_comes_first_then_an_updatable_static_copy(comparison,
                                                                          monkeypatch):
    front = Front(monkeypatch, kernel=True)
    comparison._ipython_display_()
    assert [kind for kind, _ in front.shown] == ["display", "display"]
    assert WIDGET_MIME in front.shown[0][1] and "live kernel" in front.shown[0][1]["text/plain"]

    front.shown.clear()
    view = comparison.view()
    view._ipython_display_()
    (_, widget), (_, static) = front.shown
    assert widget[WIDGET_MIME]["model_id"] == view.widget.model_id
    assert static == {"text/html": view.html, "text/plain": view.text}
    # The widget's one style rule hides exactly the static copy's metrics section.
    table_html = view.widget.children[-1].value
    assert f"<style>.tkc-static-{view.uid}{{display:none !important}}" in table_html
    before, hidden = static["text/html"].split(f'<div class="tkc-static-{view.uid}">')
    assert "Candidates<" in before and "Parameters that differ<" in before
    assert hidden.startswith('<div style="font-weight:600;font-size:1.05em;margin:10px 0 2px 0">'
                             'Metrics per slice</div>')
    # The default metric is auc; every slice is listed.
    [(heading, rows)] = _tables(table_html).items()
    assert heading == "auc" and len(rows) == 6


def test_metric_baseline_and_filter_change_the_widget_and_the_static_copy(runs, comparison,
                                                                         monkeypatch):
    front = Front(monkeypatch, kernel=True)
    view = comparison.view()
    view._ipython_display_()
    controls = view.controls
    table = view.widget.children[-1]

    controls["metric"].value = view.metrics.index(ACCURACY)
    kind, updated = front.shown[-1]
    assert kind == "update"
    [(heading, rows)] = _tables(table.value).items()
    assert heading == ACCURACY and len(rows) == len(runs.slices)
    for slice_name in runs.slices:
        cells = rows[_escaped(slice_name)]
        for cell, name in zip(cells, NAMES):
            assert float(_value(cell)) == pytest.approx(runs.accuracy[name][slice_name],
                                                        abs=5e-4)
    # The static copy lists the chosen metric first.
    assert next(iter(_tables(updated["text/html"]))) == ACCURACY

    controls["baseline"].value = "inverted"
    kind, updated = front.shown[-1]
    assert kind == "update" and "reference: inverted" in updated["text/html"]
    static_rows = _tables(updated["text/html"])[ACCURACY]
    [(_, rows)] = _tables(table.value).items()
    for slice_name in runs.slices:
        key = _escaped(slice_name)
        for i, name in enumerate(NAMES):
            if name == "inverted":
                assert _delta(rows[key][i]) is None and _delta(static_rows[key][i]) is None
                continue
            expected = runs.accuracy[name][slice_name] - runs.accuracy["inverted"][slice_name]
            want = (f"{expected:+.3g}", _apart(runs, slice_name, name, "inverted"))
            assert _delta(rows[key][i]) == want and _delta(static_rows[key][i]) == want
    assert any(_delta(c) and _delta(c)[1] for r in rows.values() for c in r), \
        "the data should give at least one pair of intervals apart"

    controls["filter"].value = "HOUSING:R"
    kind, updated = front.shown[-1]
    [(_, rows)] = _tables(table.value).items()
    assert kind == "update" and list(rows) == ["housing:rent"]
    assert "1 of 6 slices match" in table.value
    for heading, static_rows in _tables(updated["text/html"]).items():
        assert list(static_rows) == ["housing:rent"], heading
    controls["filter"].value = "nothing like it"
    assert "No slice matches." in table.value

    # The same choices through the API, and unknown ones fail in one line naming the known.
    view.select(metric="example_count", baseline="steady")
    assert controls["metric"].value == view.metrics.index("example_count")
    assert controls["baseline"].value == "steady"
    with pytest.raises(ToolkitError, match=r"^no metric 'recall' in this comparison; pass one "
                                           r"of 'example_count', 'auc', 'binary_accuracy"):
        view.select(metric="recall")
    with pytest.raises(ToolkitError, match="^no candidate named 'nobody'"):
        view.select(baseline="nobody")


def test_a_hostile_slice_value_and_candidate_name_are_escaped_everywhere(comparison,
                                                                          monkeypatch):
    front = Front(monkeypatch, kernel=True)
    view = comparison.view()
    view._ipython_display_()
    view.controls["baseline"].value = PLANTED
    view.controls["filter"].value = "script"
    (_, widget), *statics = front.shown
    assert "<script" not in widget["text/html"]  # the note shown where the widget cannot be
    outputs = [view.widget.children[-1].value] + [bundle["text/html"] for _, bundle in statics]
    assert len(outputs) == 4  # the widget's table, the static copy and its two updates
    for html in outputs:
        assert "<script" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    widget_table = _tables(view.widget.children[-1].value)
    [(_, rows)] = widget_table.items()
    assert list(rows) == ["branch:&lt;script&gt;alert(1)&lt;/script&gt;"]
    assert "reference: &lt;script&gt;" in front.shown[-1][1]["text/html"]
