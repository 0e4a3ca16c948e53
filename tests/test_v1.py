"""``from toolkit import v1 as tfx``: TFX's tfx.v1 names, backed by the toolkit's classes.

The names come from docs/coming-from-tfx.md, section "What `toolkit.v1` provides", so the
documented list and what is importable cannot drift apart.
"""
from __future__ import annotations

import importlib
import json
import os
import pickle
import re

import pytest
from datapaths import REPO

from toolkit import v1 as tfx
from toolkit.artifacts import Examples
from toolkit.base_component import Channel
from toolkit.cache import cache_key

SECTION = "## What `toolkit.v1` provides"


def _documented() -> tuple[dict[str, list[str]], list[str]]:
    """(module -> names listed under its heading, the dotted names listed as not provided)."""
    with open(os.path.join(REPO, "docs", "coming-from-tfx.md"), encoding="utf-8") as handle:
        text = handle.read()
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    section = text[start:end if end != -1 else None]
    provided: dict[str, list[str]] = {}
    missing: list[str] = []
    heading = None
    for line in section.splitlines():
        title = re.match(r"### (.+)", line)
        if title:
            heading = title.group(1).strip()
            continue
        item = re.match(r"- `([\w.]+)`", line)
        if not item or heading is None:
            continue
        if heading == "Not provided":
            missing.append(item.group(1))
        elif heading.startswith("`tfx"):
            provided.setdefault(heading.strip("`"), []).append(item.group(1))
    return provided, missing


def _module(dotted_tfx: str):
    return importlib.import_module("toolkit.v1" + dotted_tfx[len("tfx"):])


def test_every_documented_name_is_importable():
    provided, missing = _documented()
    assert {"tfx.components", "tfx.proto", "tfx.dsl", "tfx.dsl.experimental",
            "tfx.dsl.components", "tfx.types.standard_artifacts", "tfx"} <= set(provided)
    assert len(missing) >= 10
    for module_name, names in provided.items():
        module = _module(module_name)
        for name in names:
            assert getattr(module, name) is not None, f"{module_name}.{name}"
            namespace: dict = {}
            exec(f"from {module.__name__} import {name}", namespace)
    # every standard component of the toolkit is offered
    import toolkit.components as native

    # TFX keeps its Resolver and Importer nodes in tfx.dsl, not tfx.components
    offered = set(provided["tfx.components"]) | set(provided["tfx.dsl"])
    assert {n for n in native.__all__ if n[0].isupper()} <= offered
    assert tfx.components.Trainer is native.Trainer
    assert issubclass(tfx.components.CsvExampleGen, native.CsvExampleGen)
    # the nested messages named in parentheses exist too
    assert tfx.proto.PushDestination.Filesystem and tfx.proto.SplitConfig.Split
    assert tfx.proto.Input.Split
    assert tfx.__version__ == importlib.import_module("toolkit").__version__


def test_a_missing_name_names_itself_and_points_to_the_list():
    _, missing = _documented()
    for dotted in missing:
        parent, _, name = dotted.rpartition(".")
        module = _module(parent)
        with pytest.raises(AttributeError) as raised:
            getattr(module, name)
        message = str(raised.value)
        assert f"{dotted}" in message and "docs/coming-from-tfx.md" in message
        assert not hasattr(module, name)
    with pytest.raises(ImportError,
                       match=r"tfx\.components\.ExampleDiff.*docs/coming-from-tfx\.md"):
        exec("from toolkit.v1.components import ExampleDiff", {})
    with pytest.raises(ImportError, match=r"TransformCache.*docs/coming-from-tfx\.md"):
        exec("from toolkit.v1.types.standard_artifacts import TransformCache", {})
    assert getattr(tfx.proto, "OutputExampleSpec", None) is None


def test_proto_messages_are_their_dicts():
    destination = tfx.proto.PushDestination(
        filesystem=tfx.proto.PushDestination.Filesystem(base_directory="serving/taxi"))
    assert destination == {"filesystem": {"base_directory": "serving/taxi"}}
    assert destination.filesystem.base_directory == "serving/taxi"
    assert type(tfx.proto.to_dict(destination)["filesystem"]) is dict
    output = tfx.proto.Output(split_config=tfx.proto.SplitConfig(splits=[
        tfx.proto.SplitConfig.Split(name="train", hash_buckets=3),
        tfx.proto.SplitConfig.Split(name="eval", hash_buckets=1)]))
    assert output == {"split_config": {"splits": [{"name": "train", "hash_buckets": 3},
                                                  {"name": "eval", "hash_buckets": 1}]}}
    assert output.split_config.splits[1].name == "eval"
    # unset fields read as protobuf defaults; writing to them attaches them
    args = tfx.proto.TrainArgs(num_steps=100)
    assert args == {"num_steps": 100} and args.splits == [] and not args.HasField("splits")
    args.splits.append("train")
    assert args == {"num_steps": 100, "splits": ["train"]}
    built = tfx.proto.Output()
    built.split_config.splits.add(name="train", hash_buckets=2)
    assert built == {"split_config": {"splits": [{"name": "train", "hash_buckets": 2}]}}
    assert tfx.proto.RequestSpec().tensorflow_serving.signature_names == []
    # dicts convert into nested messages; wrong fields and types are refused
    assert tfx.proto.Input(splits=[{"name": "train", "pattern": "train/*"}]).splits[0].pattern \
        == "train/*"
    with pytest.raises(ValueError, match='TrainArgs has no "steps" field'):
        tfx.proto.TrainArgs(steps=1)
    with pytest.raises(TypeError, match="TrainArgs.num_steps takes an int"):
        tfx.proto.TrainArgs(num_steps="100")
    with pytest.raises(TypeError, match="Output.split_config takes a SplitConfig"):
        tfx.proto.Output(split_config=tfx.proto.Input())
    assert tfx.proto.TrainArgs(num_steps=1) != tfx.proto.EvalArgs(num_steps=1)
    assert pickle.loads(pickle.dumps(output)) == output
    assert tfx.proto.PayloadFormat.FORMAT_TF_EXAMPLE == 6
    assert tfx.proto.PayloadFormat.Name(15) == "FORMAT_PARQUET"
    assert json.loads(json.dumps(destination)) == tfx.proto.to_dict(destination)


def _key(component, store="store"):
    inputs = {k: c.get() for k, c in component.inputs.items() if c is not None}
    return cache_key(component, inputs, store).digest


def test_components_take_protos_with_the_cache_key_of_the_equal_dict(tmp_path):
    module = tmp_path / "trainer_module.py"
    module.write_text("def run_fn(fn_args):\n    pass\n")
    examples = Channel(Examples, artifacts=[Examples(uri=str(tmp_path), id=1)])

    def trainer(**args):
        return tfx.components.Trainer(module_file=str(module), examples=examples, **args)

    with_protos = trainer(train_args=tfx.proto.TrainArgs(num_steps=100, splits=["train"]),
                          eval_args=tfx.proto.EvalArgs(num_steps=5))
    with_dicts = trainer(train_args={"num_steps": 100, "splits": ["train"]},
                         eval_args={"num_steps": 5})
    assert with_protos.exec_properties["train_args"] == {"num_steps": 100, "splits": ["train"]}
    assert _key(with_protos) == _key(with_dicts)
    assert _key(trainer(train_args=tfx.proto.TrainArgs(num_steps=101))) != _key(with_dicts)

    data = tmp_path / "data"
    data.mkdir()
    (data / "data.csv").write_text("a,b\n1,2\n")
    config = tfx.proto.Output(split_config=tfx.proto.SplitConfig(splits=[
        tfx.proto.SplitConfig.Split(name="train", hash_buckets=4),
        tfx.proto.SplitConfig.Split(name="eval", hash_buckets=1)]))
    gen = tfx.components.CsvExampleGen(input_base=str(data), output_config=config)
    same = tfx.components.CsvExampleGen(input_base=str(data),
                                        output_config=tfx.proto.to_dict(config))
    assert _key(gen) == _key(same)
    # ExampleGen reads the message's splits
    assert gen._splits(gen.exec_properties)[1] == [("train", 4), ("eval", 1)]

    model = Channel(tfx.types.standard_artifacts.Model,
                    artifacts=[tfx.types.standard_artifacts.Model(uri=str(tmp_path), id=2)])
    destination = tfx.proto.PushDestination(
        filesystem=tfx.proto.PushDestination.Filesystem(base_directory=str(tmp_path / "s")))
    pusher = tfx.components.Pusher(model=model, push_destination=destination)
    assert pusher.exec_properties["push_destination"] == str(tmp_path / "s")
    assert _key(pusher) == _key(tfx.components.Pusher(
        model=model, push_destination={"filesystem": {"base_directory": str(tmp_path / "s")}}))

    request = tfx.proto.RequestSpec(
        tensorflow_serving=tfx.proto.TensorFlowServingRequestSpec(
            signature_names=["serving_default"]),
        num_examples=10)
    validator = tfx.components.InfraValidator(
        model=model, request_spec=request,
        serving_spec=tfx.proto.ServingSpec(tensorflow_serving=tfx.proto.TensorFlowServing(
            tags=["latest"]), local_docker=tfx.proto.LocalDockerConfig()),
        validation_spec=tfx.proto.ValidationSpec(max_loading_time_seconds=60))
    assert _key(validator) == _key(tfx.components.InfraValidator(
        model=model, request_spec=tfx.proto.to_dict(request),
        serving_spec={"tensorflow_serving": {"tags": ["latest"]}, "local_docker": {}},
        validation_spec={"max_loading_time_seconds": 60}))


def test_interactive_context_without_arguments_is_temporary(tmp_path, monkeypatch):
    import tempfile

    from toolkit import InteractiveContext

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    context = InteractiveContext()
    assert context.pipeline_root.startswith(str(tmp_path))
    assert os.path.dirname(context.metadata_connection_config.sqlite.filename_uri) \
        == context.pipeline_root


def test_skip_for_export_magic_runs_the_cell():
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    assert shell.run_cell("%load_ext toolkit").success
    result = shell.run_cell("%%skip_for_export\nexplored = 20\nexplored * 2 + 2")
    assert result.success and result.result == 42 and shell.user_ns["explored"] == 20
    failed = shell.run_cell("%%skip_for_export\n1 / 0")
    assert not failed.success and isinstance(failed.error_in_exec, ZeroDivisionError)


def test_a_pipeline_written_the_tfx_tutorial_way(taxi_dir, tmp_path, monkeypatch):
    """TFX's interactive tutorial cells with only the import lines changed."""
    import tempfile

    from toolkit import InteractiveContext

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    context = InteractiveContext()
    example_gen = tfx.components.CsvExampleGen(input_base=taxi_dir)
    context.run(example_gen, enable_cache=True)
    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs['examples'])
    context.run(statistics_gen, enable_cache=True)
    schema_gen = tfx.components.SchemaGen(statistics=statistics_gen.outputs['statistics'],
                                          infer_feature_shape=False)
    context.run(schema_gen, enable_cache=True)
    example_validator = tfx.components.ExampleValidator(
        statistics=statistics_gen.outputs['statistics'], schema=schema_gen.outputs['schema'])
    context.run(example_validator, enable_cache=True)

    artifact = example_gen.outputs['examples'].get()[0]
    assert artifact.split_names == ["train", "eval"]
    if "output_data_format" in tfx.components.CsvExampleGen.PARAMETERS:
        # through toolkit.v1, TFX's default payload (the toolkit's own default is Parquet)
        assert artifact.payload_format == "FORMAT_TF_EXAMPLE"
    assert isinstance(artifact, tfx.types.standard_artifacts.Examples)
    schema = schema_gen.outputs['schema'].get()[0].load()
    assert "trip_start_hour" in [f.name for f in schema.feature]
    anomalies = example_validator.outputs['anomalies'].get()[0]
    assert os.path.exists(anomalies.anomalies_path("eval"))
    again = context.run(tfx.components.StatisticsGen(examples=example_gen.outputs['examples']))
    assert again.cached


# -- Resolver and Importer: made of small custom components, no training needed --------------
@tfx.dsl.components.component
def FakeTrainer(model: tfx.dsl.components.OutputArtifact[tfx.types.standard_artifacts.Model],
                seed: tfx.dsl.components.Parameter[int] = 0):
    with open(os.path.join(model.uri, "weights.txt"), "w") as handle:
        handle.write(str(seed))


@tfx.dsl.components.component
def FakeEvaluator(
        model: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.Model],
        blessing: tfx.dsl.components.OutputArtifact[tfx.types.standard_artifacts.ModelBlessing],
        bless: tfx.dsl.components.Parameter[bool] = True):
    open(os.path.join(blessing.uri, "BLESSED" if bless else "NOT_BLESSED"), "w").close()
    blessing.properties.update(blessed=int(bless), current_model_id=model.id)


@pytest.fixture
def blessed_history(tmp_path):
    """Three models: the first two blessed, the third not."""
    from toolkit import InteractiveContext

    context = InteractiveContext(pipeline_name="resolve", pipeline_root=str(tmp_path / "root"))
    models = []
    for seed, bless in ((1, True), (2, True), (3, False)):
        trainer = FakeTrainer(seed=seed)
        context.run(trainer)
        context.run(FakeEvaluator(model=trainer.outputs["model"], bless=bless))
        models.append(trainer.outputs["model"].get()[0])
    return context, models


def _latest_blessed_model_resolver():
    return tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
        model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
        model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
    ).with_id('latest_blessed_model_resolver')


def test_resolver_strategies_pick_from_the_store(blessed_history):
    context, models = blessed_history
    resolver = _latest_blessed_model_resolver()
    assert resolver.id == "latest_blessed_model_resolver"
    assert set(resolver.outputs) == {"model", "model_blessing"}
    resolved = resolver.resolve(context.store)
    assert [m.id for m in resolved["model"]] == [models[1].id]
    assert resolved["model_blessing"][0].properties["current_model_id"] == models[1].id
    latest = tfx.dsl.Resolver(strategy_class=tfx.dsl.experimental.LatestArtifactStrategy,
                              config={"desired_num_of_artifacts": 2},
                              model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model))
    assert [m.id for m in latest.resolve(context.store)["model"]] == [models[1].id, models[2].id]
    # the toolkit's one-call form agrees, and can leave out the candidate
    from toolkit.components import latest_blessed_model

    assert latest_blessed_model(context).get()[0].id == models[1].id
    assert latest_blessed_model(context, exclude=models[1]).get()[0].id == models[0].id
    with pytest.raises(Exception, match="LatestBlessedModelStrategy needs the channels "
                                        "model_blessing"):
        tfx.dsl.Resolver(strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
                         model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model))


def test_resolver_runs_and_feeds_the_evaluator_baseline(blessed_history):
    """Needs the driver to give executors ``ctx.store`` and to honour
    ``REFERENCES_EXISTING_ARTIFACTS`` (no staged folders, no cache)."""
    context, models = blessed_history
    model_resolver = _latest_blessed_model_resolver()
    context.run(model_resolver)
    [baseline] = model_resolver.outputs['model'].get()
    assert baseline.id == models[1].id and baseline.uri == models[1].uri
    assert sorted(os.listdir(baseline.uri)) == sorted(os.listdir(models[1].uri))
    evaluator = tfx.components.Evaluator(
        examples=Channel(Examples, artifacts=[Examples(uri=baseline.uri, id=99)]),
        model=Channel(tfx.types.standard_artifacts.Model, artifacts=[models[2]]),
        baseline_model=model_resolver.outputs['model'], eval_config={})
    assert evaluator.inputs["baseline_model"].get() == [baseline]
    # a newer blessing is seen at the next run: a resolution is never cached
    trainer = FakeTrainer(seed=4)
    context.run(trainer)
    context.run(FakeEvaluator(model=trainer.outputs["model"]))
    context.run(model_resolver)
    assert model_resolver.outputs['model'].get()[0].id == trainer.outputs["model"].get()[0].id


def test_importer_registers_an_existing_folder(tmp_path):
    from toolkit import InteractiveContext

    folder = tmp_path / "curated_schema"
    folder.mkdir()
    (folder / "schema.pbtxt").write_text('feature { name: "x" type: INT }\n')
    context = InteractiveContext(pipeline_name="imp", pipeline_root=str(tmp_path / "root"))
    importer = tfx.dsl.Importer(source_uri=str(folder),
                                artifact_type=tfx.types.standard_artifacts.Schema
                                ).with_id("import_schema")
    assert importer.imported(context.store).id is None
    context.run(importer)
    [schema] = importer.outputs["result"].get()
    assert schema.uri == str(folder) and schema.id is not None
    assert [f.name for f in schema.load().feature] == ["x"]
    assert sorted(os.listdir(folder)) == ["schema.pbtxt"]
    again = tfx.dsl.Importer(source_uri=str(folder),
                             artifact_type=tfx.types.standard_artifacts.Schema).with_id("again")
    context.run(again)
    assert again.outputs["result"].get()[0].id == schema.id


def test_v1_is_light_and_nothing_below_imports_it():
    import subprocess
    import sys

    from test_architecture import PACKAGE, import_graph

    graph = import_graph(PACKAGE)
    importers = sorted(m for m, deps in graph.items()
                       if not m.startswith("toolkit.v1") and any(d.startswith("toolkit.v1")
                                                                 for d in deps))
    assert importers == []
    code = ("from toolkit import v1 as tfx\n"
            "tfx.components.Trainer, tfx.dsl.Resolver, tfx.proto.TrainArgs\n"
            "tfx.types.standard_artifacts.Model\n"
            "import sys\n"
            "print(sorted(m for m in ('tensorflow', 'apache_beam', 'tensorflow_model_analysis')"
            " if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=REPO, check=True).stdout
    assert out.strip() == "[]"


def test_trainer_names_the_import_order_when_tf_keras_is_already_keras_3():
    """TFX's tutorials import TFMA before tfx; there, tf.keras is bound to Keras 3 before
    ``import toolkit`` can ask for Keras 2, and the Trainer says so (first import order),
    while the toolkit-first order gives Keras 2 and no note."""
    import subprocess
    import sys

    probe = ("import {first}, {second}, tensorflow as tf\n"
             "from toolkit.components.trainer import _keras_bound_too_early\n"
             "print('NOTE:', _keras_bound_too_early(tf))\n")
    notes = {}
    for first, second in (("tensorflow_model_analysis", "toolkit"),
                          ("toolkit", "tensorflow_model_analysis")):
        done = subprocess.run([sys.executable, "-c", probe.format(first=first, second=second)],
                              capture_output=True, text=True, timeout=300,
                              env={k: v for k, v in os.environ.items()
                                   if k != "TF_USE_LEGACY_KERAS"})
        assert done.returncode == 0, done.stderr[-2000:]
        notes[first] = done.stdout.split("NOTE: ", 1)[1].strip()
    assert notes["tensorflow_model_analysis"].startswith("tf.keras is Keras 3 in this process")
    assert "import toolkit first" in notes["tensorflow_model_analysis"]
    assert notes["toolkit"] == "None"


def test_module_files_importing_tfx_get_the_stand_in(tmp_path):
    """A TFX module file's own imports (``from tfx import v1 as tfx``, TFX's fn_args_utils
    path, ``tfx.v1.utils.parse_pbtxt_file``) resolve while the toolkit runs it, to the
    toolkit's classes, and leave no ``tfx`` module behind."""
    import sys

    from toolkit.components import DataAccessor, FnArgs
    from toolkit.components._module import load_module_file, tfx_names

    module_file = tmp_path / "tfx_style_module.py"
    module_file.write_text(
        "from tfx import v1 as tfx\n"
        "from tfx.components.trainer.fn_args_utils import DataAccessor, FnArgs\n"
        "def run_fn(fn_args: tfx.components.FnArgs):\n"
        "    return tfx.components.FnArgs, FnArgs, DataAccessor\n"
        "def schema_from(path):\n"
        "    from tfx.v1.utils import parse_pbtxt_file\n"
        "    from tensorflow_metadata.proto.v0 import schema_pb2\n"
        "    return parse_pbtxt_file(path, schema_pb2.Schema())\n")
    schema_file = tmp_path / "schema.pbtxt"
    schema_file.write_text('feature { name: "fare" type: FLOAT }\n')
    with tfx_names():
        module = load_module_file(str(module_file))
        stand_in_fn_args, fn_args, accessor = module.run_fn(None)
        schema = module.schema_from(str(schema_file))
    assert stand_in_fn_args is FnArgs and fn_args is FnArgs and accessor is DataAccessor
    assert [f.name for f in schema.feature] == ["fare"]
    assert "tfx" not in sys.modules


def _stand_in_state() -> dict:
    import sys

    return {name: sys.modules.get(name, "absent") for name in sys.modules
            if name == "tfx" or name.startswith("tfx.")}


def test_the_tfx_stand_in_holds_while_any_thread_is_inside():
    """Module files run in threads (components in threads): the stand-in stays while one
    thread is inside even after another that entered first has left, and the last to leave
    restores ``sys.modules`` as it was."""
    import sys
    import threading

    from toolkit.components import FnArgs
    from toolkit.components._module import tfx_names

    before = _stand_in_state()
    assert "tfx" not in before  # the real tfx is not installed here (see STACK.md)
    failures: list[str] = []

    def inside(who: str) -> None:
        module = sys.modules.get("tfx")
        if module is None or not getattr(module, "__toolkit_stand_in__", False):
            failures.append(f"{who}: no stand-in while inside")
            return
        from tfx.components.trainer.fn_args_utils import FnArgs as imported

        if imported is not FnArgs:
            failures.append(f"{who}: tfx names another FnArgs")

    # A enters, B enters, A leaves, B is still inside: in this order, every time
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()

    def first() -> None:
        with tfx_names():
            inside("A")
            a_in.set()
            b_in.wait(10)
        a_out.set()

    def second() -> None:
        a_in.wait(10)
        with tfx_names():
            b_in.set()
            a_out.wait(10)
            inside("B after A left")

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert failures == []
    assert _stand_in_state() == before

    # many threads entering and leaving at once, some nested
    start = threading.Barrier(8)

    def busy(index: int) -> None:
        start.wait(10)
        for round_ in range(200):
            with tfx_names():
                inside(f"thread {index} round {round_}")
                if round_ % 7 == index % 7:
                    with tfx_names():
                        inside(f"thread {index} nested")
                inside(f"thread {index} round {round_} after nested")

    threads = [threading.Thread(target=busy, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert failures[:3] == []
    assert _stand_in_state() == before
