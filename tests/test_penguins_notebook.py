"""The penguins flagship notebook, written the TFX-tutorial way through ``toolkit.v1``,
executed headless; its export run by ``toolkit run``; and a notebook in the shape of
TFX's Keras taxi tutorial, with TFX's import lines changed, run end to end.

The evaluation's numbers are recomputed here from scratch: the pushed SavedModel answers
the raw eval TFRecords, and numpy counts what the metrics count.
"""
from __future__ import annotations

import glob
import json
import os
import re
import subprocess
import sys
import types

import numpy as np
import pytest

from datapaths import DATA, FIXTURES, REPO, TAXI_CSV, tfx_split_rows
from notebook_checks import assert_ran_clean, assert_views_have_html_and_text, outputs

#: class id -> species, as the notebook's Transform module file documents it
SPECIES = ["Adelie", "Chinstrap", "Gentoo"]
COMPONENTS = ["CsvExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator", "Transform",
              "Trainer", "latest_blessed_model_resolver", "Evaluator", "Pusher"]
EXPORT = os.path.join(REPO, "export", "penguins.ipynb")


def _cell(notebook, first_line: str):
    cells = [c for c in notebook.cells
             if c.cell_type == "code" and c.source.splitlines()[0].startswith(first_line)]
    assert len(cells) == 1, first_line
    return cells[0]


def _text(cell) -> str:
    parts = []
    for output in cell.outputs:
        if output.output_type == "stream":
            parts.append(output.text)
        elif "data" in output:
            parts.append(output.data.get("text/plain", ""))
    return "\n".join(parts)


def _executions(root: str, pipeline_name: str) -> list[dict]:
    from toolkit import InteractiveContext

    context = InteractiveContext(pipeline_name=pipeline_name, pipeline_root=root)
    return [e for e in context.executions() if e["state"] == "COMPLETE"]


def _only(pattern: str) -> str:
    found = glob.glob(pattern)
    assert len(found) == 1, (pattern, found)
    return found[0]


@pytest.fixture(scope="module")
def recomputed(executed_penguins):
    """The eval split's raw TFRecords, answered by the pushed SavedModel outside the toolkit."""
    import tensorflow as tf

    root = executed_penguins.root
    files = glob.glob(os.path.join(_only(os.path.join(root, "CsvExampleGen", "examples", "*")),
                                   "Split-eval", "*.gz"))
    records = [r.numpy() for r in tf.data.TFRecordDataset(files, compression_type="GZIP")]

    def feature(example, name):
        values = example.features.feature[name].bytes_list.value
        return values[0].decode() if values else None

    parsed = [tf.train.Example.FromString(r) for r in records]
    version_dir = os.path.dirname(_only(os.path.join(executed_penguins.serving, "*",
                                                     "saved_model.pb")))
    served = tf.saved_model.load(version_dir)
    scores = served.signatures["serving_default"](examples=tf.constant(records))["outputs"]
    return types.SimpleNamespace(
        scores=scores.numpy(),
        labels=np.array([SPECIES.index(feature(e, "species")) for e in parsed]),
        island=np.array([feature(e, "island") for e in parsed], dtype=object),
        sex=np.array([feature(e, "sex") for e in parsed], dtype=object),
        version_dir=version_dir)


@pytest.fixture(scope="module")
def eval_result(executed_penguins):
    import tensorflow_model_analysis as tfma

    uri = _only(os.path.join(executed_penguins.root, "Evaluator", "evaluation", "*"))
    return tfma.load_eval_result(uri)


def _accuracy(scores: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(scores.argmax(axis=1) == labels))


def test_runs_end_to_end_without_errors(executed_penguins):
    assert_ran_clean(executed_penguins.notebook)


def test_every_view_has_html_and_a_text_fallback(executed_penguins):
    assert_views_have_html_and_text(executed_penguins.notebook, at_least=10)
    shown = {c.source for c, o in outputs(executed_penguins.notebook)
             if "context.show(" in c.source and "text/html" in o.get("data", {})}
    for key in ('"statistics"', '"schema"', '"anomalies"', '"evaluation"'):
        assert any(f"outputs[{key}])" in source for source in shown), key


def test_no_output_loads_anything_from_the_network(executed_penguins):
    for cell, output in outputs(executed_penguins.notebook):
        for mime, payload in output.get("data", {}).items():
            text = payload if isinstance(payload, str) else json.dumps(payload)
            assert not re.search(r"https?://", text) or mime == "text/plain", (cell.source, mime)
        assert "application/javascript" not in output.get("data", {}), cell.source


def test_every_component_ran_once(executed_penguins):
    executions = _executions(executed_penguins.root, "penguins")
    assert [e["component_id"] for e in executions] == COMPONENTS
    assert not any(e["cached_from"] for e in executions)


def test_examples_are_tfx_tfrecord_payload(executed_penguins):
    import tensorflow as tf

    root = executed_penguins.root
    for folder, rows in ((os.path.join(root, "CsvExampleGen", "examples", "*"), 344),
                         (os.path.join(root, "Transform", "transformed_examples", "*"), 344)):
        uri = _only(folder)
        counted = 0
        for split in ("train", "eval"):
            [path] = glob.glob(os.path.join(uri, f"Split-{split}", "*-00000-of-00001.gz"))
            with open(path, "rb") as handle:
                assert handle.read(2) == b"\x1f\x8b"  # GZIP
            counted += sum(1 for _ in tf.data.TFRecordDataset(path, compression_type="GZIP"))
        assert counted == rows
    shown = _text(_cell(executed_penguins.notebook, "def first_value("))
    assert "'species': b'Adelie'" in shown and "'island': b'Torgersen'" in shown


def _eval_rows() -> int:
    """The eval split's size, from TFX's split rule computed in the test (tf.Example payload)."""
    return len(tfx_split_rows(os.path.join(DATA, "penguins", "penguins.csv"))["eval"])


def test_accuracy_equals_an_independent_computation(executed_penguins, recomputed, eval_result):
    expected = _accuracy(recomputed.scores, recomputed.labels)
    overall = eval_result.get_metrics_for_slice()
    assert overall["example_count"]["doubleValue"] == len(recomputed.labels) == _eval_rows()
    # TFMA computes the Keras accuracy in float32
    assert overall["sparse_categorical_accuracy"]["doubleValue"] == pytest.approx(expected,
                                                                                  rel=1e-6)
    printed = re.search(r"sparse_categorical_accuracy: (\d\.\d{6})",
                        _text(_cell(executed_penguins.notebook, "eval_result = ")))
    assert printed and float(printed.group(1)) == pytest.approx(expected, abs=5.1e-7)
    for column, values in (("island", recomputed.island), ("sex", recomputed.sex)):
        for value in sorted(set(values) - {None}):
            rows = values == value
            metrics = eval_result.get_metrics_for_slice(slice_name=((column, value),))
            assert metrics["example_count"]["doubleValue"] == rows.sum()
            assert metrics["sparse_categorical_accuracy"]["doubleValue"] == pytest.approx(
                _accuracy(recomputed.scores[rows], recomputed.labels[rows]), rel=1e-6)


def test_per_class_precision_and_recall_equal_an_independent_computation(recomputed,
                                                                         eval_result):
    """binarize class_ids: each class against the rest, its score above 0.5 as positive."""
    for class_id in range(len(SPECIES)):
        predicted = recomputed.scores[:, class_id] > 0.5
        actual = recomputed.labels == class_id
        metrics = eval_result.get_metrics_for_slice(class_id=class_id)
        assert metrics["precision"]["doubleValue"] == pytest.approx(
            (predicted & actual).sum() / predicted.sum(), abs=1e-9)
        assert metrics["recall"]["doubleValue"] == pytest.approx(
            (predicted & actual).sum() / actual.sum(), abs=1e-9)


def test_the_model_is_blessed_and_the_pushed_version_is_a_saved_model(executed_penguins,
                                                                      recomputed):
    import tensorflow_model_analysis as tfma

    root = executed_penguins.root
    assert os.path.isfile(os.path.join(_only(os.path.join(root, "Evaluator", "blessing", "*")),
                                       "BLESSED"))
    validation = tfma.load_validation_result(
        _only(os.path.join(root, "Evaluator", "evaluation", "*")))
    assert validation.validation_ok
    assert os.path.basename(recomputed.version_dir).isdigit()
    assert os.path.isfile(os.path.join(recomputed.version_dir, "saved_model.pb"))
    assert os.path.isdir(os.path.join(recomputed.version_dir, "variables"))
    assert recomputed.scores.shape == (_eval_rows(), 3)
    assert np.allclose(recomputed.scores.sum(axis=1), 1.0, atol=1e-5)
    pushed = _text(_cell(executed_penguins.notebook, "pusher = tfx.components.Pusher("))
    assert f"pushed now as version {os.path.basename(recomputed.version_dir)}" in pushed
    answers = _text(_cell(executed_penguins.notebook, "pushed = pusher.outputs"))
    assert len(re.findall(r"Adelie \d\.\d{3}, Chinstrap \d\.\d{3}, Gentoo \d\.\d{3}",
                          answers)) == 3


def test_the_export_runs_with_toolkit_run_and_other_parameters(tmp_path):
    run_dir = tmp_path / "run"
    parameters = {"pipeline_name": "penguins_prod", "pipeline_root": str(tmp_path / "root"),
                  "serving_dir": str(tmp_path / "serving"), "train_steps": "120",
                  "min_accuracy": "0.8"}
    args = [os.path.join(os.path.dirname(sys.executable), "toolkit"), "run", EXPORT,
            "-o", str(run_dir)]
    for name, value in parameters.items():
        args += ["-p", name, value]
    result = subprocess.run(args, capture_output=True, text=True, cwd=REPO,
                            env={**os.environ, "TOOLKIT_PUSH_ROOT": str(tmp_path)})
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "succeeded"
    assert summary["parameters"]["pipeline_name"] == "penguins_prod"
    assert summary["parameters"]["train_steps"] == 120
    assert summary["parameters"]["min_accuracy"] == 0.8
    assert [e["component_id"] for e in summary["executions"]] == COMPONENTS
    assert not any(e["cached"] for e in summary["executions"])
    assert summary["blessing"] is True
    assert summary["push"]["pushed"] is True and summary["push"]["cached"] is False
    version_dir = os.path.join(str(tmp_path / "serving"), str(summary["pushed_version"]))
    assert os.path.isfile(os.path.join(version_dir, "saved_model.pb"))
    trained = [e for e in _executions(parameters["pipeline_root"], "penguins_prod")
               if e["component_id"] == "Trainer"]
    assert len(trained) == 1 and "120" in json.dumps(trained[0]["parameters"])


#: TFX's own pipeline arguments in its tutorials: the multi-processing DirectRunner, a worker per core
TFX_BEAM_ARGS = ["--direct_running_mode=multi_processing", "--direct_num_workers=0"]


def test_a_tfx_keras_taxi_tutorial_runs_with_its_imports_changed(tmp_path, monkeypatch):
    """The tutorial's cells: TFRecord read directly, the tutorial's EvalConfig (label
    ``tips_xf`` from ``transform_features``, no transform_graph), ``tfma.load_eval_result``
    and ``tfma.load_validation_result`` on the evaluation, the pushed model loaded from
    the PushedModel's uri. ``InteractiveContext()`` and ``tempfile.mkdtemp()`` land in
    this test's TMPDIR."""
    notebook = _run_tfx_tutorial(tmp_path, monkeypatch, [])
    assert "multi_processing" not in _text(_cell(notebook, "# Use TFMA to compute"))


@pytest.mark.slow
def test_the_tfx_tutorial_runs_on_tfx_beam_arguments(tmp_path, monkeypatch):
    """The same tutorial with TFX's ``beam_pipeline_args``: ExampleGen, StatisticsGen,
    Transform (its module file shipped to the workers) and the Evaluator run on the
    multi-processing DirectRunner, the Trainer after them, with the same outcome."""
    notebook = _run_tfx_tutorial(tmp_path, monkeypatch, TFX_BEAM_ARGS)
    flags = " ".join(TFX_BEAM_ARGS)
    for cell in ("example_gen = tfx.components.CsvExampleGen(",
                 "statistics_gen = tfx.components.StatisticsGen(",
                 "transform = tfx.components.Transform(", "# Use TFMA to compute"):
        assert flags in _text(_cell(notebook, cell)), cell
    evaluated = _text(_cell(notebook, "# Use TFMA to compute"))
    assert evaluated.count("look like logits") == 1  # noted once, as the artifact's warning


def _run_tfx_tutorial(tmp_path, monkeypatch, beam_pipeline_args: list[str]):
    """The tutorial run headless on 1,000 taxi rows, checked cell by cell; the notebook."""
    import nbformat
    import papermill

    data = tmp_path / "data"
    data.mkdir()
    with open(TAXI_CSV) as source, open(data / "data.csv", "w") as target:
        for number, line in enumerate(source):
            if number > 1000:
                break
            target.write(line)
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setenv("TMPDIR", str(temp))
    monkeypatch.setenv("TOOLKIT_PUSH_ROOT", str(temp))
    executed = tmp_path / "tutorial.ipynb"
    papermill.execute_notebook(
        str(FIXTURES / "tfx_taxi_tutorial.ipynb"), str(executed),
        cwd=os.path.join(REPO, "tests", "fixtures", "tfx_taxi"), kernel_name="python3",
        progress_bar=False,
        parameters={"_data_root": str(data), "train_steps": 10, "eval_steps": 2,
                    "beam_pipeline_args": beam_pipeline_args})
    notebook = nbformat.read(str(executed), as_version=4)
    assert_ran_clean(notebook)

    raw = _text(_cell(notebook, "# Get the URI of the output artifact representing the training"))
    assert raw.count("features {") == 3 and 'key: "trip_start_hour"' in raw
    transformed = _text(_cell(notebook, "def get_records("))
    assert transformed.count("features {") == 3 and 'key: "tips_xf"' in transformed
    trained = _text(_cell(notebook, "trainer = tfx.components.Trainer("))
    assert "(tf_keras)" in trained
    evaluated = _text(_cell(notebook, "# Use TFMA to compute"))
    assert "features from transform_features" in evaluated and "blessed" in evaluated
    loaded = _text(_cell(notebook, "# Get the TFMA output result path"))
    count = re.search(r"^\(\) .*'example_count': \{'doubleValue': (\d+)\.0\}", loaded, re.M)
    assert count and 250 <= int(count.group(1)) <= 400  # the eval third of 1,000 rows
    assert "'binary_accuracy'" in loaded and "('trip_start_hour'," in loaded
    assert "validation_ok: true" in _text(_cell(notebook, "print(tfma.load_validation_result"))
    assert "'BLESSED'" in _text(_cell(notebook, "blessing_uri = "))
    signatures = _text(_cell(notebook, "push_uri = "))
    assert "'serving_default'" in signatures and "'transform_features'" in signatures
    pushed = glob.glob(str(temp / "*" / "serving_model" / "taxi_simple" / "*" / "saved_model.pb"))
    assert len(pushed) == 1
    return notebook
