"""SIGKILL a component at several points of its execution, then run again in a new process.

Every case checks: the store still opens; the killed execution was RUNNING, never
COMPLETE, and becomes FAILED "abandoned" when the component runs again; nothing it
wrote is registered, reused from cache or left on disk; the re-run gives the same
results as an undisturbed run.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from reliability_helpers import (assert_abandoned, assert_completed_once, assert_killed,
                                 child_args, context, copy_taxi, executions, kill_at, run_child,
                                 split_tables)

UNRECORDED = "toolkit.metadata:MetadataStore.complete_execution:before"
STAGED = "toolkit.publishing:write_manifest:after"


@pytest.fixture(scope="module")
def taxi_data(tmp_path_factory) -> Path:
    return copy_taxi(tmp_path_factory.mktemp("taxi") / "data")


@pytest.fixture(scope="module")
def undisturbed(tmp_path_factory, taxi_data):
    """The data components run once without interruption (the results to match)."""
    root = tmp_path_factory.mktemp("undisturbed")
    report = run_child(child_args(root, taxi_data, report=root / "report.json"),
                       root / "child.log")
    return report


def _outputs(report: dict, component: str, key: str) -> str:
    return report["results"][component]["outputs"][key][0]


# -- ExampleGen -----------------------------------------------------------------------------
@pytest.mark.parametrize("spec", [
    "toolkit.components.csv_reader:_read_csv:after",         # data read, nothing written
    "toolkit.components.example_gen:write_split:after@1",    # train written, eval not
    STAGED,                                                   # all written, not yet published
    UNRECORDED,                                               # published, not yet recorded
], ids=["reading", "between-splits", "staged", "published-unrecorded"])
def test_example_gen_killed_then_rerun(tmp_path, taxi_data, undisturbed, spec):
    root = tmp_path / "root"
    args = child_args(root, taxi_data, upto="CsvExampleGen")
    pid = kill_at(args, "CsvExampleGen", spec, tmp_path)
    killed = assert_killed(root, "CsvExampleGen", pid)

    report = run_child(args + ["--report", str(tmp_path / "r.json")], tmp_path / "rerun.log")
    result = report["results"]["CsvExampleGen"]
    assert not result["cached"] and result["execution_id"] > killed["id"]
    assert_abandoned(root, "CsvExampleGen", killed)
    assert_completed_once(root, "CsvExampleGen")
    got = split_tables(_outputs(report, "CsvExampleGen", "examples"))
    want = split_tables(_outputs(undisturbed, "CsvExampleGen", "examples"))
    assert got.keys() == want.keys() == {"train", "eval"}
    for split in want:
        assert got[split].equals(want[split]), split


# -- StatisticsGen ---------------------------------------------------------------------------
def test_statistics_gen_killed_twice_then_rerun(tmp_path, taxi_data, undisturbed):
    """Killed after the train split's statistics were written (eval computed, not written),
    then again after publishing but before recording; the third process completes."""
    from tensorflow_metadata.proto.v0 import statistics_pb2

    root = tmp_path / "root"
    args = child_args(root, taxi_data, upto="StatisticsGen")
    points = ["toolkit.components.statistics_gen:statistics_of_table:after@2", UNRECORDED]
    killed = []
    for spec in points:
        pid = kill_at(args, "StatisticsGen", spec, tmp_path)
        if killed:
            assert_abandoned(root, "StatisticsGen", killed[-1])
        killed.append(assert_killed(root, "StatisticsGen", pid))
    report = run_child(args + ["--report", str(tmp_path / "r.json")], tmp_path / "rerun.log")
    assert report["results"]["CsvExampleGen"]["cached"]
    assert not report["results"]["StatisticsGen"]["cached"]
    for row in killed:
        assert_abandoned(root, "StatisticsGen", row)
    assert_completed_once(root, "StatisticsGen")

    def load(uri: str, split: str):
        stats = statistics_pb2.DatasetFeatureStatisticsList()
        stats.ParseFromString((Path(uri) / f"Split-{split}" / "FeatureStats.pb").read_bytes())
        return stats

    got = _outputs(report, "StatisticsGen", "statistics")
    want = _outputs(undisturbed, "StatisticsGen", "statistics")
    for split in ("train", "eval"):
        assert load(got, split) == load(want, split), split


# -- Pusher (a stand-in model: files shaped like a SavedModel) -------------------------------
def _version_folders(serving: Path) -> list[Path]:
    return sorted(p for p in serving.iterdir() if p.name.isdigit()) if serving.exists() else []


def _complete(version: Path, model_uri: str) -> bool:
    """Every file of the model, with its size, plus the version's push record and report."""
    from toolkit.components.pusher import VERSION_RECORD
    from toolkit.model_report import REPORT_DATA, REPORT_FILE

    source = Path(model_uri) / "Format-Serving"
    want = {p.relative_to(source): p.stat().st_size for p in source.rglob("*") if p.is_file()}
    got = {p.relative_to(version): p.stat().st_size for p in version.rglob("*") if p.is_file()}
    record = got.pop(Path(VERSION_RECORD), None)
    reports = [got.pop(Path(name), None) for name in (REPORT_FILE, REPORT_DATA)]
    return (got == want and (version / "saved_model.pb").is_file() and bool(record)
            and all(reports))


@pytest.mark.parametrize("spec", [
    "shutil:copy2:before@2",      # the copy is half done (variables/ not copied yet)
    "os:replace:before@4",  # whole, not yet renamed (after the owner file and the report's two files)
], ids=["mid-copy", "copied-not-renamed"])
def test_pusher_killed_before_the_version_appears(tmp_path, spec):
    root, serving = tmp_path / "root", tmp_path / "push" / "serving"
    args = child_args(root, tmp_path, pipeline="push", serving=serving)
    pid = kill_at(args, "Pusher", spec, tmp_path)
    killed = assert_killed(root, "Pusher", pid)
    assert _version_folders(serving) == []
    hidden = [p.name for p in serving.iterdir()]
    assert hidden and all(name.startswith(f".pushing-{pid}-") for name in hidden)
    [copy] = [serving / name / "model" for name in hidden]
    copied = {p.relative_to(copy).as_posix() for p in copy.rglob("*") if p.is_file()}
    if "replace" in spec:  # frozen at the rename: the copy is whole, its record written
        assert "saved_model.pb" in copied and "toolkit-push.json" in copied, copied
        assert any(name.startswith("variables/") for name in copied), copied
    else:  # frozen mid-copy: the variables are not copied yet
        assert not any(name.startswith("variables/") for name in copied), copied

    report = run_child(args + ["--report", str(tmp_path / "r.json")], tmp_path / "rerun.log")
    assert_abandoned(root, "Pusher", killed)
    assert_completed_once(root, "Pusher")
    model = _outputs(report, "FakeTrainer", "model")
    [version] = _version_folders(serving)
    assert _complete(version, model)
    pushed = report["results"]["Pusher"]["properties"]["pushed_model"][0]
    assert pushed["pushed"] == 1 and pushed["pushed_version"] == version.name
    assert [p.name for p in serving.iterdir()] == [version.name], "abandoned copy not removed"


def test_pusher_killed_after_the_version_appeared(tmp_path):
    """The version folder was renamed into place (complete), the execution never recorded:
    the re-run pushes a new complete version; every version present is complete."""
    root, serving = tmp_path / "root", tmp_path / "push" / "serving"
    args = child_args(root, tmp_path, pipeline="push", serving=serving)
    pid = kill_at(args, "Pusher", UNRECORDED, tmp_path)
    killed = assert_killed(root, "Pusher", pid)
    [first] = _version_folders(serving)
    report = run_child(args + ["--report", str(tmp_path / "r.json")], tmp_path / "rerun.log")
    assert_abandoned(root, "Pusher", killed)
    assert_completed_once(root, "Pusher")
    model = _outputs(report, "FakeTrainer", "model")
    versions = _version_folders(serving)
    assert len(versions) == 2 and len({v.name for v in versions}) == 2
    assert all(_complete(v, model) for v in versions)
    pushed = report["results"]["Pusher"]["properties"]["pushed_model"][0]
    assert pushed["pushed_version"] == versions[-1].name and int(versions[-1].name) > int(first.name)


# -- Transform, Trainer, Evaluator, Pusher on the taxi model (slow) ---------------------------
CHAIN = [
    ("Transform", "toolkit.components.transform:_flatten:after@1"),      # Beam writing
    ("Transform", "toolkit.components.transform:_row_count:before"),     # graph + data staged
    ("Trainer", "keras:Model.fit:after"),                                # trained, not saved
    ("Trainer", "toolkit.components.trainer:_signatures:before"),        # SavedModel staged
    ("Trainer", "toolkit.publishing:write_manifest:after@2"),              # model published, run not
    ("Evaluator", "toolkit.components.evaluator:_predictions:after"),    # predicted, nothing written
    ("Evaluator", "toolkit.evaluation.storage:save_result:before"),      # TFMA records written, ours not
    ("Pusher", "shutil:copy2:before@2"),                                 # half copied
    ("Pusher", "os:replace:before@4"),                                   # copied, not renamed
]


@pytest.mark.slow
def test_model_components_killed_at_each_point_then_completed(tmp_path):
    """One pipeline root; each child process is SIGKILLed at the next point of the chain
    (re-running, from cache, what completed before); a last process completes the
    pipeline. Results are compared with an undisturbed run in another root."""
    from concurrent.futures import ThreadPoolExecutor

    data = copy_taxi(tmp_path / "data")
    ref_root, ref_serving = tmp_path / "ref", tmp_path / "ref_push" / "serving"
    root, serving = tmp_path / "root", tmp_path / "push" / "serving"
    args = child_args(root, data, "taxi", serving=serving)
    killed: dict[str, list[dict]] = {}
    # the undisturbed run, in another root, meanwhile
    with ThreadPoolExecutor(max_workers=1) as pool:
        undisturbed = pool.submit(run_child, child_args(
            ref_root, data, "taxi", serving=ref_serving, report=tmp_path / "ref.json"),
            tmp_path / "ref.log")
        for component, spec in CHAIN:
            pid = kill_at(args, component, spec, tmp_path)
            for earlier in killed.get(component, []):
                assert_abandoned(root, component, earlier)
            killed.setdefault(component, []).append(assert_killed(root, component, pid))
            assert [v for v in serving.glob("[0-9]*")] == [], "a killed push left a version"
        report = run_child(args + ["--report", str(tmp_path / "final.json")],
                           tmp_path / "final.log")
        reference = undisturbed.result()

    for component, rows in killed.items():
        for row in rows:
            assert_abandoned(root, component, row)
        assert_completed_once(root, component)
    assert not report["results"]["Pusher"]["cached"]
    for component in ("CsvExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator"):
        assert report["results"][component]["cached"]
    store = context(root).store
    assert all(os.path.isdir(a.uri) for a in store.artifacts() if a.state == "LIVE")

    # Transform: same rows, same learned vocabularies and statistics
    got = json.loads(report["results"]["Transform"]["properties"]["transformed_examples"][0]
                     ["row_counts"])
    want = json.loads(reference["results"]["Transform"]["properties"]["transformed_examples"][0]
                      ["row_counts"])
    assert got == want
    got_graph = Path(report["results"]["Transform"]["outputs"]["transform_graph"][0])
    want_graph = Path(reference["results"]["Transform"]["outputs"]["transform_graph"][0])
    assets = sorted(p.relative_to(want_graph) for p in (want_graph / "transform_fn").rglob("*")
                    if p.is_file() and "assets" in p.parts)
    assert assets, "the taxi transform learns vocabularies"
    for rel in assets:
        assert (got_graph / rel).read_bytes() == (want_graph / rel).read_bytes(), rel
    # Trainer: training is not bit-reproducible (unseeded Keras), so predictions and metrics
    # are compared within the spread measured between two undisturbed runs
    got, want = report["predictions"], reference["predictions"]
    assert len(got) == len(want) == 40
    diffs = [abs(a - b) for a, b in zip(got, want)]
    assert sum(diffs) / len(diffs) < 0.05 and max(diffs) < 0.3, diffs
    assert report["metrics"]["example_count"] == reference["metrics"]["example_count"]
    assert abs(report["metrics"]["auc"] - reference["metrics"]["auc"]) < 0.02
    # Pusher: one version, complete; the abandoned copies are gone
    blessing = report["results"]["Evaluator"]["properties"]["blessing"][0]
    assert blessing["blessed"] == 1
    versions = [p for p in serving.iterdir()]
    assert len(versions) == 1 and versions[0].name.isdigit(), versions
    model = report["results"]["Trainer"]["outputs"]["model"][0]
    assert _complete(versions[0], model)
    assert executions(root, "Pusher")[-1]["state"] == "COMPLETE"
