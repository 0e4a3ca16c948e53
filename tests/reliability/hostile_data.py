"""Hostile feature names and values, and a pipeline run on them, for the view tests.

``build(folder)`` writes two CSV datasets whose column names and values are markup,
script, bidi overrides and 1 MB strings, runs the data components on them (the
second dataset is validated against the first one's schema, so anomalies name the
hostile features and values), evaluates a hostile frame with ``toolkit.evaluate`` and
returns everything a view can be made of.
"""
from __future__ import annotations

import os
import types

SCRIPT = "<script>alert(1)</script>"
BREAKOUT = '"><img src=x onerror=alert(1)>'
STYLE = "</style><style>*{display:none}</style>"
BIDI = "\u202egnp.exe"
SVG = "<svg onload=alert(1)>"
BIG = "W" * 1_000_000
#: The longest column name Python's csv module reads (its field limit is 131,072)
LONG_NAME = "N" * 100_000
PAYLOADS = [SCRIPT, BREAKOUT, STYLE, BIDI, SVG]


def _frame(rows: int, seed: int, extra_values: bool = False):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    values = PAYLOADS + [BIG] + (["new " + SCRIPT, "new " + BREAKOUT] if extra_values else [])
    label = rng.integers(0, 2, rows)
    return pd.DataFrame({
        SCRIPT: rng.choice(values, rows),
        BREAKOUT: rng.normal(size=rows),
        STYLE: rng.integers(0, 5, rows),
        BIDI + " name": rng.choice(PAYLOADS, rows),
        LONG_NAME: rng.normal(size=rows),
        "group": rng.choice([SCRIPT, BREAKOUT, BIDI], rows),
        "label": label,
        "score": np.clip(label * 0.6 + rng.normal(0.2, 0.25, rows), 0, 1),
    })


def eval_config() -> dict:
    return {
        "model_specs": [{"label_key": "label", "prediction_key": "score"}],
        "slicing_specs": [{}, {"feature_keys": ["group"]}, {"feature_keys": [BIDI + " name"]}],
        "metrics_specs": [{"metrics": [
            {"class_name": "ExampleCount"}, {"class_name": "AUC"},
            {"class_name": "FairnessIndicators", "config": '{"thresholds": [0.5]}'},
            {"class_name": "BinaryAccuracy",
             "threshold": {"value_threshold": {"lower_bound": 0.99}}}]}],
    }


def build(folder: str):
    import toolkit
    from toolkit import InteractiveContext
    from toolkit.components import CsvExampleGen, ExampleValidator, SchemaGen, StatisticsGen

    first, second = os.path.join(folder, "first"), os.path.join(folder, "second")
    os.makedirs(first, exist_ok=True)
    os.makedirs(second, exist_ok=True)
    _frame(400, 0).to_csv(os.path.join(first, "hostile.csv"), index=False)
    drifted = _frame(300, 1, extra_values=True).drop(columns=[STYLE])
    drifted.to_csv(os.path.join(second, "hostile.csv"), index=False)

    context = InteractiveContext(pipeline_name=SCRIPT, pipeline_root=os.path.join(folder, "root"))
    example_gen = CsvExampleGen(input_base=first)
    statistics_gen = StatisticsGen(examples=example_gen.outputs["examples"])
    schema_gen = SchemaGen(statistics=statistics_gen.outputs["statistics"])
    drift_gen = CsvExampleGen(input_base=second).with_id(BREAKOUT)
    drift_statistics = StatisticsGen(examples=drift_gen.outputs["examples"]).with_id(SVG)
    validator = ExampleValidator(statistics=drift_statistics.outputs["statistics"],
                                 schema=schema_gen.outputs["schema"],
                                 allowed_anomalies=["*"]).with_id(BIDI)
    results = [context.run(c) for c in (example_gen, statistics_gen, schema_gen, drift_gen,
                                         drift_statistics, validator)]
    evaluation = toolkit.evaluate(_frame(600, 2), eval_config())
    return types.SimpleNamespace(
        context=context, results=results, evaluation=evaluation, frame=_frame(200, 3),
        examples=example_gen.outputs["examples"], statistics=statistics_gen.outputs["statistics"],
        schema=schema_gen.outputs["schema"], anomalies=validator.outputs["anomalies"],
        drift_statistics=drift_statistics.outputs["statistics"],
        lineage=context.lineage(validator.outputs["anomalies"]),
        executions=context.executions())
