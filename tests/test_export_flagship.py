"""The exported taxi pipeline runs the very same components as the interactive notebook.

The interactive run (the ``executed_taxi`` fixture) and the runs of its export use
the same non-default parameters. Run by ``toolkit run`` on the interactive run's
pipeline_root, every execution is a cache hit of the interactive one (same component
types, parameters, inputs and module files); run by plain papermill on a fresh root,
it recomputes the same artifacts.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from datapaths import REPO
from notebook_checks import assert_ran_clean

EXPORT = os.path.join(REPO, "export", "taxi.ipynb")


def _toolkit(*args: str, **kwargs) -> subprocess.CompletedProcess:
    cmd = [os.path.join(os.path.dirname(sys.executable), "toolkit"), *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, **kwargs)


def test_committed_exports_are_current():
    for name in ("taxi", "credit", "penguins"):
        source = os.path.join(REPO, "notebooks", f"{name}.ipynb")
        assert os.path.exists(source), source
        result = _toolkit("export", "--check", source, "-o", os.path.join(REPO, "export"))
        assert result.returncode == 0, result.stdout + result.stderr


def _interactive_executions(executed_taxi):
    from toolkit import InteractiveContext

    context = InteractiveContext(pipeline_name=executed_taxi.parameters["pipeline_name"],
                                 pipeline_root=executed_taxi.root)
    return [e for e in context.executions() if e["state"] == "COMPLETE"]


@pytest.fixture(scope="module")
def toolkit_run_on_same_root(executed_taxi, tmp_path_factory):
    before = _interactive_executions(executed_taxi)
    run_dir = tmp_path_factory.mktemp("toolkit_run") / "run"
    args = ["run", EXPORT, "-o", str(run_dir)]
    for name, value in executed_taxi.parameters.items():
        args += ["-p", name, str(value)]
    # the push goes to the interactive run's serving_dir, inside the folder it allowed
    allowed = os.path.dirname(executed_taxi.serving)
    result = _toolkit(*args, env={**os.environ, "TOOLKIT_PUSH_ROOT": allowed})
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    run_log = [json.loads(line) for line in (run_dir / "executions.jsonl").read_text().splitlines()]
    return before, summary, result, run_log


def test_toolkit_run_reuses_every_interactive_execution(toolkit_run_on_same_root):
    before, summary, _, _ = toolkit_run_on_same_root
    executions = summary["executions"]
    interactive = {e["component_id"]: e["id"] for e in before}
    assert [e["component_id"] for e in executions] == list(interactive)
    assert all(e["cached"] for e in executions), executions
    # each cached execution hands on the interactive execution's outputs
    assert summary["artifacts"]
    for artifact in summary["artifacts"]:
        component_id = artifact["component_id"]
        assert artifact["uri"].endswith(f"/{component_id}/{artifact['key']}/"
                                        f"{interactive[component_id]}")


def test_summary_reports_blessing_and_the_push_it_reused(toolkit_run_on_same_root,
                                                         executed_taxi):
    """This run pushed nothing itself: its Pusher is a cache hit of the interactive run's,
    valid only because the version that run pushed is still in place. The record says so."""
    from toolkit import InteractiveContext

    before, summary, result, run_log = toolkit_run_on_same_root
    assert summary["status"] == "succeeded"
    assert summary["parameters"]["train_steps"] == 600
    assert summary["blessing"] is True
    assert "summary.json" in result.stdout
    interactive = InteractiveContext(pipeline_name=executed_taxi.parameters["pipeline_name"],
                                     pipeline_root=executed_taxi.root)
    pusher = next(e for e in before if e["component_id"] == "Pusher")
    [pushed] = interactive.store.outputs_of(pusher["id"])["pushed_model"]
    version = pushed.properties["pushed_version"]
    assert version.isdigit()
    assert summary["push"]["pushed"] is True and summary["push"]["cached"] is True
    assert str(summary["push"]["version"]) == str(summary["pushed_version"]) == version
    version_dir = os.path.join(summary["push"]["destination"], version)
    assert os.path.isfile(os.path.join(version_dir, "saved_model.pb"))
    [record] = [r for r in run_log if r["component_id"] == "Pusher"]
    assert record["cached"] is True
    assert record["outcome"] == f"already pushed as version {version} (cached)"


def test_papermill_runs_the_export_cold_with_the_same_results(executed_taxi, tmp_path,
                                                              monkeypatch):
    import nbformat
    import papermill
    import pyarrow.parquet as pq
    from toolkit import InteractiveContext

    params = dict(executed_taxi.parameters, pipeline_root=str(tmp_path / "root"),
                  serving_dir=str(tmp_path / "serving"))
    monkeypatch.setenv("TOOLKIT_PUSH_ROOT", str(tmp_path))
    papermill.execute_notebook(EXPORT, str(tmp_path / "out.ipynb"), parameters=params,
                               cwd=os.path.join(REPO, "notebooks"), kernel_name="python3",
                               progress_bar=False)
    out = nbformat.read(str(tmp_path / "out.ipynb"), as_version=4)
    assert_ran_clean(out)
    cold = InteractiveContext(pipeline_name=params["pipeline_name"],
                              pipeline_root=params["pipeline_root"])
    warm = InteractiveContext(pipeline_name=params["pipeline_name"],
                              pipeline_root=executed_taxi.root)
    cold_runs = [e for e in cold.executions() if e["state"] == "COMPLETE"]
    warm_runs = [e for e in warm.executions() if e["state"] == "COMPLETE"]
    assert [e["component_id"] for e in cold_runs] == [e["component_id"] for e in warm_runs]
    # the same parameters, but for the push destination, which this run moved on purpose
    assert [e["parameters"] for e in cold_runs if e["component_id"] != "Pusher"] == \
           [e["parameters"] for e in warm_runs if e["component_id"] != "Pusher"]

    def outputs(context, component_id):
        row = next(e for e in context.executions(component_id) if e["state"] == "COMPLETE")
        return context.store.outputs_of(row["id"])

    a = outputs(cold, "CsvExampleGen")["examples"][0]
    b = outputs(warm, "CsvExampleGen")["examples"][0]
    assert a.properties["row_counts"] == b.properties["row_counts"]
    for split in ("train", "eval"):
        assert pq.read_table(a.split_uri(split)).equals(pq.read_table(b.split_uri(split)))
    sa = outputs(cold, "SchemaGen")["schema"][0]
    sb = outputs(warm, "SchemaGen")["schema"][0]
    assert open(sa.schema_path).read() == open(sb.schema_path).read()
    ta = outputs(cold, "Transform")["transformed_examples"][0]
    tb = outputs(warm, "Transform")["transformed_examples"][0]
    assert pq.read_table(ta.split_uri("eval")).equals(pq.read_table(tb.split_uri("eval")))
    ba = outputs(cold, "Evaluator")["blessing"][0]
    bb = outputs(warm, "Evaluator")["blessing"][0]
    assert ba.properties["blessed"] == bb.properties["blessed"] == 1
    pushed = outputs(cold, "Pusher")["pushed_model"][0]
    assert pushed.properties["pushed"] == 1
    version_dir = os.path.join(pushed.properties["pushed_destination"],
                               pushed.properties["pushed_version"])
    assert os.path.isfile(os.path.join(version_dir, "saved_model.pb"))
