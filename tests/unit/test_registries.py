"""The registries (views, export targets, evaluation engines): an unknown name fails in one
line naming it and the known ones, and a name registered from outside the toolkit is usable
end to end through the public API, without editing the code that looks it up.

Seconds: the German credit data through the in-process engine, one small export."""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from datapaths import GERMAN_CSV

import toolkit
from toolkit.errors import ToolkitError, UnknownNameError
from toolkit.evaluation import EvalConfigError
from toolkit.evaluation.engines import ENGINES, EvaluationEngine, register_engine
from toolkit.evaluation.values import MetricKey, MetricValue, SliceMetrics
from toolkit.exporter.targets import TARGETS, ExportTarget, TargetOption, register_target
from toolkit.visualize import VIEWS, View, register_view

REPO = Path(__file__).resolve().parents[2]


def _known(message: str) -> list[str]:
    assert "\n" not in message
    return message.split("; known: ", 1)[1].split(", ")


@pytest.mark.parametrize(("registry", "kind"), [(VIEWS, "view"), (TARGETS, "export target"),
                                                (ENGINES, "evaluation engine")])
def test_an_unknown_name_is_named_with_every_known_one(registry, kind):
    with pytest.raises(UnknownNameError) as info:
        registry.get("no-such-name")
    message = str(info.value)
    assert message.startswith(f"no {kind} is registered as 'no-such-name'; known: ")
    assert sorted(_known(message)) == sorted(registry.names()) and registry.names()


# -- evaluation engines ------------------------------------------------------------------
@pytest.fixture(scope="module")
def credit() -> pd.DataFrame:
    frame = pd.read_csv(GERMAN_CSV)
    frame["label"] = frame["risk"].astype(float)
    frame["prediction"] = np.where(frame["duration"] > 20, 0.7, 0.3)
    return frame


CONFIG = {"slicing_specs": [{}, {"feature_keys": ["housing"]}],
          "metrics_specs": [{"metrics": [{"class_name": "ExampleCount"},
                                         {"class_name": "BinaryAccuracy"}]}]}


def test_the_standard_engines_are_registered_and_an_unknown_one_is_a_config_error(credit):
    assert ENGINES.names() == ["auto", "toolkit", "tfma"]
    assert ENGINES.get("tfma").computes == "toolkit.evaluation.tfma_adapter:run"
    assert ENGINES.get("toolkit").vectorized and not ENGINES.get("toolkit").falls_back
    with pytest.raises(EvalConfigError) as info:  # also a ValueError, as before the registry
        toolkit.evaluate(credit, CONFIG, engine="beam")
    assert isinstance(info.value, UnknownNameError) and isinstance(info.value, ValueError)
    assert str(info.value) == ("no evaluation engine is registered as 'beam'; known: auto, "
                               "tfma, toolkit")


def counting_engine(data: pd.DataFrame, config, metrics) -> list[SliceMetrics]:
    """An engine of its own: example counts per slice, grouped by pandas."""
    assert [metric.class_name for _, metric in metrics] == ["ExampleCount", "BinaryAccuracy"]
    key = MetricKey("example_count")
    out = [SliceMetrics((), len(data), "Overall",
                        metrics={key: MetricValue(float(len(data)), "ExampleCount")})]
    for value, rows in data.groupby("housing"):
        out.append(SliceMetrics((("housing", value),), len(rows), "housing",
                                metrics={key: MetricValue(float(len(rows)), "ExampleCount")}))
    return out


def test_a_registered_engine_is_chosen_by_name(credit):
    """``engine=NAME`` of a registered engine runs it (the result names it); a vectorized
    registration gives the toolkit engine's numbers."""
    register_engine(EvaluationEngine("counting", "counts rows", computes=counting_engine))
    register_engine(EvaluationEngine("strict", "the vectorized engine, strict"))
    try:
        counted = toolkit.evaluate(credit, CONFIG, engine="counting")
        strict = toolkit.evaluate(credit, CONFIG, engine="strict")
    finally:
        ENGINES.unregister("counting")
        ENGINES.unregister("strict")
    assert counted.engine == "counting" and strict.engine == "toolkit"
    by_housing = pd.read_csv(GERMAN_CSV)["housing"].value_counts()
    assert counted.get_metrics_for_slice(())["example_count"]["doubleValue"] == by_housing.sum()
    for value, count in by_housing.items():
        metrics = counted.get_metrics_for_slice((("housing", value),))
        assert metrics == {"example_count": {"doubleValue": float(count)}}
        assert (strict.get_metrics_for_slice((("housing", value),))["example_count"]
                == {"doubleValue": float(count)})
    correct = (credit["prediction"] > 0.5) == (credit["label"] > 0.5)
    assert strict.get_metrics_for_slice(())["binary_accuracy"]["doubleValue"] == pytest.approx(
        correct.mean(), abs=1e-12)
    assert "counting" not in ENGINES and "strict" not in ENGINES


def test_an_engine_without_beam_arguments_refuses_beam_in_one_line():
    engine = EvaluationEngine("counting", "counts rows", computes=counting_engine)
    with pytest.raises(ToolkitError, match=r"^the counting evaluation engine does not run on Beam: "
                                           r"run the Evaluator without beam_pipeline_args"):
        engine.on_beam(["--runner=DirectRunner"])
    with pytest.raises(ToolkitError, match="beam_arguments are for an engine"):
        register_engine(EvaluationEngine("odd", "", beam_arguments=contextlib.nullcontext))
    with pytest.raises(ToolkitError, match="takes an EvaluationEngine named 'other'"):
        ENGINES.register("other", EvaluationEngine("named", ""))
    assert "odd" not in ENGINES and "other" not in ENGINES


def test_choosing_an_engine_imports_neither_tfma_nor_beam():
    code = ("import sys; from toolkit.evaluation.engines import ENGINES; "
            "e = ENGINES.get('tfma'); assert not e.vectorized; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('tensorflow_model_analysis', 'apache_beam', 'tensorflow')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


# -- export targets ----------------------------------------------------------------------
class DigestTarget(ExportTarget):
    """Writes the exported notebook's digest beside it: ``<name>.<algorithm>``."""

    name = "digest"
    help = "also <name>.<algorithm>, the exported notebook's digest"
    options = (TargetOption(("--algorithm",), dict(default=None, metavar="NAME",
                                                   help="with --target digest: hashlib's name")),)

    def write(self, exported, args: argparse.Namespace, scope: contextlib.ExitStack) -> str:
        algorithm = args.algorithm or "sha256"
        digest = hashlib.new(algorithm, exported.notebook.read_bytes()).hexdigest()
        exported.notebook.with_suffix(f".{algorithm}").write_text(digest)
        return f"digest {algorithm} {digest}"


def test_a_registered_export_target_is_reachable_from_the_command(pipeline_notebook, tmp_path,
                                                                  capsys):
    from toolkit.cli import main

    register_target(DigestTarget())
    try:
        out = tmp_path / "export"
        assert main(["export", str(pipeline_notebook), "-o", str(out), "--target", "digest",
                     "--algorithm", "sha512"]) == 0
        last = capsys.readouterr().out.splitlines()[-1]
        expected = hashlib.sha512((out / "pipeline.ipynb").read_bytes()).hexdigest()
        assert last == f"digest sha512 {expected}"
        assert (out / "pipeline.sha512").read_text() == expected
        with pytest.raises(SystemExit):
            main(["export", "--help"])
        assert "digest: also <name>.<algorithm>" in " ".join(capsys.readouterr().out.split())
    finally:
        TARGETS.unregister("digest")
    with pytest.raises(SystemExit) as info:
        main(["export", str(pipeline_notebook), "--target", "digest"])
    assert info.value.code == 2 and "invalid choice: 'digest'" in capsys.readouterr().err


def test_adding_a_target_needs_no_edit_of_the_command():
    """The command names no target: its choices, help and options come from the registry."""
    source = (REPO / "toolkit" / "cli.py").read_text(encoding="utf-8")
    for target in TARGETS:
        assert f'"{target.name}"' not in source and f"'{target.name}'" not in source
        for option in target.options:
            assert all(flag not in source for flag in option.flags)


# -- views -------------------------------------------------------------------------------
def test_a_registered_view_is_what_show_displays():
    class Forecast:
        def __init__(self, values):
            self.values = values

    def forecast_view(obj: Forecast) -> View:
        text = f"{len(obj.values)} values, mean {sum(obj.values) / len(obj.values):g}"
        return View(f"<b>{text}</b>", text)

    with pytest.raises(UnknownNameError):
        VIEWS.get(Forecast)
    register_view(Forecast, forecast_view)
    try:
        assert toolkit.visualize.view_of(Forecast([1, 2, 6])).text == "3 values, mean 3"
    finally:
        VIEWS.unregister(Forecast)
    assert VIEWS.find(Forecast) is None
