"""Child process of the reliability tests: runs a pipeline, optionally freezing at a hook.

    python child_pipeline.py ROOT DATA [--pipeline data|taxi|push] [--upto COMPONENT]
                             [--pause COMPONENT=module:attr:before|after[@n]] [--marker FILE]
                             [--report FILE] [--serving DIR]

Components run in order up to ``--upto``. With ``--pause``, right before the named
component runs, ``attr`` of ``module`` (``Class.method`` allowed) is wrapped so that
its n-th call (default first) touches ``--marker`` and then sleeps forever, before or
after doing its work: the parent test SIGKILLs the process there. ``--report`` gets a
JSON record of what ran and of the results the tests compare between runs.

The metadata store is ``ROOT/metadata.sqlite``, unless ``TOOLKIT_MYSQL_HOST`` is set: then
it is the MySQL database named by ``TOOLKIT_MYSQL_HOST``, ``TOOLKIT_MYSQL_PORT``,
``TOOLKIT_MYSQL_DATABASE``, ``TOOLKIT_MYSQL_USER`` and ``TOOLKIT_MYSQL_PASSWORD`` (see
``toolkit.metadata_config.mysql_config_from_env``).
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time

#: module files are named through ``..`` (relative to the repository, the child's working
#: directory): resolved like any path, fingerprinted by content
NOTEBOOKS = os.path.join("tests", "..", "notebooks")
TRAIN_STEPS = 200


def install_pause(spec: str, marker: str) -> None:
    module_name, attr, when = spec.split(":")
    moment, _, nth = when.partition("@")
    wanted = int(nth or 1)
    module = importlib.import_module(module_name)
    owner, name = module, attr
    if "." in attr:
        class_name, name = attr.split(".")
        owner = getattr(module, class_name)
    original = getattr(owner, name)
    calls = {"n": 0}

    parent = os.getppid()

    def freeze() -> None:
        with open(marker, "w") as handle:
            handle.write(spec)
        while os.getppid() == parent:  # the test kills us here; if the test died, leave
            time.sleep(0.5)
        os._exit(3)

    def wrapper(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == wanted and moment == "before":
            freeze()
        result = original(*args, **kwargs)
        if calls["n"] == wanted and moment == "after":
            freeze()
        return result

    setattr(owner, name, wrapper)


def data_components(data: str):
    from toolkit.components import CsvExampleGen, ExampleValidator, SchemaGen, StatisticsGen

    example_gen = CsvExampleGen(input_base=data)
    statistics_gen = StatisticsGen(examples=example_gen.outputs["examples"])
    schema_gen = SchemaGen(statistics=statistics_gen.outputs["statistics"])
    validator = ExampleValidator(statistics=statistics_gen.outputs["statistics"],
                                 schema=schema_gen.outputs["schema"])
    return [example_gen, statistics_gen, schema_gen, validator]


def taxi_components(data: str, serving: str):
    import tensorflow_model_analysis as tfma

    from toolkit.components import Evaluator, Pusher, Trainer, Transform

    example_gen, statistics_gen, schema_gen, validator = data_components(data)
    transform = Transform(examples=example_gen.outputs["examples"],
                          schema=schema_gen.outputs["schema"],
                          module_file=os.path.join(NOTEBOOKS, "taxi_transform.py"))
    trainer = Trainer(module_file=os.path.join(NOTEBOOKS, "taxi_trainer.py"),
                      examples=transform.outputs["transformed_examples"],
                      transform_graph=transform.outputs["transform_graph"],
                      schema=schema_gen.outputs["schema"],
                      train_args={"num_steps": TRAIN_STEPS}, eval_args={"num_steps": 20})
    eval_config = tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(label_key="big_tipper", prediction_key="prediction")],
        slicing_specs=[tfma.SlicingSpec(), tfma.SlicingSpec(feature_keys=["payment_type"])],
        metrics_specs=[tfma.MetricsSpec(
            metrics=[tfma.MetricConfig(class_name="ExampleCount"),
                     tfma.MetricConfig(class_name="AUC")],
            per_slice_thresholds={"auc": tfma.PerSliceMetricThresholds(thresholds=[
                tfma.PerSliceMetricThreshold(
                    slicing_specs=[tfma.SlicingSpec()],
                    threshold=tfma.MetricThreshold(value_threshold=tfma.GenericValueThreshold(
                        lower_bound={"value": 0.5})))])})])
    evaluator = Evaluator(examples=example_gen.outputs["examples"],
                          model=trainer.outputs["model"],
                          transform_graph=transform.outputs["transform_graph"],
                          eval_config=eval_config)
    pusher = Pusher(model=trainer.outputs["model"], model_blessing=evaluator.outputs["blessing"],
                    push_destination=serving, allowed_root=os.path.dirname(serving))
    return [example_gen, statistics_gen, schema_gen, validator, transform, trainer, evaluator,
            pusher]


def push_components(serving: str):
    """A stand-in model (files shaped like a SavedModel) and a Pusher: no TensorFlow needed."""
    from toolkit.artifacts import Model
    from toolkit.components import Pusher
    from toolkit.custom import OutputArtifact, component

    @component
    def FakeTrainer(model: OutputArtifact[Model], files: int = 12):
        folder = os.path.join(model.uri, "Format-Serving")
        os.makedirs(os.path.join(folder, "variables"))
        with open(os.path.join(folder, "saved_model.pb"), "wb") as handle:
            handle.write(b"\x08\x01" * 50_000)
        for index in range(files):
            with open(os.path.join(folder, "variables", f"part-{index:02d}"), "wb") as handle:
                handle.write(bytes([index]) * 100_000)

    trainer = FakeTrainer()
    pusher = Pusher(model=trainer.outputs["model"], push_destination=serving,
                    allowed_root=os.path.dirname(serving), require_blessing=False)
    return [trainer, pusher]


def predictions(model_uri: str, examples_uri: str, rows: int = 40) -> list[float]:
    """The served model's scores for the first rows of the eval split (raw examples)."""
    import pyarrow.parquet as pq
    import tensorflow as tf

    from toolkit.components._model_io import serialize_examples

    table = pq.read_table(os.path.join(examples_uri, "Split-eval")).slice(0, rows)
    loaded = tf.saved_model.load(os.path.join(model_uri, "Format-Serving"))
    serving = loaded.signatures["serving_default"]
    out = serving(examples=tf.constant(serialize_examples(table.drop(["tips"]))))
    return [float(v) for v in next(iter(out.values())).numpy().reshape(-1)]


def _number(value):
    if isinstance(value, dict):
        value = value.get("doubleValue", value.get("value"))
    return float(value) if isinstance(value, (int, float)) else None


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("root")
    parser.add_argument("data")
    parser.add_argument("--pipeline", default="data", choices=["data", "taxi", "push"])
    parser.add_argument("--upto")
    parser.add_argument("--pause")
    parser.add_argument("--marker")
    parser.add_argument("--report")
    parser.add_argument("--serving")
    parser.add_argument("--start-at", type=float, help="wait until this time.time() to begin")
    args = parser.parse_args()

    from toolkit import InteractiveContext
    from toolkit.metadata_config import mysql_config_from_env

    if args.start_at:
        time.sleep(max(0.0, args.start_at - time.time()))
    context = InteractiveContext(pipeline_name="reliability", pipeline_root=args.root,
                                 metadata_connection_config=mysql_config_from_env())
    if args.pipeline == "data":
        components = data_components(args.data)
    elif args.pipeline == "taxi":
        components = taxi_components(args.data, args.serving)
    else:
        components = push_components(args.serving)
    pause_at, _, pause_spec = (args.pause or "").partition("=")
    report = {"pid": os.getpid(), "results": {}}
    for component in components:
        if component.id == pause_at:
            install_pause(pause_spec, args.marker)
        result = context.run(component)
        report["results"][component.id] = {
            "execution_id": result.execution_id, "cached": result.cached,
            "outputs": {k: [a.uri for a in v] for k, v in result.outputs.items()},
            "properties": {k: [dict(a.properties) for a in v] for k, v in result.outputs.items()}}
        if component.id == args.upto:
            break
    results = report["results"]
    if args.pipeline == "taxi" and "Trainer" in results:
        model = results["Trainer"]["outputs"]["model"][0]
        examples = results["CsvExampleGen"]["outputs"]["examples"][0]
        report["predictions"] = predictions(model, examples)
    if args.pipeline == "taxi" and "Evaluator" in results:
        evaluation = [c for c in components if c.id == "Evaluator"][0].outputs["evaluation"]
        overall = evaluation.get()[0].load().get_metrics_for_slice(())
        report["metrics"] = {name: _number(value) for name, value in (overall or {}).items()}
    if args.report:
        with open(args.report, "w") as handle:
            json.dump(report, handle, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
