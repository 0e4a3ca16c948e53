"""Live progress of running components: the line's rules (with a fake clock), plain text
lines from a real Trainer run, a real kernel's display updated in place, and the stage
lines ``toolkit run`` prints while its kernel works."""
from __future__ import annotations

import os
import re
import textwrap
import time

import nbformat
import pytest

from datapaths import DATA
from toolkit import _env, progress
from toolkit.progress import DELAY_SECONDS, TEXT_INTERVAL_SECONDS, TEXT_REPEAT_SECONDS, Reporter

PENGUINS = os.path.join(DATA, "penguins")
ELAPSED = re.compile(r"\((\d+):(\d\d) elapsed\)$")


class Lines:
    """A text sink's writes, kept (the sink's own formatting, nothing else replaced)."""

    def __init__(self):
        self.lines: list[str] = []

    def __call__(self, text: str) -> None:
        assert text.endswith("\n") and text.count("\n") == 1  # one whole line per write
        self.lines.append(text[:-1])


def _text_reporter(clock):
    written = Lines()
    return Reporter("Trainer", progress.TextSink(written), clock=clock, started=0.0), written


# -- the rules, with a fake clock -------------------------------------------------------------
def test_nothing_is_shown_before_the_delay_and_the_first_line_comes_after_it():
    reporter, written = _text_reporter(lambda: 0.0)
    reporter.report("epoch", 1, 5, {"loss": 0.8123})
    reporter.tick(DELAY_SECONDS - 0.1)
    assert written.lines == []
    reporter.tick(DELAY_SECONDS + 0.1)
    assert written.lines == ["Trainer: epoch 1/5, loss 0.812 (0:01 elapsed)"]


def test_text_lines_are_throttled_and_repeat_only_when_nothing_changes():
    reporter, written = _text_reporter(lambda: 0.0)
    reporter.tick(1.0)  # no stage reported yet: the line still says it runs
    assert written.lines == ["Trainer: running (0:01 elapsed)"]
    for second in range(2, 6):  # a new epoch every second: at most one line per interval
        reporter.report("epoch", second, 9, {})
        reporter.tick(float(second))
    assert len(written.lines) == 1
    reporter.tick(1.0 + TEXT_INTERVAL_SECONDS)
    assert written.lines[-1] == "Trainer: epoch 5/9 (0:06 elapsed)"
    reporter.tick(2.0 + TEXT_INTERVAL_SECONDS)  # nothing new: no line
    reporter.note("a log line")  # a log line changes the display's stage, starts no text line
    reporter.tick(1.0 + 2 * TEXT_INTERVAL_SECONDS)
    assert len(written.lines) == 2
    reporter.tick(1.0 + TEXT_INTERVAL_SECONDS + TEXT_REPEAT_SECONDS)  # a long step still shows life
    assert written.lines[-1] == "Trainer: a log line (1:06 elapsed)"


def test_display_updates_follow_the_stage_and_the_second_at_most_every_tick():
    shown = []

    class Sink(progress.DisplaySink):  # the display's decisions, without IPython
        def show(self, component_id, stage, seconds):
            shown.append((stage, int(seconds)))

    reporter = Reporter("Evaluator", Sink(), clock=lambda: 0.0, started=0.0)
    for tick in range(4, 13):  # ticks every 0.25 s from 1 s to 3 s
        reporter.report("evaluated rows", tick * 10_000, 405_000, {})
        reporter.tick(tick / 4)
    assert shown[0] == ("evaluated rows 40,000/405,000 (9%)", 1)
    assert len(shown) == 9  # a changed stage is redrawn at the next tick, never more often
    reporter.tick(3.1)  # neither the stage nor the second changed
    assert len(shown) == 9


def test_a_broken_sink_stops_updating_and_never_raises():
    calls = []

    def broken(text):
        calls.append(text)
        raise OSError("display gone")

    reporter = Reporter("Transform", progress.TextSink(broken), clock=lambda: 0.0, started=0.0)
    reporter.tick(1.5)
    reporter.report("analyzing train on Beam")
    reporter.tick(10.0)
    reporter.finish(ok=True)
    assert len(calls) == 1 and reporter.broken


def test_values_are_printable_and_escaped_in_html():
    stage = progress.describe("reading <b>x</b>\nnext\u202e", 1200, 4800, {"best": 0.93456})
    assert stage == "reading <b>x</b> next\\u202e 1,200/4,800 (25%), best 0.935"
    bundle = progress.DisplaySink()._bundle("Tuner<script>", stage, 75)
    assert "<script>" not in bundle["text/html"] and "&lt;b&gt;x" in bundle["text/html"]
    assert bundle["text/plain"] == f"Tuner<script>: {stage} (1:15 elapsed)"
    assert progress.is_text_line(bundle["text/plain"])
    assert not progress.is_text_line("WARNING: something (elapsed)")


def test_report_without_a_listener_is_a_no_op():
    assert progress._active == []
    progress.report("epoch", 1, 2, loss=0.3)  # nothing raised, nothing kept
    assert progress._reporter() is None


# -- real components in process -------------------------------------------------------------------
def test_a_real_component_run_writes_a_stage_line_with_elapsed_time(tmp_path, capsys, monkeypatch):
    """A component that reports its steps for about 2.5 s, run through the launcher: its
    first line comes after about a second, every line names it and the time elapsed."""
    from toolkit import InteractiveContext
    from toolkit.artifacts import Examples
    from toolkit.custom import OutputArtifact, component

    @component
    def Stepper(out: OutputArtifact[Examples], steps: int = 5):
        for step in range(steps):
            progress.report("step", step + 1, steps)
            time.sleep(0.5)

    monkeypatch.delenv(_env.PROGRESS, raising=False)
    context = InteractiveContext(pipeline_root=str(tmp_path))
    started = time.monotonic()
    context.run(Stepper())
    took = time.monotonic() - started
    lines = [line for line in capsys.readouterr().err.splitlines()
             if line.startswith("Stepper: ")]
    assert took >= 2.5
    assert lines, "no progress line"
    assert all(ELAPSED.search(line) and "step" in line for line in lines)
    first = ELAPSED.search(lines[0])
    assert 1 <= int(first.group(1)) * 60 + int(first.group(2)) <= 3
    assert len(lines) <= 1 + took // TEXT_INTERVAL_SECONDS
    assert progress._active == []  # stopped with the run


def test_the_evaluation_on_beam_counts_rows_from_its_worker_threads(monkeypatch):
    """The statistics DoFn reports each batch's rows; Beam's in-process runner calls it in
    threads of its own, which find the one running reporter."""
    import pandas as pd

    from datapaths import GERMAN_CSV
    from toolkit.evaluation import beam_engine

    frame = pd.read_csv(GERMAN_CSV)
    frame["label"] = frame["risk"].astype(float)
    frame["prediction"] = (frame["duration"] / frame["duration"].max()).clip(0, 1)
    monkeypatch.setattr(beam_engine, "FRAME_BATCH_ROWS", 300)
    seen = []

    class Recording(Reporter):
        def report(self, stage, done=None, total=None, figures=None):
            seen.append((stage, done, total))
            super().report(stage, done, total, figures)

    reporter = Recording("Evaluator", progress.TextSink(Lines())).start()
    try:
        beam_engine.evaluate_on_beam(frame, {
            "model_specs": [{"label_key": "label", "prediction_key": "prediction"}],
            "metrics_specs": [{"metrics": [{"class_name": "ExampleCount"}]}]}, [])
    finally:
        reporter.stop()
    rows = [(done, total) for stage, done, total in seen if stage == "evaluated rows"]
    batches = -(-len(frame) // 300)
    assert len(rows) == batches
    assert sorted(done for done, _ in rows)[-1] == len(frame)
    assert {total for _, total in rows} == {len(frame)}
    assert reporter.stage == f"evaluated rows {len(frame):,}/{len(frame):,} (100%)"


def _tiny_run_fn(fn_args):
    """Three epochs of a one-layer model on the penguins' measurements, with no progress
    callback of its own (the Trainer counts the epochs), then a pause long enough for the
    next text line to show the last epoch."""
    import json
    import time

    import numpy as np
    import pandas as pd
    import tensorflow as tf

    from toolkit.progress import TEXT_INTERVAL_SECONDS

    frame = pd.read_csv(fn_args.custom_config["csv"]).dropna()
    x = frame[["bill_length_mm", "bill_depth_mm"]].to_numpy(np.float32) / 50.0
    y = (frame["species"] == "Adelie").to_numpy(np.float32)
    model = tf.keras.Sequential([tf.keras.Input(shape=(2,)), tf.keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    history = model.fit(x, y, epochs=3, verbose=0, callbacks=[
        tf.keras.callbacks.TensorBoard(fn_args.model_run_dir)])
    with open(fn_args.custom_config["history"], "w") as handle:
        json.dump(history.history["loss"], handle)
    time.sleep(TEXT_INTERVAL_SECONDS + 1.5)
    model.save(fn_args.serving_model_dir, save_format="tf")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A CsvExampleGen and a Trainer run, with what they printed (stdout: the log; stderr:
    the progress lines, which the reporter's thread writes to ``sys.stderr``)."""
    import contextlib
    import io

    from toolkit import InteractiveContext
    from toolkit.components import CsvExampleGen, Trainer

    root = tmp_path_factory.mktemp("progress-trainer")
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        context = InteractiveContext(pipeline_root=str(root))
        example_gen = CsvExampleGen(input_base=PENGUINS)
        context.run(example_gen)
        trainer = Trainer(run_fn=_tiny_run_fn, examples=example_gen.outputs["examples"],
                          custom_config={"csv": os.path.join(PENGUINS, "penguins.csv"),
                                         "history": str(root / "history.json")})
        result = context.run(trainer)
    return result, trainer, (out.getvalue(), err.getvalue()), root / "history.json"


@pytest.mark.slow  # the Trainer's TensorFlow makes it long
def test_a_real_trainer_run_writes_stage_lines_with_elapsed_time(trained):
    result, trainer, (stdout, stderr), _ = trained
    lines = [line for line in stderr.splitlines() if line.startswith(f"{trainer.id}: ")]
    assert lines, stderr[-2000:]
    assert all(ELAPSED.search(line) for line in lines)
    first = ELAPSED.search(lines[0])
    assert 1 <= int(first.group(1)) * 60 + int(first.group(2)) <= 3  # after about a second
    seconds = [int(m.group(1)) * 60 + int(m.group(2)) for m in map(ELAPSED.search, lines)]
    assert seconds == sorted(seconds)
    # no two lines closer than the interval, except a repeat's
    assert all(b - a >= TEXT_INTERVAL_SECONDS - 1 for a, b in zip(seconds, seconds[1:]))
    assert progress._active == []  # stopped with the run


@pytest.mark.slow  # the Trainer's TensorFlow makes it long
def test_the_trainer_names_the_published_tensorboard_folder(trained):
    result, trainer, (stdout, stderr), _ = trained
    said = re.search(r"TensorBoard logs in (\S+)", stdout)
    assert said, stdout[-2000:]
    model_run = result.outputs["model_run"][0].uri
    assert said.group(1) == model_run
    assert ".staging-" not in said.group(1)
    assert any(name.startswith("events.out.tfevents")
               for _, _, names in os.walk(model_run) for name in names)


@pytest.mark.slow  # the Trainer's TensorFlow makes it long
def test_the_trainer_counts_the_epochs_of_the_run_fns_own_fit(trained):
    import json

    result, trainer, (stdout, stderr), history = trained
    losses = json.loads(history.read_text())
    last = progress.describe("epoch", 3, 3, {"loss": losses[-1]})
    assert any(line.startswith(f"{trainer.id}: {last} (") for line in stderr.splitlines()), \
        stderr[-2000:]


@pytest.mark.slow  # the Trainer's TensorFlow makes it long
def test_the_keras_callback_reports_each_epoch(trained):
    import numpy as np
    import tensorflow as tf

    written = Lines()
    reporter = Reporter("Trainer", progress.TextSink(written)).start()
    try:
        model = tf.keras.Sequential([tf.keras.Input(shape=(1,)), tf.keras.layers.Dense(1)])
        model.compile(optimizer="sgd", loss="mse")
        x = np.arange(8, dtype=np.float32).reshape(-1, 1)
        history = model.fit(x, 2 * x, epochs=4, verbose=0, callbacks=[progress.keras_callback()])
        stage = reporter.stage
    finally:
        reporter.stop()
    loss = progress.describe("x", figures={"loss": history.history["loss"][-1]}).split(", ")[1]
    assert stage == f"epoch 4/4, {loss}"


# -- a notebook kernel ----------------------------------------------------------------------------
SLOW_COMPONENT = textwrap.dedent('''\
    import time
    from toolkit import InteractiveContext, progress
    from toolkit.artifacts import Examples
    from toolkit.custom import OutputArtifact, component

    @component
    def Slow(out: OutputArtifact[Examples], steps: int = 3, pause: float = 0.8,
             fail: bool = False):
        for step in range(steps):
            progress.report("step", step + 1, steps)
            time.sleep(pause)
        if fail:
            raise ValueError("failed on purpose")

    context = InteractiveContext(pipeline_root=ROOT)
    ''')


def _notebook(root: str, *cells: str) -> nbformat.NotebookNode:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(f"ROOT = {root!r}", metadata={"tags": ["parameters"]}),
                      nbformat.v4.new_code_cell(SLOW_COMPONENT),
                      *map(nbformat.v4.new_code_cell, cells)]
    return notebook


def test_a_kernel_shows_one_display_updated_in_place_then_the_result_view(tmp_path, monkeypatch):
    from nbclient import NotebookClient

    monkeypatch.delenv(_env.PROGRESS, raising=False)
    messages = []

    class Recording(NotebookClient):
        def process_message(self, msg, cell, cell_index):
            if msg["msg_type"] in ("display_data", "update_display_data"):
                (messages if cell_index == 2 else failed).append(msg)
            return super().process_message(msg, cell, cell_index)

    failed = []
    notebook = _notebook(str(tmp_path / "root"), "context.run(Slow(steps=4, pause=0.7))",
                         "try:\n    context.run(Slow(steps=2, pause=0.7, fail=True))\n"
                         "except Exception as error:\n    print(type(error).__name__)")
    Recording(notebook, timeout=120, kernel_name="python3",
              resources={"metadata": {"path": str(tmp_path)}}).execute()

    first = [m for m in messages if m["msg_type"] == "display_data"]
    assert len(first) == 1, messages
    display_id = first[0]["content"]["transient"]["display_id"]
    updates = [m["content"] for m in messages if m["msg_type"] == "update_display_data"]
    assert updates and all(u["transient"]["display_id"] == display_id for u in updates)
    texts = [first[0]["content"]["data"]["text/plain"]] + [u["data"]["text/plain"] for u in updates]
    assert texts[0].startswith("Slow: ") and ELAPSED.search(texts[0])
    assert any(t.startswith("Slow: step 4/4 ") for t in texts[:-1]), texts
    finished = re.fullmatch(r"Slow: finished after 0:0(\d)", texts[-1])
    assert finished and int(finished.group(1)) >= 2  # 4 steps of 0.7 s
    outputs = notebook.cells[2].outputs
    progress_outputs = [o for o in outputs if o.output_type == "display_data"]
    assert [o.data["text/plain"] for o in progress_outputs] == [texts[-1]]
    assert "finished" in progress_outputs[0].data["text/html"]
    result = [o for o in outputs if o.output_type == "execute_result"]
    assert len(result) == 1 and "Slow" in result[0].data["text/html"]
    assert outputs.index(result[0]) > outputs.index(progress_outputs[0])  # the view follows
    # a failed run keeps where it stopped
    assert failed[-1]["msg_type"] == "update_display_data"
    assert failed[-1]["content"]["data"]["text/plain"].startswith("Slow: stopped at: step 2/2 ")
    assert "ComponentError" in notebook.cells[3].outputs[-1].text


def test_toolkit_run_prints_the_stage_lines_of_its_kernel(tmp_path, monkeypatch):
    from toolkit.runner import run_notebook

    monkeypatch.delenv(_env.PROGRESS, raising=False)
    path = tmp_path / "slow.ipynb"
    nbformat.write(_notebook(str(tmp_path / "root"), "context.run(Slow(steps=3, pause=0.8))"), path)
    lines: list[str] = []
    result = run_notebook(path, run_dir=tmp_path / "run", cwd=tmp_path, progress=lines.append)
    assert result.ok, result.reason
    stages = [line for line in lines if line.startswith("  Slow: ")]
    assert stages and all(ELAPSED.search(line) for line in stages), lines
    last_cell = max(i for i, line in enumerate(lines) if line.startswith("cell "))
    assert lines.index(stages[0]) < last_cell  # printed while the cell ran, before its line
    # quiet: no relay, and the kernel writes no progress lines into the executed notebook
    quiet = run_notebook(path, run_dir=tmp_path / "quiet", cwd=tmp_path)
    executed = nbformat.read(quiet.notebook, as_version=4)
    streams = "".join(o.get("text", "") for cell in executed.cells for o in cell.outputs)
    assert "elapsed)" not in streams


# -- epochs of a run_fn's own fit -------------------------------------------------------------
class _Stages:
    """Every stage reported while it is installed (the reporter's own, unthrottled)."""

    def __init__(self):
        self.seen: list[str] = []
        self.reporter = Reporter("Trainer", progress.TextSink(Lines()))
        original = self.reporter.report

        def report(stage, done=None, total=None, figures=None):
            self.seen.append(progress.describe(stage, done, total, figures or {}))
            return original(stage, done, total, figures)
        self.reporter.report = report

    def __enter__(self):
        self.reporter.start()
        return self

    def __exit__(self, *exc):
        self.reporter.stop()


def _fit(keras_module, epochs: int, **kwargs):
    import numpy as np

    model = keras_module.Sequential([keras_module.Input(shape=(1,)), keras_module.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x = np.arange(8, dtype=np.float32).reshape(-1, 1)
    return model.fit(x, 2 * x, epochs=epochs, verbose=0, **kwargs).history["loss"]


@pytest.mark.parametrize("name", ["tf_keras", "keras"])
def test_a_run_fns_own_fit_reports_each_epoch_and_fit_is_put_back(name):
    import importlib

    keras_module = importlib.import_module(name)
    original = keras_module.Model.__dict__.get("fit")
    with _Stages() as stages, progress.counting_epochs():
        losses = _fit(keras_module, 3)
        # a fit that has the callback already gets no second one
        again = _fit(keras_module, 2, callbacks=[progress.keras_callback()]
                     if name == "tf_keras" else [])
    expected = [progress.describe("epoch", k + 1, 3, {"loss": loss}) for k, loss in enumerate(losses)]
    expected += [progress.describe("epoch", k + 1, 2, {"loss": loss}) for k, loss in enumerate(again)]
    assert [s for s in stages.seen if s.startswith("epoch")] == expected
    assert keras_module.Model.__dict__.get("fit") is original  # put back as it was
    with _Stages() as stages:  # outside a run_fn: fit is Keras's own
        _fit(keras_module, 2)
    assert stages.seen == []


def test_an_untested_keras_release_is_left_alone(monkeypatch):
    import tf_keras

    original = tf_keras.Model.fit
    monkeypatch.setattr(progress, "FIT_TESTED", {"tf_keras": ("9.",), "keras": ("9.",)})
    with _Stages() as stages, progress.counting_epochs():
        assert tf_keras.Model.fit is original
        _fit(tf_keras, 2)
    assert stages.seen == []
    monkeypatch.undo()
    with _Stages() as stages, progress.counting_epochs():  # the tested path, for contrast
        assert tf_keras.Model.fit is not original
        _fit(tf_keras, 1)
    assert [s.split(",")[0] for s in stages.seen] == ["epoch 1/1"]
