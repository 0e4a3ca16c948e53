"""ROC / precision-recall (ConfusionMatrixPlot) and calibration (CalibrationPlot) curves.

The toolkit engine, in process and on Beam (DirectRunner), against TFMA 0.47.1 as
installed (``stock_tfma`` of ``test_evaluation_engine``: ``analyze_raw_data``, or
TFMA's public pipeline given both models when there is a baseline) on the same
dataframe and config: every matrix of every ConfusionMatrixPlot (threshold, tp, fp,
tn, fn, precision, recall and TFMA's other fields) and every CalibrationPlot bucket
(edges, weighted examples, labels and predictions), per slice and model, read from
the PlotsForSlice records each side wrote.

Tolerances: thresholds and bucket edges exactly; counts of an unweighted evaluation
exactly (sums of ones); weighted sums and the rates derived from them 1e-9 relative
(both sides add the same float64 numbers, in another order).

Then: ``tfma.load_eval_result`` reads the toolkit's records as it reads TFMA's (equal
dicts), the stored ``evaluation.json`` keeps the curves, and the dashboard draws them
as inline SVG whose coordinates are checked on a hand-computable case.
"""
from __future__ import annotations

import base64
import math
import re
import xml.etree.ElementTree as ElementTree

import numpy as np
import pandas as pd
import pytest

from test_evaluation_engine import _proto, credit, stock_tfma, taxi, tfma  # noqa: F401
from toolkit.evaluation import evaluate, write_tfma_artifact
from toolkit.evaluation import beam_engine, storage

#: TFMA's runs (two models, 1,000-threshold plots) take tens of seconds: one run per data set,
#: shared by every test of the module, which are in the long suite.
slow = pytest.mark.slow
RELATIVE = 1e-9
TAXI_CONFIG = """
model_specs { name: "candidate" label_key: "label" prediction_key: "prediction" }
model_specs { name: "baseline" label_key: "label" prediction_key: "baseline_prediction" is_baseline: true }
metrics_specs {
  metrics { class_name: "ConfusionMatrixPlot" }
  metrics { class_name: "CalibrationPlot" }
  metrics { class_name: "ExampleCount" }
}
slicing_specs {}
slicing_specs { feature_keys: "payment_type" }
"""
CREDIT_CONFIG = """
model_specs { label_key: "label" prediction_key: "prediction" example_weight_key: "weight" }
metrics_specs {
  metrics { class_name: "ConfusionMatrixPlot" config: '{"num_thresholds": 100}' }
  metrics { class_name: "CalibrationPlot" config: '{"num_buckets": 20}' }
  metrics { class_name: "AUC" }
}
slicing_specs {}
slicing_specs { feature_keys: "sex" }
slicing_specs { feature_keys: ["sex", "age_group"] }
slicing_specs { feature_keys: "amount_band" }
"""


class Run:
    """One data set evaluated by TFMA and by the engine (in process, on Beam), records written."""

    def __init__(self, tfma_module, tmp_path_factory, frame: pd.DataFrame, text: str, weighted: bool):
        self.frame = frame
        self.weighted = weighted
        self.tfma_dir = str(tmp_path_factory.mktemp("tfma"))
        stock_tfma(tfma_module, frame, _proto(tfma_module, text), self.tfma_dir)
        self.result = evaluate(frame, text, engine="toolkit")
        self.ours_dir = str(tmp_path_factory.mktemp("ours"))
        write_tfma_artifact(self.result, self.ours_dir)
        self.beam = beam_engine.evaluate_on_beam(frame, text, ["--runner=DirectRunner"])
        self.models = [spec.name for spec in self.result.eval_config.model_specs]


@pytest.fixture(scope="module")
def taxi_run(tfma, tmp_path_factory, taxi):  # noqa: F811
    return Run(tfma, tmp_path_factory, taxi, TAXI_CONFIG, weighted=False)


@pytest.fixture(scope="module")
def credit_run(tfma, tmp_path_factory, credit):  # noqa: F811
    return Run(tfma, tmp_path_factory, credit, CREDIT_CONFIG, weighted=True)


# ----------------------------------------------------------------------------- helpers


def _plots_by_key(tfma_module, folder: str) -> dict:
    """{(slice key, model, plot name, weighted): PlotData} from the PlotsForSlice records."""
    from toolkit.evaluation.tfma_adapter import deserialize_key

    out = {}
    for record in tfma_module.load_plots(folder):
        key = deserialize_key(record)
        for kv in record.plot_keys_and_values:
            entry = (key, kv.key.model_name, kv.key.name, kv.key.example_weighted.value)
            assert entry not in out, entry
            out[entry] = kv.value
    return out


def _close(a: float, b: float, exact: bool) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if math.isinf(a) or math.isinf(b) or exact:
        return a == b
    return abs(a - b) <= RELATIVE * max(abs(a), abs(b))


COUNT_FIELDS = ("true_positives", "false_positives", "true_negatives", "false_negatives")
RATE_FIELDS = ("precision", "recall", "false_positive_rate", "false_omission_rate", "f1", "accuracy")
BUCKET_SUMS = ("num_weighted_examples", "total_weighted_label", "total_weighted_refined_prediction")


def _columns(items, names) -> dict[str, np.ndarray]:
    return {name: np.array([getattr(item, name) for item in items], float) for name in names}


def _assert_arrays(mine: np.ndarray, ref: np.ndarray, exact: bool, where) -> None:
    assert mine.shape == ref.shape, where
    if exact:
        np.testing.assert_array_equal(mine, ref, err_msg=str(where))
    else:
        np.testing.assert_allclose(mine, ref, rtol=RELATIVE, atol=0, equal_nan=True, err_msg=str(where))


def _assert_same_plot(ours, theirs, exact_counts: bool, where) -> None:
    assert ours.HasField("confusion_matrix_at_thresholds") == theirs.HasField("confusion_matrix_at_thresholds")
    assert ours.HasField("calibration_histogram_buckets") == theirs.HasField("calibration_histogram_buckets")
    mine, ref = ours.confusion_matrix_at_thresholds.matrices, theirs.confusion_matrix_at_thresholds.matrices
    a, b = _columns(mine, ("threshold",) + COUNT_FIELDS + RATE_FIELDS), _columns(ref, ("threshold",) + COUNT_FIELDS
                                                                                  + RATE_FIELDS)
    _assert_arrays(a["threshold"], b["threshold"], True, where)
    for name in COUNT_FIELDS:
        _assert_arrays(a[name], b[name], exact_counts, (where, name))
    for name in RATE_FIELDS:
        _assert_arrays(a[name], b[name], False, (where, name))
    mine, ref = ours.calibration_histogram_buckets.buckets, theirs.calibration_histogram_buckets.buckets
    edges = ("lower_threshold_inclusive", "upper_threshold_exclusive")
    for name in edges:
        _assert_arrays(_columns(mine, [name])[name], _columns(ref, [name])[name], True, (where, name))
    for name in BUCKET_SUMS:
        a = np.array([getattr(x, name).value for x in mine])
        b = np.array([getattr(x, name).value for x in ref])
        _assert_arrays(a, b, exact_counts and name != "total_weighted_refined_prediction", (where, name))


def _assert_same_json(a, b, where="") -> None:
    """Equal TFMA JSON dicts, numbers within the tolerance (NaN equal to NaN)."""
    if isinstance(b, dict):
        assert isinstance(a, dict) and set(a) == set(b), (where, set(a) ^ set(b) if isinstance(a, dict) else a)
        for k in b:
            _assert_same_json(a[k], b[k], f"{where}/{k}")
    elif isinstance(b, list):
        assert isinstance(a, list) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same_json(x, y, f"{where}[{i}]")
    elif isinstance(b, (int, float)) and not isinstance(b, bool):
        assert isinstance(a, (int, float)) and _close(float(a), float(b), False), (where, a, b)
    else:
        assert a == b, (where, a, b)


# ----------------------------------------------------------------------------- parity with TFMA


@slow
@pytest.mark.parametrize("name", ["taxi_run", "credit_run"])
def test_every_point_of_every_plot_equals_tfmas(request, tfma, name):  # noqa: F811
    run = request.getfixturevalue(name)
    theirs = _plots_by_key(tfma, run.tfma_dir)
    ours = _plots_by_key(tfma, run.ours_dir)
    assert set(ours) == set(theirs)
    slices = {key[0] for key in theirs}
    assert len(slices) >= 3 and () in slices
    for where, value in theirs.items():
        assert value.confusion_matrix_at_thresholds.matrices, where
        assert value.calibration_histogram_buckets.buckets, where
        _assert_same_plot(ours[where], value, exact_counts=not run.weighted, where=where)
    # TFMA's own shape, computed here from its definition: 1,000 (or 100) steps and the -1e-6 start
    num = 1000 if name == "taxi_run" else 100
    first = theirs[next(iter(theirs))].confusion_matrix_at_thresholds.matrices
    assert [m.threshold for m in first] == [-1e-6] + [round(i / num, 6) for i in range(num + 1)]


@slow
def test_the_counts_are_the_examples_above_each_threshold(taxi_run):
    """Independently of both implementations: at a threshold t off TFMA's histogram grid,
    a positive prediction is a score above t."""
    frame = taxi_run.frame
    overall = next(sm for sm in taxi_run.result.slices if sm.key == ())
    value = next(v for k, v in overall.plots.items() if k.name == "confusion_matrix_plot"
                 and k.model_name == "candidate")
    thresholds = np.asarray(value.thresholds)
    y, p = frame["label"].to_numpy(), frame["prediction"].to_numpy()
    for t in (0.25, 0.5, 0.75):
        index = int(np.flatnonzero(thresholds == t)[0])
        near = np.abs(p - t) < 2e-4  # scores sharing t's histogram bucket
        tp, tn, fp, fn = value.value[index]
        assert abs(tp - ((p > t) & (y == 1)).sum()) <= near.sum()
        assert abs(fp - ((p > t) & (y == 0)).sum()) <= near.sum()
        assert tp + fn == (y == 1).sum() and tn + fp == (y == 0).sum()


@slow
@pytest.mark.parametrize("name", ["taxi_run", "credit_run"])
def test_load_eval_result_reads_our_plots_as_tfmas(request, tfma, name):  # noqa: F811
    run = request.getfixturevalue(name)
    for model in run.models:
        kwargs = {"model_name": model} if len(run.models) > 1 else {}
        theirs = dict(tfma.load_eval_result(run.tfma_dir, **kwargs).plots)
        ours = dict(tfma.load_eval_result(run.ours_dir, **kwargs).plots)
        assert set(ours) == set(theirs) and len(theirs) >= 3
        for key in theirs:
            assert set(theirs[key][""][""]) == {"confusionMatrixAtThresholds", "calibrationHistogramBuckets"}
            _assert_same_json(ours[key], theirs[key], f"{model} {key}")
    # The toolkit's own result reads like TFMA's loaded one (the candidate's plots).
    kwargs = {"model_name": run.models[0]} if len(run.models) > 1 else {}
    theirs = dict(tfma.load_eval_result(run.tfma_dir, **kwargs).plots)
    for key, value in run.result.plots:
        _assert_same_json(value, theirs[key], f"EvalResult.plots {key}")
        _assert_same_json(run.result.get_plots_for_slice(key), theirs[key][""][""])


@slow
@pytest.mark.parametrize("name", ["taxi_run", "credit_run"])
def test_beam_engine_computes_the_same_plots(request, name):
    run = request.getfixturevalue(name)
    mine = {sm.key: sm for sm in run.beam.slices}
    for sm in run.result.slices:
        assert set(mine[sm.key].plots) == set(sm.plots)
        for key, value in sm.plots.items():
            other = mine[sm.key].plots[key]
            assert other.thresholds == value.thresholds and other.plot == value.plot
            np.testing.assert_allclose(other.value, value.value, rtol=RELATIVE, atol=0)
            if not run.weighted:
                np.testing.assert_array_equal(other.value[:, 2 if value.plot == "calibration_plot" else 0],
                                              value.value[:, 2 if value.plot == "calibration_plot" else 0])


@slow
def test_evaluation_json_keeps_the_curves_and_plotless_documents_are_unchanged(tmp_path, credit_run):
    storage.save_result(credit_run.result, str(tmp_path / "with"))
    loaded = storage.load_result(str(tmp_path / "with"))
    assert loaded.plots == credit_run.result.plots
    for a, b in zip(loaded.slices, credit_run.result.slices):
        for key, value in b.plots.items():
            assert loaded_value_equal(a.plots[key], value)
    plain = evaluate(credit_run.frame, {"model_specs": [{"label_key": "label", "prediction_key": "prediction"}],
                                        "metrics_specs": [{"metrics": [{"class_name": "AUC"}]}]})
    document = storage.to_document(plain)
    assert all("plots" not in s for s in document["slices"])
    assert all("plot" not in m["value"] for s in document["slices"] for m in s["metrics"])


def loaded_value_equal(a, b) -> bool:
    return (a.plot == b.plot and a.thresholds == b.thresholds and a.metric == b.metric
            and np.array_equal(np.asarray(a.value), np.asarray(b.value)))


# ----------------------------------------------------------------------------- the dashboard's SVG

HOSTILE = '<script>alert("x")</script>'


def _tiny() -> tuple[pd.DataFrame, dict]:
    """Four examples whose curves are computed by hand below; scores off TFMA's grids."""
    frame = pd.DataFrame({"label": [1.0, 0.0, 1.0, 0.0], "prediction": [0.9005, 0.7005, 0.4005, 0.2005],
                          "other": [0.6005, 0.3005, 0.8005, 0.1005], "g": [HOSTILE] * 4})
    config = {"model_specs": [{"label_key": "label", "prediction_key": "prediction"}],
              "metrics_specs": [{"metrics": [{"class_name": "ConfusionMatrixPlot"},
                                             {"class_name": "CalibrationPlot"},
                                             {"class_name": "ExampleCount"}]}],
              "slicing_specs": [{}, {"feature_keys": ["g"]}]}
    return frame, config


def _polylines(html: str) -> dict[tuple[str, str], list[tuple[float, float]]]:
    """{(chart title, model): [(x, y) pixels]} of every line drawn."""
    out = {}
    for svg in _svgs(html):
        title = re.search(r'data-curve="([^"]*)"', svg).group(1)
        for model, points in re.findall(r'<polyline[^>]*data-model="([^"]*)"[^>]*points="([^"]*)"', svg):
            out[(title, model)] = [tuple(float(v) for v in p.split(",")) for p in points.split()]
    return out


def _svgs(html: str) -> list[str]:
    """The SVG documents of the dashboard's chart images (``data:`` URIs)."""
    return [base64.b64decode(data).decode("utf-8")
            for data in re.findall(r'<img src="data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)"', html)]


def _pixels(points, size, left, top):
    return [(left + x * size, top + (1 - y) * size) for x, y in points]


def _assert_points(drawn, expected) -> None:
    assert len(drawn) == len(expected), (drawn, expected)
    for (a, b), (x, y) in zip(drawn, expected):
        assert abs(a - x) <= 0.051 and abs(b - y) <= 0.051, (drawn, expected)


def test_dashboard_draws_the_curves_of_a_hand_computed_case():
    from toolkit.visualize.evaluation import evaluation_view
    from toolkit.visualize.evaluation.curves import LEFT, SIZE, TOP

    frame, config = _tiny()
    result = evaluate(frame, config, baseline="other")
    html = evaluation_view(result).html
    assert "<script" not in html
    lines = _polylines(html)
    # By hand, thresholds rising from below every score: all predicted positive, then each
    # score passed in turn (0.2005 negative, 0.4005 positive, 0.7005 negative, 0.9005 positive).
    candidate_roc = [(1, 1), (0.5, 1), (0.5, 0.5), (0, 0.5), (0, 0)]
    candidate_pr = [(1, 0.5), (1, 2 / 3), (0.5, 0.5), (0.5, 1), (0, 1)]
    # baseline "other": 0.1005 negative, 0.3005 negative, 0.6005 positive, 0.8005 positive
    baseline_roc = [(1, 1), (0.5, 1), (0, 1), (0, 0.5), (0, 0)]
    size, left, top = SIZE, LEFT, TOP
    _assert_points(lines[("ROC curve: Overall", "candidate")], _pixels(candidate_roc, size, left, top))
    _assert_points(lines[("Precision-recall curve: Overall", "candidate")], _pixels(candidate_pr, size, left, top))
    _assert_points(lines[("ROC curve: Overall", "baseline")], _pixels(baseline_roc, size, left, top))
    # Calibration: each score is alone in its bucket, so each point is (score, label).
    calibration = sorted(zip(frame["prediction"], frame["label"]))
    _assert_points(lines[("Calibration curve: Overall", "candidate")], _pixels(calibration, size, left, top))
    svgs = "".join(_svgs(html))
    assert 'data-line="perfect calibration"' in svgs and 'data-line="chance"' in svgs
    for svg in _svgs(html):
        ElementTree.fromstring(svg)  # well-formed: a browser draws it as an image
        assert "href" not in svg and "<script" not in svg
    # Another slice's curves are drawn when it is the chosen slice; its name is escaped.
    html = evaluation_view(result, baseline_slice=f"g:{HOSTILE}").html
    assert HOSTILE not in html and 'alt="ROC curve: g:&lt;script&gt;' in html
    for svg in _svgs(html):
        assert HOSTILE not in svg
        assert ElementTree.fromstring(svg).find("{http://www.w3.org/2000/svg}title").text.endswith(HOSTILE)
    assert sum(1 for title, _ in _polylines(html) if title.startswith("ROC curve: g:&lt;script")) == 2


def test_dashboard_without_plots_has_no_curves():
    from toolkit.visualize.evaluation import evaluation_view

    frame, config = _tiny()
    config["metrics_specs"][0]["metrics"] = [{"class_name": "ExampleCount"}]
    html = evaluation_view(evaluate(frame, config)).html
    assert "<svg" not in html and "image/svg" not in html


def test_many_slices_embed_the_chosen_slices_curves_only():
    from toolkit.visualize.evaluation import evaluation_view

    rng = np.random.default_rng(3)
    n = 20000
    frame = pd.DataFrame({"label": rng.integers(0, 2, n).astype(float), "prediction": rng.random(n),
                          "g": rng.integers(0, 300, n).astype(str)})
    config = {"model_specs": [{"label_key": "label", "prediction_key": "prediction"}],
              "metrics_specs": [{"metrics": [{"class_name": "ConfusionMatrixPlot"},
                                             {"class_name": "CalibrationPlot"}, {"class_name": "AUC"}]}],
              "slicing_specs": [{}, {"feature_keys": ["g"]}]}
    html = evaluation_view(evaluate(frame, config)).html
    assert len(_svgs(html)) == 3
    lines = _polylines(html)
    assert all(len(points) <= 400 for points in lines.values())
    assert len(html) < 400_000
