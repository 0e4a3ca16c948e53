"""A cached execution is reused only while everything it claims still exists, including what
it did outside its artifact folders (the Pusher's version folder); the record says whether
a push happened now or came from cache. Tiny components, a stand-in SavedModel: seconds."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from toolkit import InteractiveContext
from toolkit.artifacts import Examples, Model
from toolkit.base_component import BaseComponent, ExecutionParameter, InputSpec
from toolkit.components import Pusher
from toolkit.components.pusher import versions


class StandInModel(BaseComponent):
    """A Model whose serving folder holds files shaped like a SavedModel (no TensorFlow)."""

    OUTPUTS = {"model": Model}

    def Do(self, input_dict, output_dict, exec_properties, ctx):
        serving = Path(output_dict["model"][0].uri, "Format-Serving")
        (serving / "variables").mkdir(parents=True)
        (serving / "saved_model.pb").write_bytes(b"\x08\x01" * 500)
        (serving / "variables" / "variables.data-00000-of-00001").write_bytes(b"\x00" * 4000)


class Export(BaseComponent):
    """Pusher-like custom component: copies its input's file to ``target`` (outside its
    artifact folder) and claims it; records which earlier claim each run replaced."""

    INPUTS = {"examples": InputSpec(Examples, optional=True)}
    OUTPUTS = {"examples": Examples}
    PARAMETERS = {"target": ExecutionParameter(str, required=True)}
    replaced: list = []

    def Do(self, input_dict, output_dict, exec_properties, ctx):
        Export.replaced.append(ctx.replaced_outputs)
        Path(exec_properties["target"]).write_text(f"execution {ctx.execution_id}\n")
        Path(output_dict["examples"][0].uri, "claim.json").write_text(
            json.dumps({"target": exec_properties["target"]}))

    def missing_external_effects(self, outputs):
        claim = json.loads(Path(outputs["examples"][0].uri, "claim.json").read_text())
        if not os.path.isfile(claim["target"]):
            return f"export {claim['target']} is gone; exporting again"
        return None


@pytest.fixture
def context(tmp_path) -> InteractiveContext:
    return InteractiveContext(pipeline_name="claims", pipeline_root=str(tmp_path / "root"))


def test_a_component_whose_outside_effect_is_gone_runs_again(context, tmp_path, capsys):
    Export.replaced.clear()
    target = tmp_path / "exported.txt"
    export = Export(target=str(target))
    first = context.run(export)
    assert context.run(export).cached
    target.unlink()
    capsys.readouterr()

    again = context.run(export)

    assert not again.cached and target.read_text() == f"execution {again.execution_id}\n"
    assert f"[Export] export {target} is gone; exporting again" in capsys.readouterr().out
    # the executor is told which claim it replaces; the first run replaced none
    assert Export.replaced[0] is None
    assert Export.replaced[1]["examples"][0].uri == first.outputs["examples"][0].uri
    # the earlier execution stays a true record of what it did; the new one is reused next
    rows = {r["id"]: r for r in context.executions("Export")}
    assert rows[first.execution_id]["state"] == "COMPLETE"
    assert context.run(export).cached


def test_component_without_outside_effects_is_reused_as_before(context, tmp_path):
    export = Export(target=str(tmp_path / "kept.txt"))
    context.run(export)
    result = context.run(export)
    assert result.cached and result.outcome is None
    assert result.to_dict()["outcome"] is None


@pytest.fixture
def pushed(context, tmp_path):
    """A stand-in model pushed once by the real Pusher; the run's context, pusher, result."""
    model = StandInModel()
    context.run(model)
    serving = tmp_path / "serving" / "model"
    pusher = Pusher(model=model.outputs["model"], push_destination=str(serving),
                    allowed_root=str(tmp_path / "serving"), require_blessing=False)
    return context, pusher, serving, context.run(pusher)


def test_pusher_reports_pushed_now_then_already_pushed_from_cache(pushed):
    context, pusher, serving, first = pushed
    version = first.outputs["pushed_model"][0].properties["pushed_version"]
    assert versions(str(serving)) == [int(version)]
    assert first.outcome == f"pushed now as version {version}"

    cached = context.run(pusher)

    assert cached.cached
    assert cached.outcome == f"already pushed as version {version} (cached)"
    assert cached.to_dict()["outcome"] == f"already pushed as version {version} (cached)"
    assert cached.to_dict()["cached"] is True
    assert f"already pushed as version {version} (cached)" in repr(cached).splitlines()[1]
    assert f"already pushed as version {version} (cached)" in cached._repr_html_()
    rows = context.executions("Pusher")
    assert [(r["state"], r["outcome"]) for r in rows] == [
        ("COMPLETE", f"pushed now as version {version}"),
        ("CACHED", f"already pushed as version {version} (cached)")]
    table = context.executions()
    assert "outcome" in repr(table).splitlines()[0]
    assert f"already pushed as version {version} (cached)" in table._repr_html_()
    assert versions(str(serving)) == [int(version)]


def test_wiped_serving_folder_is_pushed_again_as_a_new_version(pushed, capsys):
    context, pusher, serving, first = pushed
    old = first.outputs["pushed_model"][0].properties["pushed_version"]
    shutil.rmtree(serving)
    capsys.readouterr()

    again = context.run(pusher)

    new = again.outputs["pushed_model"][0].properties["pushed_version"]
    assert not again.cached and int(new) > int(old)
    assert versions(str(serving)) == [int(new)]
    assert (f"[Pusher] pushed version {old} at {os.path.realpath(serving)} is gone; "
            "pushing again") in capsys.readouterr().out
    assert again.outcome == f"pushed now as version {new}"
    assert [r["outcome"] for r in context.executions("Pusher")] == [
        f"pushed now as version {old}", f"pushed now as version {new}"]
    assert context.run(pusher).outcome == f"already pushed as version {new} (cached)"


def test_a_lost_version_number_is_never_pushed_again(context, tmp_path):
    """Versions normally follow the clock; a destination that already held a version ahead
    of it makes the push take the next number, and after a wipe the re-push must still go
    above the lost one, never back to the clock."""
    model = StandInModel()
    context.run(model)
    serving = tmp_path / "serving" / "model"
    ahead = 4_000_000_000
    (serving / str(ahead)).mkdir(parents=True)
    pusher = Pusher(model=model.outputs["model"], push_destination=str(serving),
                    allowed_root=str(tmp_path / "serving"), require_blessing=False)
    first = context.run(pusher).outputs["pushed_model"][0].properties["pushed_version"]
    assert int(first) == ahead + 1
    shutil.rmtree(serving)

    again = context.run(pusher).outputs["pushed_model"][0].properties["pushed_version"]

    assert int(again) > int(first)


def test_a_changed_pushed_version_is_pushed_again(pushed, capsys):
    context, pusher, serving, first = pushed
    old = first.outputs["pushed_model"][0].properties["pushed_version"]
    (serving / old / "variables" / "variables.data-00000-of-00001").write_bytes(b"\x00" * 10)

    again = context.run(pusher)

    assert not again.cached
    assert f"pushed version {old} at {os.path.realpath(serving)} is incomplete" in (
        capsys.readouterr().out)
    assert len(versions(str(serving))) == 2


def test_a_model_not_pushed_has_nothing_outside_to_check(context, tmp_path):
    from toolkit.artifacts import ModelBlessing

    class Refuse(BaseComponent):
        OUTPUTS = {"blessing": ModelBlessing}

        def Do(self, input_dict, output_dict, exec_properties, ctx):
            output_dict["blessing"][0].properties.update(blessed=0, reason="AUC too low")

    model, refuse = StandInModel(), Refuse()
    context.run(model)
    context.run(refuse)
    pusher = Pusher(model=model.outputs["model"], model_blessing=refuse.outputs["blessing"],
                    push_destination=str(tmp_path / "serving"), allowed_root=str(tmp_path))
    first = context.run(pusher)
    assert first.outcome.startswith("not pushed: model_blessing")
    again = context.run(pusher)
    assert again.cached and again.outcome == first.outcome
