"""Benchmark: multi-class toolkit.evaluate vs tfma.analyze_raw_data (3 classes, 200k rows).

Penguins resampled to 200,000 rows with noise on the measures, a fixed softmax
model over the noisy bill and flipper measures (three class scores per row),
integer class ids as labels, slices overall / island / sex. One config holds
SparseCategoricalAccuracy, MultiClassConfusionMatrixAtThresholds, per-class
(binarize class_ids) AUC, Precision, Recall, FPR and FairnessIndicators, and
top_k_list [1, 2] Precision/Recall. It prints both timings, the speed ratio
(target >= 100x) and the largest absolute difference per metric family
(accuracy is float32 in TFMA; counts of the confusion matrices must be equal).

Usage: python bench/bench_multiclass.py [--rows N]
Exit status 1 when a tolerance check fails.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time

import numpy as np
import pandas as pd

from _common import REPO, median_time

PENGUINS_CSV = os.path.join(REPO, "notebooks", "data", "penguins", "penguins.csv")
SPEED_TARGET = 100.0
TOLERANCES = {"count": 0.0, "rate": 1e-9, "auc": 1e-9, "accuracy": 1e-6, "matrix": 0.0}

CONFIG = """
model_specs { label_key: "label" prediction_key: "prediction" }
slicing_specs {}
slicing_specs { feature_keys: "island" }
slicing_specs { feature_keys: "sex" }
metrics_specs {
  metrics { class_name: "ExampleCount" }
  metrics { class_name: "SparseCategoricalAccuracy" }
  metrics { class_name: "MultiClassConfusionMatrixAtThresholds" config: '"thresholds": [0.3, 0.5, 0.7]' }
}
metrics_specs {
  binarize { class_ids { values: [0, 1, 2] } }
  metrics { class_name: "AUC" }
  metrics { class_name: "Precision" }
  metrics { class_name: "Recall" }
  metrics { class_name: "FPR" config: '"thresholds": [0.3, 0.5]' }
  metrics { class_name: "FairnessIndicators" module: "fairness_indicators.fairness_indicators_metrics"
            config: '{"thresholds": [0.3, 0.5, 0.7]}' }
}
metrics_specs {
  binarize { top_k_list { values: [1, 2] } }
  metrics { class_name: "Precision" }
  metrics { class_name: "Recall" }
}
"""


def penguins_frame(rows: int) -> pd.DataFrame:
    df = pd.read_csv(PENGUINS_CSV).dropna(subset=["bill_length_mm", "bill_depth_mm", "flipper_length_mm"])
    df = df.sample(n=rows, replace=True, random_state=0).reset_index(drop=True)
    rng = np.random.default_rng(0)
    measures = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm"]
    x = df[measures].to_numpy(float)
    x = x + rng.normal(0.0, 0.05, x.shape) * x.std(axis=0)
    x = (x - x.mean(axis=0)) / x.std(axis=0)
    weights = np.array([[-2.0, 1.5, 0.5], [1.0, 0.8, -1.8], [-0.5, -0.8, 1.6]])
    z = x @ weights
    scores = np.exp(z - z.max(axis=1, keepdims=True))
    scores /= scores.sum(axis=1, keepdims=True)
    out = pd.DataFrame({
        "label": df["species"].map({"Adelie": 0, "Chinstrap": 1, "Gentoo": 2}).to_numpy(),
        "prediction": list(scores),
        "island": df["island"].to_numpy(),
        "sex": df["sex"].fillna("unknown").to_numpy(),
    })
    return out


def family(name: str) -> str:
    if name == "example_count":
        return "count"
    if name.startswith("multi_class_confusion_matrix"):
        return "matrix"
    if "accuracy" in name:
        return "accuracy"
    if name.startswith("auc"):
        return "auc"
    return "rate"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200_000)
    args = parser.parse_args()

    import tensorflow_model_analysis as tfma
    from google.protobuf import text_format

    from toolkit import _quiet
    from toolkit.evaluation import evaluate
    from toolkit.evaluation.config import sub_key_text
    from toolkit.evaluation.tfma_adapter import deserialize_key
    from toolkit.evaluation.values import matrix_entries

    _quiet.quiet_tensorflow()
    df = penguins_frame(args.rows)
    print(f"{len(df):,} rows, 3 classes, slices overall/island/sex")
    engine_time, result = median_time(lambda: evaluate(df, CONFIG, engine="toolkit"), repeat=3)
    print(f"toolkit.evaluate:       {engine_time:8.3f} s (median of 3)")
    with tempfile.TemporaryDirectory() as output:
        start = time.perf_counter()
        tfma.analyze_raw_data(df, text_format.Parse(CONFIG, tfma.EvalConfig()), output_path=output)
        tfma_time = time.perf_counter() - start
        records = list(tfma.load_metrics(output))
    print(f"tfma.analyze_raw_data:  {tfma_time:8.3f} s")
    ratio = tfma_time / engine_time
    print(f"speed ratio:            {ratio:8.1f}x (target >= {SPEED_TARGET:.0f}x)")

    ours = {(sm.key, k.name, k.sub_key, k.example_weighted): v for sm in result.slices for k, v in sm.metrics.items()}
    worst: dict[str, float] = {}
    compared = 0
    for record in records:
        key = deserialize_key(record)
        for kv in record.metric_keys_and_values:
            sub = kv.key.sub_key
            sub_key = sub_key_text(*(getattr(sub, f).value if sub.HasField(f) else None
                                     for f in ("class_id", "k", "top_k")))
            weighted = kv.key.example_weighted.value if kv.key.HasField("example_weighted") else None
            mine = ours[(key, kv.key.name, sub_key, weighted)]
            fam = family(kv.key.name)
            if kv.value.HasField("multi_class_confusion_matrix_at_thresholds"):
                theirs = {(round(m.threshold, 9), e.actual_class_id, e.predicted_class_id): e.num_weighted_examples
                          for m in kv.value.multi_class_confusion_matrix_at_thresholds.matrices for e in m.entries}
                got = {(round(t, 9), a, p): w for t, es in matrix_entries(mine) for a, p, w in es}
                diff = math.inf if set(got) != set(theirs) else max(abs(got[e] - theirs[e]) for e in theirs)
            else:
                theirs_v = (list(kv.value.array_value.float64_values) if kv.value.HasField("array_value")
                            else [kv.value.double_value.value])
                mine_v = np.atleast_1d(np.asarray(mine.value, float)).tolist()
                diff = 0.0
                for a, b in zip(mine_v, theirs_v):
                    if math.isnan(a) and math.isnan(b) or (fam == "auc" and math.isnan(a) and b == 0.0):
                        continue
                    diff = max(diff, abs(a - b) / (abs(b) if fam == "accuracy" and b else 1.0))
            worst[fam] = max(worst.get(fam, 0.0), diff)
            compared += 1
    ok = ratio >= SPEED_TARGET
    print(f"compared {compared} metric values; max abs difference per family"
          " (accuracy: relative, TFMA computes it in float32):")
    for fam, diff in sorted(worst.items()):
        passed = diff <= TOLERANCES[fam]
        ok &= passed
        print(f"  {fam:9s} {diff:.3g}  (tolerance {TOLERANCES[fam]:g}) {'ok' if passed else 'FAILED'}")
    print("result:", "ok" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
