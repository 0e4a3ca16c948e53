"""``tfx.orchestration.experimental.KubeflowV2DagRunner`` on TFX's ``penguin_simple``
pipeline (CsvExampleGen, Trainer with the tutorial's own module file, Pusher).

The default suite compiles it and reads the file back with kfp's own loader: one task per
component, dependencies equal to the wiring, the image given, each task's pipeline spec
rebuilding the same components; and it checks the refusals. The long suite compiles
penguin_tfma's Resolver and Evaluator (a strategy object, a tfma.EvalConfig) and runs the file
through ``kfp.local`` (``SubprocessRunner``, this environment) and LocalDagRunner runs the
same pipeline on another root: both push a model, and the two models give the same
answers on the CSV's rows (training is seeded by a wrapper module around the tutorial's).
"""
from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

import tfx_tutorials
from datapaths import REPO
from toolkit import v1 as tfx

IMAGE = "registry.example/penguin-toolkit:1"
FEATURES = ["culmen_length_mm", "culmen_depth_mm", "flipper_length_mm", "body_mass_g"]
WIRING = {("CsvExampleGen", "Trainer"), ("Trainer", "Pusher")}
#: a module file around the tutorial's: the same run_fn, with Keras seeded, so two runs
#: of the pipeline train the same weights
SEEDED_MODULE = """
import tensorflow as tf

import penguin_trainer


def run_fn(fn_args):
    tf.keras.utils.set_random_seed(7)
    tf.config.experimental.enable_op_determinism()
    penguin_trainer.run_fn(fn_args)
"""


def _tutorial_module_file() -> str:
    """The body of penguin_simple's ``%%writefile`` cell, as TFX publishes it."""
    [cell] = [c for c in tfx_tutorials.published("penguin_simple")["cells"]
              if tfx_tutorials.is_module_file(c)]
    return tfx_tutorials.source(cell).split("\n", 1)[1]


def _penguin_pipeline(work: Path, name: str = "penguin-kfp", steps: int = 30,
                      module: str = "penguin_trainer.py") -> tfx.dsl.Pipeline:
    """TFX's penguin_simple ``_create_pipeline``, with ``work`` holding its files."""
    data = work / "data"
    data.mkdir(parents=True, exist_ok=True)
    shutil.copy(tfx_tutorials.PENGUIN_CSV, data / "data.csv")
    (work / "penguin_trainer.py").write_text(_tutorial_module_file(), encoding="utf-8")
    (work / "seeded_trainer.py").write_text(SEEDED_MODULE, encoding="utf-8")
    example_gen = tfx.components.CsvExampleGen(input_base=str(data))
    trainer = tfx.components.Trainer(
        module_file=str(work / module), examples=example_gen.outputs["examples"],
        train_args=tfx.proto.TrainArgs(num_steps=steps),
        eval_args=tfx.proto.EvalArgs(num_steps=2))
    pusher = tfx.components.Pusher(
        model=trainer.outputs["model"],
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(
                base_directory=str(work / "serving"))))
    return tfx.dsl.Pipeline(
        pipeline_name=name, pipeline_root=str(work / "root"),
        metadata_connection_config=tfx.orchestration.metadata
        .sqlite_metadata_connection_config(str(work / "metadata" / "metadata.db")),
        components=[pusher, trainer, example_gen])  # any order: the wiring decides


def _runner(folder: Path, filename: str | None = "penguin.yaml", **config):
    experimental = tfx.orchestration.experimental
    return experimental.KubeflowV2DagRunner(
        config=experimental.KubeflowV2DagRunnerConfig(**{"default_image": IMAGE, **config}),
        output_dir=str(folder), output_filename=filename)


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    work = tmp_path_factory.mktemp("penguin_kfp")
    pipeline = _penguin_pipeline(work)
    returned = _runner(work / "out").run(pipeline)
    return work, pipeline, returned, work / "out" / "penguin.yaml"


def _tasks(spec) -> dict[str, object]:
    """Task name (the component id) -> PipelineTaskSpec, from kfp's PipelineSpec proto."""
    return {task.task_info.name: task for task in spec.root.dag.tasks.values()}


def test_the_yaml_has_a_task_per_component_and_the_wiring_as_its_dependencies(compiled):
    from kfp import components

    work, pipeline, returned, path = compiled
    loaded = components.load_component_from_file(str(path))
    spec = loaded.pipeline_spec
    assert spec.pipeline_info.name == "penguin-kfp"
    tasks = _tasks(spec)
    assert set(tasks) == {"CsvExampleGen", "Trainer", "Pusher"}
    by_key = {key: task.task_info.name for key, task in spec.root.dag.tasks.items()}
    edges = {(by_key[dep], name) for name, task in tasks.items() for dep in task.dependent_tasks}
    assert edges == WIRING
    images = {executor["container"]["image"]
              for executor in spec.deployment_spec["executors"].values()}
    assert images == {IMAGE}
    for task in tasks.values():  # KFP's caching is off: the toolkit's cache decides
        assert not task.caching_options.enable_cache
    assert returned == yaml.safe_load(path.read_text())


def test_each_task_carries_a_spec_that_rebuilds_its_components(compiled):
    from toolkit.cache import canonical_json, encode_parameter
    from toolkit.pipeline_spec import pipeline_from_spec

    work, pipeline, returned, _ = compiled
    original = {c.id: c for c in pipeline.components}
    module_file = str(work / "penguin_trainer.py")
    for task in returned["root"]["dag"]["tasks"].values():
        constant = task["inputs"]["parameters"]["toolkit_task"]["runtimeValue"]["constant"]
        component = constant["component"]
        carried = json.loads(constant["pipeline"])
        rebuilt = pipeline_from_spec(carried)
        expected_ids = {"CsvExampleGen": ["CsvExampleGen"],
                        "Trainer": ["CsvExampleGen", "Trainer"],
                        "Pusher": ["CsvExampleGen", "Trainer", "Pusher"]}[component]
        assert [c.id for c in rebuilt.components] == expected_ids
        assert constant["upstream"] == expected_ids[:-1]
        for c in rebuilt.components:
            assert type(c) is type(original[c.id])
            assert canonical_json(encode_parameter(c.exec_properties)) == \
                canonical_json(encode_parameter(original[c.id].exec_properties))
            assert {k: (ch.producer.id, ch.output_key) for k, ch in c.inputs.items() if ch} == \
                {k: (ch.producer.id, ch.output_key) for k, ch in original[c.id].inputs.items()
                 if ch}
        assert rebuilt.pipeline_root == pipeline.pipeline_root
        assert rebuilt.metadata_connection_config == pipeline.metadata_connection_config
        files = carried["files"]
        digest = hashlib.sha256(Path(module_file).read_bytes()).hexdigest()
        assert files == ({module_file: digest} if component != "CsvExampleGen" else {})


def test_the_default_file_is_tfxs_pipeline_json_holding_the_same_spec(compiled, tmp_path):
    from kfp import components

    work, pipeline, returned, _ = compiled
    again = _runner(tmp_path, filename=None).run(pipeline)
    written = tmp_path / "pipeline.json"
    assert json.loads(written.read_text()) == again == returned
    assert components.load_component_from_file(str(written)).pipeline_spec.pipeline_info.name \
        == "penguin-kfp"
    not_written = _runner(tmp_path / "none").run(pipeline, write_out=False)
    assert not_written == returned and not (tmp_path / "none").exists()


def test_an_image_per_component(compiled, tmp_path):
    _, pipeline, _, _ = compiled
    images = {"Trainer": "registry.example/trainer:2", "default_image_path": IMAGE}
    spec = _runner(tmp_path, default_image=images).run(pipeline)
    by_task = {task["taskInfo"]["name"]: spec["deploymentSpec"]["executors"][
        spec["components"][task["componentRef"]["name"]]["executorLabel"]]["container"]["image"]
        for task in spec["root"]["dag"]["tasks"].values()}
    assert by_task == {"CsvExampleGen": IMAGE, "Trainer": "registry.example/trainer:2",
                       "Pusher": IMAGE}


@pytest.mark.slow  # importing TFMA takes half a minute here
def test_penguin_tfmas_resolver_and_evaluator_are_carried_with_their_state(compiled, tmp_path):
    """TFX's penguin_tfma adds a Resolver (a strategy object, typed channels) and an
    Evaluator taking a tfma.EvalConfig proto: the Evaluator's task rebuilds both."""
    import tensorflow_model_analysis as tfma

    from toolkit.pipeline_spec import pipeline_from_spec

    work, base, _, _ = compiled
    by_id = {c.id: c for c in base.components}
    example_gen, trainer = by_id["CsvExampleGen"], by_id["Trainer"]
    resolver = tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
        model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
        model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing)
    ).with_id("latest_blessed_model_resolver")
    eval_config = tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(label_key="species")],
        slicing_specs=[tfma.SlicingSpec(), tfma.SlicingSpec(feature_keys=["species"])],
        metrics_specs=[tfma.MetricsSpec(per_slice_thresholds={
            "sparse_categorical_accuracy": tfma.PerSliceMetricThresholds(thresholds=[
                tfma.PerSliceMetricThreshold(
                    slicing_specs=[tfma.SlicingSpec()],
                    threshold=tfma.MetricThreshold(value_threshold=tfma.GenericValueThreshold(
                        lower_bound={"value": 0.6})))])})])
    evaluator = tfx.components.Evaluator(
        examples=example_gen.outputs["examples"], model=trainer.outputs["model"],
        baseline_model=resolver.outputs["model"], eval_config=eval_config)
    pipeline = tfx.dsl.Pipeline(pipeline_name="penguin-tfma-kfp",
                                pipeline_root=str(tmp_path / "root"),
                                components=[example_gen, trainer, resolver, evaluator])
    spec = _runner(tmp_path).run(pipeline)
    [task] = [t for t in spec["root"]["dag"]["tasks"].values()
              if t["taskInfo"]["name"] == "Evaluator"]
    constant = task["inputs"]["parameters"]["toolkit_task"]["runtimeValue"]["constant"]
    assert set(constant["upstream"]) == {"CsvExampleGen", "Trainer",
                                         "latest_blessed_model_resolver"}
    rebuilt = {c.id: c for c in pipeline_from_spec(json.loads(constant["pipeline"])).components}
    assert rebuilt["Evaluator"].exec_properties["eval_config"] == eval_config
    assert rebuilt["Evaluator"].inputs["baseline_model"] is \
        rebuilt["latest_blessed_model_resolver"].outputs["model"]
    again = rebuilt["latest_blessed_model_resolver"]
    assert type(again._strategy) is tfx.dsl.experimental.LatestBlessedModelStrategy
    assert {k: (c.type, c.producer) for k, c in again._channels.items()} == {
        "model": (tfx.types.standard_artifacts.Model, None),
        "model_blessing": (tfx.types.standard_artifacts.ModelBlessing, None)}


def test_what_cannot_be_carried_is_refused_in_one_line(compiled, tmp_path):
    from toolkit.errors import ToolkitError

    work, pipeline, _, _ = compiled
    experimental = tfx.orchestration.experimental

    def refused(call, *needles):
        with pytest.raises(ToolkitError) as raised:
            call()
        message = str(raised.value)
        assert "\n" not in message and all(n in message for n in needles), message

    example_gen = tfx.components.CsvExampleGen(input_base=str(work / "data"))
    trainer = tfx.components.Trainer(
        module_file=str(work / "penguin_trainer.py"), examples=example_gen.outputs["examples"],
        custom_config={"scale": lambda x: x * 2})
    odd = tfx.dsl.Pipeline(pipeline_name="odd", pipeline_root=str(tmp_path / "root"),
                           components=[example_gen, trainer])
    refused(lambda: _runner(tmp_path).run(odd), "Trainer.exec_properties['custom_config']['scale']",
            "define <lambda> at the top of a module file")
    assert not (tmp_path / "penguin.yaml").exists()
    refused(lambda: experimental.KubeflowV2DagRunnerConfig(default_commands=["python"]),
            "default_commands", "remove the argument")
    refused(lambda: experimental.KubeflowV2DagRunnerConfig(supported_launcher_classes=[]),
            "supported_launcher_classes")
    refused(lambda: _runner(tmp_path).run(pipeline, parameter_values={"steps": 3}),
            "parameter_values", "give the values to the components")
    refused(lambda: _runner(tmp_path).set_exit_handler(trainer), "set_exit_handler")
    refused(lambda: _runner(tmp_path, default_image={"Tranier": "x"}).run(pipeline),
            "Tranier", "CsvExampleGen, Trainer, Pusher")
    with pytest.raises(AttributeError, match="KubeflowDagRunner.*KubeflowV2DagRunner"):
        experimental.KubeflowDagRunner


def test_a_task_refuses_a_module_file_other_than_the_compiled_one(compiled, tmp_path):
    from toolkit.errors import ToolkitError
    from toolkit.pipeline_spec import check_files

    work, _, returned, _ = compiled
    [trainer] = [t for t in returned["root"]["dag"]["tasks"].values()
                 if t["taskInfo"]["name"] == "Trainer"]
    files = json.loads(trainer["inputs"]["parameters"]["toolkit_task"]["runtimeValue"][
        "constant"]["pipeline"])["files"]
    check_files(files)  # unchanged: accepted
    [path] = files
    changed = tmp_path / "changed.py"
    changed.write_text(Path(path).read_text() + "\n# edited\n")
    with pytest.raises(ToolkitError, match="not the file the pipeline was compiled with"):
        check_files({str(changed): files[path]})


# -- the long suite: the file runs through kfp.local ----------------------------------------
def _pushed_model(serving: Path) -> str:
    [version] = glob.glob(str(serving / "*" / "saved_model.pb"))
    return os.path.dirname(version)


def _answers(version_dir: str) -> np.ndarray:
    import pandas as pd
    import tensorflow as tf

    rows = pd.read_csv(tfx_tutorials.PENGUIN_CSV)[FEATURES].to_numpy(dtype=np.float32)
    served = tf.saved_model.load(version_dir).signatures["serving_default"]
    [logits] = [v.numpy() for v in served(**{f: tf.constant(rows[:, [i]])
                                             for i, f in enumerate(FEATURES)}).values()]
    return logits


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:You may be attemping:RuntimeWarning")  # kfp: our image
def test_the_yaml_runs_through_kfp_local_and_pushes_the_model_local_dag_runner_pushes(
        tmp_path):
    from kfp import components, local
    from ml_metadata.metadata_store import metadata_store

    from toolkit import _env
    from toolkit.metadata import sqlite_config

    kfp_work, local_work = tmp_path / "kfp", tmp_path / "local"
    pipeline = _penguin_pipeline(kfp_work, module="seeded_trainer.py")
    _runner(kfp_work / "out").run(pipeline)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(REPO)
        patch.setenv(_env.PUSH_ROOT, str(tmp_path))  # the Pusher may write under tmp_path
        local.init(runner=local.SubprocessRunner(use_venv=False),
                   pipeline_root=str(kfp_work / "kfp"))
        components.load_component_from_file(str(kfp_work / "out" / "penguin.yaml"))()
        tfx.orchestration.LocalDagRunner().run(
            _penguin_pipeline(local_work, module="seeded_trainer.py"))

    kfp_model, local_model = _pushed_model(kfp_work / "serving"), _pushed_model(local_work / "serving")
    kfp_answers, local_answers = _answers(kfp_model), _answers(local_model)
    np.testing.assert_allclose(kfp_answers, local_answers, rtol=1e-5, atol=1e-5)
    labels = np.loadtxt(tfx_tutorials.PENGUIN_CSV, delimiter=",", skiprows=1, usecols=[0])
    assert (kfp_answers.argmax(axis=1) == labels).mean() > 0.5  # it learned something

    # every task ran its own component in its own process, into one store and one pipeline run
    store = metadata_store.MetadataStore(sqlite_config(str(kfp_work / "metadata" / "metadata.db")))
    nodes = {c.name for c in store.get_contexts_by_type("node")}
    assert nodes == {f"penguin-kfp.{cid}" for cid in ("CsvExampleGen", "Trainer", "Pusher")}
    [run] = store.get_contexts_by_type("pipeline_run")
    assert len(store.get_executions_by_context(run.id)) == 3
    summaries = {}
    for path in glob.glob(str(kfp_work / "kfp" / "*" / "*" / "run_summary")):
        summary = json.loads(Path(path).read_text())
        summaries[summary["component_id"]] = summary
    assert set(summaries) == {"CsvExampleGen", "Trainer", "Pusher"}
    assert not any(s["cached"] for s in summaries.values())
    assert len({s["execution_id"] for s in summaries.values()}) == 3
