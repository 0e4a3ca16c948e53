"""The German credit flagship notebook, executed headless: a fairness report whose numbers hold.

The gap the notebook prints is recomputed here from scratch: the pushed SavedModel
answers hand-built ``tf.Example``s of the eval split, and pandas counts the errors.
"""
from __future__ import annotations

import glob
import os
import re

import pandas as pd
import pytest

from datapaths import GERMAN_CSV
from notebook_checks import assert_ran_clean, assert_views_have_html_and_text

CROSSED = [f"age_group:{age} × sex:{sex}" for age in ("<25", "25-40", ">40")
           for sex in ("female", "male")]
GROUPS = ["Overall", "sex:female", "sex:male", "age_group:<25", "age_group:25-40",
          "age_group:>40"]


def _cell_outputs(notebook, first_line: str) -> list:
    cells = [c for c in notebook.cells
             if c.cell_type == "code" and c.source.splitlines()[0].startswith(first_line)]
    assert len(cells) == 1, first_line
    return cells[0].outputs


def _text(outputs) -> str:
    parts = []
    for output in outputs:
        if output.output_type == "stream":
            parts.append(output.text)
        elif "data" in output:
            parts.append(output.data.get("text/plain", ""))
    return "\n".join(parts)


def _table(text: str, labels: list[str]) -> dict[str, list[float]]:
    """The numbers on each labelled line of a printed DataFrame."""
    rows = {}
    for line in text.splitlines():
        for label in labels:
            if line.startswith(label + " "):
                rows[label] = [float(v) for v in line[len(label):].split()]
    assert sorted(rows) == sorted(labels), text
    return rows


@pytest.fixture(scope="module")
def recomputed(executed_credit) -> pd.DataFrame:
    """Eval rows with the pushed model's probability of bad risk, predicted outside the toolkit."""
    import tensorflow as tf

    pushed = glob.glob(os.path.join(executed_credit.serving, "*", "saved_model.pb"))
    assert len(pushed) == 1
    frame = pd.read_parquet(glob.glob(os.path.join(
        executed_credit.root, "PrepareCredit", "prepared", "*", "Split-eval"))[0])

    def example(row) -> bytes:
        features = {}
        for column, value in row.items():
            if isinstance(value, str):
                features[column] = tf.train.Feature(bytes_list=tf.train.BytesList(
                    value=[value.encode()]))
            else:
                features[column] = tf.train.Feature(int64_list=tf.train.Int64List(
                    value=[int(value)]))
        return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()

    model = tf.saved_model.load(os.path.dirname(pushed[0]))
    serialized = tf.constant([example(row) for _, row in frame.iterrows()])
    answer = model.signatures["serving_default"](examples=serialized)["outputs"]
    frame["score"] = answer.numpy().reshape(-1)
    return frame


def _rates(frame: pd.DataFrame) -> pd.Series:
    """FPR and FNR at the decision threshold 0.5 (refused when the score is above it)."""
    refused = frame["score"] > 0.5
    good, bad = frame["bad_risk"] == 0, frame["bad_risk"] == 1
    return pd.Series({"fpr": (refused & good).sum() / good.sum(),
                      "fnr": (~refused & bad).sum() / bad.sum()})


def _by_group(frame: pd.DataFrame) -> pd.DataFrame:
    rows = {"Overall": _rates(frame)}
    for column in ("sex", "age_group"):
        for value, part in frame.groupby(column):
            rows[f"{column}:{value}"] = _rates(part)
    for (age, sex), part in frame.groupby(["age_group", "sex"]):
        rows[f"age_group:{age} × sex:{sex}"] = _rates(part)
    return pd.DataFrame(rows).T


def test_runs_end_to_end_without_errors(executed_credit):
    assert_ran_clean(executed_credit.notebook)


def test_every_output_has_a_text_fallback_and_views_have_html(executed_credit):
    assert_views_have_html_and_text(executed_credit.notebook, at_least=12)


def test_dashboard_is_static_escaped_and_shows_every_slice(executed_credit):
    outputs = _cell_outputs(executed_credit.notebook,
                            'context.show(evaluator.outputs["evaluation"])')
    assert len(outputs) == 2
    live, static = outputs
    assert "application/vnd.jupyter.widget-view+json" in live.data
    assert live.data["text/plain"] and static.data["text/plain"]
    html, text = static.data["text/html"], static.data["text/plain"]
    assert "Fairness indicators: fpr @ 0.5" in text and "blessed" in text
    for name in CROSSED + GROUPS[1:]:
        assert name in text
        # "<25" and ">40" are data: escaped in the HTML, never markup
        assert name.replace("<", "&lt;").replace(">", "&gt;") in html
    assert "age_group:<25" not in html and "<script" not in html.lower()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "sex:male vs sex:female" in html


def test_rates_shown_equal_an_independent_computation(executed_credit, recomputed):
    shown = _table(_text(_cell_outputs(executed_credit.notebook, 'result = evaluator.outputs["evaluation"]')),
                   GROUPS)
    expected = _by_group(recomputed)
    for group in GROUPS:
        fpr, fnr, examples = shown[group]
        assert fpr == pytest.approx(expected.loc[group, "fpr"], abs=1e-6)
        assert fnr == pytest.approx(expected.loc[group, "fnr"], abs=1e-6)
        part = recomputed if group == "Overall" else recomputed[
            recomputed[group.split(":")[0]] == group.split(":")[1]]
        assert examples == len(part)
    ages = pd.cut(recomputed["age"], bins=[0, 24, 40, 200], labels=["<25", "25-40", ">40"])
    assert (ages.astype(str) == recomputed["age_group"]).all()


def test_gap_shown_equals_an_independent_computation(executed_credit, recomputed):
    text = _text(_cell_outputs(executed_credit.notebook, "gaps = pd.DataFrame("))
    expected = _by_group(recomputed)
    sex_gap = expected.loc["sex:female"] - expected.loc["sex:male"]
    line = re.search(r"women − men: FPR gap ([-+]\d\.\d{4}) \(allowed: ±0\.1\), "
                     r"FNR gap ([-+]\d\.\d{4})", text)
    assert line, text
    assert float(line.group(1)) == pytest.approx(sex_gap["fpr"], abs=5.1e-5)
    assert float(line.group(2)) == pytest.approx(sex_gap["fnr"], abs=5.1e-5)
    shown = _table(text, ["women − men", "<25 − 25-40", ">40 − 25-40"])
    assert shown["women − men"] == pytest.approx([sex_gap["fpr"], sex_gap["fnr"]], abs=1e-6)
    young = expected.loc["age_group:<25"] - expected.loc["age_group:25-40"]
    assert shown["<25 − 25-40"] == pytest.approx([young["fpr"], young["fnr"]], abs=1e-6)


def test_gate_checks_the_gap_and_the_blessed_model_is_pushed(executed_credit, recomputed):
    text = _text(_cell_outputs(executed_credit.notebook, "checks = result.validation"))
    assert "blessed: True" in text
    expected = _by_group(recomputed)
    men_minus_women = expected.loc["sex:male", "fpr"] - expected.loc["sex:female", "fpr"]
    gate = next(line for line in text.splitlines() if "sex:male vs sex:female" in line)
    assert gate.split()[-1] == "True"
    assert float(gate.split()[-2]) == pytest.approx(men_minus_women, abs=1e-6)
    # the blessing the pushed model came from, as the lineage cell names it
    lineage = _text(_cell_outputs(executed_credit.notebook, "context.lineage("))
    [blessing] = [line.split()[-1] for line in lineage.splitlines() if "model_blessing:" in line]
    assert blessing.startswith(os.path.join(executed_credit.root, "Evaluator", "blessing"))
    assert os.path.exists(os.path.join(blessing, "BLESSED"))
    pushed = _text(_cell_outputs(executed_credit.notebook, "pusher = Pusher("))
    assert "pushed Model" in pushed


def test_what_the_notebook_says_about_the_gaps_is_true(executed_credit, recomputed):
    """The markdown's reading of the results, checked against the numbers."""
    rates = _by_group(recomputed)
    limit = 0.1
    assert executed_credit.parameters.get("max_fpr_gap", limit) == limit
    assert abs(rates.loc["sex:female", "fpr"] - rates.loc["sex:male", "fpr"]) <= limit
    young, middle = rates.loc["age_group:<25", "fpr"], rates.loc["age_group:25-40", "fpr"]
    assert young > 2 * middle and young - middle > limit
    others = [rates.loc["sex:female", "fpr"] - rates.loc["sex:male", "fpr"],
              rates.loc["age_group:>40", "fpr"] - middle]
    assert all(young - middle > abs(gap) for gap in others)
    assert rates["fpr"].idxmax() == "age_group:<25 × sex:female"
    assert 25 <= (recomputed["age_group"].eq("<25") & recomputed["sex"].eq("female")).sum() <= 40
    assert (rates.loc[GROUPS, "fnr"] > 0.5).all()
    assert 90 <= (recomputed["sex"] == "female").sum() <= 130
    data = pd.read_csv(GERMAN_CSV)
    data["age_group"] = pd.cut(data["age"], bins=[0, 24, 40, 200], labels=["<25", "25-40", ">40"])
    housing = pd.crosstab(data["age_group"], data["housing"], normalize="index")
    assert 0.4 <= housing.loc["<25", "rent"] < 0.5
    assert 1 / 8 <= housing.loc["25-40", "rent"] <= 1 / 6
    checking = pd.crosstab(data["age_group"], data["checking_account"], normalize="index")
    assert checking.loc["<25", "little"] > checking.loc["25-40", "little"]


def _sweep_record(executed_credit) -> dict:
    import json

    [path] = glob.glob(os.path.join(executed_credit.root, "sweeps", "*", "sweep.json"))
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def test_the_sweep_reuses_the_data_half_and_trains_once_per_new_value(executed_credit):
    import json

    from toolkit.metadata import MetadataStore, sqlite_config

    record = _sweep_record(executed_credit)
    assert [(p["grid"], p["status"]) for p in record["points"]] == [
        ({"train_steps": 200}, "succeeded"), ({"train_steps": 500}, "succeeded")]
    store = MetadataStore("credit", sqlite_config(
        os.path.join(executed_credit.root, "metadata.sqlite")))
    # the notebook's own run computed everything once; its point at the same steps reused
    # it all, and the new point reused the data half
    for name in ("CsvExampleGen", "PrepareCredit", "StatisticsGen", "SchemaGen"):
        states = sorted(r["state"] for r in store.executions(name))
        assert states == ["CACHED", "CACHED", "COMPLETE"], (name, states)
    for name in ("Trainer", "Evaluator"):
        states = sorted(r["state"] for r in store.executions(name))
        assert states == ["CACHED", "COMPLETE", "COMPLETE"], (name, states)
    steps = sorted(json.loads(r["parameters"])["train_args"]["num_steps"]
                   for r in store.executions("Trainer") if r["state"] == "COMPLETE")
    assert steps == [200, 500]
    # the points pushed to the sweep's own folder; serving_dir holds the notebook's push only
    assert len(glob.glob(os.path.join(executed_credit.serving, "*", "saved_model.pb"))) == 1


def test_the_sweep_records_each_points_metrics_as_tfma_reads_them(executed_credit):
    import json

    import tensorflow_model_analysis as tfma

    for point in _sweep_record(executed_credit)["points"]:
        with open(point["summary"], encoding="utf-8") as handle:
            summary = json.load(handle)
        [uri] = [a["uri"] for a in summary["artifacts"] if a["type"] == "ModelEvaluation"]
        [(_, overall)] = [(k, v) for k, v in tfma.load_eval_result(uri).slicing_metrics if k == ()]
        theirs = overall[""][""]
        mine = point["metrics"]["Evaluator"]
        assert mine["blessed"] is True
        for name in ("auc", "binary_accuracy", "fpr", "fnr"):
            assert mine[name] == pytest.approx(theirs[name]["boundedValue"]["value"], abs=1e-12), name


def test_the_comparison_names_only_the_steps_and_shows_tfmas_rates(executed_credit):
    import json

    import tensorflow_model_analysis as tfma

    params = _text(_cell_outputs(executed_credit.notebook, "comparison.parameters()"))
    [row] = [line for line in params.splitlines() if "Trainer" in line]
    assert "train_args" in row and "{'num_steps': 200}" in row and "{'num_steps': 500}" in row
    assert len([line for line in params.splitlines() if line.strip()]) == 2  # header + one row
    shown = _text(_cell_outputs(executed_credit.notebook, "frame = comparison.to_dataframe()"))
    numbers = [float(v) for line in shown.splitlines() if "sex:" in line
               for v in line.split()[-2:]]
    expected = []
    for point in _sweep_record(executed_credit)["points"]:
        with open(point["summary"], encoding="utf-8") as handle:
            summary = json.load(handle)
        [uri] = [a["uri"] for a in summary["artifacts"] if a["type"] == "ModelEvaluation"]
        metrics = dict(tfma.load_eval_result(uri).slicing_metrics)
        for sex in ("female", "male"):
            values = metrics[(("sex", sex),)][""][""]
            expected += [round(values[m]["boundedValue"]["value"], 3) for m in ("fnr", "fpr")]
    assert numbers == pytest.approx(expected, abs=1e-9)
