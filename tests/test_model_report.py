"""The report written beside each pushed version, and `toolkit models show`.

Two pipelines: the taxi flagship notebook run headless (shared with the flagship tests:
real Trainer, Evaluator with fairness slices, InfraValidator, Pusher), whose report must
hold the very figures of its artifacts; and a cheap one on the real taxi data (no
training: a stand-in SavedModel scored by a rule, evaluated by the real engine) with
HTML planted in a slice value and a parameter, which must come out escaped.
"""
from __future__ import annotations

import json
import math
import os
import re
import shutil
import types
from html.parser import HTMLParser
from pathlib import Path

import pytest

from toolkit import InteractiveContext, models
from toolkit.artifacts import Examples, Model, ModelBlessing, ModelEvaluation
from toolkit.base_component import BaseComponent, ExecutionParameter, InputSpec
from toolkit.cli import main
from toolkit.components import Pusher
from toolkit.components.pusher import versions
from toolkit.metadata import MetadataStore, sqlite_config
from toolkit.model_report import REPORT_DATA, REPORT_FILE, SECTIONS, metric_label

PLANTED_SLICE = "<script>alert('slice')</script>"
PLANTED_PARAMETER = "<img src=x onerror=alert(1)> & \"quoted\" <b>bold</b>"


# -- reading a report page ------------------------------------------------------------
class Table(types.SimpleNamespace):
    """One table of the page: ``label`` (the heading above it), ``headers``, ``rows`` of
    cells, each cell (text, exact values from titles)."""


class Page(HTMLParser):
    """The page's sections (h2 title -> its tables), every tag with its attributes, and
    its text."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.sections: dict[str, list[Table]] = {}
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.text: list[str] = []
        self._section: str | None = None
        self._label = ""
        self._heading: list[str] | None = None
        self._cell: list[str] | None = None
        self._titles: list[str] = []
        self._rows: list[list[tuple[str, list[str]]]] | None = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, attrs))
        if tag in ("h2", "h3", "h4"):
            self._heading = []
        elif tag == "table":
            self._rows = []
        elif tag == "tr" and self._rows is not None:
            self._rows.append([])
        elif tag in ("td", "th"):
            self._cell, self._titles = [], []
        elif tag == "br" and self._cell is not None:
            self._cell.append("\n")
        elif self._cell is not None and dict(attrs).get("title"):
            self._titles.append(dict(attrs)["title"])

    def handle_endtag(self, tag):
        if tag in ("h2", "h3", "h4") and self._heading is not None:
            heading = "".join(self._heading).strip()
            if tag == "h2":
                self._section = heading
                self.sections[heading] = []
            self._label, self._heading = heading, None
        elif tag in ("td", "th") and self._cell is not None:
            self._rows[-1].append(("".join(self._cell).strip(), self._titles))
            self._cell = None
        elif tag == "table" and self._rows is not None:
            if self._section is not None:
                headers = [text for text, _ in self._rows[0]] if self._rows else []
                self.sections[self._section].append(
                    Table(label=self._label, headers=headers, rows=self._rows[1:]))
            self._rows = None

    def handle_data(self, data):
        self.text.append(data)
        if self._heading is not None:
            self._heading.append(data)
        if self._cell is not None:
            self._cell.append(data)

    def rows(self, section: str, index: int = -1) -> list[list[tuple[str, list[str]]]]:
        """The body rows (header row left out) of one table of a section."""
        return self.sections[section][index].rows

    def tables(self, section: str, headers: list[str]) -> list[Table]:
        return [t for t in self.sections[section] if t.headers == headers]


CHECKS = ["slice", "metric", "needs", "value", "result"]
METRICS = ["slice", "examples", "value", "gap to Overall"]


def read_page(folder: str | Path) -> tuple[str, Page]:
    text = Path(folder, REPORT_FILE).read_text(encoding="utf-8")
    return text, Page(text)


def exact(cell: tuple[str, list[str]]) -> float | None:
    """A number cell's exact value: the repr in its title, else its text (integers are
    shown exactly); None for an empty cell or a note."""
    text, titles = cell
    if titles:
        return float(titles[0])
    try:
        return float(text.replace(",", "").lstrip("+"))
    except ValueError:
        return None


def metric_tables(page: Page) -> dict[str, dict[str, list[tuple[str, list[str]]]]]:
    """Evaluation's metric tables: label (``auc``, ``... at threshold 0.5``) -> slice -> row."""
    return {t.label: {row[0][0]: row for row in t.rows}
            for t in page.tables("Evaluation", METRICS)}


def assert_offline_and_scriptless(text: str, page: Page) -> None:
    """No script, no event handler, no URL of any kind: the page loads nothing."""
    for tag, attrs in page.tags:
        assert tag not in ("script", "iframe", "img", "link", "object", "embed", "style"), tag
        for name, value in attrs:
            assert name not in ("src", "href", "srcset", "action") and not name.startswith("on"), \
                (tag, name, value)
        assert not any("//" in (value or "") for _, value in attrs), (tag, attrs)
    assert "url(" not in text and "@import" not in text


# -- the flagship run -----------------------------------------------------------------
@pytest.fixture(scope="module")
def flagship(executed_taxi):
    """The flagship's pushed version, its report, and the artifacts of its store."""
    [version] = versions(executed_taxi.serving)
    folder = os.path.join(os.path.realpath(executed_taxi.serving), str(version))
    store = MetadataStore(executed_taxi.parameters["pipeline_name"],
                          sqlite_config(os.path.join(executed_taxi.root, "metadata.sqlite")))
    [push] = [e for e in store.executions("Pusher") if e["state"] == "COMPLETE"]
    inputs = store.inputs_of(push["id"])
    [blessing] = inputs["model_blessing"]
    [evaluation] = store.outputs_of(store.producer_of(blessing.id))["evaluation"]
    text, page = read_page(folder)
    return types.SimpleNamespace(version=version, folder=folder, store=store, push=push,
                                 inputs=inputs, result=evaluation.load(), text=text, page=page,
                                 serving=executed_taxi.serving)


def test_flagship_report_has_every_section_and_loads_nothing(flagship):
    assert list(flagship.page.sections) == list(SECTIONS)
    assert_offline_and_scriptless(flagship.text, flagship.page)
    assert f"Model version {flagship.version}" in "".join(flagship.page.text)
    # the version's data beside the page says the same version
    data = json.loads(Path(flagship.folder, REPORT_DATA).read_text())
    assert data["version"] == flagship.version and data["path"] == flagship.folder


def test_flagship_report_holds_the_evaluation_and_thresholds_that_blessed_it(flagship):
    result, page = flagship.result, flagship.page
    [checks_table] = page.tables("Evaluation", CHECKS)
    checks = {(row[0][0], row[1][0]): row for row in checks_table.rows}
    assert result.validation.checks
    for check in result.validation.checks:
        row = checks[(check.slice, check.metric)]
        assert exact(row[3]) == pytest.approx(check.value, rel=1e-12)
        assert row[2][0] == check.threshold.describe()
        assert row[4][0].startswith("passed" if check.passed else "FAILED")
    # every slice's value, and its gap to Overall
    shown = metric_tables(page)
    frame = result.to_dataframe(baseline_slice=())
    frame = frame[frame["model"] == result.eval_config.candidate.name]
    compared = 0
    for metric in ("auc", "binary_accuracy", "fairness_indicators_metrics/false_positive_rate"):
        part = frame[frame["metric"] == metric]
        assert len(part) > 10, metric  # Overall, payment_type and trip_start_hour slices
        for record in part.to_dict("records"):
            threshold = None if math.isnan(record["threshold"]) else record["threshold"]
            row = shown[metric_label(metric, "", threshold)][record["slice"]]
            assert exact(row[1]) == record["slice_size"]
            if math.isnan(record["value"]):
                assert exact(row[2]) is None
                continue
            assert exact(row[2]) == pytest.approx(record["value"], rel=1e-12)
            if record["slice"] != "Overall" and not math.isnan(record["baseline_diff"]):
                assert exact(row[3]) == pytest.approx(record["baseline_diff"], rel=1e-9)
                compared += 1
    assert compared > 30
    assert "payment_type:Credit Card" in shown["auc"]
    assert "fairness_indicators_metrics/false_positive_rate at threshold 0.5" in shown


def test_flagship_report_holds_data_infra_lineage_and_parameters(flagship):
    page, store = flagship.page, flagship.store
    # training data: the statistics StatisticsGen computed on the ingested examples
    [stats] = store.artifacts("ExampleStatistics")
    assert len(page.sections["Training data"]) == len(stats.split_names) == 2
    for split, table in zip(stats.split_names, page.sections["Training data"]):
        dataset = stats.load(split).datasets[0]
        assert table.label.startswith(f"Split {split}: {dataset.num_examples:,} examples")
        fare = next(r for r in table.rows if r[0][0] == "fare")
        numeric = next(f for f in dataset.features if f.path.step[0] == "fare").num_stats
        assert exact(fare[3]) == pytest.approx(numeric.mean, rel=1e-12)
        assert exact(fare[4]) == pytest.approx(numeric.std_dev, rel=1e-12)
    # infra validation: the InfraValidator's measured latency
    [infra] = flagship.inputs["infra_blessing"]
    [row] = page.rows("Infra validation")
    header = page.sections["Infra validation"][0].headers
    for key, label in (("latency_p50_ms", "latency p50 (ms)"),
                       ("latency_p99_ms", "latency p99 (ms)"), ("load_time_s", "load time (s)")):
        assert infra.properties[key] > 0
        assert exact(row[header.index(label)]) == pytest.approx(infra.properties[key])
    # lineage: every execution from ingestion to this push, in order
    lineage = page.rows("Lineage")
    components = [r[1][0] for r in lineage]
    for name in ("CsvExampleGen", "StatisticsGen", "SchemaGen", "Transform", "Trainer",
                 "Evaluator", "InfraValidator", "Pusher"):
        assert name in components, name
    assert components[-1] == "Pusher" and lineage[-1][0][0] == f"#{flagship.push['id']}"
    assert components.index("CsvExampleGen") < components.index("Trainer") < \
        components.index("Evaluator")
    # parameters: the run's own (train_steps=600 given to the notebook)
    parameters = {(r[0][0].split(" #")[0], r[1][0]): r[2][0]
                  for r in page.rows("Parameters")}
    assert json.loads(parameters[("Trainer", "train_args")]) == {"num_steps": 600}
    assert "payment_type" in parameters[("Evaluator", "eval_config")]


def test_models_show_prints_where_the_report_is_and_a_summary(flagship, capsys):
    assert main(["models", "show", flagship.serving, str(flagship.version)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == f"version {flagship.version} in {os.path.realpath(flagship.serving)}"
    assert lines[1] == f"report: {os.path.join(flagship.folder, REPORT_FILE)}"
    [check] = [c for c in flagship.result.validation.checks if c.slice == "Overall"
               and c.metric == "auc" and c.threshold.describe().startswith(">=")]
    assert f"auc on Overall = {check.value:.4g}, needs {check.threshold.describe()}: passed" in out
    assert "blessing: blessed by ModelBlessing" in out and "InfraBlessing" in out
    assert re.search(r"infra validation: load time [\d.]+ s, .*latency p50 [\d.]+ ms", out)
    assert f"Pusher #{flagship.push['id']}" in out
    shown = models.show(flagship.serving, flagship.version)
    assert shown.report_path == os.path.join(flagship.folder, REPORT_FILE)
    assert str(shown) == out.rstrip("\n")


# -- planted HTML on a cheap pipeline -------------------------------------------------
class StandInModel(BaseComponent):
    """A Model whose serving folder holds files shaped like a SavedModel (no TensorFlow);
    ``note`` is a parameter recorded with the run."""

    INPUTS = {"examples": InputSpec(Examples)}
    OUTPUTS = {"model": Model}
    PARAMETERS = {"note": ExecutionParameter(str, default="")}

    def Do(self, input_dict, output_dict, exec_properties, ctx):
        serving = Path(output_dict["model"][0].uri, "Format-Serving")
        (serving / "variables").mkdir(parents=True)
        (serving / "saved_model.pb").write_bytes(b"\x08\x01" * 400)
        (serving / "variables" / "variables.index").write_bytes(b"\x00" * 64)


class RuleEvaluator(BaseComponent):
    """The real evaluation engine on the real taxi eval split, scored by a rule (card
    payers tip), with slices by payment type; one payment type is renamed to HTML."""

    INPUTS = {"examples": InputSpec(Examples), "model": InputSpec(Model)}
    OUTPUTS = {"evaluation": ModelEvaluation, "blessing": ModelBlessing}

    def Do(self, input_dict, output_dict, exec_properties, ctx):
        import pyarrow.parquet as pq

        from toolkit.evaluation import evaluate, save_result

        frame = pq.read_table(input_dict["examples"][0].split_uri("eval")).to_pandas()
        frame = frame.dropna(subset=["fare", "tips"])
        frame["big_tipper"] = (frame["tips"] > 0.2 * frame["fare"]).astype(int)
        frame["prediction"] = ((frame["payment_type"] == "Credit Card") * 0.7
                               + frame["fare"].clip(0, 50) / 200.0)
        frame["payment_type"] = frame["payment_type"].replace("No Charge", PLANTED_SLICE)
        result = evaluate(frame, {
            "model_specs": [{"label_key": "big_tipper", "prediction_key": "prediction"}],
            "slicing_specs": [{}, {"feature_keys": ["payment_type"]}],
            "metrics_specs": [{"metrics": [
                {"class_name": "ExampleCount"},
                {"class_name": "AUC"},
                {"class_name": "FairnessIndicators", "config": '{"thresholds": [0.5]}'}],
                "per_slice_thresholds": {"auc": {"thresholds": [{
                    "slicing_specs": [{}],
                    "threshold": {"value_threshold": {"lower_bound": 0.6}}}]}}}]})
        save_result(result, output_dict["evaluation"][0].uri)
        output_dict["blessing"][0].properties.update(
            blessed=int(result.blessed), current_model_id=input_dict["model"][0].id)


@pytest.fixture(scope="module")
def planted(taxi_pipeline, tmp_path_factory):
    """The taxi data pipeline's examples, a stand-in model with planted HTML in a
    parameter, a real evaluation with planted HTML in a slice value, and a push."""
    context = InteractiveContext(pipeline_name="taxi_report", pipeline_root=taxi_pipeline.root)
    examples = taxi_pipeline.example_gen.outputs["examples"]
    model = StandInModel(examples=examples, note=PLANTED_PARAMETER)
    evaluator = RuleEvaluator(examples=examples, model=model.outputs["model"])
    serving = tmp_path_factory.mktemp("report_serving")
    pusher = Pusher(model=model.outputs["model"], model_blessing=evaluator.outputs["blessing"],
                    push_destination=str(serving / "taxi"), allowed_root=str(serving))
    for component in (model, evaluator, pusher):
        context.run(component)
    pushed = pusher.outputs["pushed_model"].get()[0]
    version = int(pushed.properties["pushed_version"])
    return types.SimpleNamespace(context=context, serving=str(serving / "taxi"),
                                 version=version, evaluator=evaluator,
                                 folder=os.path.join(os.path.realpath(serving / "taxi"),
                                                     str(version)))


def test_planted_html_comes_out_escaped(planted):
    text, page = read_page(planted.folder)
    assert list(page.sections) == list(SECTIONS)
    assert_offline_and_scriptless(text, page)
    assert "<script" not in text.lower() and "<img" not in text.lower() and "<b>bold" not in text
    # the values themselves are shown, as text
    tables = metric_tables(page)
    assert f"payment_type:{PLANTED_SLICE}" in tables["auc"]
    parameters = {(r[0][0].split(" #")[0], r[1][0]): r[2][0] for r in page.rows("Parameters")}
    assert parameters[("StandInModel", "note")] == PLANTED_PARAMETER
    assert "&lt;script&gt;alert(&#x27;slice&#x27;)&lt;/script&gt;" in text
    # and a real evaluation: the planted slice's figures are the artifact's
    result = planted.evaluator.outputs["evaluation"].get()[0].load()
    frame = result.to_dataframe()
    frame = frame[frame["slice"] == f"payment_type:{PLANTED_SLICE}"]
    assert len(frame) == len(tables) > 3
    for record in frame.to_dict("records"):
        threshold = None if math.isnan(record["threshold"]) else record["threshold"]
        row = tables[metric_label(record["metric"], "", threshold)][record["slice"]]
        assert exact(row[2]) is None if math.isnan(record["value"]) else \
            exact(row[2]) == pytest.approx(record["value"], rel=1e-12)
    assert exact(tables["example_count"][f"payment_type:{PLANTED_SLICE}"][2]) > 10
    # the report without an InfraValidator says so
    assert "No InfraValidator ran" in "".join(page.text)


def test_rollback_version_gets_its_own_report(planted, capsys):
    old = planted.version
    done = models.rollback(planted.serving, to=old)

    text, page = read_page(done.path)
    assert_offline_and_scriptless(text, page)
    data = json.loads(Path(done.path, REPORT_DATA).read_text())
    assert (data["version"], data["reason"], data["rolled_back_from"]) == (done.version,
                                                                           "rollback", old)
    lineage = page.rows("Lineage")
    assert lineage[-1][1][0] == "Rollback" and lineage[-1][0][0] == f"#{done.execution_id}"
    assert {"Pusher", "RuleEvaluator", "StandInModel"} <= {r[1][0] for r in lineage}
    assert f"Model version {done.version}" in "".join(page.text)
    assert f"rollback: version {old} re-published" in "".join(page.text)
    # the version rolled back to keeps its own report
    assert json.loads(Path(planted.folder, REPORT_DATA).read_text())["version"] == old

    assert main(["models", "show", planted.serving, str(done.version)]) == 0
    out = capsys.readouterr().out
    assert f"report: {os.path.join(done.path, REPORT_FILE)}" in out
    assert f"rollback: version {old} re-published" in out


def test_show_errors_and_versions_without_a_report(planted, tmp_path, capsys):
    assert main(["models", "show", planted.serving, "12"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no version 12 in" in err
    assert main(["models", "show", planted.serving]) == 2
    assert "show needs SERVING_DIR and VERSION" in capsys.readouterr().err
    # a version pushed before reports were written is summarised from its record
    copy = tmp_path / "serving"
    shutil.copytree(planted.folder, copy / str(planted.version))
    for name in (REPORT_FILE, REPORT_DATA):
        os.remove(copy / str(planted.version) / name)
    shown = models.show(copy, planted.version)
    assert shown.report_path is None
    assert f"report: none in {copy / str(planted.version)}" in str(shown)
    assert "blessing: blessed" in str(shown) and "auc=" in str(shown)


def test_notebook_view_of_the_push_is_its_report(planted):
    from toolkit.visualize import view_of

    pushed = planted.context.store.artifacts("PushedModel")
    [artifact] = [a for a in pushed if a.properties.get("pushed_version") == str(planted.version)]
    view = view_of(artifact)
    page = Page(view.html)
    assert list(page.sections) == list(SECTIONS)
    assert "<script" not in view.html.lower() and "&lt;script&gt;" in view.html
    assert f"Model version {planted.version}" in view.text and "blessing: blessed" in view.text
    shown = view_of(models.show(planted.serving, planted.version))
    assert list(Page(shown.html).sections) == list(SECTIONS)


def test_rollback_without_a_store_keeps_the_older_report(planted, tmp_path):
    serving = tmp_path / "serving"
    shutil.copytree(planted.folder, serving / str(planted.version))
    record_path = serving / str(planted.version) / "toolkit-push.json"
    record = json.loads(record_path.read_text())
    record["store"] = f"SQLite file {tmp_path / 'gone' / 'metadata.sqlite'}"
    record_path.write_text(json.dumps(record))

    done = models.rollback(serving, to=planted.version)

    assert done.recorded_in is None
    text, page = read_page(done.path)
    data = json.loads(Path(done.path, REPORT_DATA).read_text())
    assert (data["version"], data["reason"], data["rolled_back_from"]) == (
        done.version, "rollback", planted.version)
    assert "no metadata store was read for this rollback" in "".join(page.text)
    # the sections are the older version's, figures included
    assert metric_tables(page) == metric_tables(read_page(planted.folder)[1])
    assert "&lt;script&gt;" in text and "<script" not in text
