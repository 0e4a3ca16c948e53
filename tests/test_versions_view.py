"""``toolkit.show_versions``: one metric per slice across the versions of a serving directory.

Three versions are pushed by the real Pusher, each blessed by a gate that runs the real
evaluation engine on its own small frame with a per-slice threshold; the second version's
gate was overridden by hand (``approve=1``) although one slice missed its threshold, which
is the cell the view must show red. Values and gaps are computed here from the frames.
No training: seconds.
"""
from __future__ import annotations

import re
import types

import numpy as np
import pandas as pd
import pytest

from toolkit.artifacts import Model, ModelBlessing, ModelEvaluation
from toolkit.base_component import BaseComponent, ExecutionParameter, InputSpec

HOSTILE = "<script>alert(1)</script>"
GROUPS = ("a", "b", HOSTILE)
RED = "rgba(198,40,40,0.14)"


def scored_frame(seed: int) -> pd.DataFrame:
    """Labels and scores per group; seed 2 makes group ``b`` mostly wrong."""
    rng = np.random.default_rng(seed)
    rows = []
    for group in GROUPS:
        label = rng.integers(0, 2, 40)
        right = rng.random(40) < (0.2 if (seed == 2 and group == "b") else 0.85)
        score = np.where(right == (label == 1), 0.8, 0.2) + rng.uniform(-0.1, 0.1, 40)
        rows.append(pd.DataFrame({"group": group, "label": label, "prediction": score}))
    return pd.concat(rows, ignore_index=True)


CONFIG = {"slicing_specs": [{}, {"feature_keys": ["group"]}],
          "metrics_specs": [{"metrics": [
              {"class_name": "ExampleCount"},
              {"class_name": "BinaryAccuracy",
               "threshold": {"value_threshold": {"lower_bound": 0.5}}}]}]}


class StandInModel(BaseComponent):
    """A Model folder shaped like a SavedModel (the Pusher copies it; nothing loads it)."""

    OUTPUTS = {"model": Model}
    PARAMETERS = {"seed": ExecutionParameter(int, default=0)}

    def Do(self, input_dict, output_dict, exec_properties, ctx):
        import os

        serving = os.path.join(output_dict["model"][0].uri, "Format-Serving")
        os.makedirs(os.path.join(serving, "variables"))
        with open(os.path.join(serving, "saved_model.pb"), "wb") as handle:
            handle.write(bytes([exec_properties["seed"]]) * 100)


class Gate(BaseComponent):
    """Evaluates the model's frame with the real engine and blesses it when every
    threshold passed, or when a person approved it anyway (``approve=1``)."""

    INPUTS = {"model": InputSpec(Model)}
    OUTPUTS = {"evaluation": ModelEvaluation, "blessing": ModelBlessing}
    PARAMETERS = {"seed": ExecutionParameter(int, default=0),
                  "approve": ExecutionParameter(int, default=0)}

    def Do(self, input_dict, output_dict, exec_properties, ctx):
        from toolkit.evaluation import evaluate, save_result

        result = evaluate(scored_frame(exec_properties["seed"]), CONFIG)
        save_result(result, output_dict["evaluation"][0].uri)
        output_dict["blessing"][0].properties.update(
            blessed=int(result.blessed or exec_properties["approve"]),
            current_model_id=input_dict["model"][0].id)


def push_versions(root: str, serving: str) -> list[int]:
    """Versions for seeds 1, 2 (approved by hand) and 3, in push order."""
    from toolkit import InteractiveContext
    from toolkit.components import Pusher

    context = InteractiveContext(pipeline_name="versions", pipeline_root=root)
    pushed = []
    for seed in (1, 2, 3):
        model = StandInModel(seed=seed)
        gate = Gate(model=model.outputs["model"], seed=seed, approve=int(seed == 2))
        context.run(model)
        context.run(gate)
        result = context.run(Pusher(model=model.outputs["model"],
                                    model_blessing=gate.outputs["blessing"],
                                    push_destination=serving, allowed_root=root + "/.."))
        pushed.append(int(result.outputs["pushed_model"][0].properties["pushed_version"]))
    return pushed


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    folder = tmp_path_factory.mktemp("versions")
    serving = str(folder / "serving")
    pushed = push_versions(str(folder / "root"), serving)
    return types.SimpleNamespace(serving=serving, versions=pushed)


def _accuracy(frame: pd.DataFrame) -> float:
    return float(((frame["prediction"] > 0.5).astype(int) == frame["label"]).mean())


def _expected(seed: int) -> dict[str, float]:
    frame = scored_frame(seed)
    found = {"Overall": _accuracy(frame)}
    for group in GROUPS:
        found[f"group:{group}"] = _accuracy(frame[frame["group"] == group])
    return found


def _cells(html: str) -> list[list[str]]:
    """The table's rows as lists of cell texts (tags removed, entities kept)."""
    body = html.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return [[re.sub(r"<[^>]+>", " ", cell) for cell in re.findall(r"<td[^>]*>(.*?)</td>", row)]
            for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body)]


def test_every_slice_across_every_version_with_values_gaps_and_the_failed_gate(served):
    import toolkit
    from toolkit.visualize.versions import versions_view

    view = versions_view(served.serving, metric="binary_accuracy")
    html = view.html
    assert "<script" not in html and "group:&lt;script&gt;alert(1)&lt;/script&gt;" in html
    rows = _cells(html)
    expected = [_expected(seed) for seed in (1, 2, 3)]
    assert [row[0].strip() for row in rows][0] == "Overall"
    assert len(rows) == 1 + len(GROUPS)
    for row in rows:
        slice_name = row[0].strip().replace("&lt;", "<").replace("&gt;", ">")
        for cell, values in zip(row[1:], expected):
            value = values[slice_name]
            assert cell.split()[0] == f"{value:.4g}", (slice_name, cell)
            if slice_name != "Overall":
                gap = value - values["Overall"]
                assert f"gap {gap:+.3g}" in cell, (slice_name, cell)
            assert "needs &gt;= 0.5" in cell
    # exactly one red cell: version 2's group b, the check its gate failed
    assert html.count(RED) == 1
    red_row = next(row for row in re.findall(r"<tr[^>]*>(.*?)</tr>", html) if RED in row)
    assert "group:b" in red_row and expected[1]["group:b"] < 0.5
    cells = re.findall(r"<td[^>]*>(.*?)</td>", red_row)
    assert RED in cells[2] and RED not in cells[1] + cells[3]
    assert "FAILED" in view.text and str(served.versions[1]) in view.text

    shown = toolkit.show_versions(served.serving, metric="binary_accuracy",
                                  slices=["group:b", "Overall"], baseline="group:a")
    assert [row[0].strip() for row in _cells(shown.html)] == ["group:b", "Overall"]
    gap = expected[0]["group:b"] - expected[0]["group:a"]
    assert f"gap {gap:+.3g}" in _cells(shown.html)[0][1]


def test_the_default_metric_is_the_one_the_gates_checked(served):
    from toolkit.visualize.versions import versions_view

    assert versions_view(served.serving).title.startswith("binary_accuracy across 3 pushed")


def test_unknown_metric_and_folder_are_one_line_errors(served, tmp_path):
    from toolkit.errors import ToolkitError
    from toolkit.visualize.versions import versions_view

    with pytest.raises(ToolkitError) as caught:
        versions_view(served.serving, metric="auc")
    assert "known metrics: binary_accuracy, example_count" in str(caught.value)
    with pytest.raises(ToolkitError, match="is not a serving directory") as caught:
        versions_view(tmp_path)
    assert "\n" not in str(caught.value)


def test_versions_page_is_written_beside_the_versions_and_linked_from_reports(served):
    import os

    from toolkit.comparison import write_versions_page

    page = write_versions_page(served.serving, metric="binary_accuracy")
    assert page == os.path.join(served.serving, "toolkit-versions.html")
    text = open(page, encoding="utf-8").read()
    assert text.startswith("<!DOCTYPE html>") and "<script" not in text
    report = open(os.path.join(served.serving, str(served.versions[0]), "toolkit-report.html"),
                  encoding="utf-8").read()
    assert "<code>../toolkit-versions.html</code>" in report
