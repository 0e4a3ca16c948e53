"""Hostile feature names and values, and a pipeline run on them, for the view tests.

``build(folder)`` writes two CSV datasets whose column names and values are markup,
script, bidi overrides and 1 MB strings, runs the data components on them (the
second dataset is validated against the first one's schema, so anomalies name the
hostile features and values), evaluates a hostile frame with ``toolkit.evaluate`` and
returns everything a view can be made of. ``assert_inert(html, name)`` checks that HTML
made from them holds no element, attribute or stylesheet that came from the data.
"""
from __future__ import annotations

import os
import types
from html.parser import HTMLParser

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


#: The toolkit's own markup that parsing finds: the statistics view's progressive
#: enhancement script and the dashboard's one stylesheet rule.
OWN_SCRIPT = "(function () {\n  var me = document.currentScript;"
OWN_STYLE = ".tkd-static-"


class _Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.raw: dict[str, list[str]] = {"script": [], "style": []}
        self._open: str | None = None

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag in self.raw:
            self._open = tag
            self.raw[tag].append("")

    def handle_endtag(self, tag):
        if tag == self._open:
            self._open = None

    def handle_data(self, data):
        if self._open:
            self.raw[self._open][-1] += data


def assert_inert(html: str, name: str) -> None:
    parser = _Elements()
    parser.feed(html)
    for tag, attrs in parser.tags:
        assert tag not in ("img", "svg", "iframe", "object", "embed", "link", "meta"), (name, tag)
        events = [a for a in attrs if a.lower().startswith("on")]
        assert events == [], (name, tag, events)
        for key in ("href", "src", "action"):
            assert "javascript:" not in (attrs.get(key) or "").lower(), (name, tag)
    assert all(text.startswith(OWN_SCRIPT) for text in parser.raw["script"]), name
    assert all(text.startswith(OWN_STYLE) for text in parser.raw["style"]), name
    for payload in PAYLOADS + [BIG]:
        assert payload not in html, (name, payload[:40])
    assert "\u202e" not in html, name
    assert len(html) < 2 * 2**20, (name, len(html))
