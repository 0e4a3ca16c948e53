"""The launcher's shape: the decision it makes for each kind of run (and why), the order in
which hooks see a run, the run policies loaded from the environment, the driver hook that
resolves a run before its cache key, and a context that stays the notebook's API only.

Tiny components from ``test_driver``: seconds, no TFDV."""
from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

import pytest
from test_cached_claims import Export
from test_driver import WriteRows

from toolkit import InteractiveContext
from toolkit.artifacts import Examples
from toolkit.base_component import BaseComponent, ExternalEffects
from toolkit.cache import cache_key
from toolkit.errors import ComponentError, ToolkitError, UpstreamNotRunError
from toolkit.launcher import Decision, Hit, Launcher, Role, Ruling, RunHook
from toolkit.launcher.policies import POLICIES_ENV, PolicyRegistry, load_policies

CONTEXT_PY = Path(__file__).resolve().parents[2] / "toolkit" / "context.py"


class Recorder(RunHook):
    """Records every hook call as ``(hook, component id)``, and each run's decision."""

    def __init__(self, rulings: dict[str, Ruling] | None = None):
        self.calls: list[tuple[str, str]] = []
        self.decisions: dict[str, Decision] = {}
        self.rulings = rulings or {}

    def before_decide(self, run):
        self.calls.append(("before_decide", run.component.id))
        return self.rulings.get(run.component.id)

    def before_execute(self, run, decision):
        self.calls.append(("before_execute", run.component.id))
        self.running_state = run.store.execution(run.execution_id)["state"]

    def after_execute(self, run, decision, outputs):
        self.calls.append(("after_execute", run.component.id))
        self.published = [a.uri for arts in outputs.values() for a in arts]

    def on_failure(self, run, decision, error):
        self.calls.append(("on_failure", run.component.id))
        self.failure = (type(error).__name__, run.store.execution(run.execution_id)["state"])

    def after_run(self, run, decision, result):
        self.calls.append(("after_run", run.component.id))
        self.decisions[run.component.id] = decision


class Failing(BaseComponent):
    OUTPUTS = {"examples": Examples}

    def Do(self, input_dict, output_dict, exec_properties, ctx):
        raise RuntimeError("broken on purpose")


class Pick(BaseComponent):
    """References existing artifacts (as a Resolver does): here, none."""
    OUTPUTS = {"examples": Examples}
    REFERENCES_EXISTING_ARTIFACTS = True

    def Do(self, input_dict, output_dict, exec_properties, ctx):
        output_dict["examples"] = []


@pytest.fixture
def launcher(tmp_path):
    """A launcher with a recording policy (and no policy from the environment)."""
    WriteRows.calls.clear()
    recorder = Recorder()
    (tmp_path / "root").mkdir()
    made = Launcher("unit", str(tmp_path / "root"), policies=[recorder])
    made.recorder = recorder
    return made


# -- the decision ---------------------------------------------------------------------------
def test_compute_then_reuse_each_with_its_key_and_reason(launcher):
    rows = WriteRows(rows=2)
    first = launcher.launch(rows)
    computed = launcher.recorder.decisions["WriteRows"]
    assert computed.role is Role.COMPUTE and computed.hit is None and computed.replaced is None
    assert computed.reason == "no completed execution has this cache key"
    [row] = launcher.store.executions("WriteRows")
    assert computed.key.digest == row["cache_key"]

    again = launcher.launch(rows)
    reused = launcher.recorder.decisions["WriteRows"]
    assert reused.role is Role.REUSE and again.cached
    assert reused.hit.execution_id == first.execution_id and reused.key == computed.key
    assert reused.reason == (f"execution {first.execution_id} has this cache key and its "
                             "outputs are intact")
    assert reused.records and computed.records


def test_compute_when_the_cache_is_off_or_the_outputs_are_found_anew(launcher):
    rows = WriteRows(rows=2)
    launcher.launch(rows)
    launcher.launch(rows, enable_cache=False)
    decision = launcher.recorder.decisions["WriteRows"]
    assert decision.role is Role.COMPUTE
    assert decision.reason == "the cache is off for this run (enable_cache=False)"
    launcher.launch(Pick())
    launcher.launch(Pick())
    decision = launcher.recorder.decisions["Pick"]
    assert decision.role is Role.COMPUTE and "never cached" in decision.reason


def test_compute_when_the_cached_outputs_are_damaged(launcher, capsys):
    rows = WriteRows(rows=2)
    first = launcher.launch(rows)
    shutil.rmtree(first.outputs["examples"][0].uri)
    launcher.launch(rows)
    decision = launcher.recorder.decisions["WriteRows"]
    assert decision.role is Role.COMPUTE and decision.hit is None
    assert decision.reason == ("the outputs of every completed execution with this cache key "
                               f"are missing or damaged (execution {first.execution_id})")
    assert "missing or damaged" in capsys.readouterr().out


def test_compute_that_replaces_a_hit_whose_outside_effect_is_gone(launcher, tmp_path):
    target = tmp_path / "exported.txt"
    export = Export(target=str(target))
    Export.replaced.clear()
    first = launcher.launch(export)
    target.unlink()
    launcher.launch(export)
    decision = launcher.recorder.decisions["Export"]
    assert decision.role is Role.COMPUTE
    assert decision.reason == f"export {target} is gone; exporting again"
    assert decision.replaced["examples"][0].uri == first.outputs["examples"][0].uri
    # the executor declared it needs it: it got the replaced outputs with the lease
    assert Export.replaced == [None, decision.replaced]


def test_read_and_skip_as_a_policy_rules(tmp_path):
    root = str(tmp_path)
    first = Launcher("unit", root, policies=[]).launch(WriteRows(rows=2))
    rulings = {"WriteRows": Ruling(Role.READ, "read it, it is upstream"),
               "Side": Ruling(Role.SKIP, "skipped: not this run's")}
    recorder = Recorder(rulings)
    launcher = Launcher("unit", root, policies=[recorder])

    rows = WriteRows(rows=2)
    read = launcher.launch(rows)
    decision = recorder.decisions["WriteRows"]
    assert decision.role is Role.READ and decision.reason == "read it, it is upstream"
    assert decision.hit.execution_id == first.execution_id and not decision.records
    assert read.cached and read.execution_id == first.execution_id
    assert rows.outputs["examples"].get()[0].uri == first.outputs["examples"][0].uri

    side = WriteRows(rows=9).with_id("Side")
    skipped = launcher.launch(side)
    decision = recorder.decisions["Side"]
    assert decision.role is Role.SKIP and decision.key is None and decision.hit is None
    assert repr(skipped) == "Side: skipped: not this run's" and launcher.skipped["Side"] is skipped
    assert side.outputs["examples"].get() == [] and side.outputs["examples"].has_artifacts
    assert [r["component_id"] for r in launcher.store.executions()] == ["WriteRows"]

    # a READ of something nobody computed: one line, with the policy's reason
    with pytest.raises(UpstreamNotRunError) as caught:
        launcher.launch(WriteRows(rows=3))
    assert str(caught.value).startswith("WriteRows: no completed execution with these inputs")
    assert str(caught.value).endswith("; read it, it is upstream")
    assert "\n" not in str(caught.value)


def test_a_decision_holds_only_what_its_role_allows():
    from toolkit.cache import CacheKey

    key = CacheKey("d", "{}", "{}")
    hit = Hit(1, {})
    assert Decision(Role.REUSE, "why", key, hit).records
    assert not Decision(Role.READ, "why", key, hit).records
    for role, kwargs in [(Role.REUSE, {"key": key}), (Role.COMPUTE, {"key": key, "hit": hit}),
                         (Role.READ, {"key": key, "replaced": {}, "hit": hit}),
                         (Role.SKIP, {"key": key}), (Role.COMPUTE, {})]:
        with pytest.raises(ValueError):
            Decision(role, "why", **kwargs)
    with pytest.raises(ValueError, match="decided by the cache"):
        Ruling(Role.COMPUTE, "a policy cannot")


# -- the hooks ------------------------------------------------------------------------------
def test_hooks_see_each_phase_in_order_around_a_compute_a_reuse_and_a_failure(launcher):
    recorder = launcher.recorder
    rows = WriteRows(rows=2)
    launcher.launch(rows)
    assert recorder.calls == [("before_decide", "WriteRows"), ("before_execute", "WriteRows"),
                              ("after_execute", "WriteRows"), ("after_run", "WriteRows")]
    assert recorder.running_state == "RUNNING"  # recorded before the executor runs
    assert all(not os.path.basename(uri).startswith(".staging") for uri in recorder.published)

    recorder.calls.clear()
    launcher.launch(rows)
    assert recorder.calls == [("before_decide", "WriteRows"), ("after_run", "WriteRows")]

    recorder.calls.clear()
    with pytest.raises(ComponentError, match="broken on purpose"):
        launcher.launch(Failing())
    assert recorder.calls == [("before_decide", "Failing"), ("before_execute", "Failing"),
                              ("on_failure", "Failing")]
    assert recorder.failure == ("RuntimeError", "RUNNING")  # heard before it is recorded
    assert [r["state"] for r in launcher.store.executions("Failing")] == ["FAILED"]


def test_built_in_hooks_come_after_the_policies(tmp_path):
    from toolkit.launcher.hooks import LiveProgress, Ownership, ProductionGate, RunLog

    recorder = Recorder()
    launcher = Launcher("unit", str(tmp_path), policies=[recorder])
    assert [type(h) for h in launcher.hooks.hooks] == [Recorder, Ownership, LiveProgress,
                                                       RunLog, ProductionGate]


# -- the policies ---------------------------------------------------------------------------
def test_an_unknown_policy_stops_the_context_with_one_line_naming_the_known_ones(
        tmp_path, monkeypatch):
    monkeypatch.setenv(POLICIES_ENV, "nope")
    with pytest.raises(ToolkitError) as caught:
        InteractiveContext(pipeline_name="p", pipeline_root=str(tmp_path))
    message = str(caught.value)
    assert message.startswith("TOOLKIT_POLICIES: unknown run policy 'nope'")
    assert "known: pipeline-step" in message and "\n" not in message

    registry = PolicyRegistry()
    registry.register("mine", lambda environ: Recorder())
    with pytest.raises(ToolkitError) as caught:
        registry.get("no.such.module:factory")
    message = str(caught.value)
    assert "'no.such.module:factory'" in message and "known: mine" in message
    assert "\n" not in message
    with pytest.raises(ToolkitError, match="unknown run policy 'pathlib:nothing_here'"):
        registry.get("pathlib:nothing_here")
    assert isinstance(registry.load({POLICIES_ENV: "mine"})[0], Recorder)


def test_policies_from_the_environment(monkeypatch):
    from toolkit.exporter.kfp_task import StepPolicy

    assert load_policies({}) == []
    [step] = load_policies({"TOOLKIT_ONLY_COMPONENT": "Use",
                            "TOOLKIT_UPSTREAM_COMPONENTS": "Make, Pick"})
    assert isinstance(step, StepPolicy) and (step.only, step.upstream) == ("Use", {"Make", "Pick"})
    [loaded] = load_policies({POLICIES_ENV: "test_launcher:recording_policy"})
    assert type(loaded).__name__ == "Recorder"


def recording_policy(environ) -> RunHook:
    """A policy factory named as ``module:factory`` by the test above."""
    return Recorder()


# -- the driver hook and what components are handed -----------------------------------------
def test_example_gen_resolves_its_spans_once_before_the_cache_key(tmp_path):
    from toolkit.components import CsvExampleGen
    from toolkit.components.example_gen import RESOLVED_SPANS

    for span in (1, 2):
        folder = tmp_path / "data" / f"span-{span}"
        folder.mkdir(parents=True)
        (folder / "rows.csv").write_text("a,b\n1,2\n")
    gen = CsvExampleGen(input_base=str(tmp_path / "data"),
                        input_config={"splits": [{"name": "all", "pattern": "span-{SPAN}/*.csv"}]})
    resolved = gen.resolve_exec_properties({})
    assert resolved.exec_properties[RESOLVED_SPANS].span == 2
    assert resolved.fingerprints["input_base"].startswith("spans:")
    assert RESOLVED_SPANS not in gen.exec_properties  # the declared parameters stay as given
    assert cache_key(gen, {}, "store", resolved) == cache_key(gen, {}, "store")
    assert not hasattr(gen, "_pending_resolution")
    broken = CsvExampleGen(input_base=str(tmp_path / "none"), input_config={
        "splits": [{"name": "all", "pattern": "span-{SPAN}/*.csv"}]}).resolve_exec_properties({})
    assert broken.fingerprints["input_base"].startswith("unresolved: input_base ")
    assert RESOLVED_SPANS not in broken.exec_properties  # Do raises it, as a failed execution


def test_example_gens_keep_the_module_their_cache_keys_name():
    from toolkit.components import CsvExampleGen, ImportExampleGen

    for cls in (CsvExampleGen, ImportExampleGen):
        assert (cls.__module__, cls.__qualname__) == ("toolkit.components.example_gen",
                                                      cls.__name__)


def test_only_components_that_declare_outside_effects_get_them(launcher):
    from toolkit.base_component import ExecutorContext

    assert {f.name for f in dataclasses.fields(ExecutorContext)}.isdisjoint(
        {"replaced_outputs", "lease_seconds"})
    assert ExternalEffects().replaced is None
    launcher.launch(WriteRows())  # its Do takes no ``effects``: it would fail if handed one


# -- the context is the notebook's API ------------------------------------------------------
def test_the_context_is_the_notebook_api_only():
    text = CONTEXT_PY.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 250
    for word in ("kubeflow", "task", "restrict"):
        assert word not in text.lower(), word
