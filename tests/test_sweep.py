"""Sweeps: ``toolkit run NOTEBOOK --grid NAME=V1,V2 --parallel N`` and ``toolkit.sweep``.

Bad grids are refused before anything runs. The runnable fixture notebook shows a
failing point beside succeeding ones; the exported taxi pipeline, swept over its
Trainer's ``train_steps`` two points at a time on one root, shows the data half
computed once for all points (cache and single flight) and the model half once per
point, every count read back from the metadata store."""
from __future__ import annotations

import html.parser
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from datapaths import FIXTURES, REPO

TAXI = Path(REPO) / "export" / "taxi.ipynb"
RUNNABLE = FIXTURES / "runnable.ipynb"
#: the smallest training the taxi notebook offers that still blesses its model, and two more
STEPS = (200, 260, 320)
DATA_HALF = ("CsvExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator", "Transform")
PER_POINT = ("Trainer", "Evaluator")
HOSTILE = "<script>alert(1)</script>"


def _toolkit(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    cmd = [os.path.join(os.path.dirname(sys.executable), "toolkit"), *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, **(env or {})}, timeout=1800)


# -- refused before anything runs -----------------------------------------------------------
@pytest.mark.parametrize("grid, message", [
    ("trian_steps=1,2", "--grid trian_steps: "),
    ("train_steps=100,lots", "--grid train_steps: parameter 'train_steps' expects int"),
    ("train_steps", "--grid 'train_steps': expected NAME=V1,V2,..."),
])
def test_a_bad_grid_is_refused_in_one_line_before_anything_runs(tmp_path, grid, message):
    out = tmp_path / "sweep"
    result = _toolkit("run", str(TAXI), "--grid", grid, "-o", str(out))
    assert result.returncode == 2, result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith("toolkit run: error: ") and message in line, line
    if "trian" in grid:
        assert "known parameters: " in line and "train_steps" in line
    assert not out.exists()


def test_a_parameter_both_set_and_swept_is_refused(tmp_path):
    import toolkit
    from toolkit.errors import ParameterError

    with pytest.raises(ParameterError, match="train_steps: both set and swept"):
        toolkit.sweep(TAXI, grid={"train_steps": [1, 2]}, parameters={"train_steps": 3},
                      output_dir=tmp_path / "sweep")
    with pytest.raises(ParameterError, match=r"grid min_auc: parameter 'min_auc' expects float"):
        toolkit.sweep(TAXI, grid={"min_auc": [0.5, "high"]}, output_dir=tmp_path / "sweep")
    assert not (tmp_path / "sweep").exists()


# -- a failing point beside succeeding ones -------------------------------------------------
class _Cells(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.rows: list[list[str]] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        if tag == "tr":
            self.rows.append([])
        if tag in ("td", "th"):
            self.rows[-1].append("")

    def handle_data(self, data):
        if self.rows and self.rows[-1]:
            self.rows[-1][-1] += data


@pytest.mark.slow
def test_a_failing_point_does_not_stop_the_others(tmp_path):
    out = tmp_path / "sweep"
    result = _toolkit("run", str(RUNNABLE), "--grid", "fail_with=ok,error,gate",
                      "--grid", f"message={HOSTILE}", "-p", "output_file",
                      str(tmp_path / "values.json"), "--parallel", "2", "-o", str(out))
    assert result.returncode == 1, result.stderr
    failure = [line for line in result.stderr.splitlines() if line.startswith("toolkit run:")]
    assert failure == ["toolkit run: 2 of 3 points failed: point 2 (fail_with='error', "
                       f"message='{HOSTILE}'): ValueError: boom; point 3 (fail_with='gate', "
                       f"message='{HOSTILE}'): Evaluator: model not blessed: auc 0.61 < "
                       "threshold 0.70"]
    # one line per point started and one per point finished
    progress = [line for line in result.stderr.splitlines() if line.startswith("sweep: point")]
    assert sorted(line.split(" (")[0] for line in progress if line.endswith("started")) == [
        "sweep: point 1/3", "sweep: point 2/3", "sweep: point 3/3"]
    assert len(progress) == 6

    record = json.loads((out / "sweep.json").read_text())
    assert record["status"] == "failed" and record["varying"] == ["fail_with", "message"]
    points = record["points"]
    assert [p["grid"]["fail_with"] for p in points] == ["ok", "error", "gate"]
    assert [p["status"] for p in points] == ["succeeded", "failed", "failed"]
    for point in points:
        summary = json.loads(Path(point["summary"]).read_text())
        assert Path(point["summary"]).parent == Path(point["run_dir"])
        assert summary["parameters"] == point["parameters"]
        assert point["parameters"]["message"] == HOSTILE
        assert summary["status"] == point["status"] and summary["reason"] == point["reason"]
        # the fixture's Evaluator records a blessing and no stored evaluation
        assert point["metrics"] == {"Evaluator": {"blessed": True}}

    page = (out / "compare.html").read_text()
    assert HOSTILE not in page and "&lt;script&gt;" in page
    cells = _Cells()
    cells.feed(page)
    assert not cells.tags & {"script", "link", "img", "iframe"}
    header, *rows = cells.rows
    assert header[:4] == ["point", "fail_with", "message", "status"]
    assert [row[1] for row in rows] == ["'ok'", "'error'", "'gate'"]
    assert [row[3] for row in rows] == ["succeeded", "failed", "failed"]
    assert "ValueError: boom" in rows[1][-1]


# -- the taxi pipeline swept over a Trainer parameter ---------------------------------------
@pytest.fixture(scope="module")
def taxi_sweep(tmp_path_factory):
    """The exported taxi notebook swept over three train_steps values, two at a time,
    on one fresh pipeline root."""
    base = tmp_path_factory.mktemp("taxi_sweep")
    out = base / "sweep"
    values = {"pipeline_name": "taxi_sweep", "pipeline_root": str(base / "root"),
              "serving_dir": str(base / "serving")}
    args = ["run", str(TAXI), "--grid", "train_steps=" + ",".join(map(str, STEPS)),
            "--parallel", "2", "-o", str(out)]
    for name, value in values.items():
        args += ["-p", name, value]
    result = _toolkit(*args, env={"TOOLKIT_PUSH_ROOT": str(base)})
    record = json.loads((out / "sweep.json").read_text())
    return result, record, values, out


def _store(values: dict):
    from toolkit.metadata import MetadataStore, sqlite_config

    return MetadataStore(values["pipeline_name"],
                         sqlite_config(os.path.join(values["pipeline_root"], "metadata.sqlite")))


@pytest.mark.slow
def test_taxi_sweep_succeeds_with_one_line_per_point(taxi_sweep):
    result, record, _, out = taxi_sweep
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"sweep: {out / 'sweep.json'}" in result.stdout
    finished = [line for line in result.stderr.splitlines()
                if line.startswith("sweep: point") and " succeeded in " in line]
    assert len(finished) == 3


@pytest.mark.slow
def test_the_data_half_is_computed_once_and_the_model_half_once_per_point(taxi_sweep):
    _, _, values, _ = taxi_sweep
    store = _store(values)
    for component in DATA_HALF:
        rows = store.executions(component)
        computed = [r for r in rows if r["state"] == "COMPLETE"]
        reused = [r for r in rows if r["state"] == "CACHED"]
        assert len(computed) == 1, (component, rows)
        assert len(reused) == 2 and {r["cached_from"] for r in reused} == {computed[0]["id"]}
        # nothing else, but a claim that lost a race and yielded to the first
        others = [r for r in rows if r["state"] not in ("COMPLETE", "CACHED")]
        assert all(r["state"] == "FAILED" and r["error"].startswith("yielded:")
                   for r in others), others
    for component in PER_POINT:
        rows = store.executions(component)
        assert [r["state"] for r in rows] == ["COMPLETE"] * 3, (component, rows)
    steps = sorted(json.loads(r["parameters"])["train_args"]["num_steps"]
                   for r in store.executions("Trainer"))
    assert steps == sorted(STEPS)


@pytest.mark.slow
def test_sweep_json_records_each_point_with_its_evaluation(taxi_sweep):
    from toolkit.evaluation.storage import load_result

    _, record, values, out = taxi_sweep
    store = _store(values)
    assert record["varying"] == ["train_steps"] and record["best_by"] == "auc"
    points = record["points"]
    assert [p["grid"] for p in points] == [{"train_steps": s} for s in STEPS]
    # each point's AUC, found independently: the evaluation of the model trained with its steps
    auc_by_steps = {}
    for execution in store.executions("Evaluator"):
        [model] = store.inputs_of(execution["id"])["model"]
        trainer = store.execution(store.producer_of(model.id))
        steps = json.loads(trainer["parameters"])["train_args"]["num_steps"]
        [evaluation] = store.outputs_of(execution["id"])["evaluation"]
        overall = load_result(evaluation.uri).get_metrics_for_slice(())
        auc_by_steps[steps] = overall["auc"]["doubleValue"]
    for point, steps in zip(points, STEPS):
        assert point["status"] == "succeeded"
        assert point["parameters"] == dict(point["parameters"], train_steps=steps, **values)
        assert Path(point["run_dir"]) == out / f"point-{point['index']}"
        summary = json.loads(Path(point["summary"]).read_text())
        assert summary["parameters"]["train_steps"] == steps
        assert point["metrics"]["Evaluator"]["auc"] == pytest.approx(auc_by_steps[steps])
        assert point["metrics"]["Evaluator"]["blessed"] is True
    best = max(STEPS, key=auc_by_steps.get)
    assert record["best"] == STEPS.index(best) + 1
    page = (out / "compare.html").read_text()
    assert "best auc" in page and "<script" not in page


@pytest.mark.slow
def test_the_sweep_compares_its_points_by_their_own_trainer(taxi_sweep):
    """Each point's Evaluator also reads the latest blessed model (another point's) as its
    baseline; the parameters that differ are still each point's own Trainer's, and the
    sweep's compare.html is the comparison view."""
    import toolkit

    _, _, _, out = taxi_sweep
    comparison = toolkit.compare(out)
    assert comparison.names == [f"train_steps={s}" for s in STEPS]
    differing = comparison.parameters()
    rows = {(c, p): list(values) for c, p, *values in differing.itertuples(index=False)}
    assert [v["num_steps"] for v in rows[("Trainer", "train_args")]] == list(STEPS)
    assert {c for c, _ in rows} == {"Trainer"}
    page = (out / "compare.html").read_text(encoding="utf-8")
    assert f"Comparison of {len(STEPS)} candidates" in page and "train_args" in page
    assert "<script" not in page


# -- a point killed mid-run, then the sweep run again ---------------------------------------
RECOVERY = FIXTURES / "sweep_recovery.ipynb"


@pytest.mark.slow
def test_a_point_killed_mid_run_is_taken_over_when_the_sweep_runs_again(tmp_path):
    import signal
    import time

    root, hold = tmp_path / "root", tmp_path / "hold"
    hold.write_text("")
    values = {"pipeline_name": "recovery", "pipeline_root": str(root)}
    args = ["run", str(RECOVERY), "--grid", "variant=a,b", "--parallel", "2",
            "-p", "pipeline_root", str(root)]
    cmd = [os.path.join(os.path.dirname(sys.executable), "toolkit"), *args,
           "-o", str(tmp_path / "first")]
    # its output goes to files: a pipe nobody drains while the test polls could fill and
    # stop the sweep
    printed = tmp_path / "first.out"
    with open(printed, "w", encoding="utf-8") as sink:
        first = subprocess.Popen(cmd, cwd=REPO, env={**os.environ, "RECOVERY_HOLD": str(hold)},
                                 stdout=sink, stderr=subprocess.STDOUT, text=True)
    try:
        # the kernel computing point b's Slow is killed while it runs
        deadline, victim = time.monotonic() + 300, None
        while victim is None and time.monotonic() < deadline and first.poll() is None:
            time.sleep(0.5)
            if (root / "metadata.sqlite").exists():
                victim = next((r for r in _store(values).executions("Slow")
                               if r["state"] == "RUNNING"
                               and json.loads(r["parameters"])["variant"] == "b"), None)
        assert victim is not None, "point b's Slow never ran"
        os.kill(int(victim["pid"]), signal.SIGKILL)
        first.wait(timeout=600)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 1, printed.read_text(encoding="utf-8")[-5000:]
    record = json.loads((tmp_path / "first" / "sweep.json").read_text())
    assert [p["status"] for p in record["points"]] == ["succeeded", "failed"]

    hold.unlink()
    again = _toolkit(*args, "-o", str(tmp_path / "again"))
    assert again.returncode == 0, again.stdout + again.stderr
    record = json.loads((tmp_path / "again" / "sweep.json").read_text())
    assert [p["status"] for p in record["points"]] == ["succeeded", "succeeded"]

    store = _store(values)
    slow = store.executions("Slow")
    by_variant = {v: [r for r in slow if json.loads(r["parameters"])["variant"] == v]
                  for v in ("a", "b")}
    # a: computed once, then reused; b: the killed execution recorded as failed (not left
    # running for ever), and computed in full by the second sweep
    assert [r["state"] for r in by_variant["a"]] == ["COMPLETE", "CACHED"]
    assert [r["state"] for r in by_variant["b"]] == ["FAILED", "COMPLETE"]
    assert by_variant["b"][0]["id"] == victim["id"]
    [shared] = [r for r in store.executions("Shared") if r["state"] == "COMPLETE"]
    assert all(r["state"] == "CACHED" or r["error"].startswith("yielded:")
               for r in store.executions("Shared") if r["id"] != shared["id"])
    [model] = store.outputs_of(by_variant["b"][1]["id"])["model"]
    [data] = store.outputs_of(shared["id"])["data"]
    assert Path(model.uri, "model.txt").read_text() == "b:" + Path(data.uri, "rows.txt").read_text()
    # nothing the killed execution staged is left behind
    assert not [p for p in root.rglob(".staging-*")], list(root.rglob(".staging-*"))


def _processes_with(name: str, value: str) -> list[int]:
    """The processes whose environment holds ``name=value``: a sweep's points, their
    kernels and anything those started inherit it."""
    wanted = f"{name}={value}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as handle:
                if wanted in handle.read().split(b"\0"):
                    found.append(int(entry))
        except OSError:
            continue
    return found


def test_ctrl_c_stops_the_running_point_starts_no_other_and_keeps_the_record(tmp_path):
    """SIGINT to the sweep alone (as ``kill -INT`` would send it, not to the terminal's
    whole process group): the sweep must stop its own running point."""
    import signal
    import time

    root, hold, out = tmp_path / "root", tmp_path / "hold", tmp_path / "sweep"
    hold.write_text("")
    cmd = [os.path.join(os.path.dirname(sys.executable), "toolkit"), "run", str(RECOVERY),
           "--grid", "variant=b,a,c", "-p", "pipeline_root", str(root), "-o", str(out)]
    printed = tmp_path / "sweep.out"
    with open(printed, "w", encoding="utf-8") as sink:
        # SIGINT's default disposition, even where this test runs in a background job
        sweep = subprocess.Popen(cmd, cwd=REPO, env={**os.environ, "RECOVERY_HOLD": str(hold)},
                                 stdout=sink, stderr=subprocess.STDOUT,
                                 preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 120
        while not (root / "Slow").exists():  # point 1 is inside Slow, holding
            assert time.monotonic() < deadline and sweep.poll() is None, printed.read_text()
            time.sleep(0.2)
        sweep.send_signal(signal.SIGINT)
        clock = time.monotonic()
        code = sweep.wait(timeout=90)
        stopped_in = time.monotonic() - clock
    finally:
        if sweep.poll() is None:
            sweep.kill()
    text = printed.read_text(encoding="utf-8")
    assert code == 130, text
    assert "toolkit run: interrupted" in text and "point 2/3 (variant='a') started" not in text
    assert stopped_in < 60, stopped_in  # Slow would hold for 300 s
    record = json.loads((out / "sweep.json").read_text())
    assert record["status"] == "failed"
    assert [p["status"] for p in record["points"]] == ["failed"] * 3
    assert [p["reason"] for p in record["points"][1:]] == [
        "not run: the sweep was interrupted"] * 2
    assert not (out / "point-2" / "summary.json").exists()
    assert (out / "compare.html").is_file()
    deadline = time.monotonic() + 20
    while _processes_with("RECOVERY_HOLD", str(hold)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not _processes_with("RECOVERY_HOLD", str(hold))


def test_quiet_sweep_prints_no_point_lines(tmp_path):
    out = tmp_path / "sweep"
    result = _toolkit("run", str(RECOVERY), "--grid", "variant=a,b", "-q",
                      "-p", "pipeline_root", str(tmp_path / "root"), "-o", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "sweep: point" not in result.stdout + result.stderr
    assert f"sweep: {out / 'sweep.json'}" in result.stdout
    assert [p["status"] for p in json.loads((out / "sweep.json").read_text())["points"]] == [
        "succeeded", "succeeded"]
