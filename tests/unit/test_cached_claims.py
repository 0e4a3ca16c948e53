"""A cached execution is reused only while everything it claims still exists, including what
it did outside its artifact folders (the Pusher's version folder); the record says whether
a push happened now or came from cache. Tiny components, a stand-in SavedModel: seconds."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
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
    HAS_EXTERNAL_EFFECTS = True
    replaced: list = []

    def Do(self, input_dict, output_dict, exec_properties, ctx, effects):
        Export.replaced.append(effects.replaced)
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


VARIABLES = os.path.join("variables", "variables.data-00000-of-00001")


def _pushed_again(context, pusher, serving, old, capsys) -> str:
    """Run the Pusher again; assert it pushed a new version, not the cached one; its log."""
    capsys.readouterr()
    again = context.run(pusher)
    out = capsys.readouterr().out
    new = again.outputs["pushed_model"][0].properties["pushed_version"]
    assert not again.cached and int(new) > int(old), out
    assert versions(str(serving)) == [int(old), int(new)]
    return out


def test_a_pushed_version_with_fewer_bytes_is_pushed_again(pushed, capsys):
    context, pusher, serving, first = pushed
    old = first.outputs["pushed_model"][0].properties["pushed_version"]
    (serving / old / VARIABLES).write_bytes(b"\x00" * 10)

    _pushed_again(context, pusher, serving, old, capsys)


@pytest.mark.parametrize("restore_times", [False, True], ids=["edited", "edited-times-restored"])
def test_same_size_new_content_is_pushed_again(pushed, capsys, restore_times):
    """Other bytes of the same size, written in place (as an editor or ``cp`` over the file
    does), even with the file's times set back as ``cp -p`` or ``touch -r`` would."""
    context, pusher, serving, first = pushed
    old = first.outputs["pushed_model"][0].properties["pushed_version"]
    target = serving / old / VARIABLES
    before = target.stat()
    with open(target, "r+b") as handle:
        handle.write(b"\x01" * before.st_size)
    if restore_times:
        os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))
        assert target.stat().st_mtime_ns == before.st_mtime_ns

    out = _pushed_again(context, pusher, serving, old, capsys)

    assert (f"pushed version {old} at {os.path.realpath(serving)} is not what was pushed "
            f"({VARIABLES} (changed)); pushing again") in out


def test_an_added_or_missing_file_is_pushed_again(pushed, capsys):
    context, pusher, serving, first = pushed
    old = first.outputs["pushed_model"][0].properties["pushed_version"]
    (serving / old / "assets").mkdir()
    (serving / old / "assets" / "extra.txt").write_text("restored from elsewhere\n")
    (serving / old / "saved_model.pb").unlink()

    out = _pushed_again(context, pusher, serving, old, capsys)

    assert ("(saved_model.pb (missing), assets/extra.txt (added)); pushing again") in out


def test_a_file_replaced_by_the_same_bytes_is_still_the_push(pushed):
    """A copy tool that writes a new file and renames it over the old one leaves a new
    inode: the stamp moves, the hash decides, and identical bytes are still the push."""
    context, pusher, serving, first = pushed
    version = first.outputs["pushed_model"][0].properties["pushed_version"]
    target = serving / version / VARIABLES
    twin = target.with_name("twin")
    twin.write_bytes(target.read_bytes())
    os.replace(twin, target)

    again = context.run(pusher)

    assert again.cached and again.outcome == f"already pushed as version {version} (cached)"


def test_an_intact_version_is_checked_without_reading_its_bytes(pushed, monkeypatch):
    """A cache hit costs a stat per file: hashing (O(bytes)) happens only for a file whose
    stamp moved (bench/bench_push.py: a 1 GB model's check)."""
    import toolkit.publishing as publishing

    context, pusher, serving, first = pushed
    hashed = []
    original = publishing.sha256_file
    monkeypatch.setattr(publishing, "sha256_file", lambda path: hashed.append(path) or
                        original(path))

    assert context.run(pusher).cached
    assert hashed == []
    os.utime(serving / first.outputs["pushed_model"][0].properties["pushed_version"]
             / VARIABLES)
    assert context.run(pusher).cached
    assert [os.path.basename(p) for p in hashed] == [os.path.basename(VARIABLES)]


def test_the_pushed_model_artifact_links_the_version_files(pushed):
    """One push costs the model's size once: the PushedModel folder's files are the
    version's files (hard links), and it holds the SavedModel as TFX's does."""
    context, pusher, serving, first = pushed
    artifact = Path(first.outputs["pushed_model"][0].uri)
    version = serving / first.outputs["pushed_model"][0].properties["pushed_version"]
    for rel in ("saved_model.pb", VARIABLES):
        assert (artifact / rel).stat().st_ino == (version / rel).stat().st_ino
        assert (artifact / rel).stat().st_nlink == 2
    assert not (artifact / "toolkit-push.json").exists()


def test_across_filesystems_the_pushed_model_is_copied(tmp_path, capsys):
    """A pipeline root on another filesystem than the destination (here tmpfs) cannot hold
    hard links to it: the artifact gets a copy, the log says so, the push is claimed."""
    shm = Path("/dev/shm")
    assert shm.is_dir() and shm.stat().st_dev != tmp_path.stat().st_dev, \
        "this test needs /dev/shm on a filesystem of its own"
    with tempfile.TemporaryDirectory(dir=shm) as other:
        context = InteractiveContext(pipeline_name="claims", pipeline_root=other)
        model = StandInModel()
        context.run(model)
        serving = tmp_path / "serving" / "model"
        pusher = Pusher(model=model.outputs["model"], push_destination=str(serving),
                        allowed_root=str(tmp_path / "serving"), require_blessing=False)
        first = context.run(pusher)
        artifact = Path(first.outputs["pushed_model"][0].uri)
        version = serving / first.outputs["pushed_model"][0].properties["pushed_version"]

        assert "holds a copy of the model" in capsys.readouterr().out
        assert (artifact / VARIABLES).read_bytes() == (version / VARIABLES).read_bytes()
        assert (artifact / VARIABLES).stat().st_nlink == 1
        assert context.run(pusher).cached


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
