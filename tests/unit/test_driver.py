"""The driver, the metadata store and the cache, with tiny components: seconds, no TFDV.

``scripts/test tests/unit`` checks a change to the context, publishing, the cache key or
the metadata store in a few seconds; the full suite then checks the real components.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import toolkit
from toolkit import InteractiveContext
from toolkit.artifacts import Examples, Model
from toolkit.base_component import BaseComponent, ExecutionParameter, InputSpec
from toolkit.errors import ComponentError, GateError, UpstreamNotRunError, WiringError
from toolkit.metadata import MetadataStore, sqlite_config


class WriteRows(BaseComponent):
    """Writes ``rows`` lines of ``text`` to examples/Split-train/data.txt; records calls."""

    OUTPUTS = {"examples": Examples}
    PARAMETERS = {"rows": ExecutionParameter(int, default=3),
                  "text": ExecutionParameter(str, default="row"),
                  "fail": ExecutionParameter(bool, default=False)}
    calls: list[int] = []

    def Do(self, input_dict, output_dict, exec_properties, ctx):
        WriteRows.calls.append(ctx.execution_id)
        out = output_dict["examples"][0]
        os.makedirs(out.split_uri("train"))
        with open(os.path.join(out.split_uri("train"), "data.txt"), "w") as handle:
            for _ in range(exec_properties["rows"]):
                handle.write(exec_properties["text"] + "\n")
                if exec_properties["fail"]:
                    raise RuntimeError("disk on fire\nsecond line of the error")
        out.split_names = ["train"]


class CountRows(BaseComponent):
    """Reads WriteRows' file, runs the function in ``module_file`` on the count and writes
    it as a "model"; its gate fails when the count is below ``minimum``."""

    INPUTS = {"examples": InputSpec(Examples)}
    OUTPUTS = {"model": Model}
    PARAMETERS = {"module_file": ExecutionParameter(str, required=True, fingerprint="file"),
                  "minimum": ExecutionParameter(int, default=0)}

    def Do(self, input_dict, output_dict, exec_properties, ctx):
        examples = input_dict["examples"][0]
        with open(os.path.join(examples.split_uri("train"), "data.txt")) as handle:
            count = len(handle.read().splitlines())
        scope: dict = {}
        exec(Path(exec_properties["module_file"]).read_text(), scope)
        model = output_dict["model"][0]
        with open(os.path.join(model.uri, "count.json"), "w") as handle:
            json.dump({"count": scope["transform"](count)}, handle)

    def gate(self, outputs, exec_properties):
        with open(os.path.join(outputs["model"][0].uri, "count.json")) as handle:
            count = json.load(handle)["count"]
        minimum = exec_properties["minimum"]
        return f"count {count} is below {minimum}" if count < minimum else None


@pytest.fixture
def module_file(tmp_path) -> Path:
    path = tmp_path / "module.py"
    path.write_text("def transform(n):\n    return n\n")
    return path


@pytest.fixture
def context(tmp_path) -> InteractiveContext:
    WriteRows.calls.clear()
    return InteractiveContext(pipeline_name="unit", pipeline_root=str(tmp_path / "root"))


def _count(channel) -> int:
    with open(os.path.join(channel.get()[0].uri, "count.json")) as handle:
        return json.load(handle)["count"]


def test_run_publishes_records_and_reuses(context, module_file):
    rows = WriteRows(rows=4)
    first = context.run(rows)
    assert not first.cached and WriteRows.calls == [first.execution_id]
    examples = rows.outputs["examples"].get()[0]
    assert examples.uri == os.path.join(context.pipeline_root, "WriteRows", "examples",
                                        str(first.execution_id))
    assert examples.split_names == ["train"] and examples.id is not None
    assert os.path.isfile(os.path.join(examples.uri, ".toolkit-manifest.json"))
    leftovers = [p for p in Path(context.pipeline_root).rglob(".staging-*")]
    assert leftovers == []

    count = CountRows(examples=rows.outputs["examples"], module_file=str(module_file))
    assert _count(context.run(count).component.outputs["model"]) == 4

    again = context.run(rows)
    assert again.cached and WriteRows.calls == [first.execution_id]
    assert rows.outputs["examples"].get()[0].uri == examples.uri
    rows_table = context.executions("WriteRows")
    assert [r["state"] for r in rows_table] == ["COMPLETE", "CACHED"]
    assert rows_table[1]["cached_from"] == first.execution_id
    lineage = context.lineage(count.outputs["model"])
    assert [e["component_id"] for e in lineage.executions] == ["CountRows", "WriteRows"]
    assert "WriteRows" in repr(lineage) and "CountRows" in repr(context.executions())


def test_cache_key_covers_parameters_module_content_and_inputs(context, module_file):
    rows = WriteRows(rows=2)
    context.run(rows)
    count = CountRows(examples=rows.outputs["examples"], module_file=str(module_file))
    assert not context.run(count).cached
    assert context.run(count).cached
    assert context.run(count, enable_cache=False).cached is False

    module_file.write_text("def transform(n):\n    return n * 10\n")  # same path, new content
    changed = context.run(count)
    assert not changed.cached and _count(count.outputs["model"]) == 20

    context.run(WriteRows(rows=5))  # a new upstream artifact: downstream runs again
    recount = CountRows(examples=context.run(WriteRows(rows=5)).component.outputs["examples"],
                        module_file=str(module_file))
    assert not context.run(recount).cached and _count(recount.outputs["model"]) == 50

    assert not context.run(WriteRows(rows=2, text="other")).cached  # a parameter changed


def test_cached_outputs_that_are_gone_or_changed_are_recomputed(context, capsys):
    rows = WriteRows(rows=3)
    first = context.run(rows).execution_id
    data = Path(rows.outputs["examples"].get()[0].uri) / "Split-train" / "data.txt"
    data.write_text("row\n")  # same file, other size: no longer what was recorded
    rerun = context.run(rows)
    assert not rerun.cached and "missing or damaged" in capsys.readouterr().out
    states = {r["id"]: r["state"] for r in context.executions("WriteRows")}
    assert states[first] == "FAILED" and states[rerun.execution_id] == "COMPLETE"

    import shutil

    shutil.rmtree(rows.outputs["examples"].get()[0].uri)  # the whole folder is gone
    assert not context.run(rows).cached
    assert context.run(rows).cached


def test_failed_execution_leaves_nothing_behind(context):
    failing = WriteRows(rows=2, fail=True)
    with pytest.raises(ComponentError) as caught:
        context.run(failing)
    message = str(caught.value)
    assert message.startswith("WriteRows: RuntimeError: disk on fire")
    assert "\n" not in message.splitlines()[0] and "second line" not in message
    [row] = context.executions("WriteRows")
    assert row["state"] == "FAILED" and "disk on fire" in row["error"]
    folder = Path(context.pipeline_root) / "WriteRows" / "examples"
    assert [p.name for p in folder.iterdir()] == []
    assert failing.outputs["examples"].get() == []
    assert not (Path(context.pipeline_root) / ".tmp" / f"{row['id']}-{os.getpid()}").exists()


def test_gate_reports_interactively_and_stops_in_production(context, module_file):
    rows = WriteRows(rows=2)
    context.run(rows)
    strict = CountRows(examples=rows.outputs["examples"], module_file=str(module_file), minimum=5)
    assert context.run(strict).gate_failure == "count 2 is below 5"
    toolkit.set_mode("production")
    try:
        with pytest.raises(GateError, match="CountRows: count 2 is below 5"):
            context.run(strict)
    finally:
        toolkit.set_mode(None)
    assert toolkit.get_mode() == "interactive"
    # the gate stops the run after recording: the execution and its output exist
    assert [r["state"] for r in context.executions("CountRows")] == ["COMPLETE", "CACHED"]


def test_wiring_and_order_errors_name_the_component(context, module_file):
    rows = WriteRows()
    with pytest.raises(UpstreamNotRunError, match="WriteRows"):
        context.run(CountRows(examples=rows.outputs["examples"], module_file=str(module_file)))
    counted = CountRows(examples=rows.outputs["examples"], module_file=str(module_file))
    with pytest.raises(WiringError, match="expects Examples.*of type Model"):
        CountRows(examples=counted.outputs["model"], module_file=str(module_file))
    with pytest.raises(TypeError, match="unexpected argument 'row'.*fail, rows, text"):
        WriteRows(row=1)


def test_a_new_context_on_the_same_root_continues(tmp_path, module_file):
    root = str(tmp_path / "root")
    first = InteractiveContext(pipeline_name="unit", pipeline_root=root)
    rows = WriteRows(rows=3)
    made = first.run(rows).execution_id
    later = InteractiveContext(pipeline_name="unit", pipeline_root=root)  # a new kernel
    again = later.run(WriteRows(rows=3))
    assert again.cached and again.outputs["examples"][0].uri.endswith(f"/{made}")
    other = InteractiveContext(pipeline_name="other", pipeline_root=root)
    assert other.executions() == [] and len(later.executions()) == 2


def test_metadata_store_records_lineage(tmp_path):
    store = MetadataStore("p", sqlite_config(str(tmp_path / "m.sqlite")))
    assert not store.has_executions()
    made = Examples(uri=str(tmp_path / "a"), producer="Gen")
    made.split_names = ["train", "eval"]
    gen = store.start_execution("Gen", "Gen", "k1", "{}", "{}", {})
    assert store.execution(gen)["state"] == "RUNNING"
    store.complete_execution(gen, {"examples": [made]}, 0.5)
    assert made.id is not None and store.producer_of(made.id) == gen
    use = store.start_execution("Use", "Use", "k2", "{}", "{}", {"examples": [made]})
    model = Model(uri=str(tmp_path / "m"), producer="Use")
    store.complete_execution(use, {"model": [model]}, 1.0)
    [loaded] = store.inputs_of(use)["examples"]
    assert loaded.id == made.id and loaded.split_names == ["train", "eval"]
    assert store.find_cached("Gen", "k1")[0] == gen and store.find_cached("Gen", "other") is None
    store.mark_artifacts_deleted([made])
    assert store.artifact(made.id).state != "LIVE"
    store.fail_execution(use, "boom")
    row = store.execution(use)
    assert row["state"] == "FAILED" and row["error"] == "boom"
    reopened = MetadataStore("p", sqlite_config(str(tmp_path / "m.sqlite")))
    assert [r["id"] for r in reopened.executions()] == [gen, use]


class CompareRows(BaseComponent):
    """Reads two Examples inputs, which may be the same artifact (a split against itself)."""

    INPUTS = {"examples": InputSpec(Examples), "baseline": InputSpec(Examples)}
    OUTPUTS = {"model": Model}

    def Do(self, input_dict, output_dict, exec_properties, ctx):
        same = input_dict["examples"][0].uri == input_dict["baseline"][0].uri
        with open(os.path.join(output_dict["model"][0].uri, "same.json"), "w") as handle:
            json.dump({"same": same}, handle)


def test_one_artifact_wired_to_two_inputs_is_recorded_under_both(context):
    rows = WriteRows(rows=2)
    context.run(rows)
    compare = CompareRows(examples=rows.outputs["examples"], baseline=rows.outputs["examples"])
    result = context.run(compare)
    made = rows.outputs["examples"].get()[0].id
    inputs = context.store.inputs_of(result.execution_id)
    assert {k: [a.id for a in v] for k, v in inputs.items()} == {"examples": [made],
                                                                 "baseline": [made]}
    assert context.run(compare).cached
    assert [e["component_id"] for e in context.lineage(compare.outputs["model"]).executions] == [
        "CompareRows", "WriteRows"]
