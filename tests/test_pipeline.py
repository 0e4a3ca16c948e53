"""``tfx.dsl.Pipeline`` and ``tfx.orchestration.LocalDagRunner``: order from the wiring,
runs through the notebook's launcher (cache, records, failures), TFX's ML Metadata
contexts, and ``toolkit.latest_artifacts``.

The components are tiny but real: custom components made with ``@component`` and one
class-based component whose module file enters its cache key, as the Trainer's does.
Expected values (sums, counts, which artifacts a context holds) are computed here from
the inputs, not read from the toolkit.
"""
from __future__ import annotations

import json
import os

import pytest

import toolkit
from toolkit import v1 as tfx
from toolkit.artifacts import Examples, Model
from toolkit.base_component import BaseComponent, ExecutionParameter, InputSpec
from toolkit.custom import InputArtifact, OutputArtifact, Parameter, component
from toolkit.errors import ComponentError, ToolkitError


@component
def MakeNumbers(numbers: OutputArtifact[Examples], count: Parameter[int] = 10):
    """Writes 0 .. count-1."""
    with open(os.path.join(numbers.uri, "numbers.json"), "w") as handle:
        json.dump(list(range(count)), handle)


@component
def SumNumbers(numbers: InputArtifact[Examples], total: OutputArtifact[Model]):
    """Writes the sum of its input's numbers."""
    with open(os.path.join(numbers.uri, "numbers.json")) as handle:
        values = json.load(handle)
    with open(os.path.join(total.uri, "total.json"), "w") as handle:
        json.dump(sum(values), handle)


@component
def Explode(numbers: InputArtifact[Examples], total: OutputArtifact[Model]):
    """Always fails, with a message the test looks for."""
    raise ValueError("exploded on purpose")


class FitFromModule(BaseComponent):
    """Like the Trainer: calls ``fit(numbers)`` from a user module file, whose content is
    part of the cache key."""

    INPUTS = {"numbers": InputSpec(Examples)}
    OUTPUTS = {"model": Model}
    PARAMETERS = {"module_file": ExecutionParameter(str, required=True, fingerprint="file")}

    def Do(self, input_dict, output_dict, exec_properties, ctx):
        namespace: dict = {}
        with open(exec_properties["module_file"]) as handle:
            exec(handle.read(), namespace)
        with open(os.path.join(input_dict["numbers"][0].uri, "numbers.json")) as handle:
            values = json.load(handle)
        with open(os.path.join(output_dict["model"][0].uri, "model.json"), "w") as handle:
            json.dump(namespace["fit"](values), handle)


def _read(artifact, name):
    with open(os.path.join(artifact.uri, name)) as handle:
        return json.load(handle)


def _executions(config, pipeline_name):
    """(component id, state) of every execution recorded under the pipeline's context,
    read with ml_metadata's own API."""
    from ml_metadata.metadata_store import metadata_store

    store = metadata_store.MetadataStore(config)
    context = store.get_context_by_type_and_name("pipeline", pipeline_name)
    names = {0: "UNKNOWN", 1: "NEW", 2: "RUNNING", 3: "COMPLETE", 4: "FAILED", 5: "CACHED"}
    return [(e.properties["component_id"].string_value, names[e.last_known_state])
            for e in sorted(store.get_executions_by_context(context.id), key=lambda e: e.id)]


# -- order ---------------------------------------------------------------------------------
def test_components_are_ordered_by_wiring_and_ties_keep_the_given_order():
    make = MakeNumbers(count=3)
    other = MakeNumbers(count=4).with_id("OtherNumbers")
    total = SumNumbers(numbers=make.outputs["numbers"])
    other_total = SumNumbers(numbers=other.outputs["numbers"]).with_id("OtherSum")
    pipeline = tfx.dsl.Pipeline(pipeline_name="order", pipeline_root="unused",
                                components=[other_total, total, make, other])
    # layer by layer (what reads nothing, then what reads only that), each layer in the
    # given order
    assert [c.id for c in pipeline.components] == [
        "MakeNumbers", "OtherNumbers", "OtherSum", "SumNumbers"]
    assert pipeline.components is not pipeline.components  # a copy each time
    assert toolkit.Pipeline is tfx.dsl.Pipeline and pipeline.enable_cache is False
    # the same object twice counts once
    again = tfx.dsl.Pipeline(pipeline_name="order", pipeline_root="unused",
                             components=[make, total, make])
    assert [c.id for c in again.components] == ["MakeNumbers", "SumNumbers"]


def test_a_loop_an_unlisted_upstream_and_a_duplicate_id_are_refused_by_name():
    make = MakeNumbers(count=3)
    first = SumNumbers(numbers=make.outputs["numbers"]).with_id("First")
    second = FitFromModule(numbers=make.outputs["numbers"], module_file=__file__).with_id("Second")
    # wire a loop after construction: First reads Second's output, Second reads First's
    first.inputs["numbers"] = second.outputs["model"]
    second.inputs["numbers"] = first.outputs["total"]
    with pytest.raises(ToolkitError, match=r"loops.*(First -> Second -> First|"
                                           r"Second -> First -> Second)"):
        tfx.dsl.Pipeline(pipeline_name="loop", pipeline_root="unused",
                         components=[make, first, second])

    make = MakeNumbers(count=3)
    total = SumNumbers(numbers=make.outputs["numbers"])
    with pytest.raises(ToolkitError, match=r"SumNumbers reads from MakeNumbers.*add them"):
        tfx.dsl.Pipeline(pipeline_name="unlisted", pipeline_root="unused", components=[total])
    with pytest.raises(ToolkitError, match=r"SumNumbers reads from another MakeNumbers"):
        tfx.dsl.Pipeline(pipeline_name="rebuilt", pipeline_root="unused",
                         components=[MakeNumbers(count=3), total])
    with pytest.raises(ToolkitError, match=r"id 'MakeNumbers'.*with_id"):
        tfx.dsl.Pipeline(pipeline_name="twice", pipeline_root="unused",
                         components=[make, MakeNumbers(count=4)])


# -- running -------------------------------------------------------------------------------
def _numbers(root):
    """A three-component pipeline with the cache on, in ``root``, against one SQLite store
    named by TFX's connection-config helper: (module file, config, pipeline factory)."""
    module = root / "fit_module.py"
    module.write_text("def fit(values):\n    return {'mean': sum(values) / len(values)}\n")
    config = tfx.orchestration.metadata.sqlite_metadata_connection_config(
        str(root / "metadata" / "metadata.db"))

    def pipeline():
        make = MakeNumbers(count=7)
        total = SumNumbers(numbers=make.outputs["numbers"])
        fit = FitFromModule(numbers=make.outputs["numbers"], module_file=str(module))
        return tfx.dsl.Pipeline(pipeline_name="numbers", pipeline_root=str(root / "pipeline"),
                                metadata_connection_config=config,
                                components=[fit, total, make], enable_cache=True)

    return module, config, pipeline


@pytest.fixture(scope="module")
def ran_twice(tmp_path_factory):
    """The numbers pipeline run twice against one store."""
    root = tmp_path_factory.mktemp("numbers")
    module, config, pipeline = _numbers(root)
    first = tfx.orchestration.LocalDagRunner().run(pipeline())
    second = tfx.orchestration.LocalDagRunner().run(pipeline())
    return root, module, config, pipeline, first, second


def test_a_run_computes_in_order_and_a_second_run_is_all_cache_hits(ran_twice):
    root, _, config, _, first, second = ran_twice
    assert list(first.results) == ["MakeNumbers", "FitFromModule", "SumNumbers"]
    assert first.cached == []
    assert second.cached == ["MakeNumbers", "FitFromModule", "SumNumbers"]
    total = first.results["SumNumbers"].outputs["total"][0]
    assert _read(total, "total.json") == sum(range(7))
    assert _read(first.results["FitFromModule"].outputs["model"][0], "model.json") == {
        "mean": sum(range(7)) / 7}
    # counted in the store: three computed, then three cached
    recorded = _executions(config, "numbers")
    assert [state for _, state in recorded] == ["COMPLETE"] * 3 + ["CACHED"] * 3
    assert os.path.isfile(root / "metadata" / "metadata.db")
    assert not os.path.exists(root / "pipeline" / "metadata.sqlite")  # the config's store only


def test_each_execution_joins_tfx_pipeline_node_and_run_contexts(ran_twice):
    from ml_metadata.metadata_store import metadata_store

    _, _, config, _, first, second = ran_twice
    store = metadata_store.MetadataStore(config)
    assert {"pipeline", "node", "pipeline_run"} <= {t.name for t in store.get_context_types()}
    nodes = {c.name for c in store.get_contexts_by_type("node")}
    assert {"numbers.MakeNumbers", "numbers.SumNumbers", "numbers.FitFromModule"} <= nodes
    # the node context of SumNumbers: its two executions, and its input and output artifacts
    node = store.get_context_by_type_and_name("node", "numbers.SumNumbers")
    executions = store.get_executions_by_context(node.id)
    assert len(executions) == 2
    assert {e.properties["component_id"].string_value for e in executions} == {"SumNumbers"}
    expected = {first.results["SumNumbers"].outputs["total"][0].uri,
                first.results["MakeNumbers"].outputs["numbers"][0].uri}
    assert {a.uri for a in store.get_artifacts_by_context(node.id)} == expected
    # one pipeline_run context per run, holding that run's three executions
    runs = {c.name: c for c in store.get_contexts_by_type("pipeline_run")}
    assert set(runs) == {first.run_id, second.run_id}
    for run in (first, second):
        ids = {r.execution_id for r in run.results.values()}
        in_context = {e.id for e in store.get_executions_by_context(runs[run.run_id].id)}
        assert len(in_context) == 3
        if run is first:
            assert in_context == ids
    # the pipeline context holds all six
    pipeline = store.get_context_by_type_and_name("pipeline", "numbers")
    assert len(store.get_executions_by_context(pipeline.id)) == 6


def test_latest_artifacts_reads_a_components_outputs_after_the_run(ran_twice):
    _, _, config, _, first, second = ran_twice
    found = toolkit.latest_artifacts(config, "numbers", "SumNumbers")
    assert list(found) == ["total"]
    [total] = found["total"]
    assert isinstance(total, Model) and _read(total, "total.json") == sum(range(7))
    # the latest execution is the second run's cache hit, which names the first's artifact
    assert total.id == first.results["SumNumbers"].outputs["total"][0].id
    # by SQLite path too; unknown names are refused with what is there
    path = config.sqlite.filename_uri
    assert toolkit.latest_artifacts(path, "numbers", "MakeNumbers")["numbers"][0].uri == (
        first.results["MakeNumbers"].outputs["numbers"][0].uri)
    with pytest.raises(ToolkitError, match=r"no completed execution of 'Trainer'.*MakeNumbers"):
        toolkit.latest_artifacts(config, "numbers", "Trainer")
    with pytest.raises(ToolkitError, match=r"no pipeline 'other'.*numbers"):
        toolkit.latest_artifacts(config, "other", "SumNumbers")
    with pytest.raises(ToolkitError, match="no metadata store at"):
        toolkit.latest_artifacts(path + ".missing", "numbers", "SumNumbers")


def test_a_module_file_change_reruns_only_what_reads_it_and_what_follows(tmp_path):
    module, config, pipeline = _numbers(tmp_path)  # its own store: the counts above stay
    assert tfx.orchestration.LocalDagRunner().run(pipeline()).cached == []
    module.write_text("def fit(values):\n    return {'max': max(values)}\n")
    third = tfx.orchestration.LocalDagRunner().run(pipeline())
    assert third.cached == ["MakeNumbers", "SumNumbers"]
    fit = third.results["FitFromModule"]
    assert not fit.cached and _read(fit.outputs["model"][0], "model.json") == {"max": 6}
    assert toolkit.latest_artifacts(config, "numbers", "FitFromModule")["model"][0].id == (
        fit.outputs["model"][0].id)


def test_a_failing_component_stops_the_run_and_later_ones_do_not_start(tmp_path, capsys):
    make = MakeNumbers(count=5)
    explode = Explode(numbers=make.outputs["numbers"])
    # later in the order (same layer, listed after), though it does not read Explode's output
    total = SumNumbers(numbers=make.outputs["numbers"]).with_id("AfterExplode")
    pipeline = tfx.dsl.Pipeline(pipeline_name="failing", pipeline_root=str(tmp_path),
                                components=[make, explode, total])
    with pytest.raises(ComponentError) as raised:
        tfx.orchestration.LocalDagRunner().run(pipeline)
    message = str(raised.value)
    assert "exploded on purpose" in message and "Explode" in message
    assert len(message.splitlines()) == 1
    assert "stopped at Explode; not started: AfterExplode" in capsys.readouterr().out
    # the default store sits in the pipeline root, as InteractiveContext keeps it
    from toolkit.metadata import sqlite_config

    recorded = _executions(sqlite_config(str(tmp_path / "metadata.sqlite")), "failing")
    assert recorded == [("MakeNumbers", "COMPLETE"), ("Explode", "FAILED")]


def test_enable_cache_off_by_default_computes_again(tmp_path):
    def pipeline():
        make = MakeNumbers(count=2)
        return tfx.dsl.Pipeline(pipeline_name="nocache", pipeline_root=str(tmp_path),
                                components=[make, SumNumbers(numbers=make.outputs["numbers"])])

    runner = tfx.orchestration.LocalDagRunner()
    assert runner.run(pipeline()).cached == []
    assert runner.run(pipeline()).cached == []
    with pytest.raises(ToolkitError, match="no pipeline_root"):
        runner.run(tfx.dsl.Pipeline(pipeline_name="rootless", components=[MakeNumbers()]))


def test_a_notebooks_components_run_as_a_pipeline(tmp_path):
    """Components first run cell by cell in a notebook context, then listed in a Pipeline
    on the same root: the runner finds the notebook's executions in the cache."""
    from toolkit import InteractiveContext

    context = InteractiveContext(pipeline_name="notebook", pipeline_root=str(tmp_path))
    make = MakeNumbers(count=4)
    total = SumNumbers(numbers=make.outputs["numbers"])
    context.run(make)
    notebook_result = context.run(total)
    run = tfx.orchestration.LocalDagRunner().run(tfx.dsl.Pipeline(
        pipeline_name="notebook", pipeline_root=str(tmp_path), components=[total, make],
        enable_cache=True))
    assert run.cached == ["MakeNumbers", "SumNumbers"]
    assert run.results["SumNumbers"].outputs["total"][0].id == (
        notebook_result.outputs["total"][0].id)
    assert _read(total.outputs["total"].get()[0], "total.json") == sum(range(4))
    # the notebook's executions joined their node contexts too
    found = toolkit.latest_artifacts(context.metadata_connection_config, "notebook",
                                     "SumNumbers")
    assert found["total"][0].id == notebook_result.outputs["total"][0].id
