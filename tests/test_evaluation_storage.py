"""The stored form of an evaluation (evaluation.json, metrics.parquet) on German credit results.

Every result is computed by ``toolkit.evaluate`` on the real data, saved, loaded
and compared with the original through its public interface: the TFMA-style
``slicing_metrics``, the tidy frame, the validation and the blessing. No
TensorFlow is needed.
"""
from __future__ import annotations

import json
import math
import os

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

import toolkit
from datapaths import GERMAN_CSV
from toolkit.artifacts import ModelEvaluation
from toolkit.errors import ToolkitError
from toolkit.evaluation.config import from_dict
from toolkit.evaluation.slicing import is_cross_key
from toolkit.evaluation.storage import (LEGACY_FILE, METRICS_FILE, RESULT_FILE, load_result,
                                        save_result, slice_key_from_json, slice_key_to_json)


def german() -> pd.DataFrame:
    """German credit with two deterministic scores, an age group and a float-valued column."""
    df = pd.read_csv(GERMAN_CSV)
    z = -0.00025 * df.credit_amount - 0.03 * df.duration + 0.02 * df.age + 0.8
    df["prediction"] = 1.0 / (1.0 + np.exp(-z))
    df["old_prediction"] = 1.0 / (1.0 + np.exp(-(0.6 * z + 0.1)))
    df["age_group"] = pd.cut(df.age, [0, 25, 40, 200],
                             labels=["young", "middle", "senior"]).astype(str)
    df["term_years"] = np.round(df.duration / 12 * 2) / 2  # 0.5, 1.0, 1.5 ...: float slice keys
    df["outcome"] = np.where(df.risk > 0, "good", "bad")  # single-class slices: NaN AUC
    return df


def fairness_config(**extra) -> dict:
    """Intervals, FairnessIndicators at two thresholds, an array metric, int, float and crossed
    slices, cross slices, slices below min_slice_size, an empty slice and every kind of
    threshold restriction (every slice, per slice, cross slice, a spec matching nothing)."""
    return {
        "model_specs": [{"label_key": "risk", "prediction_key": "prediction"}],
        "slicing_specs": [{}, {"feature_keys": ["sex"]}, {"feature_keys": ["job"]},
                          {"feature_keys": ["term_years"]}, {"feature_keys": ["outcome"]},
                          {"feature_keys": ["sex", "age_group"]},
                          {"feature_values": {"housing": "castle"}}],
        "cross_slicing_specs": [{"baseline_spec": {"feature_keys": ["sex"]},
                                 "slicing_specs": [{"feature_keys": ["sex"]}]}],
        "metrics_specs": [{"metrics": [
            {"class_name": "ExampleCount"},
            {"class_name": "AUC"},
            {"class_name": "FairnessIndicators", "config": '{"thresholds": [0.5, 0.7]}'},
            {"class_name": "FPR", "config": '"thresholds": [0.3, 0.5]'},
            {"class_name": "BinaryAccuracy",
             "threshold": {"value_threshold": {"lower_bound": 0.6}},
             "per_slice_thresholds": [
                 {"slicing_specs": [{"feature_keys": ["sex"]}],
                  "threshold": {"value_threshold": {"lower_bound": 0.65, "upper_bound": 0.99}}},
                 {"slicing_specs": [{"feature_values": {"housing": "castle"}}],
                  "threshold": {"value_threshold": {"lower_bound": 0.1}}}],
             "cross_slice_thresholds": [
                 {"cross_slicing_specs": [{"baseline_spec": {"feature_keys": ["sex"]},
                                           "slicing_specs": [{"feature_keys": ["sex"]}]}],
                  "threshold": {"value_threshold": {"upper_bound": 0.01}}}]},
        ]}],
        "options": {"compute_confidence_intervals": True, "min_slice_size": 70},
        **extra,
    }


def change_config() -> dict:
    """A baseline model compared by change thresholds (absolute and relative)."""
    return {
        "model_specs": [{"label_key": "risk", "prediction_key": "prediction"}],
        "slicing_specs": [{}, {"feature_keys": ["sex"]}, {"feature_keys": ["job"]}],
        "metrics_specs": [{"metrics": [
            {"class_name": "ExampleCount"},
            {"class_name": "AUC", "threshold": {
                "value_threshold": {"lower_bound": 0.5},
                "change_threshold": {"direction": "HIGHER_IS_BETTER", "absolute": -0.01}}},
            {"class_name": "BinaryAccuracy", "threshold": {
                "change_threshold": {"direction": "LOWER_IS_BETTER", "relative": 0.0}}},
        ]}],
        "options": {"compute_confidence_intervals": True},
    }


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return german()


@pytest.fixture(scope="module")
def fairness(frame):
    return toolkit.evaluate(frame, fairness_config(), random_seed=3)


@pytest.fixture(scope="module")
def with_baseline(frame):
    return toolkit.evaluate(frame, change_config(), baseline="old_prediction",
                            baseline_slice={"sex": "female"}, random_seed=3)


def round_trip(result, folder):
    save_result(result, str(folder))
    return load_result(str(folder))


def assert_same(loaded, original) -> None:
    assert loaded.slicing_metrics == original.slicing_metrics
    assert_frame_equal(loaded.to_dataframe(), original.to_dataframe())
    assert loaded.validation.summary() == original.validation.summary()
    assert_frame_equal(loaded.validation.to_dataframe(), original.validation.to_dataframe())
    assert loaded.blessed == original.blessed
    assert loaded.eval_config == original.eval_config
    assert loaded.engine == original.engine
    assert loaded.baseline_slice == original.baseline_slice
    assert loaded.missing_values == original.missing_values
    assert repr(loaded) == repr(original)


def value_types(key: tuple) -> list[type]:
    return [type(value) for _, value in key]


# ----------------------------------------------------------------------------- round trips

def test_fairness_evaluation_round_trips_exactly(fairness, tmp_path):
    result = fairness
    kinds = result.to_dataframe()
    # the fixture covers what the stored form has to carry
    assert kinds["lower"].notna().any() and kinds["below_min_slice_size"].any()
    assert kinds["is_cross_slice"].any() and (kinds["slice_size"] == 0).any()
    assert any(mv.array for sm in result.slices for mv in sm.metrics.values())
    assert kinds["value"].isna().any()  # single-class AUC, small slices
    assert result.validation.missing_slices and result.validation.failures

    loaded = round_trip(result, tmp_path)
    assert_same(loaded, result)
    assert [sm.key for sm in loaded.slices] == [sm.key for sm in result.slices]
    for mine, theirs in zip(loaded.slices, result.slices):
        assert (mine.size, mine.spec, mine.is_cross, mine.error, mine.empty) == (
            theirs.size, theirs.spec, theirs.is_cross, theirs.error, theirs.empty)
        assert list(mine.metrics) == list(theirs.metrics)
        for key, value in theirs.metrics.items():
            other = mine.metrics[key]
            if value.array:
                assert isinstance(other.value, np.ndarray)
                assert other.value.dtype == np.asarray(value.value).dtype
                np.testing.assert_array_equal(other.value, value.value)
                np.testing.assert_array_equal(other.lower, value.lower)
            else:
                assert other.value == value.value or (math.isnan(other.value)
                                                      and math.isnan(value.value))
            assert (other.thresholds, other.dof, other.note) == (
                value.thresholds, value.dof, value.note)
    checks = list(zip(loaded.validation.checks, result.validation.checks))
    assert checks and all(a.threshold == b.threshold and a.restriction == b.restriction
                          and a.slice_key == b.slice_key for a, b in checks)
    assert loaded.validation.slicing_details == result.validation.slicing_details
    assert loaded.validation.missing_slices == result.validation.missing_slices


def test_slice_values_keep_their_types(fairness, tmp_path):
    loaded = round_trip(fairness, tmp_path)
    keys = {sm.spec: sm.key for sm in loaded.slices if len(sm.key) == 1 and not sm.is_cross}
    assert value_types(keys["job"]) == [int]
    assert value_types(keys["term_years"]) == [float]
    assert value_types(keys["sex"]) == [str]
    assert ((("term_years", 1.0),)) in loaded.get_slice_names()
    cross = [sm.key for sm in loaded.slices if sm.is_cross]
    assert cross == [sm.key for sm in fairness.slices if sm.is_cross]
    assert loaded.get_metrics_for_slice(cross[0]) == fairness.get_metrics_for_slice(cross[0])


def test_baseline_model_and_change_thresholds_round_trip(with_baseline, tmp_path):
    result = with_baseline
    assert any(c.threshold.__class__.__name__ == "ChangeThreshold"
               for c in result.validation.checks)
    assert "auc_diff" in result.get_metric_names()
    loaded = round_trip(result, tmp_path)
    assert_same(loaded, result)
    assert_frame_equal(loaded.to_dataframe(baseline_slice="sex:male"),
                       result.to_dataframe(baseline_slice="sex:male"))
    assert "baseline_diff" in loaded.to_dataframe().columns  # its baseline slice is kept


def test_rubber_stamp_and_missing_thresholds_round_trip(frame, tmp_path):
    plain = {"model_specs": [{"label_key": "risk"}],
             "metrics_specs": [{"metrics": [{"class_name": "AUC"}]}]}
    for rubber_stamp in (False, True):
        result = toolkit.evaluate(frame, plain, rubber_stamp=rubber_stamp)
        folder = tmp_path / str(rubber_stamp)
        loaded = round_trip(result, folder)
        assert_same(loaded, result)
        assert loaded.validation.rubber_stamp is rubber_stamp
        assert loaded.validation.missing_thresholds is not rubber_stamp


def test_model_evaluation_artifact_loads_its_result(fairness, tmp_path):
    save_result(fairness, str(tmp_path))
    artifact = ModelEvaluation(uri=str(tmp_path), id=4)
    assert_same(artifact.load(), fairness)


# ----------------------------------------------------------------------------- the files

def test_files_are_strict_json_and_a_tidy_parquet(fairness, tmp_path):
    path = save_result(fairness, str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == [RESULT_FILE, METRICS_FILE]
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    document = json.loads(text, parse_constant=lambda name: pytest.fail(f"bare {name}"))
    assert document["format"] == "toolkit.evaluation" and document["version"] == 1
    assert from_dict(document["eval_config"]) == fairness.eval_config
    assert '"NaN"' in text  # non-finite numbers as strings, as protobuf's JSON does

    table = pd.read_parquet(tmp_path / METRICS_FILE)
    tidy = fairness.to_dataframe()
    assert list(table.columns) == list(tidy.columns) and len(table) == len(tidy)
    assert table["slice_key"].map(slice_key_from_json).tolist() == tidy["slice_key"].tolist()
    numbers = ["value", "lower", "upper", "threshold"]
    assert_frame_equal(table[numbers], tidy[numbers])


def test_slice_key_encoding_keeps_every_value_type():
    keys = [(), (("sex", "female"),), (("job", 2), ("term", 1.0)), (("raw", b"\x00\xffcafe"),),
            (("score", math.inf), ("weird", "NaN")), ((("sex", "female"),), (("sex", "male"),)),
            ((), (("job", 3),))]
    for key in keys:
        back = slice_key_from_json(slice_key_to_json(key))
        assert back == key
        parts = list(zip(back, key)) if is_cross_key(key) else [(back, key)]
        assert all(value_types(mine) == value_types(theirs) for mine, theirs in parts)
    nan = slice_key_from_json(slice_key_to_json((("score", math.nan),)))
    assert isinstance(nan[0][1], float) and math.isnan(nan[0][1])


# ----------------------------------------------------------------------------- refusals

def test_an_older_toolkits_pickle_is_never_unpickled(tmp_path):
    # Not a valid pickle: unpickling would raise something else than the message.
    (tmp_path / LEGACY_FILE).write_bytes(b"\x80\x04this is not read")
    with pytest.raises(ToolkitError) as caught:
        load_result(str(tmp_path))
    message = str(caught.value)
    assert message == (f"{tmp_path}: this evaluation was stored by an older toolkit version "
                       f"({LEGACY_FILE}); re-run its Evaluator")
    with pytest.raises(ToolkitError, match=r"ModelEvaluation #9 .*re-run its Evaluator"):
        ModelEvaluation(uri=str(tmp_path), id=9).load()


def test_a_newer_version_or_a_malformed_file_is_named_in_one_line(fairness, tmp_path):
    path = save_result(fairness, str(tmp_path))
    with open(path, encoding="utf-8") as handle:
        document = json.load(handle)

    def refused(text: str) -> str:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
        with pytest.raises(ToolkitError) as caught:
            load_result(str(tmp_path))
        message = str(caught.value)
        assert path in message and "\n" not in message
        return message

    assert "newer toolkit" in refused(json.dumps({**document, "version": 2}))
    assert "not a toolkit evaluation" in refused(json.dumps({**document, "format": "other"}))
    assert "not valid JSON" in refused(json.dumps(document)[:-20])
    assert "not valid JSON" in refused(json.dumps(document).replace('"NaN"', "NaN", 1))
    broken = json.loads(json.dumps(document))
    del broken["slices"][0]["metrics"][0]["value"]
    assert "malformed" in refused(json.dumps(broken))
    broken = json.loads(json.dumps(document))
    broken["slices"][1]["key"] = [["sex", [1, 2]]]
    assert "malformed" in refused(json.dumps(broken))
    with pytest.raises(ToolkitError, match="no evaluation.json"):
        load_result(str(tmp_path / "empty"))


def test_multiclass_results_round_trip_and_binary_documents_stay_version_1(tmp_path):
    """Per-class metrics (sub keys) and confusion-matrix plots come back exactly; their
    optional fields leave a binary evaluation's document unchanged."""
    import json as json_module

    from datapaths import DATA

    df = pd.read_csv(f"{DATA}/penguins/penguins.csv").dropna(subset=["bill_length_mm"]).reset_index(drop=True)
    df["label"] = df["species"].map({"Adelie": 0, "Chinstrap": 1, "Gentoo": 2})
    z = np.column_stack([45 - df.bill_length_mm, df.bill_length_mm - 45, 0.3 * (df.bill_length_mm - 45)])
    df["prediction"] = list(np.exp(z) / np.exp(z).sum(axis=1, keepdims=True))
    df["weight"] = 1.0 + (np.arange(len(df)) % 2)
    result = toolkit.evaluate(df, {
        "model_specs": [{"example_weight_key": "weight"}],
        "slicing_specs": [{}, {"feature_keys": ["island"]}],
        "metrics_specs": [
            {"metrics": [{"class_name": "SparseCategoricalAccuracy"},
                         {"class_name": "MultiClassConfusionMatrixPlot"},
                         {"class_name": "MultiClassConfusionMatrixAtThresholds"}]},
            {"binarize": {"class_ids": {"values": [0, 2]}, "top_k_list": {"values": [1]}},
             "metrics": [{"class_name": "Precision"}, {"class_name": "ExampleCount"}],
             "thresholds": {"precision": {"value_threshold": {"lower_bound": 0.5}}}}]})
    save_result(result, str(tmp_path))
    loaded = load_result(str(tmp_path))
    assert loaded.slicing_metrics == result.slicing_metrics and loaded.plots == result.plots
    assert_frame_equal(loaded.to_dataframe(), result.to_dataframe())
    assert_frame_equal(loaded.confusion_matrices(), result.confusion_matrices())
    assert_frame_equal(loaded.validation.to_dataframe(), result.validation.to_dataframe())
    assert {c.sub_key for c in loaded.validation.checks} == {"classId:0", "classId:2", "topK:1"}
    for mine, theirs in zip(loaded.slices, result.slices):
        assert mine.metrics.keys() == theirs.metrics.keys() and mine.plots.keys() == theirs.plots.keys()
        for key, value in theirs.plots.items():
            np.testing.assert_array_equal(mine.plots[key].value, value.value)
    document = json_module.loads((tmp_path / "evaluation.json").read_text())
    assert document["version"] == 1
    keys = [m["key"] for s in document["slices"] for m in s["metrics"]]
    assert {k.get("sub_key", "") for k in keys} == {"", "classId:0", "classId:2", "topK:1"}
