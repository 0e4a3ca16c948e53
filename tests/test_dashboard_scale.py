"""The fairness dashboard at a thousand slices: what it opens on, its size, "Show all",
clipped rate intervals, escaping, the text form and the live filter.

The evaluation is real (``toolkit.evaluate`` on a generated frame: one ``region``
feature with 1,000 values, FairnessIndicators at 3 thresholds, confidence intervals
on). What the dashboard should show is computed here from ``result.to_dataframe()``
and ``result.validation``, never from the view's own code.
"""
from __future__ import annotations

import base64
import html as html_lib
import io
import re

import numpy as np
import pandas as pd
import pytest

import toolkit
from toolkit.errors import ToolkitError
from toolkit.visualize import View, view_of
from toolkit.visualize.evaluation import EvaluationDashboard, dashboard, evaluation_view
from toolkit.visualize.html import fmt_num

FPR = "fairness_indicators_metrics/false_positive_rate"
SCRIPT = "<script>alert(1)</script>"
BREAKOUT = '"><img src=x onerror=alert(1)>'
REGIONS = 1000
TOP = 10
MB = 1_000_000
#: The mark of an interval bound shown clipped to [0, 1] (the view's legend explains it).
CLIP = "†"


def regions_frame(regions: int, rows_per_region: int = 40, seed: int = 3) -> pd.DataFrame:
    """``regions`` values of ``region``: three tiny ones (below min_slice_size), one with a
    planted script and the highest false positive rate, one (of 1,000) breaking out of an
    attribute."""
    rng = np.random.default_rng(seed)
    sizes = np.full(regions, rows_per_region)
    sizes[[11, 12, 13]] = 8
    region = np.repeat(np.arange(regions), sizes)
    shift = rng.normal(0, 0.5, regions)
    shift[7] = 3.0
    label = (rng.random(len(region)) < 0.4).astype(int)
    z = 1.5 * label - 0.8 + shift[region] + rng.normal(0, 1, len(region))
    names = np.array([f"r{i:04d}" for i in range(regions)], dtype=object)
    names[7] = SCRIPT
    if regions > 500:
        names[500] = BREAKOUT
    return pd.DataFrame({"label": label, "prediction": 1 / (1 + np.exp(-z)),
                         "region": names[region]})


CONFIG = {
    "model_specs": [{"label_key": "label", "prediction_key": "prediction"}],
    "slicing_specs": [{}, {"feature_keys": ["region"]}],
    "metrics_specs": [{"metrics": [
        {"class_name": "ExampleCount"}, {"class_name": "AUC"},
        {"class_name": "FairnessIndicators", "config": '{"thresholds": [0.3, 0.5, 0.7]}'},
        {"class_name": "BinaryAccuracy", "threshold": {"value_threshold": {"lower_bound": 0.55}}},
    ]}],
    "options": {"compute_confidence_intervals": True, "min_slice_size": 15},
}


@pytest.fixture(scope="module")
def big():
    return toolkit.evaluate(regions_frame(REGIONS), CONFIG, random_seed=0)


@pytest.fixture(scope="module")
def big_tidy(big) -> pd.DataFrame:
    return big.to_dataframe()


@pytest.fixture(scope="module")
def big_board(big) -> EvaluationDashboard:
    board = view_of(big)  # what toolkit.show(result) displays
    assert isinstance(board, EvaluationDashboard)
    return board


@pytest.fixture(scope="module")
def small():
    return toolkit.evaluate(regions_frame(30), CONFIG, random_seed=0)


# ----------------------------------------------------------------------------- helpers

def unescape(text: str) -> str:
    return html_lib.unescape(text)


def rows_of_table(table_html: str) -> dict[str, str]:
    """The rows of one table's body, keyed by slice name (the title of its first span)."""
    body = table_html.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    rows = {}
    for row in body.split("<tr")[1:]:
        name = re.search(r'<span[^>]*title="([^"]*)"', row).group(1)
        rows[unescape(name)] = row
    return rows


def chart_rows(html: str) -> dict[str, str]:
    """Rows of the chart: the first table of the view."""
    return rows_of_table(html)


def show_all(html: str) -> str | None:
    """The "Show all" element of a static dashboard, or None."""
    match = re.search(r"<details[^>]*><summary[^>]*>Show all.*?</details>", html, re.S)
    return match.group(0) if match else None


def fpr_at(tidy: pd.DataFrame, threshold: float = 0.3) -> pd.DataFrame:
    rows = tidy[(tidy["metric"] == FPR) & np.isclose(tidy["threshold"], threshold)
                & ~tidy["is_cross_slice"]]
    return rows.reset_index(drop=True)


def expected_default(result, tidy: pd.DataFrame, top: int = TOP) -> set[str]:
    """Baseline (Overall), the ``top`` largest and smallest gaps, every failing slice; every
    slice when that would leave out no more slices than it lists.

    The gap is value − baseline value; slices without a value are not ranked; ties keep
    the evaluation order (the frame's), as the dashboard documents.
    """
    fpr = fpr_at(tidy)
    base = fpr.loc[fpr["slice"] == "Overall", "value"].item()
    others = fpr[fpr["slice"] != "Overall"].assign(gap=lambda f: f["value"] - base)
    ranked = others[np.isfinite(others["gap"])]
    largest = ranked.sort_values("gap", ascending=False, kind="stable")["slice"].head(top)
    smallest = ranked.sort_values("gap", ascending=True, kind="stable")["slice"].head(top)
    failing = {check.slice for check in result.validation.failures}
    chosen = {"Overall"} | set(largest) | set(smallest) | failing
    return chosen if len(fpr) - len(chosen) > len(chosen) else set(fpr["slice"])


def every_slice(tidy: pd.DataFrame) -> set[str]:
    return set(tidy.loc[~tidy["is_cross_slice"], "slice"])


# ----------------------------------------------------------------------------- size and rows

def test_a_thousand_slices_stay_under_a_megabyte_with_the_chosen_metric_only(big, big_board):
    for html in (big_board.html, evaluation_view(big).html):
        assert len(html.encode("utf-8")) < MB
        assert "false_positive_rate @ 0.3" in html
        # Only the chosen metric and threshold: no table of every metric, no other metric.
        assert "Full metrics table" not in html
        for other in ("false_negative_rate", "true_positive_rate", ">auc<", "@ 0.5"):
            assert other not in html, other
        assert "result.to_dataframe()" in html
        assert "data:text/csv" not in html  # the CSV would be megabytes: not embedded
        assert "CSV download is embedded only below 256 KB" in html


def test_default_rows_are_the_baseline_the_extremes_and_every_failing_slice(big, big_tidy,
                                                                             big_board):
    expected = expected_default(big, big_tidy)
    failing = {check.slice for check in big.validation.failures}
    assert 3 <= len(failing) <= 40  # the generated data fails some slices, not most
    rows = chart_rows(big_board.html)
    assert set(rows) == expected
    assert list(rows)[0] == "Overall" and ">baseline<" in rows["Overall"]
    assert len(rows) < len(every_slice(big_tidy)) / 10
    hidden = len(every_slice(big_tidy)) - len(expected)
    assert f"{len(expected):,} of {REGIONS + 1:,} slices" in big_board.html
    assert f"({hidden:,} not listed above)" in big_board.html
    # Failing slices are listed whatever their value (the tiny ones have none).
    for name in ("region:r0011", "region:r0012", "region:r0013"):
        assert name in failing and name in rows


def test_show_all_holds_every_slice_in_a_closed_scrolling_box(big, big_tidy, big_board):
    block = show_all(big_board.html)
    assert block is not None and block.startswith("<details") and " open" not in block[:20]
    assert re.search(r'max-height:\d+px;overflow-y:auto', block)
    rows = rows_of_table(block)
    assert set(rows) == every_slice(big_tidy) and len(rows) == REGIONS + 1
    fpr = fpr_at(big_tidy).set_index("slice")
    for name in ("region:r0001", "region:r0420", "region:r0999"):
        value = fpr.loc[name, "value"]
        assert f">{fmt_num(value)}<" in rows[name]


def test_top_chooses_how_many_extremes_and_none_lists_every_slice(big, big_tidy, small):
    three = view_of(big, top=3)  # toolkit.show(result, top=3)
    assert set(chart_rows(three.html)) == expected_default(big, big_tidy, top=3)
    # 31 slices at top=3: the 7 default rows and the failing ones leave out more than they
    # list, so the rest goes to "Show all"; at top=10 nothing would be worth hiding.
    tidy = small.to_dataframe()
    few = evaluation_view(small, top=3)
    assert set(chart_rows(few.html)) == expected_default(small, tidy, top=3) != every_slice(tidy)
    assert set(rows_of_table(show_all(few.html))) == every_slice(tidy)
    everything = evaluation_view(big, top=None)
    assert set(chart_rows(everything.html)) == every_slice(big_tidy)
    assert show_all(everything.html) is None
    with pytest.raises(ToolkitError, match="top must be a whole number"):
        evaluation_view(big, top=-1)


def test_text_form_lists_the_same_rows_and_says_how_to_see_all(big, big_tidy, big_board):
    text = big_board.text
    expected = expected_default(big, big_tidy)
    hidden = len(every_slice(big_tidy)) - len(expected)
    listed = [line.strip().split("  ")[0] for line in text.splitlines()
              if line.startswith("  region:") or line.startswith("  Overall")]
    listed = {name.replace(" (baseline)", "").replace(" (below min_slice_size)", "")
              for name in listed}
    assert listed == expected
    assert f"… {hidden:,} more slices not listed: toolkit.show(result, top=None)" in text
    assert len(text.splitlines()) < 80


def test_thirty_slices_show_every_slice_the_full_table_and_a_csv_download(small):
    tidy = small.to_dataframe()
    board = view_of(small)
    html = board.html
    rows = chart_rows(html)
    assert set(rows) == every_slice(tidy) and len(rows) == 31
    assert show_all(html) is None and "not listed" not in html and "not listed" not in board.text
    assert "Full metrics table: 31 slices" in html
    link = re.search(r'<a href="data:text/csv;charset=utf-8;base64,([A-Za-z0-9+/=]+)" '
                     r'download="metrics.csv"', html)
    assert link, "a small evaluation embeds its metrics table as a CSV download"
    frame = pd.read_csv(io.StringIO(base64.b64decode(link.group(1)).decode("utf-8")),
                        keep_default_na=False, na_values=[""])
    assert {"slice", "metric", "threshold", "value", "lower", "upper"} <= set(frame.columns)
    merged = tidy.merge(frame, on=["slice", "metric", "threshold"], suffixes=("", "_csv"))
    assert len(merged) == len(tidy)  # every slice, metric and threshold
    for column in ("value", "lower", "upper"):  # the stored values, never clipped
        assert np.allclose(merged[column], merged[f"{column}_csv"], equal_nan=True)
    assert (frame["upper"] > 1).any()


def test_the_widget_at_thirty_slices_has_nothing_to_reveal(small):
    board = dashboard(small)
    assert board.controls["show_all"].disabled


# ----------------------------------------------------------------------------- intervals

def test_rate_bounds_are_clipped_to_zero_and_one_with_a_mark(big, big_tidy, big_board):
    rows = chart_rows(big_board.html)
    fpr = fpr_at(big_tidy).set_index("slice")
    shown = fpr.loc[[name for name in rows if name in fpr.index]]
    over = shown[shown["upper"] > 1]
    assert len(over) >= 1, "the data must give an upper bound past 1 among the shown slices"
    for name, record in over.iterrows():
        row = rows[name]
        assert f"[{fmt_num(record['lower'])},\u00a0{fmt_num(1.0)}{CLIP}]" in row
        assert repr(float(record["upper"])) in unescape(row)  # the computed bound, in the title
        assert f",\u00a0{fmt_num(record['upper'])}]" not in row  # not shown as a value
    # The stored value stays TFMA's: past 1, in the frame and in TFMA's encoding.
    name = over.index[0]
    assert fpr.loc[name, "upper"] > 1
    key = big_tidy.loc[big_tidy["slice"] == name, "slice_key"].iloc[0]
    stored = big.get_metrics_for_slice(key)[FPR + "@0.3"]["boundedValue"]["upperBound"]
    assert stored == pytest.approx(fpr.loc[name, "upper"]) and stored > 1
    assert "interval bound clipped to [0, 1]" in big_board.html
    assert "interval bound clipped to [0, 1]" in big_board.text
    # Lower bounds below 0 too, in "Show all".
    every = rows_of_table(show_all(big_board.html))
    under = fpr[fpr["lower"] < 0]
    assert len(under) >= 1
    for name, record in under.head(5).iterrows():
        assert f"[{fmt_num(0.0)}{CLIP},\u00a0" in every[name]
    # A bound inside [0, 1] carries no mark.
    inside = shown[(shown["upper"] <= 1) & (shown["lower"] >= 0)].index[0]
    assert CLIP not in rows[inside]


def test_metrics_that_are_not_rates_are_not_clipped():
    from toolkit.visualize.evaluation.model import is_unit_metric

    for name in (FPR, "auc", "binary_accuracy", "precision", "recall", "auc_precision_recall",
                 "fairness_indicators_metrics/positive_rate", "sparse_categorical_accuracy",
                 "output_1/false_negative_rate"):
        assert is_unit_metric(name), name
    for name in ("example_count", "mean_label", "mean_prediction", "calibration",
                 "mean_squared_error", "false_positive_rate_diff", "auc_diff"):
        assert not is_unit_metric(name), name


# ----------------------------------------------------------------------------- escaping

def test_planted_html_in_slice_values_is_escaped_everywhere(big, big_board):
    board = dashboard(big)
    board.controls["show_all"].value = True
    live_all = board.widget.children[-1].value
    board.controls["filter"].value = "<img"  # what is typed is shown escaped too
    live_filtered = board.widget.children[-1].value
    assert "1 of 1,001 slices match “&lt;img”" in live_filtered
    rows = chart_rows(board.html)
    assert f"region:{SCRIPT}" in rows  # the highest false positive rate: a default row
    for html in (big_board.html, board.chart_html, live_all, live_filtered):
        for raw in (SCRIPT, BREAKOUT, "<img"):
            assert raw not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    for html in (big_board.html, live_all, live_filtered):
        assert "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;" in html
    assert SCRIPT in big_board.text  # text/plain is not HTML


# ----------------------------------------------------------------------------- live widget

def test_live_filter_narrows_the_rows_and_show_all_lists_every_slice(big, big_tidy):
    board = dashboard(big)
    chart = board.widget.children[-1]
    static = board.html
    assert set(chart_rows(chart.value)) == expected_default(big, big_tidy)
    assert "position:sticky" in chart.value.split("<tbody>", 1)[0]  # the header row stays
    controls = board.controls
    assert controls["show_all"].description == f"Show all {REGIONS + 1:,} slices"
    assert not controls["show_all"].disabled

    controls["filter"].value = "R001"  # case-insensitive, anywhere in the name
    wanted = {name for name in every_slice(big_tidy) if "r001" in name.lower()}
    assert len(wanted) == 10
    assert set(chart_rows(chart.value)) == wanted | {"Overall"}
    assert "10 of 1,001 slices match" in chart.value

    controls["filter"].value = ""
    controls["show_all"].value = True
    assert set(chart_rows(chart.value)) == every_slice(big_tidy)
    controls["metric"].value = "auc"  # other metrics are drawn on request, still every slice
    assert "Fairness indicators: auc<" in chart.value
    assert len(chart_rows(chart.value)) == REGIONS + 1
    # The static copy keeps the default rows of the chosen metric, whatever the filter.
    assert static != board.html and "Fairness indicators: auc<" in board.html
    assert len(chart_rows(board.html)) < 60
    assert len(board.html.encode("utf-8")) < MB


def test_show_passes_top_through_and_refuses_it_where_it_means_nothing(big):
    assert view_of(big, top=2).choice.top == 2
    assert view_of([big], top=2).choice.top == 2  # a list, as a channel's .get() gives
    with pytest.raises(ToolkitError, match="show\\(\\) options \\(top\\)"):
        view_of(View("<b>x</b>", "x"), top=2)


def test_top_reaches_the_dashboard_of_a_model_evaluation_artifact(small, tmp_path):
    import types

    from toolkit.evaluation.storage import save_result

    save_result(small, str(tmp_path))
    artifact = types.SimpleNamespace(uri=str(tmp_path), id=3, type_name="ModelEvaluation")
    board = view_of(artifact, top=3)  # toolkit.show(artifact, top=3), or its channel
    assert isinstance(board, EvaluationDashboard) and board.choice.top == 3
    assert "ModelEvaluation" in board.html and show_all(board.html) is not None
    assert len(chart_rows(board.html.split("tkd-static-", 1)[1])) < 31
