"""The fairness dashboard on real German credit evaluations: content, escaping, widget."""
from __future__ import annotations

import math
import re
import subprocess
import sys
import types

import numpy as np
import pandas as pd
import pytest

import toolkit
from datapaths import GERMAN_CSV, REPO
from toolkit.errors import ToolkitError
from toolkit.visualize.html import fmt_num
from toolkit.visualize import evaluation
from toolkit.visualize.evaluation import (EvaluationDashboard, dashboard, evaluation_view,
                                          load_evaluation)

FPR = "fairness_indicators_metrics/false_positive_rate"
SCRIPT = "<script>alert(1)</script>"
BREAKOUT = '"><img src=x onerror=alert(1)>'
BAD_FEATURE = "<b>region</b>"


def german(scale: float = 1.0, shift: float = 0.0) -> pd.DataFrame:
    """German credit with a deterministic score (risk 1 = good) and an age group column."""
    df = pd.read_csv(GERMAN_CSV)
    z = -0.00025 * df.credit_amount - 0.03 * df.duration + 0.02 * df.age + 0.8
    df["prediction"] = 1.0 / (1.0 + np.exp(-(z * scale + shift)))
    df["age_group"] = pd.cut(df.age, [0, 25, 40, 200],
                             labels=["young", "middle", "senior"]).astype(str)
    return df


def config(**extra) -> dict:
    return {
        "model_specs": [{"label_key": "risk", "prediction_key": "prediction"}],
        "slicing_specs": [{}, {"feature_keys": ["sex"]}, {"feature_keys": ["age_group"]},
                          {"feature_keys": ["sex", "age_group"]}],
        "cross_slicing_specs": [{"baseline_spec": {"feature_keys": ["sex"]},
                                 "slicing_specs": [{"feature_keys": ["sex"]}]}],
        "metrics_specs": [{"metrics": [
            {"class_name": "ExampleCount"},
            {"class_name": "AUC"},
            {"class_name": "FairnessIndicators", "config": '{"thresholds": [0.5, 0.7]}'},
            {"class_name": "BinaryAccuracy",
             "threshold": {"value_threshold": {"lower_bound": 0.6}}},
        ]}],
        "options": {"compute_confidence_intervals": True, "min_slice_size": 70},
        **extra,
    }


@pytest.fixture(scope="module")
def result():
    return toolkit.evaluate(german(), config(), random_seed=7)


@pytest.fixture(scope="module")
def tidy(result) -> pd.DataFrame:
    return result.to_dataframe(baseline_slice="Overall")


def chart_rows(html: str) -> dict[str, str]:
    """Rows of the dashboard's chart (its first table), keyed by slice name."""
    table = html.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    rows = {}
    for row in table.split("<tr")[1:]:
        name = re.search(r'<span[^>]*title="([^"]*)"', row).group(1)
        rows[name.replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">")
             .replace("&quot;", '"').replace("&#x27;", "'")] = row
    return rows


def order(html: str) -> list[str]:
    return list(chart_rows(html))


def row_value(tidy: pd.DataFrame, slice_name: str, metric: str = FPR, threshold: float = 0.5):
    rows = tidy[(tidy["slice"] == slice_name) & (tidy["metric"] == metric)]
    if not math.isnan(threshold):
        rows = rows[np.isclose(rows["threshold"], threshold)]
    assert len(rows) == 1
    return rows.iloc[0]


# ----------------------------------------------------------------------------- content

def test_default_view_is_false_positive_rate_at_first_threshold_against_overall(result):
    view = evaluation_view(result)
    assert "Fairness indicators: false_positive_rate @ 0.5" in view.html
    assert "baseline Overall" in view.html
    rows = chart_rows(view.html)
    first = next(iter(rows))
    assert first == "Overall" and ">baseline<" in rows["Overall"]
    assert sum(">baseline<" in row for row in rows.values()) == 1


def test_every_slice_shows_its_size_value_interval_and_gap_to_baseline(result, tidy):
    rows = chart_rows(evaluation_view(result).html)
    singles = tidy.loc[~tidy["is_cross_slice"], "slice"].unique()
    assert set(rows) == set(singles)
    for name in singles:
        record = row_value(tidy, name)
        row = rows[name]
        assert f">{fmt_num(record['slice_size'])}<" in row
        if record["below_min_slice_size"]:
            continue
        assert f">{fmt_num(record['value'])}<" in row
        assert f"[{fmt_num(record['lower'])},\u00a0{fmt_num(record['upper'])}]" in row
        if name != "Overall":
            diff = record["baseline_diff"]
            assert f">{'+' if diff > 0 else ''}{fmt_num(diff)}<" in row
            assert f">{fmt_num(record['baseline_ratio'])}×<" in row


def test_another_baseline_slice_changes_the_gaps(result):
    tidy = result.to_dataframe(baseline_slice="sex:male")
    rows = chart_rows(evaluation_view(result, baseline_slice="sex:male").html)
    assert next(iter(rows)) == "sex:male" and ">baseline<" in rows["sex:male"]
    assert ">baseline<" not in rows["Overall"]
    female = row_value(tidy, "sex:female")
    assert f">+{fmt_num(female['baseline_diff'])}<" in rows["sex:female"]
    assert f">{fmt_num(female['baseline_ratio'])}×<" in rows["sex:female"]
    # A TFMA slice key or a dict names the same baseline.
    assert order(evaluation_view(result, baseline_slice=(("sex", "male"),)).html) == \
        order(evaluation_view(result, baseline_slice={"sex": "male"}).html)


def test_slice_below_min_slice_size_is_greyed_with_the_reason(result):
    rows = chart_rows(evaluation_view(result).html)
    small = rows["age_group:senior × sex:female"]
    assert "opacity:0.45" in small
    assert "below min_slice_size (65 &lt; 70)" in small
    assert "opacity:0.45" not in rows["age_group:young × sex:male"]


def test_failed_thresholds_are_flagged_on_their_slices(result):
    failing = {c.slice for c in result.validation.failures}
    assert failing and not result.blessed
    view = evaluation_view(result, metric="binary_accuracy")
    assert "not blessed" in view.html
    rows = chart_rows(view.html)
    for name, row in rows.items():
        assert ("✗ needs &gt;= 0.6" in row) == (name in failing), name
    # On another metric the slice still says it failed something.
    fpr_rows = chart_rows(evaluation_view(result).html)
    assert all("1\u00a0other\u00a0failed\u00a0check" in fpr_rows[name] for name in failing)
    assert "other\u00a0failed" not in fpr_rows["sex:male"]


def test_sort_by_metric_gap_and_slice(result, tidy):
    singles = [s for s in tidy.loc[~tidy["is_cross_slice"], "slice"].unique() if s != "Overall"]

    def values(name):
        return row_value(tidy, name)

    by_metric = order(evaluation_view(result, sort="metric").html)[1:]
    defined = [n for n in by_metric if not values(n)["below_min_slice_size"]]
    shown = [values(n)["value"] for n in defined]
    assert shown == sorted(shown, reverse=True)
    assert by_metric[-1] == "age_group:senior × sex:female"  # undefined values last

    by_gap = order(evaluation_view(result, sort="gap").html)[1:]
    gaps = [abs(values(n)["baseline_diff"]) for n in by_gap
            if not values(n)["below_min_slice_size"]]
    assert gaps == sorted(gaps, reverse=True)
    assert by_gap != by_metric

    assert order(evaluation_view(result, sort="slice").html)[1:] == singles


def test_slicing_picks_one_feature_a_crossed_spec_or_cross_slices(result):
    by_sex = order(evaluation_view(result, slicing="sex").html)
    assert by_sex[0] == "Overall" and sorted(by_sex[1:]) == ["sex:female", "sex:male"]
    crossed = order(evaluation_view(result, slicing=["age_group", "sex"]).html)
    assert len(crossed) == 7 and all(" × " in name for name in crossed[1:])
    cross_view = evaluation_view(result, slicing="sex vs sex")
    cross = order(cross_view.html)
    assert "sex:female vs sex:male" in cross and "Overall" not in cross
    assert ">baseline<" not in cross_view.html and "Δ baseline" not in cross_view.html


def test_full_table_holds_every_slice_metric_and_threshold(result, tidy):
    html = evaluation_view(result).html
    table = html.split("Full metrics table", 1)[1]
    assert "16 slices × 13 metrics × 2 thresholds" in html
    for _, row in tidy[np.isfinite(tidy["value"])].iterrows():
        shown = re.search(f">{re.escape(fmt_num(row['value']))}[<\u00a0]", table)
        assert shown, (row["slice"], row["metric"])
    for metric in ("false_negative_rate", "true_positive_rate", "binary_accuracy", "auc"):
        assert f">{metric}</th>" in table


def test_unknown_choices_say_what_is_available(result):
    with pytest.raises(ToolkitError, match="choose one of: .*auc"):
        evaluation_view(result, metric="accuracy")
    with pytest.raises(ToolkitError, match="choose one of: 0.5, 0.7"):
        evaluation_view(result, threshold=0.3)
    with pytest.raises(ToolkitError, match="sex:female"):
        evaluation_view(result, baseline_slice="sex:other")
    with pytest.raises(ToolkitError, match="slicing"):
        evaluation_view(result, slicing="job")
    with pytest.raises(ToolkitError, match="sort"):
        evaluation_view(result, sort="size")
    # The prefix of Fairness Indicators' metrics may be left out.
    assert "false_negative_rate @ 0.7" in evaluation_view(
        result, metric="false_negative_rate", threshold=0.7).html


def test_metrics_without_fairness_indicators_default_to_the_first_real_metric():
    cfg = config(metrics_specs=[{"metrics": [{"class_name": "ExampleCount"},
                                             {"class_name": "AUC"}]}])
    view = evaluation_view(toolkit.evaluate(german(), cfg))
    assert "Fairness indicators: auc<" in view.html
    assert "no thresholds in the EvalConfig" in view.html and "no thresholds" in view.text


# ----------------------------------------------------------------------------- two evaluations

def test_compare_to_draws_paired_bars_per_slice(result, tidy):
    other = toolkit.evaluate(german(scale=0.7, shift=0.1), config(), random_seed=7)
    view = evaluation_view(result, compare_to=other)
    rows = chart_rows(view.html)
    mine, theirs = tidy, other.to_dataframe()
    for name in ("sex:female", "age_group:young"):
        row = rows[name]
        assert row.count("position:relative;width:") == 2
        a = row_value(mine, name)["value"]
        b = row_value(theirs, name)["value"]
        assert f">{fmt_num(a)}<" in row and f">{fmt_num(b)}<" in row
        assert f">{'+' if a - b > 0 else ''}{fmt_num(a - b)}<" in row
    assert "candidate" in view.html and "baseline" in view.html
    assert "values: candidate / baseline" in view.text


def test_result_with_a_baseline_model_is_paired_on_its_own():
    df = german()
    df["old"] = german(scale=0.7, shift=0.1)["prediction"]
    both = toolkit.evaluate(df, config(), baseline="old", random_seed=7)
    view = evaluation_view(both, labels=("new model", "old model"))
    assert "new model" in view.html and "old model" in view.html
    assert chart_rows(view.html)["sex:male"].count("position:relative;width:") == 2
    assert "fairness_indicators_metrics/false_positive_rate_diff" in view.html  # full table


# ----------------------------------------------------------------------------- escaping

def test_slice_values_and_feature_names_are_escaped():
    df = german()
    planted = np.array(["plain", SCRIPT, BREAKOUT])
    df[BAD_FEATURE] = planted[np.arange(len(df)) % 3]
    cfg = config(slicing_specs=[{}, {"feature_keys": [BAD_FEATURE]},
                                {"feature_keys": [BAD_FEATURE, "sex"]}],
                 cross_slicing_specs=[])
    result = toolkit.evaluate(df, cfg)
    board = EvaluationDashboard(result, slicing=BAD_FEATURE, baseline_slice={BAD_FEATURE: SCRIPT})
    outputs = [board.html, board.chart_html, evaluation_view(result, sort="gap").html]
    board.controls["metric"].value = "auc"
    outputs.append(board.widget.children[-1].value)
    for html in outputs:
        for raw in (SCRIPT, BREAKOUT, BAD_FEATURE, "<img", "<b>"):
            assert raw not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        assert "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;" in html
        assert "&lt;b&gt;region&lt;/b&gt;" in html
    assert SCRIPT in board.text  # text/plain is not HTML


# ----------------------------------------------------------------------------- text

def test_text_fallback_is_a_readable_table(result, tidy):
    text = evaluation_view(result).text
    assert "<" not in text.replace("< 70", "")
    lines = text.splitlines()
    assert lines[0].startswith("Fairness indicators: false_positive_rate @ 0.5")
    assert "not blessed, 6 failed checks" in text
    female = next(line for line in lines if line.strip().startswith("sex:female"))
    record = row_value(tidy, "sex:female")
    for expected in (fmt_num(310), fmt_num(record["value"]), fmt_num(record["baseline_diff"])):
        assert expected in female
    assert "Overall (baseline)" in text and "(below min_slice_size)" in text
    assert "✗ age_group:young: binary_accuracy" in text


# ----------------------------------------------------------------------------- widget

def test_controls_change_the_chart_and_the_static_copy(result):
    board = dashboard(result)
    controls = board.controls
    assert set(controls) == {"metric", "threshold", "baseline", "slicing", "sort", "filter",
                             "show_all"}
    assert controls["show_all"].disabled  # 16 slices: every one is shown already
    chart = board.widget.children[-1]
    before = chart.value
    assert board.html != before and ".tkd-static-" in before  # the rule hiding the static chart
    assert f'class="tkd-static-{board.uid}"' in board.html

    controls["metric"].value = "auc"
    assert "Fairness indicators: auc<" in chart.value and chart.value != before
    assert controls["threshold"].disabled and controls["threshold"].value == ""
    assert "Fairness indicators: auc<" in board.html and "auc" in board.text.splitlines()[0]

    controls["metric"].value = FPR
    assert not controls["threshold"].disabled
    assert [label for label, _ in controls["threshold"].options] == ["0.5", "0.7"]
    controls["threshold"].value = controls["threshold"].options[1][1]
    assert "false_positive_rate @ 0.7" in chart.value

    controls["baseline"].value = "sex:female"
    assert order(chart.value)[0] == "sex:female"
    controls["slicing"].value = "age_group"
    assert order(chart.value)[0] == "sex:female"  # the baseline stays pinned on top
    assert sorted(order(chart.value)[1:]) == ["age_group:middle", "age_group:senior",
                                              "age_group:young"]
    controls["sort"].value = "slice"
    assert order(chart.value) == ["sex:female", "age_group:middle", "age_group:senior",
                                  "age_group:young"]
    assert board.choice.threshold == 0.7 and board.choice.sort == "slice"


def test_select_moves_the_controls_too(result):
    board = dashboard(result)
    board.select(metric="binary_accuracy", slicing="age_group")
    assert board.controls["metric"].value == "binary_accuracy"
    assert board.controls["slicing"].value == "age_group"
    assert "binary_accuracy @ 0.5" in board.widget.children[-1].value
    with pytest.raises(ToolkitError, match="unknown dashboard choice"):
        board.select(colour="red")


def test_a_header_goes_above_the_chart_in_both_forms(result):
    board = dashboard(result)
    board.widget  # noqa: B018 - built before the header is set
    board.with_header("<b>ModelEvaluation</b>", "ModelEvaluation: /runs/eval")
    static = board.html.split(f'class="tkd-static-{board.uid}">', 1)[1]
    assert static.startswith("<b>ModelEvaluation</b>")
    assert board.text.startswith("ModelEvaluation: /runs/eval\n")
    header = board.widget.children[0]
    assert header.value == "<b>ModelEvaluation</b>" and header.layout.display == ""


def test_display_emits_the_widget_then_an_updatable_static_copy(result, monkeypatch):
    import IPython
    import IPython.display

    shown = []

    class Handle:
        def update(self, obj, raw=False):
            shown.append(("update", obj))

    def fake_display(obj, raw=False, display_id=None):
        shown.append(("display", obj))
        return Handle() if display_id else None

    shell = types.SimpleNamespace(kernel=object(), execution_count=3)
    monkeypatch.setattr(IPython, "get_ipython", lambda: shell)
    monkeypatch.setattr(IPython.display, "display", fake_display)
    board = dashboard(result)
    board._ipython_display_()
    (kind1, widget), (kind2, static) = shown
    assert widget["application/vnd.jupyter.widget-view+json"]["model_id"] == board.widget.model_id
    assert "live kernel" in widget["text/plain"]
    assert static == {"text/html": board.html, "text/plain": board.text}
    board.controls["metric"].value = "auc"
    kind, updated = shown[-1]
    assert kind == "update" and "Fairness indicators: auc<" in updated["text/html"]
    # Echo of the value ``toolkit.show`` returns, in the same cell: nothing more.
    board._echo_cell = 3
    count = len(shown)
    board._ipython_display_()
    assert len(shown) == count


def test_without_a_kernel_only_the_static_copy_is_displayed(result, monkeypatch):
    import IPython
    import IPython.display

    shown = []
    monkeypatch.setattr(IPython, "get_ipython", lambda: None)
    monkeypatch.setattr(IPython.display, "display",
                        lambda obj, raw=False, display_id=None: shown.append(obj))
    dashboard(result)._ipython_display_()
    assert len(shown) == 1 and set(shown[0]) == {"text/html", "text/plain"}


# ----------------------------------------------------------------------------- integration

def test_model_evaluation_artifacts_and_results_are_registered():
    from toolkit import visualize

    assert visualize.VIEWS.get("ModelEvaluation") is evaluation.model_evaluation_view
    assert visualize.VIEWS.get("toolkit.evaluation.result.EvalResult") is dashboard


def test_show_of_an_eval_result_is_the_dashboard(result):
    from toolkit.visualize import view_of

    assert isinstance(view_of(result), EvaluationDashboard)


def test_tfma_encoded_results_render_the_same_numbers(result, tidy):
    """A tfma.EvalResult (slicing_metrics in TFMA's JSON encoding) reads like the tidy frame."""
    tfma_like = types.SimpleNamespace(slicing_metrics=result.slicing_metrics,
                                      config=result.eval_config)
    ours = chart_rows(evaluation_view(result, sort="slice").html)
    theirs = chart_rows(evaluation_view(tfma_like, sort="slice").html)
    assert list(ours) == list(theirs)
    for name in ("sex:female", "age_group:young × sex:male"):
        value = row_value(tidy, name)["value"]
        assert f">{fmt_num(value)}<" in theirs[name]
    assert "below min_slice_size" in theirs["age_group:senior × sex:female"]
    view = evaluation_view(tfma_like, metric="false_negative_rate", threshold=0.7)
    assert "false_negative_rate @ 0.7" in view.html
    fnr = row_value(tidy, "sex:female", "fairness_indicators_metrics/false_negative_rate", 0.7)
    assert f">{fmt_num(fnr['value'])}<" in chart_rows(view.html)["sex:female"]


def test_tfma_cross_slice_validation_failure_is_shown_on_its_cross_slice(result):
    """TFMA writes a cross-slice failure under ``cross_slice_key``: it is not "Overall"."""
    from tensorflow_model_analysis.proto import validation_result_pb2

    validation = validation_result_pb2.ValidationResult(validation_ok=False)
    per_slice = validation.metric_validations_per_slice.add()
    cross = per_slice.cross_slice_key
    cross.baseline_slice_key.single_slice_keys.add(column="sex", bytes_value=b"female")
    cross.comparison_slice_key.single_slice_keys.add(column="sex", bytes_value=b"male")
    failure = per_slice.failures.add()
    failure.metric_key.name = "binary_accuracy"
    failure.metric_threshold.value_threshold.upper_bound.value = 0.01
    failure.metric_value.double_value.value = 0.05
    tfma_like = types.SimpleNamespace(slicing_metrics=result.slicing_metrics,
                                      config=result.eval_config, validation=validation)
    view = evaluation_view(tfma_like, metric="binary_accuracy", slicing="sex vs sex")
    rows = chart_rows(view.html)
    assert "✗ needs &lt;= 0.01" in rows["sex:female vs sex:male"]
    assert "sex:female vs sex:male: binary_accuracy = 0.05, needs <= 0.01" in view.text
    assert "Overall: binary_accuracy" not in view.text
    overall = chart_rows(evaluation_view(tfma_like, metric="binary_accuracy").html)["Overall"]
    assert "✗" not in overall and "failed\u00a0check" not in overall


def test_an_evaluator_folder_loads_without_tensorflow(result, tmp_path):
    """The Evaluator stores its EvalResult beside TFMA's records: the view reads that."""
    from toolkit.evaluation.storage import save_result

    save_result(result, str(tmp_path))
    code = (
        "import sys, types\n"
        "from toolkit.visualize import artifact_view\n"
        "import toolkit.visualize.evaluation\n"
        f"artifact = types.SimpleNamespace(uri={str(tmp_path)!r}, id=7,\n"
        "                                 type_name='ModelEvaluation')\n"
        "view = artifact_view(artifact)\n"
        "print('Fairness indicators: false_positive_rate @ 0.5' in view.html, "
        "'tensorflow' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=REPO)
    assert out.stdout.split() == ["True", "False"], out.stderr[-2000:]
    loaded = load_evaluation(str(tmp_path))
    assert isinstance(loaded, type(result))
    assert loaded.slicing_metrics == result.slicing_metrics


def test_an_older_toolkits_evaluation_asks_for_a_rerun_in_the_view(tmp_path):
    """A folder holding only the pickle an older toolkit wrote: one line, never unpickled."""
    from toolkit.evaluation.storage import LEGACY_FILE
    from toolkit.visualize import artifact_view

    (tmp_path / LEGACY_FILE).write_bytes(b"\x80\x04not read")
    artifact = types.SimpleNamespace(uri=str(tmp_path), id=7, type_name="ModelEvaluation")
    view = artifact_view(artifact)
    line = (f"ModelEvaluation #7 ({tmp_path}): this evaluation was stored by an older toolkit "
            f"version ({LEGACY_FILE}); re-run its Evaluator")
    assert line in view.text
    assert "re-run its Evaluator" in view.html and "Fairness indicators" not in view.html


@pytest.mark.slow
def test_model_evaluation_artifact_written_for_tfma_renders(result, tidy, tmp_path):
    """The TFMA fallback: records written by write_tfma_artifact, read by tfma.load_eval_result."""
    import toolkit.evaluation

    toolkit.evaluation.write_tfma_artifact(result, str(tmp_path))
    loaded = load_evaluation(str(tmp_path))
    html = evaluation_view(loaded, sort="slice").html
    rows = chart_rows(html)
    assert fmt_num(row_value(tidy, "sex:female")["value"]) in rows["sex:female"]
    assert "not blessed" in html
    assert "✗" in chart_rows(evaluation_view(loaded, metric="binary_accuracy").html)[
        "age_group:young"]


# ------------------------------------------------------------------------------ multi-class


def _penguin_result():
    """A three-class evaluation of penguins, per class (class_ids) and overall."""
    from datapaths import DATA

    df = pd.read_csv(f"{DATA}/penguins/penguins.csv").dropna(subset=["bill_length_mm", "bill_depth_mm"])
    df = df.reset_index(drop=True)
    species = sorted(df["species"].unique())
    df["label"] = df["species"].map({s: i for i, s in enumerate(species)})
    z = np.column_stack([-(df.bill_length_mm - 39) / 3, (df.bill_length_mm - 47) / 3 - (df.bill_depth_mm - 17),
                         (df.bill_length_mm - 47) / 3 + (17 - df.bill_depth_mm)])
    scores = np.exp(z - z.max(axis=1, keepdims=True))
    df["prediction"] = list(scores / scores.sum(axis=1, keepdims=True))
    df["island"] = df["island"].replace({"Dream": SCRIPT})
    return toolkit.evaluate(df, {
        "slicing_specs": [{}, {"feature_keys": ["island"]}],
        "metrics_specs": [
            {"metrics": [{"class_name": "SparseCategoricalAccuracy"}, {"class_name": "ExampleCount"}]},
            {"binarize": {"class_ids": {"values": [0, 1, 2]}},
             "metrics": [{"class_name": "FairnessIndicators", "config": '{"thresholds": [0.5]}'},
                         {"class_name": "AUC"}]}]})


def test_class_chooser_picks_the_class_of_the_chart():
    result = _penguin_result()
    board = EvaluationDashboard(result)
    assert board.choice.metric == FPR and board.choice.sub_key == "classId:0"
    controls = board.controls
    assert [label for label, _ in controls["class"].options] == ["class 0", "class 1", "class 2"]
    assert not controls["class"].disabled
    before = board.chart_html
    controls["class"].value = "classId:2"
    assert board.choice.sub_key == "classId:2" and "class 2" in board.chart_html
    assert board.chart_html != before and "class 2" in board.text
    value = result.get_metrics_for_slice((), class_id=2)[FPR + "@0.5"]["doubleValue"]
    assert fmt_num(value) in board.chart_html
    controls["metric"].value = "sparse_categorical_accuracy"  # a metric without classes
    assert board.choice.sub_key == "" and controls["class"].disabled
    assert board.select(metric="auc", class_id=1).choice.sub_key == "classId:1"
    with pytest.raises(ToolkitError, match="class 7 was not evaluated for auc; choose one of"):
        board.select(class_id=7)


def test_static_view_has_per_class_tables_in_html_and_text():
    result = _penguin_result()
    view = evaluation_view(result, metric="auc", class_id=1)
    for label in ("All classes (metrics without binarization)", "Per class: class 0", "Per class: class 1",
                  "Per class: class 2"):
        assert label in view.html
    assert "× 3 classes" in view.html
    assert SCRIPT not in view.html and "&lt;script&gt;" in view.html
    for class_id in range(3):
        auc = result.get_metrics_for_slice((), class_id=class_id)["auc"]["doubleValue"]
        assert fmt_num(auc) in view.html
    lines = view.text.splitlines()
    header = next(line for line in lines if "per class: auc" in line)
    assert "Overall" in header
    rows = [line for line in lines if line.strip().startswith("class ")]
    assert [row.split()[1] for row in rows] == ["0", "1", "2"]
    assert fmt_num(result.get_metrics_for_slice((), class_id=2)["auc"]["doubleValue"]) in rows[2]
