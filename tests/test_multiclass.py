"""Multi-class evaluation against TFMA 0.47.1 on the Palmer penguins (three species).

A deterministic softmax regression (numpy, fitted here on two bill measures so
that it makes mistakes) gives every row a vector of three class scores; labels are
class ids (sparse) in one run and one-hot vectors in another. ``toolkit.evaluate``
and ``tfma.analyze_raw_data`` evaluate the same dataframe and config, over the
overall slice and the island and sex slices, weighted and unweighted, and every
metric TFMA writes is compared with the engine's, key by key (name, sub key,
weighting).

Tolerances, as in ``test_evaluation_engine.py``: unweighted counts exact; rates
and AUC 1e-9 absolute (weighted: 1e-9 relative); the Keras accuracies, which TFMA
computes in float32, 1e-6 relative. Confusion matrices: the same entries, counts
equal to 1e-9 relative. Documented differences: AUC of a slice where a class is
absent is NaN here (TFMA: 0.0); a MultiClassConfusionMatrixPlot configured beside
a MultiClassConfusionMatrixAtThresholds keeps its own thresholds here, while TFMA
0.47.1 computes both from one shared computation (keyed without the thresholds)
and so reports one of them at the other's thresholds; each TFMA run below holds
only one of the two.

TFMA runs once per module fixture with every metric in one config.
"""
from __future__ import annotations

import math
import os

import numpy as np
import pandas as pd
import pytest

from datapaths import DATA
from toolkit.evaluation import InvalidValuesError, evaluate, load_result, save_result

PENGUINS_CSV = os.path.join(DATA, "penguins", "penguins.csv")
FLOAT32 = {"sparse_categorical_accuracy", "categorical_accuracy"}
EXACT = {"example_count", "weighted_example_count"}
FI_PREFIX = "fairness_indicators_metrics/"


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


@pytest.fixture(scope="module")
def penguins() -> pd.DataFrame:
    df = pd.read_csv(PENGUINS_CSV)
    measures = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
    df = df.dropna(subset=measures).reset_index(drop=True)
    species = sorted(df["species"].unique())
    df["label"] = df["species"].map({s: i for i, s in enumerate(species)}).astype(int)
    x = df[["bill_length_mm", "bill_depth_mm"]].to_numpy(float)
    x = np.column_stack([np.ones(len(x)), (x - x.mean(axis=0)) / x.std(axis=0)])
    y = np.eye(len(species))[df["label"]]
    w = np.zeros((x.shape[1], len(species)))
    for _ in range(30):  # a few gradient steps: a real but imperfect model
        w -= 0.5 * x.T @ (_softmax(x @ w) - y) / len(x)
    scores = _softmax(x @ w)
    df["prediction"] = list(scores)
    df["onehot"] = list(y)
    df["sex"] = df["sex"].fillna("unknown")
    df["weight"] = 1.0 + (np.arange(len(df)) % 3)
    return df


SPARSE_CONFIG = """
model_specs { label_key: "label" prediction_key: "prediction" example_weight_key: "weight" }
slicing_specs {}
slicing_specs { feature_keys: "island" }
slicing_specs { feature_keys: "sex" }
metrics_specs {
  metrics { class_name: "ExampleCount" }
  metrics { class_name: "WeightedExampleCount" }
  metrics { class_name: "SparseCategoricalAccuracy" }
  metrics { class_name: "CategoricalAccuracy" }
  metrics { class_name: "AUC" }
  metrics { class_name: "Precision" }
  metrics { class_name: "MultiClassConfusionMatrixAtThresholds" config: '"thresholds": [0.5, 0.3, 0.8]' }
  example_weights { weighted: true unweighted: true }
}
metrics_specs {
  binarize { class_ids { values: [0, 1, 2] } }
  metrics { class_name: "ExampleCount" }
  metrics { class_name: "AUC" }
  metrics { class_name: "AUCPrecisionRecall" }
  metrics { class_name: "Precision" }
  metrics { class_name: "Recall" }
  metrics { class_name: "FPR" config: '"thresholds": [0.3, 0.5]' }
  metrics { class_name: "FNR" }
  metrics { class_name: "MeanLabel" }
  metrics { class_name: "MeanPrediction" }
  metrics { class_name: "FairnessIndicators" config: '{"thresholds": [0.3, 0.5, 0.7]}' }
  example_weights { weighted: true unweighted: true }
}
metrics_specs {
  binarize { top_k_list { values: [1, 2] } k_list { values: [1, 2] } }
  metrics { class_name: "Precision" }
  metrics { class_name: "Recall" config: '"thresholds": [0.0, 0.4]' }
  example_weights { weighted: true unweighted: true }
}
"""

ONEHOT_CONFIG = """
model_specs { label_key: "onehot" prediction_key: "prediction" }
slicing_specs {}
slicing_specs { feature_keys: "island" }
metrics_specs {
  metrics { class_name: "CategoricalAccuracy" }
  metrics { class_name: "MultiClassConfusionMatrixPlot" config: '"num_thresholds": 5' }
}
metrics_specs {
  binarize { class_ids { values: [1, 2] } top_k_list { values: [2] } }
  metrics { class_name: "Recall" }
  metrics { class_name: "FairnessIndicators" config: '{"thresholds": [0.5]}' }
}
"""


def _tfma_config(text: str) -> str:
    return text.replace('class_name: "FairnessIndicators"',
                        'class_name: "FairnessIndicators" module: "fairness_indicators.fairness_indicators_metrics"')


def _run_tfma(tmp_path_factory, df: pd.DataFrame, text: str):
    import tensorflow_model_analysis as tfma
    from google.protobuf import text_format

    from toolkit import _quiet

    _quiet.quiet_tensorflow()
    output = str(tmp_path_factory.mktemp("tfma_multiclass"))
    tfma.analyze_raw_data(df, text_format.Parse(_tfma_config(text), tfma.EvalConfig()), output_path=output)
    return list(tfma.load_metrics(output)), list(tfma.load_plots(output))


@pytest.fixture(scope="module")
def sparse_runs(penguins, tmp_path_factory):
    with pytest.warns(UserWarning, match="CategoricalAccuracy expects one-hot labels"):
        engine = evaluate(penguins, SPARSE_CONFIG, engine="toolkit")
    return engine, *_run_tfma(tmp_path_factory, penguins.drop(columns=["onehot"]), SPARSE_CONFIG)


@pytest.fixture(scope="module")
def onehot_runs(penguins, tmp_path_factory):
    engine = evaluate(penguins, ONEHOT_CONFIG, engine="toolkit")
    return engine, *_run_tfma(tmp_path_factory, penguins.drop(columns=["label"]), ONEHOT_CONFIG)


# ------------------------------------------------------------------------------ comparison


def _sub_key(proto) -> str:
    from toolkit.evaluation.config import sub_key_text

    if not proto.ByteSize():
        return ""
    return sub_key_text(proto.class_id.value if proto.HasField("class_id") else None,
                        proto.k.value if proto.HasField("k") else None,
                        proto.top_k.value if proto.HasField("top_k") else None)


def _key(kv_key):
    weighted = kv_key.example_weighted.value if kv_key.HasField("example_weighted") else None
    return kv_key.name, _sub_key(kv_key.sub_key), weighted


def _engine_values(engine, plots: bool = False) -> dict:
    out = {}
    for sm in engine.slices:
        for key, value in (sm.plots if plots else sm.metrics).items():
            out[(sm.key, key.name, key.sub_key, key.example_weighted)] = value
    return out


def _close(name: str, ours: float, theirs: float, weighted: bool) -> bool:
    if math.isnan(ours) or math.isnan(theirs):
        return math.isnan(ours) and math.isnan(theirs)
    if name in EXACT and not weighted:
        return ours == theirs
    if name in FLOAT32:
        return math.isclose(ours, theirs, rel_tol=1e-6)
    if weighted:
        return math.isclose(ours, theirs, rel_tol=1e-9, abs_tol=1e-12)
    return abs(ours - theirs) <= 1e-9


def _matrix_entries(proto_matrices) -> dict:
    return {(round(m.threshold, 9), e.actual_class_id, e.predicted_class_id): e.num_weighted_examples
            for m in proto_matrices.matrices for e in m.entries}


def _our_entries(value) -> dict:
    from toolkit.evaluation.values import matrix_entries

    return {(round(t, 9), a, p): w for t, entries in matrix_entries(value) for a, p, w in entries}


def _compare(engine, records, plot_records) -> dict[str, int]:
    from toolkit.evaluation.tfma_adapter import deserialize_key

    ours = _engine_values(engine)
    our_plots = _engine_values(engine, plots=True)
    seen, compared, mismatches = set(), {"values": 0, "matrices": 0, "plots": 0}, []
    for record in records:
        slice_key = deserialize_key(record)
        for kv in record.metric_keys_and_values:
            name, sub_key, weighted = _key(kv.key)
            key = (slice_key, name, sub_key, weighted)
            seen.add(key)
            assert key in ours, f"the engine lacks {key}"
            mine = ours[key]
            kind = kv.value.WhichOneof("type")
            if kind == "multi_class_confusion_matrix_at_thresholds":
                theirs = _matrix_entries(kv.value.multi_class_confusion_matrix_at_thresholds)
                got = _our_entries(mine)
                assert set(got) == set(theirs), (key, sorted(set(got) ^ set(theirs)))
                for entry, count in theirs.items():
                    assert math.isclose(got[entry], count, rel_tol=1e-9), (key, entry, got[entry], count)
                compared["matrices"] += 1
                continue
            if kind == "array_value":
                theirs_list = list(kv.value.array_value.float64_values)
            else:
                theirs_list = [kv.value.double_value.value]
            mine_list = np.atleast_1d(np.asarray(mine.value, float)).tolist()
            assert len(mine_list) == len(theirs_list), key
            for a, b in zip(mine_list, theirs_list):
                if name in ("auc", "auc_precision_recall") and math.isnan(a) and b == 0.0:
                    continue  # documented: a class absent from the slice
                if not _close(name, a, b, bool(weighted)):
                    mismatches.append((key, a, b))
            compared["values"] += 1
    assert not mismatches, mismatches[:10]
    engine_keys = {k for k, v in ours.items() if True}
    assert engine_keys == seen, sorted(engine_keys ^ seen, key=str)[:10]
    for record in plot_records:
        slice_key = deserialize_key(record)
        for kv in record.plot_keys_and_values:
            name, sub_key, weighted = _key(kv.key)
            mine = our_plots[(slice_key, name, sub_key, weighted)]
            theirs = _matrix_entries(kv.value.multi_class_confusion_matrix_at_thresholds)
            got = _our_entries(mine)
            assert set(got) == set(theirs) and all(
                math.isclose(got[e], c, rel_tol=1e-9) for e, c in theirs.items()), (slice_key, name)
            compared["plots"] += 1
    assert compared["plots"] == len(our_plots)
    return compared


# ------------------------------------------------------------------------------ tests


def test_sparse_labels_equal_tfma(sparse_runs):
    engine, records, plots = sparse_runs
    compared = _compare(engine, records, plots)
    # 1 overall + 3 islands + 3 sexes (female, male, unknown) slices
    assert len(engine.slices) == 7
    assert compared["matrices"] == 7 * 2 and compared["plots"] == 0
    assert compared["values"] > 7 * 2 * 3 * 40


def test_onehot_labels_equal_tfma(onehot_runs):
    engine, records, plots = onehot_runs
    compared = _compare(engine, records, plots)
    assert compared["plots"] == 4 and compared["values"] > 4 * 20


def test_per_class_results_read_like_tfma(sparse_runs, onehot_runs):
    engine = sparse_runs[0]
    for class_id in range(3):
        metrics = engine.get_metrics_for_slice((), class_id=class_id)
        assert {"auc", "precision", "recall", FI_PREFIX + "false_positive_rate@0.5"} <= set(metrics)
    assert set(engine.get_metrics_for_slice((), top_k=1)) == {"precision", "recall"}
    assert set(engine.get_metrics_for_slice((("island", "Dream"),), k=2)) == {"precision", "recall"}
    assert engine.plots == [] and engine.get_plots_for_slice(()) is None
    plots = onehot_runs[0].get_plots_for_slice((("island", "Biscoe"),))
    assert list(plots) == ["multiClassConfusionMatrixAtThresholds"]
    assert [m.get("threshold", 0.0) for m in plots["multiClassConfusionMatrixAtThresholds"]["matrices"]] == \
        [0.0, 0.25, 0.5, 0.75, 1.0]

    frame = engine.to_dataframe()
    assert {"sub_key", "class_id"} <= set(frame.columns)
    per_class = frame[(frame["slice"] == "Overall") & (frame["metric"] == "auc") & frame["class_id"].notna()
                      & (frame["model"] == "")]
    assert sorted(per_class["class_id"].unique().tolist()) == [0, 1, 2]
    assert set(frame["sub_key"]) == {"", "classId:0", "classId:1", "classId:2", "topK:1", "topK:2", "k:1", "k:2"}
    matrices = engine.confusion_matrices()
    overall = matrices[(matrices["slice"] == "Overall") & (matrices["kind"] == "metric")
                       & (matrices["example_weighted"] == False) & (matrices["threshold"] == 0.5)]  # noqa: E712
    assert overall["weighted_examples"].sum() == 342


def test_a_plot_beside_the_matrix_metric_keeps_its_thresholds(penguins):
    config = SPARSE_CONFIG.replace(
        'metrics { class_name: "MultiClassConfusionMatrixAtThresholds"',
        'metrics { class_name: "MultiClassConfusionMatrixPlot" config: \'"thresholds": [0.1, 0.9]\' }\n'
        '  metrics { class_name: "MultiClassConfusionMatrixAtThresholds"')
    with pytest.warns(UserWarning):
        result = evaluate(penguins, config)
    matrices = result.confusion_matrices()
    assert sorted(matrices[matrices["kind"] == "plot"]["threshold"].unique()) == [0.1, 0.9]
    assert sorted(matrices[matrices["kind"] == "metric"]["threshold"].unique()) == [0.3, 0.5, 0.8]


@pytest.mark.parametrize("runs", ["sparse_runs", "onehot_runs"])
def test_storage_round_trip_keeps_per_class_metrics_and_plots(runs, request, tmp_path):
    engine = request.getfixturevalue(runs)[0]
    save_result(engine, str(tmp_path))
    loaded = load_result(str(tmp_path))
    pd.testing.assert_frame_equal(loaded.to_dataframe(), engine.to_dataframe())
    pd.testing.assert_frame_equal(loaded.confusion_matrices(), engine.confusion_matrices())
    assert loaded.slicing_metrics == engine.slicing_metrics
    assert loaded.plots == engine.plots
    for mine, theirs in zip(loaded.slices, engine.slices):
        assert mine.metrics.keys() == theirs.metrics.keys() and mine.plots.keys() == theirs.plots.keys()
    table = pd.read_parquet(tmp_path / "metrics.parquet")
    assert set(table["sub_key"]) == set(engine.to_dataframe()["sub_key"])


def test_write_tfma_artifact_writes_per_class_metrics_and_plots(onehot_runs, tmp_path):
    import tensorflow_model_analysis as tfma

    from toolkit.evaluation import write_tfma_artifact

    engine = onehot_runs[0]
    write_tfma_artifact(engine, str(tmp_path))
    loaded = tfma.load_eval_result(str(tmp_path))
    overall = dict(loaded.slicing_metrics)[()]
    assert overall[""]["classId:1"]["recall"]["doubleValue"] == \
        engine.get_metrics_for_slice((), class_id=1)["recall"]["doubleValue"]
    assert dict(loaded.plots)[()][""][""] == engine.get_plots_for_slice(())


def test_bad_multiclass_inputs_are_named_in_one_line(penguins):
    config = {"metrics_specs": [{"metrics": [{"class_name": "SparseCategoricalAccuracy"}]}]}
    ragged = penguins.assign(prediction=[v[:2] if i == 5 else v for i, v in enumerate(penguins["prediction"])])
    with pytest.raises(InvalidValuesError, match=r"prediction column 'prediction' holds vectors of different "
                                                 r"lengths \(3 in row 0, 2 in row 5\)"):
        evaluate(ragged, config)
    with pytest.raises(InvalidValuesError, match=r"label column 'label' has 1 values that are not class ids 0..2"):
        evaluate(penguins.assign(label=penguins["label"].where(penguins.index != 3, 7)), config)
    with pytest.raises(InvalidValuesError, match=r"label column 'label' has dtype object"):
        evaluate(penguins.assign(label=penguins["species"]), config)
    with pytest.raises(InvalidValuesError, match=r"SparseCategoricalAccuracy needs a vector of class scores per "
                                                 r"row in prediction column 'p'"):
        evaluate(penguins.assign(p=0.5), {"model_specs": [{"prediction_key": "p"}], **config})
    with pytest.raises(InvalidValuesError, match=r"SparseCategoricalAccuracy needs class ids in label column "
                                                 r"'onehot'"):
        evaluate(penguins, {"model_specs": [{"label_key": "onehot"}], **config})
    with pytest.raises(InvalidValuesError, match=r"binarize.class_ids holds 5"):
        evaluate(penguins, {"metrics_specs": [{"binarize": {"class_ids": {"values": [5]}},
                                               "metrics": [{"class_name": "AUC"}]}]})
