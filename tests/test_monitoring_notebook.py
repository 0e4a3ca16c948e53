"""The monitoring flagship: taxi trips cut into quarterly spans, run headless (papermill,
interactive mode) for spans 1 to 15 (models for 13, 14 and 15, then a rollback), and its
export run by ``toolkit run`` (production mode) for the new span 16 on the same pipeline root.

Expectations are computed here from the raw CSV, not from the toolkit: the trips per
quarter, and each quarter's L-infinity distance to the one before for ``payment_type`` and
``company`` (the drift the schema's comparators watch). Quarter 16 (2016 Q4) is where the
companies' shares really move; the test checks that this is the one span flagged.
"""
from __future__ import annotations

import collections
import csv
import datetime
import filecmp
import json
import os
import re
import subprocess
import sys
import types

import pytest

from datapaths import REPO, TAXI_CSV
from notebook_checks import assert_ran_clean, outputs

pytestmark = pytest.mark.slow

NOTEBOOK = os.path.join(REPO, "notebooks", "monitoring.ipynb")
EXPORT = os.path.join(REPO, "export", "monitoring.ipynb")
#: the notebook's run processes spans up to this one; the export run then gets the next
SPAN, NEW_SPAN = 15, 16
WINDOW = 4
DRIFT_THRESHOLD = 0.1
MIN_AUC, MAX_AUC_DROP = 0.7, 0.02
WATCHED = ("payment_type", "company")


def _quarter(timestamp: str) -> int:
    when = datetime.datetime.fromtimestamp(int(timestamp), datetime.timezone.utc)
    return (when.year - 2013) * 4 + (when.month - 1) // 3 + 1


@pytest.fixture(scope="module")
def raw():
    """Trips per quarter, and each watched feature's value frequencies per quarter."""
    rows = collections.Counter()
    counts = {name: collections.defaultdict(collections.Counter) for name in WATCHED}
    with open(TAXI_CSV, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            quarter = _quarter(row["trip_start_timestamp"])
            rows[quarter] += 1
            for name in WATCHED:
                if row[name] != "":
                    counts[name][quarter][row[name]] += 1

    def linf(name: str, quarter: int) -> float:
        now, before = counts[name][quarter], counts[name][quarter - 1]
        total_now, total_before = sum(now.values()), sum(before.values())
        return max(abs(now[v] / total_now - before[v] / total_before) for v in set(now) | set(before))

    distances = {(name, q): linf(name, q) for name in WATCHED for q in range(2, NEW_SPAN + 1)}
    return types.SimpleNamespace(rows=rows, distances=distances)


def _execute_notebook(executed: str, push_root: str, **parameters) -> None:
    """The source notebook headless in interactive mode, as it runs in Jupyter: papermill
    from the notebook's folder, the kernel on the toolkit runner's private sockets.
    (``toolkit run`` runs in production mode, where the replayed spans' refusals would stop
    the notebook; it runs the export below.)"""
    import papermill

    from toolkit.runner import kernel_config

    with pytest.MonkeyPatch.context() as patch, kernel_config() as config:
        patch.setenv("TOOLKIT_PUSH_ROOT", push_root)
        papermill.execute_notebook(NOTEBOOK, executed, cwd=os.path.dirname(NOTEBOOK),
                                   kernel_name="python3", progress_bar=False,
                                   parameters=parameters, config=config)


def _toolkit_run(notebook: str, run_dir: str, push_root: str, **parameters) -> dict:
    args = [os.path.join(os.path.dirname(sys.executable), "toolkit"), "run", notebook,
            "-o", run_dir]
    for name, value in parameters.items():
        args += ["-p", name, str(value)]
    result = subprocess.run(args, capture_output=True, text=True, cwd=REPO,
                            env={**os.environ, "TOOLKIT_PUSH_ROOT": push_root})
    with open(os.path.join(run_dir, "summary.json"), encoding="utf-8") as handle:
        summary = json.load(handle)
    return {"returncode": result.returncode, "output": result.stdout + result.stderr,
            "summary": summary}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The notebook for spans 1..15, then its export for span 16, on one pipeline root."""
    import nbformat

    base = tmp_path_factory.mktemp("monitoring")
    root, serving = str(base / "pipeline"), str(base / "serving")
    common = {"pipeline_root": root, "serving_dir": serving}
    executed = str(base / "monitoring.ipynb")
    _execute_notebook(executed, str(base), span=SPAN, **common)
    versions_after_notebook = sorted(int(v) for v in os.listdir(serving) if v.isdigit())
    export = _toolkit_run(EXPORT, str(base / "export_run"), str(base), span=NEW_SPAN, **common)
    return types.SimpleNamespace(
        root=root, serving=serving, export=export,
        versions_after_notebook=versions_after_notebook,
        executed=nbformat.read(executed, as_version=4),
        executed_export=nbformat.read(export["summary"]["executed_notebook"], as_version=4))


@pytest.fixture(scope="module")
def store(runs):
    from toolkit import InteractiveContext

    return InteractiveContext(pipeline_name="monitoring", pipeline_root=runs.root).store


def _text(notebook, first_line: str) -> str:
    cells = [c for c in notebook.cells
             if c.cell_type == "code" and c.source.startswith(first_line)]
    assert len(cells) == 1, first_line
    parts = []
    for output in cells[0].outputs:
        parts.append(output.get("text", "") if output.output_type == "stream"
                     else output.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


def _examples(store, producer: str) -> dict[tuple[int, ...], object]:
    """The Examples that ``producer`` wrote, by the spans they hold."""
    return {tuple(json.loads(a.properties["spans"])): a
            for a in store.artifacts("Examples") if a.producer == producer}


def _anomaly_types(anomalies) -> dict[str, set[str]]:
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    found = {}
    for feature, info in anomalies.load("span").anomaly_info.items():
        found[feature] = {anomalies_pb2.AnomalyInfo.Type.Name(r.type) for r in info.reason}
    return found


def _validation_of(store, span: int):
    """The anomalies ExampleValidator found for ``span``, and the span of its baseline."""
    from toolkit.components.resolver import artifact_span

    for row in store.executions("ExampleValidator"):
        inputs = store.inputs_of(row["id"])
        if artifact_span(store, inputs["statistics"][0]) == span:
            baseline = inputs.get("baseline_statistics") or []
            return (store.outputs_of(row["id"])["anomalies"][0],
                    [artifact_span(store, b) for b in baseline])
    raise AssertionError(f"no validation of span {span}")


def test_the_notebook_and_the_export_run_headless(runs):
    assert_ran_clean(runs.executed)
    assert runs.executed.metadata.papermill.parameters["span"] == SPAN
    for _, output in outputs(runs.executed):
        html = output.get("data", {}).get("text/html", "")
        assert not re.search(r"https?://", html), html[:200]
    # the export's header lists the replay and the rollback as dropped for the scheduled run
    import nbformat

    header = nbformat.read(EXPORT, as_version=4).cells[0].source.replace("\\", "")
    assert header.count("dropped the cell (tagged skip-export)") == 2


def test_every_span_is_ingested_alone_and_the_windows_roll(runs, store, raw):
    spans = _examples(store, "CsvExampleGen")
    assert sorted(spans) == [(s,) for s in range(1, NEW_SPAN + 1)]
    for (span,), examples in spans.items():
        assert int(examples.properties["span"]) == span
        assert json.loads(examples.properties["row_counts"]) == {"span": raw.rows[span]}
    assert list(_examples(store, "first_year")) == [(1, 2, 3, 4)]
    windows = _examples(store, "training_window")
    assert sorted(windows) == [tuple(range(end - WINDOW + 1, end + 1))
                               for end in (SPAN - 2, SPAN - 1, SPAN, NEW_SPAN)]
    for spans_read, examples in windows.items():
        counts = json.loads(examples.properties["row_counts"])
        assert sum(counts.values()) == sum(raw.rows[s] for s in spans_read)
        assert counts["train"] > counts["eval"] > 0
    written = sorted(os.listdir(os.path.join(runs.root, "spans")))
    assert written == sorted(f"span-{s}" for s in range(1, NEW_SPAN + 1))


def test_no_trip_is_trained_on_in_one_window_and_evaluated_in_another(store):
    """Windows overlap, and the Evaluator compares the new model with one trained on the
    previous window: a trip must be in the same split in every window that holds it."""
    import glob

    import pyarrow.parquet as pq

    def trips(examples, split: str) -> set[tuple]:
        found = set()
        for path in glob.glob(os.path.join(examples.uri, f"Split-{split}", "*")):
            found.update(zip(*pq.read_table(path).to_pydict().values()))
        return found

    windows = _examples(store, "training_window").values()
    trained = set().union(*(trips(examples, "train") for examples in windows))
    evaluated = set().union(*(trips(examples, "eval") for examples in windows))
    assert len(trained) > len(evaluated) > 0
    assert trained & evaluated == set()


def test_drift_distances_equal_the_raw_frequencies(runs, store, raw):
    from toolkit.drift import compute_drift

    statistics = {}
    for row in store.executions("StatisticsGen"):
        if row["state"] != "COMPLETE":
            continue
        [examples] = store.inputs_of(row["id"])["examples"]
        statistics[int(examples.properties["span"])] = store.outputs_of(row["id"])["statistics"][0]
    assert sorted(statistics) == list(range(1, NEW_SPAN + 1))
    report = compute_drift([statistics[s] for s in sorted(statistics)], features=WATCHED)
    for name in WATCHED:
        measured = report.feature(name).to_previous
        for quarter in range(2, NEW_SPAN + 1):
            assert measured[quarter - 1] == pytest.approx(raw.distances[name, quarter], abs=1e-9)


def test_drift_is_flagged_where_the_data_shift_and_nowhere_else(runs, store, raw):
    shifted = {key for key, distance in raw.distances.items() if distance > DRIFT_THRESHOLD}
    # a fact of the data: the companies' shares move in 2016 Q4, nothing else crosses 0.1
    assert shifted == {("company", NEW_SPAN)}

    calm, baseline = _validation_of(store, SPAN)
    assert baseline == [SPAN - 1]
    assert _anomaly_types(calm) == {}
    drifted, baseline = _validation_of(store, NEW_SPAN)
    assert baseline == [NEW_SPAN - 1]
    assert _anomaly_types(drifted) == {"company": {"COMPARATOR_L_INFTY_HIGH"}}

    # the drift views of both runs say the same
    shown = _text(runs.executed, "WATCHED = ")
    assert "0 of 10 features crossed their threshold" in shown
    shown = _text(runs.executed_export, "WATCHED = ")
    assert "1 of 10 features crossed their threshold" in shown
    assert re.search(r"company \[L∞ distance, threshold 0\.1\].*at 2016 Q4", shown)


def _blessing_checks(store, pusher_row) -> tuple[bool, dict[str, float]]:
    """Whether the Evaluator blessed the model the Pusher got, and its metrics."""
    import tensorflow_model_analysis as tfma

    inputs = store.inputs_of(pusher_row["id"])
    [blessing] = inputs["model_blessing"]
    evaluator = store.producer_of(blessing.id)
    evaluation = store.outputs_of(evaluator)["evaluation"][0]
    metrics = tfma.load_eval_result(evaluation.uri).get_metrics_for_slice()
    values = {key: value["doubleValue"] for key, value in metrics.items()
              if key in ("auc", "auc_diff")}
    return int(blessing.properties["blessed"]) == 1, values


def test_each_model_is_pushed_exactly_when_its_blessing_says_so(runs, store):
    pushers = [r for r in store.executions("Pusher") if r["state"] == "COMPLETE"]
    assert len(pushers) == 4  # spans 13, 14, 15 in the notebook; 16 in the export
    pushed_versions = []
    for row in pushers:
        [pushed] = store.outputs_of(row["id"])["pushed_model"]
        blessed, metrics = _blessing_checks(store, row)
        # the thresholds of the notebook's EvalConfig decide, recomputed from the metrics
        expected = metrics["auc"] >= MIN_AUC and metrics.get("auc_diff", 0.0) >= -MAX_AUC_DROP
        assert blessed == expected, metrics
        if blessed:
            assert int(pushed.properties["pushed"]) == 1
            assert row["outcome"] == f"pushed now as version {pushed.properties['pushed_version']}"
            pushed_versions.append(int(pushed.properties["pushed_version"]))
        else:
            assert int(pushed.properties["pushed"]) == 0
            assert "does not bless the model" in pushed.properties["reason"]
            assert re.search(r"auc(_diff)? on Overall = ", pushed.properties["reason"])
    # the first model has no baseline: nothing to fall short of, and its AUC is well above 0.7
    assert pushed_versions and pushed_versions[0] == runs.versions_after_notebook[0]
    assert all(os.path.isfile(os.path.join(runs.serving, str(v), "saved_model.pb"))
               for v in pushed_versions)
    # each version records the whole window its model was trained on, not only its last span
    import toolkit.models

    listed = {row.version: row for row in toolkit.models.list_versions(runs.serving,
                                                                       pipeline_root=runs.root)}
    for version in pushed_versions:
        spans = listed[version].spans
        assert spans == list(range(spans[-1] - WINDOW + 1, spans[-1] + 1)), spans


def test_the_rollback_republishes_the_version_before_the_newest(runs, store):
    import toolkit.models

    versions = toolkit.models.list_versions(runs.serving, pipeline_root=runs.root)
    by_version = {row.version: row for row in versions}
    rollbacks = [row for row in versions if row.reason == "rollback"]
    assert len(rollbacks) == 1
    [rollback] = rollbacks
    pushed = [v for v in runs.versions_after_notebook if by_version[v].reason == "push"]
    assert len(pushed) >= 2, "the notebook's three spans pushed fewer than two models"
    assert rollback.version == runs.versions_after_notebook[-1] > pushed[-1]
    assert rollback.rolled_back_from == pushed[-2]
    assert rollback.model_id == by_version[pushed[-2]].model_id
    source, copy = (os.path.join(runs.serving, str(v)) for v in (pushed[-2], rollback.version))
    assert filecmp.cmp(os.path.join(source, "saved_model.pb"),
                       os.path.join(copy, "saved_model.pb"), shallow=False)
    recorded = [r for r in store.executions("Rollback") if r["state"] == "COMPLETE"]
    assert len(recorded) == 1
    assert f"version {pushed[-2]} re-published as version {rollback.version}" in \
        _text(runs.executed, "versions = toolkit.models.list_versions(")


def test_the_export_processes_the_new_span_against_the_history(runs, store):
    summary = runs.export["summary"]
    assert summary["parameters"]["span"] == NEW_SPAN
    executions = summary["executions"]
    # everything of spans 1..15 comes from the notebook's run
    fresh = [e["component_id"] for e in executions if not e["cached"]]
    assert fresh == ["CsvExampleGen", "StatisticsGen", "previous_span_statistics",
                     "ExampleValidator", "training_window", "Transform", "Trainer",
                     "Evaluator", "Pusher"]
    assert sum(1 for e in executions if e["cached"]) == 4 + 2 * SPAN
    # evaluated against the newest model blessed before it
    [pusher] = [r for r in store.executions("Pusher") if r["state"] == "COMPLETE"][-1:]
    [blessing] = store.inputs_of(pusher["id"])["model_blessing"]
    evaluator = store.producer_of(blessing.id)
    [baseline] = store.inputs_of(evaluator)["baseline_model"]
    blessed_before = [b for b in store.artifacts("ModelBlessing")
                      if b.id < blessing.id and int(b.properties["blessed"]) == 1]
    newest = max(blessed_before, key=lambda b: b.id)
    assert baseline.id == store.inputs_of(store.producer_of(newest.id))["model"][0].id
    # pushed, or refused with the reason: the production gate stops the run then
    if summary["blessing"]:
        assert runs.export["returncode"] == 0 and summary["status"] == "succeeded"
        assert summary["push"]["pushed"] is True
        assert os.path.isfile(os.path.join(runs.serving, str(summary["pushed_version"]),
                                           "saved_model.pb"))
    else:
        assert runs.export["returncode"] == 1 and summary["status"] == "failed"
        assert summary["pushed_version"] is None and summary["push"]["pushed"] is False
        assert summary["reason"].startswith("Pusher: not pushed: ")
        assert "does not bless the model" in summary["reason"]
        assert sorted(int(v) for v in os.listdir(runs.serving) if v.isdigit()) == \
            runs.versions_after_notebook
