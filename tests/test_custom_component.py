"""Custom components made with ``@component``: run, cache, lineage, errors."""
from __future__ import annotations

import json
import os
import textwrap
from typing import Optional

import pytest

from toolkit.artifacts import Examples, ExampleStatistics, Model
from toolkit.custom import InputArtifact, OutputArtifact, Parameter, component


@pytest.fixture(scope="module")
def context(taxi_pipeline):
    """The data pipeline's root, under a pipeline name of its own."""
    from toolkit import InteractiveContext

    return InteractiveContext(pipeline_name="taxi_custom", pipeline_root=taxi_pipeline.root)


@component
def FareFilter(examples: InputArtifact[Examples], filtered: OutputArtifact[Examples],
               max_fare: Parameter[float] = 100.0, note: str = ""):
    """Keeps the trips with a fare up to ``max_fare``, split by split."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    counts = {}
    for split in examples.split_names:
        table = pq.read_table(examples.split_uri(split))
        table = table.filter(pc.less_equal(table.column("fare"), max_fare))
        os.makedirs(filtered.split_uri(split))
        pq.write_table(table, os.path.join(filtered.split_uri(split), "data.parquet"))
        counts[split] = table.num_rows
    filtered.split_names = examples.split_names
    filtered.properties["payload_format"] = "FORMAT_PARQUET"
    filtered.properties["row_counts"] = json.dumps(counts)


def test_custom_component_runs_like_a_standard_one(taxi_pipeline, context):
    from toolkit.components import StatisticsGen

    fares = FareFilter(examples=taxi_pipeline.example_gen.outputs["examples"], max_fare=20.0)
    assert fares.id == "FareFilter" and set(fares.outputs) == {"filtered"}
    result = context.run(fares)
    assert not result.cached
    filtered = fares.outputs["filtered"].get()[0]
    assert isinstance(filtered, Examples) and filtered.split_names == ["train", "eval"]
    import pandas as pd

    train = pd.read_parquet(filtered.split_uri("train"))
    assert len(train) > 1000 and train["fare"].max() <= 20.0
    # its output feeds a standard component
    statistics = StatisticsGen(examples=fares.outputs["filtered"]).with_id("FilteredStatistics")
    context.run(statistics)
    assert statistics.outputs["statistics"].get()[0].split_names == ["train", "eval"]
    lineage = context.lineage(statistics.outputs["statistics"])
    assert [e["component_id"] for e in lineage.executions] == [
        "FilteredStatistics", "FareFilter", "CsvExampleGen"]


def test_custom_component_caches_on_inputs_parameters_and_source(taxi_pipeline, context):
    examples = taxi_pipeline.example_gen.outputs["examples"]
    first = context.run(FareFilter(examples=examples, max_fare=30.0))
    again = context.run(FareFilter(examples=examples, max_fare=30.0))
    assert again.cached and again.outputs["filtered"][0].id == first.outputs["filtered"][0].id
    assert not context.run(FareFilter(examples=examples, max_fare=31.0)).cached
    recorded = json.loads(context.executions("FareFilter")[-1]["parameters"])
    assert recorded == {"max_fare": 31.0, "note": ""}

    # the same component name with an edited body is a different computation
    namespace: dict = {}
    exec(textwrap.dedent('''
        import os
        from toolkit.artifacts import Examples
        from toolkit.custom import InputArtifact, OutputArtifact, Parameter, component

        @component
        def FareFilter(examples: InputArtifact[Examples], filtered: OutputArtifact[Examples],
                       max_fare: Parameter[float] = 100.0, note: str = ""):
            filtered.split_names = []
    '''), namespace)
    edited = namespace["FareFilter"]
    assert edited.EXECUTOR_VERSION != FareFilter.EXECUTOR_VERSION
    assert not context.run(edited(examples=examples, max_fare=30.0)).cached


def test_parameters_are_checked_at_construction(taxi_pipeline):
    examples = taxi_pipeline.example_gen.outputs["examples"]
    with pytest.raises(TypeError, match="max_fare.*float.*str"):
        FareFilter(examples=examples, max_fare="cheap")
    with pytest.raises(TypeError, match="unexpected argument 'fare'"):
        FareFilter(examples=examples, fare=3.0)
    positional = FareFilter(examples, 12.5)
    assert positional.exec_properties["max_fare"] == 12.5
    from toolkit.errors import WiringError

    with pytest.raises(WiringError, match="expects Examples"):
        FareFilter(examples=taxi_pipeline.statistics_gen.outputs["statistics"])


@component
def Summarize(statistics: InputArtifact[ExampleStatistics], model: OutputArtifact[Model],
              baseline: Optional[InputArtifact[Model]] = None, label: str = "x"):
    """Fails on purpose when asked to, to show how a failure reads."""
    if label == "fail":
        total = sum([1, 2])
        raise RuntimeError(f"cannot summarize {total} splits")
    with open(os.path.join(model.uri, "summary.txt"), "w") as handle:
        handle.write(f"{statistics.split_names} baseline={baseline}")


def test_optional_inputs_and_failures(taxi_pipeline, context):
    from toolkit.errors import ComponentError

    stats = taxi_pipeline.statistics_gen.outputs["statistics"]
    assert Summarize.INPUTS["baseline"].optional
    ok = Summarize(statistics=stats)
    context.run(ok)
    with open(os.path.join(ok.outputs["model"].get()[0].uri, "summary.txt")) as handle:
        assert handle.read() == "['train', 'eval'] baseline=None"
    failing = Summarize(statistics=stats, label="fail").with_id("SummarizeFail")
    with pytest.raises(ComponentError) as info:
        context.run(failing)
    message = str(info.value)
    assert message.startswith("SummarizeFail: test_custom_component.py: Summarize raised "
                              "RuntimeError: cannot summarize 3 splits")
    assert "(test_custom_component.py, line" in message and "\n" not in message
    assert context.executions("SummarizeFail")[-1]["state"] == "FAILED"
    assert not os.listdir(os.path.join(context.pipeline_root, "SummarizeFail", "model"))


def test_declarations_are_validated():
    from toolkit.errors import ToolkitError

    with pytest.raises(ToolkitError, match="needs an annotation"):
        @component
        def NoHints(examples):
            pass
    with pytest.raises(ToolkitError, match="has type"):
        @component
        def BadType(examples: InputArtifact[Examples], when: object = None):
            pass
    with pytest.raises(ToolkitError, match="artifact type"):
        @component
        def NotArtifact(examples: InputArtifact[int]):
            pass


def test_returning_a_value_is_an_error(taxi_pipeline, context):
    from toolkit.errors import ComponentError

    @component
    def Returns(examples: InputArtifact[Examples], out: OutputArtifact[Model]):
        return 42

    with pytest.raises(ComponentError, match="returned a int; a component function returns "
                                             "nothing"):
        context.run(Returns(examples=taxi_pipeline.example_gen.outputs["examples"]))
