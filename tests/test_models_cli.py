"""`toolkit models`: list pushed versions and roll back, through the library and the real
CLI, on versions pushed by the real Pusher (stand-in SavedModels, a real evaluation of a
tiny frame: no training, seconds)."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from datapaths import REPO

from toolkit import InteractiveContext, models
from toolkit.artifacts import Examples, Model, ModelBlessing, ModelEvaluation
from toolkit.base_component import BaseComponent, ExecutionParameter, InputSpec
from toolkit.cli import main
from toolkit.components import Pusher
from toolkit.components.pusher import VERSION_RECORD, versions
from toolkit.errors import ToolkitError
from toolkit.model_report import REPORT_DATA, REPORT_FILE

SPAN = 7


class SpanExamples(BaseComponent):
    """Examples of one span (what ExampleGen records when a span is resolved)."""

    OUTPUTS = {"examples": Examples}
    PARAMETERS = {"span": ExecutionParameter(int, required=True)}

    def Do(self, input_dict, output_dict, exec_properties, ctx):
        output_dict["examples"][0].properties["span"] = exec_properties["span"]


class StandInModel(BaseComponent):
    """A Model whose serving folder holds files shaped like a SavedModel (no TensorFlow)."""

    INPUTS = {"examples": InputSpec(Examples)}
    OUTPUTS = {"model": Model}
    PARAMETERS = {"seed": ExecutionParameter(int, default=0)}

    def Do(self, input_dict, output_dict, exec_properties, ctx):
        serving = Path(output_dict["model"][0].uri, "Format-Serving")
        (serving / "variables").mkdir(parents=True)
        (serving / "saved_model.pb").write_bytes(bytes([exec_properties["seed"] + 1]) * 700)
        (serving / "variables" / "variables.data-00000-of-00001").write_bytes(
            bytes([exec_properties["seed"]]) * 3000 + b"end")
        (serving / "assets").mkdir()
        (serving / "assets" / "vocab.txt").write_text(f"model {exec_properties['seed']}\n")


class TinyEvaluator(BaseComponent):
    """The real evaluation engine on four rows, with a threshold, and the blessing."""

    INPUTS = {"model": InputSpec(Model)}
    OUTPUTS = {"evaluation": ModelEvaluation, "blessing": ModelBlessing}

    def Do(self, input_dict, output_dict, exec_properties, ctx):
        from toolkit.evaluation import evaluate, save_result

        frame = pd.DataFrame({"label": [0, 1, 0, 1], "prediction": [0.1, 0.9, 0.6, 0.8]})
        result = evaluate(frame, {"metrics_specs": [{"metrics": [
            {"class_name": "BinaryAccuracy",
             "threshold": {"value_threshold": {"lower_bound": 0.5}}}]}]})
        save_result(result, output_dict["evaluation"][0].uri)
        output_dict["blessing"][0].properties.update(
            blessed=int(result.blessed), current_model_id=input_dict["model"][0].id)


@pytest.fixture
def served(tmp_path, monkeypatch):
    """Two models trained on span 7, evaluated, blessed and pushed to one serving dir:
    (context, serving dir, {version: model id})."""
    monkeypatch.chdir(tmp_path)
    context = InteractiveContext(pipeline_name="taxi", pipeline_root=str(tmp_path / "root"))
    examples = SpanExamples(span=SPAN)
    context.run(examples)
    serving = tmp_path / "serving" / "taxi"
    pushed = {}
    for seed in (1, 2):
        model = StandInModel(examples=examples.outputs["examples"], seed=seed)
        evaluator = TinyEvaluator(model=model.outputs["model"])
        context.run(model)
        context.run(evaluator)
        result = context.run(Pusher(model=model.outputs["model"],
                                    model_blessing=evaluator.outputs["blessing"],
                                    push_destination=str(serving)))
        version = int(result.outputs["pushed_model"][0].properties["pushed_version"])
        pushed[version] = model.outputs["model"].get()[0].id
    assert versions(str(serving)) == sorted(pushed)
    return context, serving, pushed


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _model_files(folder: Path) -> dict[str, bytes]:
    """The files a version holds besides what records its push (record and report)."""
    return {k: v for k, v in _files(folder).items()
            if k not in (VERSION_RECORD, REPORT_FILE, REPORT_DATA)}


def test_list_shows_every_version_with_model_blessing_spans_and_run(served, capsys):
    context, serving, pushed = served

    table = models.list_versions(serving)

    assert [row.version for row in table] == sorted(pushed)
    for row in table:
        assert row.model_id == pushed[row.version]
        assert row.blessed is True and row.metrics == {"binary_accuracy": 0.75}
        assert row.spans == [SPAN] and row.reason == "push"
        assert row.pushed_by.startswith("taxi Pusher #")
    assert context.store.location in table.note  # found through toolkit-push.json

    assert main(["models", str(serving)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split() == ["version", "model", "blessing", "metrics", "spans", "pushed",
                                "(UTC)", "by"]
    for version, model_id in pushed.items():
        [line] = [line for line in lines if line.startswith(str(version))]
        assert f"#{model_id}" in line and "blessed" in line and "binary_accuracy=0.75" in line
        assert f" {SPAN} " in line
    assert f"version {max(pushed)} is the highest" in out


def test_rollback_republishes_an_older_version_as_the_newest(served, capsys):
    context, serving, pushed = served
    old, newest = min(pushed), max(pushed)
    before = {v: _files(serving / str(v)) for v in pushed}

    assert main(["models", "rollback", str(serving), "--to", str(old)]) == 0

    captured = capsys.readouterr()
    new = int(captured.out.strip())
    assert new > newest and versions(str(serving)) == [*sorted(pushed), new]
    assert f"version {old} re-published as version {new}" in captured.err
    assert captured.err.count("\n") == 1
    # the new version holds the old model file by file; nothing else changed or went
    assert _model_files(serving / str(new)) == _model_files(serving / str(old))
    assert {v: _files(serving / str(v)) for v in pushed} == before
    assert not [n for n in os.listdir(serving) if n.startswith(".")]
    # recorded in the store as a push with reason rollback
    [execution] = context.store.executions("Rollback")
    assert execution["state"] == "COMPLETE"
    assert execution["outcome"] == f"rollback: version {old} re-published as version {new}"
    [raw] = context.store.mlmd.get_executions_by_id([execution["id"]])
    assert raw.custom_properties["reason"].string_value == "rollback"
    [output] = context.store.outputs_of(execution["id"])["pushed_model"]
    assert output.TYPE_NAME == "PushedModel" and output.properties["reason"] == "rollback"
    assert output.properties["pushed_version"] == str(new)
    assert output.properties["rolled_back_from"] == old
    inputs = context.store.inputs_of(execution["id"])
    assert inputs["model"][0].id == pushed[old]
    assert inputs["pushed_model"][0].properties["pushed_version"] == str(old)
    # and listed as such
    row = models.list_versions(serving)[-1]
    assert (row.version, row.reason, row.rolled_back_from) == (new, "rollback", old)
    assert row.model_id == pushed[old] and row.blessed and row.spans == [SPAN]
    assert row.pushed_by == f"taxi Rollback #{execution['id']}"


def test_unknown_version_and_wrong_folder_are_one_line_errors(served, tmp_path, capsys):
    _, serving, pushed = served

    assert main(["models", "rollback", str(serving), "--to", "12345"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"toolkit models: error: no version 12345 in {os.path.realpath(serving)}")
    assert err.rstrip().endswith("versions: " + ", ".join(str(v) for v in sorted(pushed)))
    with pytest.raises(ToolkitError, match="no version 12345"):
        models.rollback(serving, to=12345)

    empty = tmp_path / "empty"
    empty.mkdir()
    for argv in (["models", str(empty)], ["models", str(tmp_path / "missing")],
                 ["models", "rollback", str(empty), "--to", "1"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "is not a serving directory" in err
    assert main(["models", "rollback", str(serving)]) == 2
    assert "rollback needs --to VERSION" in capsys.readouterr().err
    assert versions(str(serving)) == sorted(pushed)


def test_concurrent_rollbacks_get_distinct_versions(served):
    context, serving, pushed = served
    old = min(pushed)
    start = threading.Barrier(3)
    done, errors = [], []

    def roll() -> None:
        start.wait()
        try:
            done.append(models.rollback(serving, to=old))
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=roll) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    new = sorted(d.version for d in done)
    assert len(set(new)) == 3 and new[0] > max(pushed)
    assert versions(str(serving)) == [*sorted(pushed), *new]
    for version in new:
        assert _model_files(serving / str(version)) == _model_files(serving / str(old))
    assert sorted(int(e["outcome"].split()[-1]) for e in context.store.executions("Rollback")
                  if e["state"] == "COMPLETE") == new


def test_each_version_records_the_sha256_of_every_file(served):
    _, serving, pushed = served
    for version in pushed:
        folder = serving / str(version)
        record = json.loads((folder / VERSION_RECORD).read_text())
        expected = {rel: {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
                    for rel, data in _files(folder).items() if rel != VERSION_RECORD}
        assert record["files"] == expected
        assert REPORT_FILE in expected and "saved_model.pb" in expected


def test_verify_names_each_file_that_differs_and_exits_1(served, capsys):
    _, serving, pushed = served
    old, newest = sorted(pushed)
    assert main(["models", "verify", str(serving)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == [f"version {old}", f"version {newest}"]
    assert all(": ok (" in line for line in lines)

    folder = serving / str(old)
    variables = folder / "variables" / "variables.data-00000-of-00001"
    stat = variables.stat()
    with open(variables, "r+b") as handle:  # same size, other bytes, times set back
        handle.write(b"\xff" * 16)
    os.utime(variables, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    (folder / "assets" / "vocab.txt").unlink()
    (folder / "assets" / "new.txt").write_text("added later\n")

    assert main(["models", "verify", str(serving), str(old)]) == 1
    assert capsys.readouterr().out.splitlines() == [
        f"version {old}: DIFFERS from what was pushed: assets/vocab.txt (missing), "
        "assets/new.txt (added), variables/variables.data-00000-of-00001 (changed)"]
    assert main(["models", "verify", str(serving), str(newest)]) == 0
    assert [v.ok for v in models.verify(serving)] == [False, True]


def test_verify_cannot_vouch_for_a_version_without_hashes(tmp_path, capsys):
    serving = tmp_path / "serving"
    (serving / "3").mkdir(parents=True)
    (serving / "3" / "saved_model.pb").write_bytes(b"\x08\x01" * 10)

    assert main(["models", "verify", str(serving)]) == 1
    out = capsys.readouterr().out
    assert out.startswith("version 3: cannot verify: ") and "records no file hashes" in out


def test_rollback_refuses_a_version_that_is_not_what_was_pushed(served, capsys):
    _, serving, pushed = served
    old = min(pushed)
    (serving / str(old) / "saved_model.pb").write_bytes(b"\x00" * 700)

    assert main(["models", "rollback", str(serving), "--to", str(old)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"version {old} in {os.path.realpath(serving)} is not what was pushed " \
           "(saved_model.pb (changed)): refusing to roll back to it" in err
    assert versions(str(serving)) == sorted(pushed)


def test_rollback_without_a_store_still_rolls_back_and_says_so(tmp_path):
    serving = tmp_path / "serving"
    (serving / "3").mkdir(parents=True)
    (serving / "3" / "saved_model.pb").write_bytes(b"\x08\x01" * 10)

    done = models.rollback(serving, to=3)

    assert done.recorded_in is None and done.note.startswith("no metadata store read")
    assert versions(str(serving)) == [3, done.version]
    assert _model_files(serving / str(done.version)) == _files(serving / "3")
    [row] = [r for r in models.list_versions(serving) if r.version == done.version]
    assert (row.reason, row.rolled_back_from, row.model_id) == ("rollback", 3, None)


def test_models_help_imports_nothing_heavy():
    code = ("import sys\nfrom toolkit.cli import main\ntry:\n    main(['models', '--help'])\n"
            "except SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "{'tensorflow', 'apache_beam', 'tensorflow_model_analysis', 'ml_metadata'}))")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, cwd=REPO, check=True)
    assert proc.stdout.strip().splitlines()[-1] == "[]"


RACER = r"""
import os, sys, time
sys.path.insert(0, {tests!r})
from pathlib import Path
from toolkit import InteractiveContext, models
from toolkit.components import Pusher
import test_models_cli as here

def wait_for_go(name):
    Path({flags!r}, name).touch()
    while not Path({flags!r}, "go").exists():
        time.sleep(0.005)

def hold(module, flag, until):
    # wraps module.report_writer: the first call of the writer it makes (inside push's
    # hidden copy, the version number chosen, before the rename) writes that number to
    # flag, then waits until the file named until exists
    original = module.report_writer

    def writer(report):
        write = original(report)
        calls = []

        def prepare(folder, version):
            write(folder, version)
            calls.append(version)
            if len(calls) == 1:
                Path({flags!r}, flag).write_text(str(version))
                while until and not Path({flags!r}, until).exists():
                    time.sleep(0.005)
        return prepare
    module.report_writer = writer

if sys.argv[1] == "rollback":
    hold(models, "rollback-chose", None)
    wait_for_go("rollback")
    while not Path({flags!r}, "push-staged").exists():  # the push holds its copy staged
        time.sleep(0.005)
    done = models.rollback({serving!r}, to=int(sys.argv[2]))
    print(done.version)
else:
    import toolkit.components.pusher as pusher_module
    hold(pusher_module, "push-staged", "rollback-chose")
    context = InteractiveContext(pipeline_name="taxi", pipeline_root={root!r})
    examples = here.SpanExamples(span=here.SPAN)
    context.run(examples)
    model = here.StandInModel(examples=examples.outputs["examples"], seed=3)
    evaluator = here.TinyEvaluator(model=model.outputs["model"])
    context.run(model)
    context.run(evaluator)
    pusher = Pusher(model=model.outputs["model"], model_blessing=evaluator.outputs["blessing"],
                    push_destination={serving!r})
    wait_for_go("push")
    context.run(pusher)
    print(pusher.outputs["pushed_model"].get()[0].properties["pushed_version"])
"""


def test_rollback_racing_a_push_in_another_process(served, tmp_path):
    """A rollback and an ordinary push, each in its own process, made to collide: the push
    holds its finished copy in the hidden folder, its version number chosen, until the
    rollback has chosen the same number (both see the same newest version); the rollback
    renames first. The push must find the number taken and publish above it, its report
    numbered as published. Both complete; the older versions are untouched; the rollback's
    version holds the model rolled back to."""
    context, serving, pushed = served
    old = min(pushed)
    # a version ahead of the clock, so both choose one more than it, whatever the second
    ahead = 4_000_000_000
    shutil.copytree(serving / str(max(pushed)), serving / str(ahead))
    before = {v: _files(serving / str(v)) for v in [*pushed, ahead]}
    flags = tmp_path / "flags"
    flags.mkdir()
    script = RACER.format(tests=str(Path(__file__).parent), flags=str(flags),
                          serving=str(serving), root=str(tmp_path / "root"))
    env = dict(os.environ, PYTHONPATH=str(REPO), TOOLKIT_PUSH_ROOT=str(tmp_path))
    racers = {kind: subprocess.Popen([sys.executable, "-c", script, kind, str(old)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env=env, cwd=tmp_path)
              for kind in ("rollback", "push")}
    deadline = time.monotonic() + 120
    while not all((flags / kind).exists() for kind in racers):
        assert time.monotonic() < deadline and all(p.poll() is None for p in racers.values()), \
            {k: p.communicate() for k, p in racers.items() if p.poll() is not None}
        time.sleep(0.01)
    (flags / "go").touch()
    answers = {kind: p.communicate(timeout=120) for kind, p in racers.items()}
    for kind, process in racers.items():
        assert process.returncode == 0, (kind, answers[kind][1][-3000:])
    rolled = int(answers["rollback"][0].split()[-1])
    fresh = int(answers["push"][0].split()[-1])

    # the collision happened: both chose the same number while the push was staged
    assert int((flags / "push-staged").read_text()) == ahead + 1
    assert int((flags / "rollback-chose").read_text()) == ahead + 1
    assert (rolled, fresh) == (ahead + 1, ahead + 2)
    assert versions(str(serving)) == sorted([*pushed, ahead, rolled, fresh])
    assert not [n for n in os.listdir(serving) if n.startswith(".")]
    assert {v: _files(serving / str(v)) for v in [*pushed, ahead]} == before
    # the rollback's version serves the model rolled back to; the push's, the new model
    assert _model_files(serving / str(rolled)) == _model_files(serving / str(old))
    assert _model_files(serving / str(fresh)) != _model_files(serving / str(old))
    assert (serving / str(fresh) / "saved_model.pb").read_bytes() == bytes([4]) * 700
    for version, reason in ((rolled, "rollback"), (fresh, "push")):
        folder = serving / str(version)
        record = json.loads((folder / VERSION_RECORD).read_text())
        report = json.loads((folder / REPORT_DATA).read_text())
        assert record["reason"] == report["reason"] == reason
        assert report["version"] == version and (folder / REPORT_FILE).is_file()
        assert report["spans"] == [SPAN] and report["notes"] == []
        assert report["lineage"][-1]["component_id"] == ("Rollback" if reason == "rollback"
                                                         else "Pusher")
    rows = {row.version: row for row in models.list_versions(serving)}
    assert rows[rolled].model_id == pushed[old] and rows[rolled].rolled_back_from == old
    assert rows[fresh].model_id not in pushed.values() and rows[fresh].blessed
    assert [int(e["outcome"].split()[-1]) for e in context.store.executions("Rollback")
            if e["state"] == "COMPLETE"] == [rolled]
