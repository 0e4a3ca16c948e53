"""``toolkit.compare``, ``toolkit compare`` and ``toolkit models compare`` on real runs.

One module-scoped pipeline on the German credit data trains two models whose runs differ
in one Trainer parameter (``train_args``), evaluates each with the real Evaluator (slices by
sex, confidence intervals, curves) and pushes both to one serving directory. Values and
deltas are checked against ``tfma.load_eval_result`` of each Evaluator output, computed
here from TFMA's numbers; the lineage against the one parameter that was changed.
"""
from __future__ import annotations

import math
import os
import types

import numpy as np
import pandas as pd
import pytest

from datapaths import GERMAN_CSV, REPO

TRAINER_MODULE = os.path.join(REPO, "notebooks", "credit_trainer.py")
STEPS = (2, 60)
PLANTED = "<script>alert(1)</script>"
METRICS = ("auc", "binary_accuracy", "example_count")

pytestmark = pytest.mark.slow


def _config():
    import tensorflow_model_analysis as tfma

    threshold = tfma.MetricThreshold()
    threshold.value_threshold.lower_bound.value = 0.0
    return tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(label_key="bad_risk")],
        slicing_specs=[tfma.SlicingSpec(), tfma.SlicingSpec(feature_keys=["sex"]),
                       tfma.SlicingSpec(feature_keys=["branch"])],
        metrics_specs=[tfma.MetricsSpec(
            metrics=[tfma.MetricConfig(class_name="ExampleCount"),
                     tfma.MetricConfig(class_name="AUC"),
                     tfma.MetricConfig(class_name="BinaryAccuracy"),
                     tfma.MetricConfig(class_name="ConfusionMatrixPlot"),
                     tfma.MetricConfig(class_name="CalibrationPlot")],
            per_slice_thresholds={"auc": tfma.PerSliceMetricThresholds(thresholds=[
                tfma.PerSliceMetricThreshold(slicing_specs=[tfma.SlicingSpec()],
                                             threshold=threshold)])})],
        options=tfma.Options(compute_confidence_intervals={"value": True}))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two Trainer runs (2 and 60 steps, nothing else different), each evaluated and pushed."""
    from toolkit import InteractiveContext
    from toolkit.components import CsvExampleGen, Evaluator, Pusher, Trainer

    folder = tmp_path_factory.mktemp("compare")
    frame = pd.read_csv(GERMAN_CSV)
    frame["bad_risk"] = 1 - frame.pop("risk")
    frame["branch"] = np.where(np.arange(len(frame)) % 3 == 0, PLANTED, "north")
    (folder / "data").mkdir()
    frame.to_csv(folder / "data" / "credit.csv", index=False)
    context = InteractiveContext(pipeline_name="compare", pipeline_root=str(folder / "root"))
    example_gen = CsvExampleGen(input_base=str(folder / "data"))
    context.run(example_gen)
    serving = folder / "serving"
    serving.mkdir()
    evaluations = []
    for steps in STEPS:
        trainer = Trainer(module_file=TRAINER_MODULE, examples=example_gen.outputs["examples"],
                          train_args={"num_steps": steps}, eval_args={"num_steps": 1})
        evaluator = Evaluator(examples=example_gen.outputs["examples"],
                              model=trainer.outputs["model"], eval_config=_config())
        pusher = Pusher(model=trainer.outputs["model"], model_blessing=evaluator.outputs["blessing"],
                        push_destination=str(serving / "credit"), allowed_root=str(serving))
        context.run(trainer)
        evaluations.append(context.run(evaluator))
        context.run(pusher)
    return types.SimpleNamespace(context=context, evaluations=evaluations,
                                 serving=str(serving / "credit"), folder=folder,
                                 examples=example_gen.outputs["examples"])


def _tfma_values(uri: str) -> dict:
    """(slice display, metric) -> (value, lower, upper), read by TFMA from the folder."""
    import tensorflow_model_analysis as tfma

    from toolkit.evaluation.slicing import slice_display

    found = {}
    loaded = tfma.load_eval_result(uri)
    for key, by_output in loaded.slicing_metrics:
        for metric, value in by_output[""][""].items():
            if metric not in METRICS:
                continue
            if "boundedValue" in value:
                bounded = value["boundedValue"]
                found[(slice_display(key), metric)] = (
                    bounded["value"], bounded["lowerBound"], bounded["upperBound"])
            else:
                found[(slice_display(key), metric)] = (value["doubleValue"], math.nan, math.nan)
    return found


def test_values_and_deltas_agree_with_tfma(runs):
    import toolkit

    first, second = runs.evaluations
    comparison = toolkit.compare(first, second.outputs["evaluation"][0], names=["short", "long"])
    frame = comparison.to_dataframe()
    assert set(frame.columns) >= {"candidate", "slice", "metric", "threshold", "value", "lower",
                                  "upper", "delta", "distinct"}
    ours = {name: _tfma_values(result.outputs["evaluation"][0].uri)
            for name, result in zip(("short", "long"), runs.evaluations)}
    assert len(ours["short"]) >= 3 * len(METRICS)
    checked = 0
    for (slice_name, metric), (value, lower, upper) in ours["long"].items():
        row = frame[(frame["candidate"] == "long") & (frame["slice"] == slice_name)
                    & (frame["metric"] == metric)]
        assert len(row) == 1, (slice_name, metric)
        reference, ref_lower, ref_upper = ours["short"][(slice_name, metric)]
        assert row["value"].item() == pytest.approx(value, abs=1e-9)
        assert row["delta"].item() == pytest.approx(value - reference, abs=1e-9)
        if not math.isnan(lower):
            assert row["lower"].item() == pytest.approx(lower, abs=1e-9)
            assert row["upper"].item() == pytest.approx(upper, abs=1e-9)
            apart = lower > ref_upper or upper < ref_lower
            assert bool(row["distinct"].item()) is apart
        checked += 1
    assert checked == len(ours["long"])
    # the reference's own deltas are zero; the two models are far apart on the overall AUC
    assert (frame.loc[frame["candidate"] == "short", "delta"].dropna() == 0).all()
    overall = frame[(frame["slice"] == "Overall") & (frame["metric"] == "auc")]
    assert overall["candidate"].tolist() == ["short", "long"]


def test_parameters_name_exactly_the_trainer_parameter_that_differs(runs):
    import toolkit

    comparison = toolkit.compare(*runs.evaluations)
    differing = comparison.parameters()
    assert list(zip(differing["component"], differing["parameter"])) == [("Trainer", "train_args")]
    values = differing.iloc[0, 2:].tolist()
    assert [v["num_steps"] if isinstance(v, dict) else v for v in values] == list(STEPS) or \
        [str(s) in str(v) for s, v in zip(STEPS, values)] == [True, True]
    everything = comparison.parameters(all=True)
    assert len(everything) > 5
    assert ("Evaluator", "eval_config") in set(zip(everything["component"], everything["parameter"]))
    assert ("Trainer", "module_fingerprint") in set(zip(everything["component"],
                                                        everything["parameter"]))


def test_pushed_versions_compare_as_their_blessing_evaluations(runs, capsys):
    import toolkit
    from toolkit.cli import main

    from toolkit.components.pusher import versions

    first, second = versions(runs.serving)
    by_version = toolkit.compare((runs.serving, first), (runs.serving, str(second)))
    by_artifact = toolkit.compare(*runs.evaluations)
    pd.testing.assert_series_equal(by_version.to_dataframe()["value"],
                                   by_artifact.to_dataframe()["value"])
    blessing = by_version.blessing()
    assert blessing["blessed"].tolist() == [True, True]
    assert blessing["failed"].tolist() == [[], []]
    assert list(by_version.parameters()["parameter"]) == ["train_args"]

    assert main(["models", "compare", runs.serving, str(first), str(second)]) == 0
    out = capsys.readouterr().out
    assert f"version {first}" in out and f"version {second}" in out and "train_args" in out
    page = os.path.join(runs.serving, f"toolkit-compare-{first}-{second}.html")
    html = open(page, encoding="utf-8").read()
    assert "<script" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "http://" not in html and "https://" not in html
    versions_page = open(os.path.join(runs.serving, "toolkit-versions.html"), encoding="utf-8").read()
    assert "branch:&lt;script&gt;" in versions_page
    report = open(os.path.join(runs.serving, str(second), "toolkit-report.html"), encoding="utf-8").read()
    assert "<code>../toolkit-versions.html</code>" in report


def test_folders_and_results_are_candidates_and_render_escaped(runs):
    import toolkit

    first, second = (r.outputs["evaluation"][0] for r in runs.evaluations)
    comparison = toolkit.compare(first.uri, second.load())
    assert comparison.names[0] == f"ModelEvaluation #{first.id}"
    assert comparison.parameters().empty  # an EvalResult in memory has no lineage
    html = comparison._repr_html_()
    assert "<script" not in html and "&lt;script&gt;" in html
    assert html.count("data:image/svg+xml;base64,") >= 3  # ROC, PR, calibration per slice
    assert "Overall" in repr(comparison)


def test_bad_candidates_are_one_line_errors_naming_the_fix(runs, tmp_path):
    import toolkit
    from toolkit.errors import ToolkitError

    cases = [(42, "pass a ModelEvaluation"),
             (str(tmp_path / "missing"), "no such folder"),
             (str(tmp_path), "holds neither evaluation.json"),
             (runs.examples.get()[0], "pass the Evaluator's ModelEvaluation"),
             ((runs.serving, 9), "no version 9"),
             ((str(tmp_path), 1), "is not a serving directory")]
    for given, words in cases:
        with pytest.raises(ToolkitError) as caught:
            toolkit.compare(given)
        message = str(caught.value)
        assert words in message and "\n" not in message, message
    with pytest.raises(ToolkitError, match="one name per candidate"):
        toolkit.compare(*runs.evaluations, names=["only one"])


def test_compare_command_on_a_sweep_folder(runs, tmp_path, capsys):
    """``toolkit compare SWEEP_DIR`` reads the points from sweep.json and their summaries,
    names them by their grid values and writes SWEEP_DIR/compare.html."""
    import json

    from toolkit.cli import main

    sweep = tmp_path / "sweep"
    points = []
    for index, (steps, result) in enumerate(zip(STEPS, runs.evaluations), 1):
        run_dir = sweep / f"point-{index}"
        run_dir.mkdir(parents=True)
        evaluation = result.outputs["evaluation"][0]
        (run_dir / "summary.json").write_text(json.dumps({"status": "succeeded", "artifacts": [
            {"component_id": "Evaluator", "type": "ModelEvaluation", "id": evaluation.id,
             "uri": evaluation.uri}]}))
        points.append({"index": index, "grid": {"train_steps": steps}, "status": "succeeded",
                       "summary": str(run_dir / "summary.json"), "run_dir": str(run_dir)})
    points.append({"index": 3, "grid": {"train_steps": 0}, "status": "failed", "summary": None})
    (sweep / "sweep.json").write_text(json.dumps({"points": points}))
    assert main(["compare", str(sweep)]) == 0
    out = capsys.readouterr().out
    assert "train_steps=2" in out and "train_steps=60" in out and "train_steps=0" not in out
    html = (sweep / "compare.html").read_text(encoding="utf-8")
    assert "train_steps=60" in html and "train_args" in html
