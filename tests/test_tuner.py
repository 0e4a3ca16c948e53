"""The Tuner on TFX's own penguin module file (``tests/fixtures/tfx_penguin``, as TFX 1.16
publishes it): CsvExampleGen → StatisticsGen → SchemaGen → Transform → Tuner →
``Trainer(hyperparameters=tuner.outputs["best_hyperparameters"])``, built with TFX's names
(``from toolkit import v1 as tfx``) and TFX's penguin pipeline's arguments.

What the Tuner writes is read back with KerasTuner's own classes, and the trained model's
layers and learning rate are read from its SavedModel's checkpoint, independently of the
toolkit. Parallel trials in worker processes (completing, a worker killed mid-trial,
workers failing) are slow cases; an interrupted parallel search is not.
"""
from __future__ import annotations

import json
import os
import signal
import shutil
import textwrap
import threading
import time
import types

import pytest

from datapaths import REPO

PENGUIN = os.path.join(REPO, "tests", "fixtures", "tfx_penguin")
#: the search space of TFX's penguin module (``_get_hyperparameters``)
SPACE = {"learning_rate": {0.01, 0.001}, "num_layers": {1, 2, 3}}
OBJECTIVE = "val_sparse_categorical_accuracy"


@pytest.fixture(scope="module")
def penguin(tmp_path_factory):
    """TFX's penguin pipeline with its Tuner, run once (TFX's train/eval steps)."""
    from toolkit import InteractiveContext
    from toolkit import v1 as tfx

    folder = tmp_path_factory.mktemp("penguin_tuner")
    modules = folder / "modules"
    modules.mkdir()
    for name in ("penguin_utils_keras.py", "penguin_utils_base.py"):
        shutil.copy(os.path.join(PENGUIN, name), modules / name)
    module_file = str(modules / "penguin_utils_keras.py")
    context = InteractiveContext(pipeline_name="penguin_tuner", pipeline_root=str(folder / "root"))
    example_gen = tfx.components.CsvExampleGen(input_base=os.path.join(PENGUIN, "data"))
    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
    schema_gen = tfx.components.SchemaGen(statistics=statistics_gen.outputs["statistics"])
    transform = tfx.components.Transform(examples=example_gen.outputs["examples"],
                                         schema=schema_gen.outputs["schema"],
                                         module_file=module_file)
    tuner = tfx.components.Tuner(module_file=module_file,
                                 examples=transform.outputs["transformed_examples"],
                                 transform_graph=transform.outputs["transform_graph"],
                                 train_args=tfx.proto.TrainArgs(num_steps=20),
                                 eval_args=tfx.proto.EvalArgs(num_steps=5))
    trainer = tfx.components.Trainer(module_file=module_file,
                                     examples=transform.outputs["transformed_examples"],
                                     transform_graph=transform.outputs["transform_graph"],
                                     hyperparameters=tuner.outputs["best_hyperparameters"],
                                     train_args=tfx.proto.TrainArgs(num_steps=100),
                                     eval_args=tfx.proto.EvalArgs(num_steps=5))
    results = {}
    for component in (example_gen, statistics_gen, schema_gen, transform, tuner, trainer):
        results[component.id] = context.run(component)
    return types.SimpleNamespace(context=context, folder=folder, modules=modules,
                                 module_file=module_file, transform=transform, tuner=tuner,
                                 trainer=trainer, results=results, tfx=tfx)


def _files(uri: str) -> list[str]:
    return sorted(f for f in os.listdir(uri) if not f.startswith("."))


def _load(path: str):
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def _outputs(tuner):
    hyperparameters = tuner.outputs["best_hyperparameters"].get()[0]
    results = tuner.outputs["tuner_results"].get()[0]
    return hyperparameters, results


def _check_search(tuner, parallel: int = 1) -> dict:
    """TFX's two files, read with KerasTuner's classes, agree with each other and with the
    toolkit's trials.json; returns trials.json."""
    import keras_tuner

    hyperparameters, results = _outputs(tuner)
    assert hyperparameters.type_name == "HyperParameters" and results.type_name == "TunerResults"
    assert _files(hyperparameters.uri) == ["best_hyperparameters.txt"]
    assert _files(results.uri) == ["trials.json", "tuner_results.json"]
    config = _load(os.path.join(hyperparameters.uri, "best_hyperparameters.txt"))
    best = keras_tuner.HyperParameters.from_config(config)
    assert best.get_config() == config
    assert {hp.name for hp in best.space} == set(SPACE)
    assert set(best.values) == set(SPACE)
    assert all(best.values[name] in allowed for name, allowed in SPACE.items())
    # TFX's records: completed trials, best first, trial_id + score + the values
    records = _load(os.path.join(results.uri, "tuner_results.json"))
    assert isinstance(records, list) and records
    for record in records:
        assert set(record) == {"trial_id", "score", *SPACE}
        assert all(record[name] in allowed for name, allowed in SPACE.items())
    scores = [r["score"] for r in records]
    assert scores == sorted(scores, reverse=True)  # the objective is maximised
    assert {k: records[0][k] for k in SPACE} == best.values
    assert len({r["trial_id"] for r in records}) == len(records)
    # the toolkit's record of every trial agrees
    detail = _load(os.path.join(results.uri, "trials.json"))
    assert detail["objective"] == {"name": OBJECTIVE, "direction": "max"}
    assert detail["num_parallel_trials"] == parallel
    assert detail["best_trial_id"] == records[0]["trial_id"]
    completed = {t["trial_id"]: t for t in detail["trials"] if t["status"] == "COMPLETED"}
    assert set(completed) == {r["trial_id"] for r in records}
    for record in records:
        trial = completed[record["trial_id"]]
        assert trial["score"] == record["score"]
        assert trial["values"] == {k: record[k] for k in SPACE}
        assert trial["duration_s"] > 0
    assert results.load() == records and hyperparameters.load() == config
    return detail


def _model_checkpoint(trainer):
    import tensorflow as tf

    model = trainer.outputs["model"].get()[0]
    return tf.train.load_checkpoint(os.path.join(model.uri, "Format-Serving", "variables",
                                                 "variables"))


# -- the search and its files -------------------------------------------------------------------
def test_tuner_writes_tfx_files_that_keras_tuner_reads(penguin):
    detail = _check_search(penguin.tuner)
    # TFX's module allows 6 trials over a space of 6 combinations; RandomSearch may stop
    # early once it keeps drawing combinations it tried, so 5 or 6 ran, all completed
    assert 5 <= len(detail["trials"]) <= 6
    assert all(t["status"] == "COMPLETED" and t["error"] is None for t in detail["trials"])
    assert detail["workers"] == [] and {t["worker"] for t in detail["trials"]} == {"tuner0"}
    combos = {(t["values"]["learning_rate"], t["values"]["num_layers"]) for t in detail["trials"]}
    assert len(combos) == len(detail["trials"])  # RandomSearch never repeats a combination
    results = penguin.tuner.outputs["tuner_results"].get()[0]
    assert results.properties["num_trials"] == len(detail["trials"])
    assert results.properties["best_trial_id"] == detail["best_trial_id"]


def test_trainer_builds_the_model_with_the_best_values(penguin):
    """The SavedModel's checkpoint, read with TensorFlow alone: one [.., 8] kernel per
    hidden layer (TFX's module builds ``num_layers`` Dense(8) layers, then Dense(3)), and
    the optimizer's learning rate."""
    hyperparameters, _ = _outputs(penguin.tuner)
    best = _load(os.path.join(hyperparameters.uri, "best_hyperparameters.txt"))["values"]
    checkpoint = _model_checkpoint(penguin.trainer)
    shapes = checkpoint.get_variable_to_shape_map()
    kernels = sorted((k, s) for k, s in shapes.items()
                     if k.endswith("/kernel/.ATTRIBUTES/VARIABLE_VALUE") and "optimizer" not in k)
    hidden = [s for _, s in kernels if s[-1] == 8]
    assert len(hidden) == best["num_layers"]
    assert [s for _, s in kernels if s[-1] == 3] == [[8, 3]]
    rate = next(k for k in shapes if k.startswith("optimizer/") and "learning_rate" in k)
    assert checkpoint.get_tensor(rate) == pytest.approx(best["learning_rate"])
    signatures = json.loads(penguin.trainer.outputs["model"].get()[0].properties["signatures"])
    assert signatures == ["serving_default", "transform_features"]


def test_fn_args_hyperparameters_is_the_keras_tuner_config(penguin, tmp_path):
    """``Trainer(hyperparameters=<channel>)`` hands run_fn the artifact's config (TFX's
    contract); a dict is still handed over as it is."""
    from toolkit.components import Trainer

    hyperparameters, _ = _outputs(penguin.tuner)
    seen = tmp_path / "seen.json"
    module = tmp_path / "record_fn_args.py"
    module.write_text(textwrap.dedent(f"""
        import json
        import keras_tuner
        import tensorflow as tf

        def run_fn(fn_args):
            hp = keras_tuner.HyperParameters.from_config(fn_args.hyperparameters)
            with open({str(seen)!r}, "w") as handle:
                json.dump({{"config": fn_args.hyperparameters, "values": hp.values}}, handle)
            model = tf.keras.Sequential([tf.keras.layers.Dense(1, input_shape=(1,))])
            tf.saved_model.save(model, fn_args.serving_model_dir)
        """))
    examples = penguin.transform.outputs["transformed_examples"]
    trainer = Trainer(module_file=str(module), examples=examples,
                      hyperparameters=penguin.tuner.outputs["best_hyperparameters"])
    assert trainer.inputs["hyperparameters"] is not None
    assert trainer.exec_properties["hyperparameters"] is None
    penguin.context.run(trainer.with_id("RecordingTrainer"))
    recorded = _load(str(seen))
    assert recorded["config"] == hyperparameters.load()
    assert recorded["values"] == hyperparameters.load()["values"]
    plain = Trainer(module_file=str(module), examples=examples,
                    hyperparameters={"values": {"a": 1}, "space": []})
    assert plain.inputs["hyperparameters"] is None
    assert plain.exec_properties["hyperparameters"] == {"values": {"a": 1}, "space": []}


def test_rerun_is_cached_and_the_module_content_is_in_the_key(penguin, tmp_path):
    from toolkit.cache import cache_key

    assert penguin.context.run(penguin.tuner).cached
    tfx = penguin.tfx
    inputs = {k: c.get() for k, c in penguin.tuner.inputs.items() if c is not None}
    store = penguin.context.store.location

    def key(module_file, **args):
        tuner = tfx.components.Tuner(module_file=module_file,
                                     examples=penguin.transform.outputs["transformed_examples"],
                                     transform_graph=penguin.transform.outputs["transform_graph"],
                                     train_args=tfx.proto.TrainArgs(num_steps=20),
                                     eval_args=tfx.proto.EvalArgs(num_steps=5), **args)
        return cache_key(tuner, inputs, store).digest

    assert key(penguin.module_file) == cache_key(penguin.tuner, inputs, store).digest
    changed = tmp_path / "penguin_utils_keras.py"
    changed.write_text(open(penguin.module_file).read() + "\n# changed\n")
    assert key(str(changed)) != key(penguin.module_file)
    assert key(penguin.module_file, tune_args=tfx.proto.TuneArgs(num_parallel_trials=2)) != \
        key(penguin.module_file)


def test_views_show_every_trial_with_the_best_marked(penguin):
    from toolkit.visualize import view_of

    hyperparameters, results = _outputs(penguin.tuner)
    detail = results.trials()
    view = view_of(results)
    lower = view.html.lower()
    assert "<script" not in lower and "<svg" not in lower and "http" not in lower
    assert "★" in view.html and "★" in view.text
    best_line = next(line for line in view.text.splitlines() if line.startswith("★"))
    assert f" {detail['best_trial_id']} " in f" {best_line} "
    for trial in detail["trials"]:
        assert f"{trial['duration_s']:.1f} s" in view.text
    assert "learning_rate" in view.text and "num_layers" in view.text and OBJECTIVE in view.text
    chosen = view_of(hyperparameters)
    assert "Choice 0.01, 0.001" in chosen.text and "Int 1–3" in chosen.text
    assert "<script" not in chosen.html.lower()


def test_the_trials_view_escapes_what_it_shows(tmp_path):
    from toolkit.artifacts import TunerResults
    from toolkit.visualize import view_of

    hostile = "<script>alert(1)</script>"
    (tmp_path / "tuner_results.json").write_text(json.dumps([
        {"trial_id": "1", "score": 0.5, hostile: "<b>x</b>"}]))
    (tmp_path / "trials.json").write_text(json.dumps({
        "objective": {"name": hostile, "direction": "max"}, "num_parallel_trials": 2,
        "best_trial_id": "1", "workers": [],
        "trials": [{"trial_id": "1", "status": "COMPLETED", "score": 0.5,
                    "values": {hostile: "<b>x</b>"}, "duration_s": 1.5, "worker": hostile,
                    "error": None},
                   {"trial_id": "2", "status": "FAILED", "score": None,
                    "values": {hostile: "y"}, "duration_s": 0.2, "worker": "worker2",
                    "error": f"ValueError: {hostile}"}]}))
    view = view_of(TunerResults(uri=str(tmp_path)))
    assert "<script" not in view.html and "<b>x" not in view.html
    assert "&lt;script&gt;" in view.html
    assert "failed" in view.text and "ValueError" in view.text and "worker2" in view.text
    # a TunerResults written by TFX has only TFX's file: its records are shown
    os.remove(tmp_path / "trials.json")
    tfx_only = view_of(TunerResults(uri=str(tmp_path)))
    assert "★" in tfx_only.text and "completed" in tfx_only.text


# -- TFX's names --------------------------------------------------------------------------------
def test_tfx_names_and_module_imports(tmp_path):
    from toolkit import components
    from toolkit import v1 as tfx
    from toolkit.artifacts import HyperParameters, TunerResults
    from toolkit.components._module import load_module_file

    assert tfx.components.Tuner is components.Tuner
    assert tfx.components.TunerFnResult is components.TunerFnResult
    assert tfx.proto.TuneArgs(num_parallel_trials=2) == {"num_parallel_trials": 2}
    assert tfx.proto.TuneArgs().num_parallel_trials == 0
    assert tfx.types.standard_artifacts.HyperParameters is HyperParameters
    assert tfx.types.standard_artifacts.TunerResults is TunerResults
    module = tmp_path / "tfx_tuner_module.py"
    module.write_text(
        "from tfx import v1 as tfx\n"
        "from tfx.components.tuner.component import TunerFnResult\n"
        "from tfx.v1.components import TunerFnResult as V1TunerFnResult\n"
        "def tuner_fn(fn_args: tfx.components.FnArgs) -> tfx.components.TunerFnResult:\n"
        "    return TunerFnResult(tuner=None, fit_kwargs={})\n")
    loaded = load_module_file(str(module))
    assert loaded.TunerFnResult is components.TunerFnResult
    assert loaded.V1TunerFnResult is components.TunerFnResult
    assert loaded.tuner_fn(None) == components.TunerFnResult(tuner=None, fit_kwargs={})


def test_the_export_graph_knows_the_tuner():
    from toolkit.exporter.graph import component_graph

    source = textwrap.dedent("""
        from toolkit import InteractiveContext
        from toolkit.components import CsvExampleGen, Trainer, Tuner
        context = InteractiveContext(pipeline_name="p", pipeline_root="runs/p")
        example_gen = CsvExampleGen(input_base="data")
        context.run(example_gen)
        tuner = Tuner(examples=example_gen.outputs["examples"], module_file="m.py",
                      tune_args={"num_parallel_trials": 2})
        context.run(tuner)
        trainer = Trainer(module_file="m.py", examples=example_gen.outputs["examples"],
                          hyperparameters=tuner.outputs["best_hyperparameters"])
        context.run(trainer)
        """)
    graph = component_graph([(1, source, ())])
    assert graph.ids == ["CsvExampleGen", "Tuner", "Trainer"]
    assert ("Tuner", "Trainer") in graph.wiring() and ("CsvExampleGen", "Tuner") in graph.wiring()


# -- bad input ----------------------------------------------------------------------------------
def _fails(context, component, component_id: str) -> str:
    from toolkit.errors import ComponentError

    with pytest.raises(ComponentError) as info:
        context.run(component.with_id(component_id))
    message = str(info.value)
    assert "\n" not in message and info.value.__cause__ is None, message
    assert context.executions(component_id)[-1]["state"] == "FAILED"
    assert not [a for a in context.store.artifacts() if a.producer == component_id]
    return message


def _tuner(penguin, module_file: str, steps: tuple[int, int] = (2, 1), **args):
    tfx = penguin.tfx
    return tfx.components.Tuner(module_file=module_file,
                                examples=penguin.transform.outputs["transformed_examples"],
                                transform_graph=penguin.transform.outputs["transform_graph"],
                                train_args=tfx.proto.TrainArgs(num_steps=steps[0]),
                                eval_args=tfx.proto.EvalArgs(num_steps=steps[1]), **args)


#: TFX's penguin module whose every trial fails to build its model
_FAILING_TRIALS = """
    import sys
    sys.path.insert(0, {0!r})
    import penguin_utils_keras as penguin

    def tuner_fn(fn_args):
        result = penguin.tuner_fn(fn_args)
        def build(hp):
            raise ValueError("no model for " + str(sorted(hp.values.items())))
        result.tuner.hypermodel.build = build
        return result
    """


def _module(folder, name: str, text: str) -> str:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def test_arguments_are_checked_when_the_tuner_is_built(penguin):
    from toolkit.errors import ToolkitError, WiringError
    from toolkit.components import Trainer, Tuner

    examples = penguin.transform.outputs["transformed_examples"]
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ToolkitError, match=rf"num_parallel_trials={bad!r}: give an integer "
                                               r">= 1"):
            Tuner(examples=examples, module_file=penguin.module_file,
                  tune_args={"num_parallel_trials": bad})
    with pytest.raises(ToolkitError, match="tune_args has no field 'trials'"):
        Tuner(examples=examples, module_file=penguin.module_file, tune_args={"trials": 2})
    with pytest.raises(ToolkitError, match="give exactly one of module_file"):
        Tuner(examples=examples)
    with pytest.raises(ToolkitError, match="give exactly one of module_file"):
        Tuner(examples=examples, module_file=penguin.module_file, tuner_fn="a.b.tuner_fn")
    with pytest.raises(WiringError, match="hyperparameters must be a Tuner's"):
        Trainer(module_file=penguin.module_file, examples=examples, hyperparameters=3)


def test_bad_tuner_modules(penguin, tmp_path, monkeypatch):
    context = penguin.context
    missing = _module(tmp_path, "no_tuner_fn.py", "def run_fn(fn_args):\n    pass\n")
    message = _fails(context, _tuner(penguin, missing), "NoTunerFn")
    assert "no_tuner_fn.py: no function tuner_fn is defined; it defines run_fn" in message
    wrong = _module(tmp_path, "wrong_result.py", "def tuner_fn(fn_args):\n    return {}\n")
    message = _fails(context, _tuner(penguin, wrong), "WrongResult")
    assert "wrong_result.py: tuner_fn returned dict, not TunerFnResult(tuner=..." in message
    # every trial's model fails to build: KerasTuner stops after 3 failed trials in a row
    failing = _module(tmp_path, "failing_trials.py", _FAILING_TRIALS.format(str(penguin.modules)))
    message = _fails(context, _tuner(penguin, failing), "FailingTrials")
    assert "Number of consecutive failures exceeded the limit of 3" in message
    assert "the last failed trial: ValueError: no model for" in message
    # a Keras 3 model, while KerasTuner (like tf.keras) is Keras 2 here
    keras3 = _module(tmp_path, "keras3_model.py", f"""
        import sys
        sys.path.insert(0, {str(penguin.modules)!r})
        import keras
        import penguin_utils_keras as penguin

        def tuner_fn(fn_args):
            result = penguin.tuner_fn(fn_args)
            result.tuner.hypermodel.build = lambda hp: keras.Sequential([keras.layers.Dense(3)])
            return result
        """)
    message = _fails(context, _tuner(penguin, keras3), "Keras3Model")
    import tf_keras

    assert (f"returned a model of another Keras than KerasTuner's (Keras {tf_keras.__version__} "
            "(tf.keras))") in message and "build models with tf.keras" in message
    # KerasTuner missing
    monkeypatch.setitem(__import__("sys").modules, "keras_tuner", None)
    message = _fails(context, _tuner(penguin, penguin.module_file), "NoKerasTuner")
    assert message.endswith("Tuner: KerasTuner is not installed: pip install keras-tuner==1.4.8 "
                            "(the package keras-tuner, imported as keras_tuner)")


def test_an_oracle_error_does_not_leave_the_oracle_locked(tmp_path):
    """KerasTuner's ``synchronized`` keeps the oracle's lock when the method raises; the chief
    frees it, so the other workers' calls (gRPC threads) go on and the process can exit."""
    import keras_tuner

    from toolkit.components.tuner.trials import TrialClock

    space = keras_tuner.HyperParameters()
    space.Int("units", 1, 50)
    oracle = keras_tuner.oracles.RandomSearchOracle(
        objective=keras_tuner.Objective("score", "max"), max_trials=10, hyperparameters=space,
        max_consecutive_failed_trials=1)
    oracle._set_project_dir(str(tmp_path), "locks")
    clock = TrialClock(oracle, lambda line: None)
    answers = {}

    def in_another_thread(name, call):
        thread = threading.Thread(target=lambda: answers.__setitem__(name, call()), daemon=True)
        thread.start()
        thread.join(timeout=20)
        assert not thread.is_alive(), f"{name} waited for a lock nobody will release"

    in_another_thread("first", lambda: clock.create_trial("worker1"))
    trial = answers["first"]
    trial.status = "FAILED"
    trial.message = "ValueError: boom"

    def end():
        try:
            clock.end_trial(trial)
        except RuntimeError as exc:  # the limit of consecutive failed trials, at once
            return str(exc)

    in_another_thread("end", end)
    assert answers["end"].startswith("Number of consecutive failures exceeded the limit of 1")
    in_another_thread("second", lambda: clock.create_trial("worker2"))
    assert answers["second"].trial_id != trial.trial_id


# -- trials in worker processes -------------------------------------------------------------------
class _WorkerSpy:
    """Notes the pids of this process's children that are KerasTuner workers, while a run
    goes on in the main thread; ``interrupt_after`` interrupts the main thread once that many
    workers are seen (as a notebook's interrupt button would)."""

    def __init__(self, interrupt_after: int | None = None):
        self.pids: set[int] = set()
        self.interrupt_after = interrupt_after
        self.interrupted = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=10)

    def _watch(self):
        import _thread

        me = os.getpid()
        while not self._stop.is_set():
            for pid in _children(me):
                try:
                    with open(f"/proc/{pid}/environ", "rb") as handle:
                        if b"KERASTUNER_TUNER_ID=" in handle.read():
                            self.pids.add(pid)
                except OSError:
                    continue
            if (self.interrupt_after and not self.interrupted
                    and len(self.pids) >= self.interrupt_after):
                time.sleep(1.0)
                self.interrupted = True
                _thread.interrupt_main()
            time.sleep(0.2)


def _children(parent: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == parent:
            found.append(int(entry))
    return found


def _gone(pid: int) -> bool:
    return not os.path.exists(f"/proc/{pid}")


def test_an_interrupted_parallel_search_leaves_no_worker_running(penguin, tmp_path):
    hanging = _module(tmp_path, "hanging_workers.py", f"""
        import os
        import sys
        import time
        sys.path.insert(0, {str(penguin.modules)!r})
        import penguin_utils_keras as penguin

        def tuner_fn(fn_args):
            if os.environ.get("KERASTUNER_TUNER_ID"):
                time.sleep(600)  # a worker never gets to its trials
            return penguin.tuner_fn(fn_args)
        """)
    tuner = _tuner(penguin, hanging, tune_args={"num_parallel_trials": 2})
    # the interrupt arrives as SIGINT does; a process started in the background by a
    # non-interactive shell ignores SIGINT, which would make the interrupt a no-op here
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with _WorkerSpy(interrupt_after=2) as spy:
            with pytest.raises(KeyboardInterrupt):
                penguin.context.run(tuner.with_id("InterruptedTuner"))
    finally:
        signal.signal(signal.SIGINT, previous)
    assert spy.interrupted and len(spy.pids) == 2
    assert all(_gone(pid) for pid in spy.pids), spy.pids
    assert penguin.context.executions("InterruptedTuner")[-1]["state"] == "FAILED"


@pytest.mark.slow
def test_parallel_trials_complete_the_search(penguin):
    tfx = penguin.tfx
    tuner = _tuner(penguin, penguin.module_file, steps=(20, 5),
                   tune_args=tfx.proto.TuneArgs(num_parallel_trials=2))
    penguin.context.run(tuner.with_id("ParallelTuner"))
    detail = _check_search(tuner, parallel=2)
    assert 5 <= len(detail["trials"]) <= 6
    assert all(t["status"] == "COMPLETED" for t in detail["trials"])
    workers = detail["workers"]
    assert [w["tuner_id"] for w in workers] == ["worker1", "worker2"]
    assert all(w["exit_code"] == 0 and w["ended"] == "finished" for w in workers)
    assert {t["worker"] for t in detail["trials"]} == {"worker1", "worker2"}
    assert all(_gone(w["pid"]) for w in workers)


@pytest.mark.slow
def test_a_killed_worker_loses_only_its_own_trial(penguin, tmp_path):
    """The first worker to start a trial kills itself (SIGKILL) while building its model; the
    search goes on with the other worker and a replacement, and completes."""
    marker = tmp_path / "killed"
    killing = _module(tmp_path, "killing_worker.py", f"""
        import os
        import signal
        import sys
        sys.path.insert(0, {str(penguin.modules)!r})
        import penguin_utils_keras as penguin

        def tuner_fn(fn_args):
            result = penguin.tuner_fn(fn_args)
            build = result.tuner.hypermodel.build

            def build_or_die(hp):
                if os.environ.get("KERASTUNER_TUNER_ID"):
                    try:
                        os.close(os.open(fn_args.custom_config["kill_marker"],
                                         os.O_CREAT | os.O_EXCL))
                    except FileExistsError:
                        return build(hp)
                    os.kill(os.getpid(), signal.SIGKILL)
                return build(hp)

            result.tuner.hypermodel.build = build_or_die
            return result
        """)
    tuner = _tuner(penguin, killing, steps=(20, 5), tune_args={"num_parallel_trials": 2},
                   custom_config={"kill_marker": str(marker)})
    result = penguin.context.run(tuner.with_id("KilledWorkerTuner"))
    assert marker.exists() and not result.cached
    hyperparameters, results = _outputs(tuner)
    detail = results.trials()
    lost = [t for t in detail["trials"] if t["status"] != "COMPLETED"]
    assert len(lost) == 1 and lost[0]["status"] == "FAILED"
    dead = next(w for w in detail["workers"] if w["ended"] == "killed by SIGKILL")
    assert lost[0]["worker"] == dead["tuner_id"]
    assert lost[0]["error"] == (f"{dead['tuner_id']} (pid {dead['pid']}) killed by SIGKILL while "
                                f"running trial {lost[0]['trial_id']}")
    completed = [t for t in detail["trials"] if t["status"] == "COMPLETED"]
    records = results.load()
    assert len(completed) >= 4 and {r["trial_id"] for r in records} == \
        {t["trial_id"] for t in completed}
    assert lost[0]["trial_id"] not in {r["trial_id"] for r in records}
    import keras_tuner

    best = keras_tuner.HyperParameters.from_config(hyperparameters.load())
    assert best.values == {k: records[0][k] for k in SPACE}
    assert all(_gone(w["pid"]) for w in detail["workers"])


@pytest.mark.slow
def test_workers_that_fail_stop_the_search_and_leave_nothing_running(penguin, tmp_path):
    broken = _module(tmp_path, "broken_workers.py", f"""
        import os
        import sys
        sys.path.insert(0, {str(penguin.modules)!r})
        import penguin_utils_keras as penguin

        def tuner_fn(fn_args):
            if os.environ.get("KERASTUNER_TUNER_ID"):
                raise RuntimeError("no data on this worker")
            return penguin.tuner_fn(fn_args)
        """)
    tuner = _tuner(penguin, broken, tune_args={"num_parallel_trials": 2})
    with _WorkerSpy() as spy:
        message = _fails(penguin.context, tuner, "BrokenWorkers")
    assert "broken_workers.py: tuner_fn: worker" in message
    assert ("before running a trial: broken_workers.py: tuner_fn raised RuntimeError: no data "
            "on this worker (broken_workers.py, line 9, in tuner_fn)") in message
    assert len(spy.pids) == 2 and all(_gone(pid) for pid in spy.pids)


@pytest.mark.slow
def test_a_search_that_stops_in_a_worker_stops_as_it_would_in_one_process(penguin, tmp_path):
    """Every trial fails: KerasTuner's limit of 3 failed trials in a row, reached at the chief,
    ends the search with its reason, whichever worker met it."""
    failing = _module(tmp_path, "failing_trials.py", _FAILING_TRIALS.format(str(penguin.modules)))
    with _WorkerSpy() as spy:
        message = _fails(penguin.context, _tuner(penguin, failing,
                                                 tune_args={"num_parallel_trials": 2}),
                         "FailingTrialsInWorkers")
    assert "failing_trials.py: tuner_fn: worker" in message
    assert "Number of consecutive failures exceeded the limit of 3" in message
    assert len(spy.pids) == 2 and all(_gone(pid) for pid in spy.pids)


#: a chief in a process of its own, whose workers hang before their first trial
_ORPHANS_MODULE = '''
import os
import time

import keras_tuner
import tensorflow as tf
from tfx import v1 as tfx


def _build(hp):
    model = tf.keras.Sequential([tf.keras.layers.Dense(hp.Int("units", 1, 4), input_shape=(1,)),
                                 tf.keras.layers.Dense(1)])
    model.compile("adam", "mse")
    return model


def tuner_fn(fn_args):
    if os.environ.get("KERASTUNER_TUNER_ID"):
        time.sleep(600)
    tuner = keras_tuner.RandomSearch(_build, max_trials=2, objective="val_loss",
                                     directory=fn_args.working_dir, project_name="orphans")
    return tfx.components.TunerFnResult(tuner=tuner, fit_kwargs={})
'''

_ORPHANS_CHIEF = '''
import sys
from toolkit import InteractiveContext
from toolkit.components import CsvExampleGen, Tuner
root, data, module = sys.argv[1:4]
context = InteractiveContext(pipeline_name="orphans", pipeline_root=root)
example_gen = CsvExampleGen(input_base=data)
context.run(example_gen)
context.run(Tuner(examples=example_gen.outputs["examples"], module_file=module,
                  tune_args={"num_parallel_trials": 2}))
'''


@pytest.mark.slow
def test_workers_stop_when_their_chief_is_killed(tmp_path):
    """SIGKILL leaves the chief no chance to stop its workers: they notice it is gone."""
    import signal
    import subprocess
    import sys

    module = _module(tmp_path, "orphans.py", _ORPHANS_MODULE)
    chief = subprocess.Popen([sys.executable, "-c", _ORPHANS_CHIEF, str(tmp_path / "root"),
                              os.path.join(PENGUIN, "data"), module], cwd=REPO,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers: set[int] = set()
    try:
        deadline = time.monotonic() + 240
        while len(workers) < 2 and time.monotonic() < deadline and chief.poll() is None:
            for pid in _children(chief.pid):
                try:
                    with open(f"/proc/{pid}/environ", "rb") as handle:
                        if b"KERASTUNER_TUNER_ID=" in handle.read():
                            workers.add(pid)
                except OSError:
                    continue
            time.sleep(0.2)
        assert len(workers) == 2, "the chief did not start its workers"
    finally:
        chief.send_signal(signal.SIGKILL)
        chief.wait()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not all(_ended(pid) for pid in workers):
        time.sleep(0.2)
    assert all(_ended(pid) for pid in workers), workers


def _ended(pid: int) -> bool:
    """Gone, or a zombie waiting for whoever adopted it to reap it."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True
