"""Comparison of runs and pushed versions: evaluations side by side, with what made them differ.

``toolkit.compare(a, b, ...)`` takes evaluations however a user holds them (a
``ModelEvaluation`` artifact or its folder, an :class:`~toolkit.evaluation.EvalResult`, an
Evaluator's ``ExecutionResult``, a pushed version as ``(serving_dir, version)``, a sweep's
folder) and answers the three questions asked after a sweep or before a rollback: how do
the metrics differ per slice (and is the difference larger than the confidence
intervals), which parameters and inputs of their runs differ (read from the metadata
store's lineage, so nothing has to be remembered), and how did each fare against its
thresholds. The first candidate is the reference every delta is measured from.

This module gathers; the page is drawn by :mod:`toolkit.visualize.compare` (and, in a
notebook with a live kernel, given controls by :mod:`toolkit.visualize.compare_widget`),
named here by string (as engines and run policies are), because sweeps and the CLI, which
sit below the views, write the same page.
"""
from __future__ import annotations

import dataclasses
import importlib
import json
import math
import os
from typing import Any, Sequence

from toolkit._text import one_line, show_controls
from toolkit.model_report import recorded_parameters
from toolkit.errors import ToolkitError

#: the notebook view's maker, ``module:function`` (imported when a view is drawn)
VIEW = "toolkit.visualize.compare_widget:comparison_widget"
#: the module whose ``comparison_page`` draws the static page (sweeps, the CLI, ``write``)
PAGE = "toolkit.visualize.compare"
SWEEP_FILE = "sweep.json"
EVALUATION_FILE = "evaluation.json"
PUSH_RECORD = "toolkit-push.json"
STORE_FILE = "metadata.sqlite"
SQLITE_PREFIX = "SQLite file "
#: how far the lineage walk goes back (executions per candidate)
MAX_EXECUTIONS = 200
#: inputs whose upstream is not part of a candidate's making (the Evaluator's reference)
NOT_FOLLOWED = ("baseline_model",)
COLUMNS = ["candidate", "slice", "metric", "sub_key", "class_id", "threshold", "value",
           "lower", "upper", "delta", "distinct"]
WHAT = ("pass a ModelEvaluation artifact or its folder, a toolkit EvalResult, an Evaluator's "
        "ExecutionResult, (serving_dir, version) or a sweep folder")


@dataclasses.dataclass
class Candidate:
    """One evaluation being compared, and where it came from."""

    name: str
    result: Any  # toolkit.evaluation.EvalResult
    #: the ModelEvaluation artifact in its store, or None (an EvalResult in memory)
    evaluation: Any = None
    store: Any = dataclasses.field(default=None, repr=False)
    #: one line: where it was found
    source: str = ""

    @property
    def model_name(self) -> str | None:
        return self.result.eval_config.candidate.name


class Comparison:
    """Candidates side by side; the first is the reference of every ``delta``.

    ``to_dataframe()`` (long form), ``parameters()`` (what differs in their lineages),
    ``blessing()`` (outcome and failed checks); renders as a static page in a notebook
    (``_repr_html_``) and as a short table in text (``repr``)."""

    def __init__(self, candidates: Sequence[Candidate]):
        self.candidates = list(candidates)
        self._frame = None
        self._lineage: list[dict[tuple[str, str], str]] | None = None

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.candidates]

    # -- metrics --------------------------------------------------------------------
    def to_dataframe(self) -> Any:
        """One row per candidate × slice × metric × threshold × class (``sub_key``).

        ``delta`` is the value minus the first candidate's for the same slice, metric,
        threshold and class (NaN where the first has none); ``distinct`` is True where both
        have confidence intervals and they do not overlap."""
        if self._frame is None:
            self._frame = _long_frame(self.candidates)
        return self._frame.copy()

    # -- lineage --------------------------------------------------------------------
    def parameters(self, all: bool = False) -> Any:  # noqa: A002 - the documented name
        """The execution parameters and inputs of each candidate's lineage, one row per
        ``(component, parameter)`` and one column per candidate: only those that differ
        between the candidates, or every one with ``all=True``. A value a candidate's
        lineage lacks is None; a candidate without a store (an EvalResult) has none, and
        is left out of what counts as differing."""
        import pandas as pd

        if self._lineage is None:
            self._lineage = [_lineage_parameters(c) for c in self.candidates]
        keys: list[tuple[str, str]] = []
        for found in self._lineage:
            keys += [k for k in found if k not in keys]
        rows = []
        traced = [bool(found) for found in self._lineage]  # candidates with a lineage
        for key in keys:
            values = [found.get(key) for found in self._lineage]
            distinct = {json.dumps(v, sort_keys=True, default=str)
                        for v, known in zip(values, traced) if known}
            if all or len(distinct) > 1:
                rows.append([key[0], key[1], *values])
        frame = pd.DataFrame(rows, columns=["component", "parameter", *self.names])
        return frame

    # -- blessing -------------------------------------------------------------------
    def blessing(self) -> Any:
        """Per candidate: ``blessed`` (True/False, None without thresholds), how many
        thresholds were checked, and ``failed``: each failed check as one line."""
        import pandas as pd

        rows = []
        for c in self.candidates:
            validation = c.result.validation
            checks = list(getattr(validation, "checks", []) or [])
            has_thresholds = bool(checks) or not getattr(validation, "missing_thresholds", True)
            rows.append({"candidate": c.name,
                         "blessed": bool(c.result.blessed) if has_thresholds else None,
                         "checks": len(checks),
                         "failed": [check_line(check) for check in checks if not check.passed]})
        return pd.DataFrame(rows, columns=["candidate", "blessed", "checks", "failed"])

    # -- rendering ------------------------------------------------------------------
    def view(self, **options: Any) -> Any:
        """The comparison's view (:mod:`toolkit.visualize.compare_widget`): static HTML, with
        live controls where a kernel runs; ``options`` such as ``metric="auc"`` or
        ``baseline=NAME`` choose what it shows first."""
        module, _, function = VIEW.partition(":")
        return getattr(importlib.import_module(module), function)(self, **options)

    def page(self, title: str | None = None, before: str = "") -> str:
        """The view as one self-contained HTML page (no script, nothing fetched);
        ``before`` is markup (already escaped) put above the comparison."""
        return importlib.import_module(PAGE).comparison_page(self, title=title, before=before)

    def write(self, path: str | os.PathLike, title: str | None = None, before: str = "") -> str:
        """Write :meth:`page` to ``path``; returns the path."""
        path = os.fspath(path)
        partial = os.path.join(os.path.dirname(os.path.abspath(path)),
                               f".{os.path.basename(path)}.partial")
        with open(partial, "w", encoding="utf-8") as handle:
            handle.write(self.page(title, before))
        os.replace(partial, path)
        return path

    def _repr_html_(self) -> str:
        return self.view().html

    def _toolkit_view_(self) -> Any:
        return self.view()

    def _ipython_display_(self) -> None:
        # In a kernel the view displays its widget and then the static copy; elsewhere the
        # static copy only (what ``_repr_html_`` returns).
        self.view()._ipython_display_()

    def text(self, metrics: int = 6) -> str:
        """The overall slice's metrics per candidate (with the delta to the first), the
        blessing, and the parameters that differ, as plain lines."""
        frame = self.to_dataframe()
        overall = frame[(frame["slice"] == "Overall") & (frame["sub_key"] == "")
                        & frame["threshold"].isna()]
        names = [n for n in dict.fromkeys(overall["metric"]) if not n.endswith("_diff")][:metrics]
        table = [["candidate", *names, "blessed"]]
        blessing = self.blessing().set_index("candidate")
        for c in self.candidates:
            mine = overall[overall["candidate"] == c.name].drop_duplicates("metric").set_index("metric")
            cells = [c.name]
            for name in names:
                if name not in mine.index:
                    cells.append("-")
                    continue
                value, delta = mine.at[name, "value"], mine.at[name, "delta"]
                text = _num(value)
                if c is not self.candidates[0] and _finite(delta):
                    text += f" ({delta:+.4g})"
                cells.append(text)
            blessed = blessing.at[c.name, "blessed"] if c.name in blessing.index else None
            cells.append({True: "yes", False: "NO"}.get(blessed, "-"))
            table.append(cells)
        widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
        lines = [f"Overall slice (in brackets: the difference to {self.candidates[0].name})"]
        lines += ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip()
                  for row in table]
        for c, failed in zip(self.candidates, blessing["failed"]):
            lines += [f"{c.name}: failed {line}" for line in failed]
        differing = self.parameters()
        if len(differing):
            lines.append("parameters that differ:")
            for row in differing.itertuples(index=False):
                values = ", ".join(f"{n}={_short(v)}" for n, v in zip(self.names, row[2:]))
                lines.append(f"  {row[0]} {row[1]}: {values}")
        return show_controls("\n".join(lines))

    def __repr__(self) -> str:
        return f"<Comparison of {len(self.candidates)} candidates>\n" + self.text()


def compare(*candidates: Any, names: Sequence[str] | None = None,
            metadata_connection_config: Any = None) -> Comparison:
    """Compare evaluations; the first candidate is the reference of every delta.

    Each candidate is a ``ModelEvaluation`` artifact or its folder, a toolkit
    ``EvalResult``, an Evaluator's ``ExecutionResult`` (or its ``evaluation`` channel), a
    pushed version ``(serving_dir, version)``, or a sweep folder (its succeeded points, named
    by their grid values). ``names`` names them (default: where each came from). The
    lineage is read from the store each artifact records, else the ``metadata.sqlite``
    of the pipeline root that holds its folder, else ``metadata_connection_config``.
    A candidate that is none of these fails in one line naming what to pass."""
    if not candidates:
        raise ToolkitError(f"compare needs at least one candidate: {WHAT}")
    found: list[Candidate] = []
    for index, given in enumerate(candidates, 1):
        found += resolve(given, index, metadata_connection_config)
    if names is not None:
        names = [str(n) for n in names]
        if len(names) != len(found):
            raise ToolkitError(f"names gives {len(names)} names for {len(found)} candidates; "
                               "give one name per candidate (a sweep counts its points)")
        for candidate, name in zip(found, names):
            candidate.name = name
    seen: dict[str, int] = {}
    for candidate in found:  # names are column labels: keep them distinct
        count = seen.get(candidate.name, 0)
        seen[candidate.name] = count + 1
        if count:
            candidate.name = f"{candidate.name} ({count + 1})"
    return Comparison(found)


# -- candidates ----------------------------------------------------------------------
def resolve(given: Any, index: int = 1, config: Any = None) -> list[Candidate]:
    """The candidates one argument of :func:`compare` stands for."""
    what = f"candidate {index} ({_short(given)})"
    if isinstance(given, tuple) and len(given) == 2 and isinstance(given[0], (str, os.PathLike)):
        return [pushed_version(given[0], given[1], config)]
    if isinstance(given, (str, os.PathLike)):
        return _folder_candidates(os.fspath(given), what, config)
    if getattr(given, "TYPE_NAME", None) == "ModelEvaluation":
        return [_artifact_candidate(given, f"ModelEvaluation #{given.id}", config)]
    if hasattr(given, "TYPE_NAME") and hasattr(given, "uri"):
        raise ToolkitError(f"{what}: a {given.TYPE_NAME} artifact is not an evaluation; pass "
                           "the Evaluator's ModelEvaluation (evaluator.outputs['evaluation'])")
    if hasattr(given, "slices") and hasattr(given, "eval_config") and hasattr(given, "validation"):
        return [Candidate(f"result {index}", given, source="EvalResult in memory")]
    outputs = getattr(given, "outputs", None)
    if isinstance(outputs, dict) and hasattr(given, "component_id"):
        evaluations = outputs.get("evaluation") or []
        if not evaluations:
            raise ToolkitError(f"{what}: {given.component_id} has no 'evaluation' output; pass "
                               "the ExecutionResult of an Evaluator run")
        return [_artifact_candidate(evaluations[0], str(given.component_id), config)]
    if callable(getattr(given, "get", None)) and hasattr(given, "type_name") \
            and getattr(given, "type_name", "") == "ModelEvaluation":
        artifacts = given.get()
        if not artifacts:
            raise ToolkitError(f"{what}: the channel holds no evaluation yet; run its "
                               "Evaluator first")
        return [_artifact_candidate(artifacts[-1], f"ModelEvaluation #{artifacts[-1].id}", config)]
    raise ToolkitError(f"{what}: cannot compare a {type(given).__name__}; {WHAT}")


def _folder_candidates(folder: str, what: str, config: Any) -> list[Candidate]:
    if os.path.isfile(os.path.join(folder, SWEEP_FILE)):
        return sweep_candidates(folder, config)
    if os.path.isfile(os.path.join(folder, EVALUATION_FILE)):
        from toolkit.evaluation.storage import load_result

        store = store_for_folder(folder, config)
        artifact = _artifact_by_uri(store, folder) if store is not None else None
        name = f"ModelEvaluation #{artifact.id}" if artifact is not None else os.path.basename(
            os.path.normpath(folder))
        return [Candidate(name, load_result(folder), artifact, store, source=folder)]
    if not os.path.isdir(folder):
        raise ToolkitError(f"{what}: no such folder; {WHAT}")
    raise ToolkitError(f"{what}: holds neither {EVALUATION_FILE} (an Evaluator's output) nor "
                       f"{SWEEP_FILE} (a sweep); {WHAT}")


def _artifact_candidate(artifact: Any, name: str, config: Any) -> Candidate:
    store = store_of(artifact, config)
    return Candidate(name, artifact.load(), artifact, store, source=str(artifact.uri))


def sweep_candidates(folder: str, config: Any = None) -> list[Candidate]:
    """The evaluations of a sweep's succeeded points, named by the point's grid values
    (and the Evaluator's id when a point has several)."""
    try:
        with open(os.path.join(folder, SWEEP_FILE), encoding="utf-8") as handle:
            record = json.load(handle)
    except (OSError, ValueError) as exc:
        raise ToolkitError(f"{folder}: cannot read {SWEEP_FILE} ({one_line(str(exc))}); "
                           "run the sweep again to rewrite it") from None
    found: list[Candidate] = []
    for point in record.get("points") or []:
        if point.get("status") != "succeeded" or not point.get("summary"):
            continue
        label = ", ".join(f"{k}={v!r}" for k, v in (point.get("grid") or {}).items())
        try:
            with open(point["summary"], encoding="utf-8") as handle:
                summary = json.load(handle)
        except (OSError, ValueError):
            continue
        evaluations = [a for a in summary.get("artifacts") or []
                       if isinstance(a, dict) and a.get("type") == "ModelEvaluation" and a.get("uri")]
        for artifact in evaluations:
            uri = str(artifact["uri"])
            if not os.path.isfile(os.path.join(uri, EVALUATION_FILE)):
                continue
            one = _folder_candidates(uri, f"point {point.get('index')}", config)[0]
            one.name = label if len(evaluations) == 1 else f"{label} {artifact.get('component_id')}"
            one.source = f"point {point.get('index')}: {uri}"
            found.append(one)
    if not found:
        raise ToolkitError(f"{folder}: the sweep has no succeeded point with an evaluation; "
                           "see its sweep.json for why the points failed")
    return found


def pushed_version(serving_dir: str | os.PathLike, version: Any, config: Any = None) -> Candidate:
    """The evaluation that blessed a pushed version (``toolkit-push.json`` names the
    blessing; the store names the Evaluator execution that made it)."""
    candidate = version_candidate(serving_dir, version, config)
    if candidate.result is None:
        raise ToolkitError(f"version {version} of {os.fspath(serving_dir)}: {candidate.source}; "
                           "pass the pipeline root's store (metadata_connection_config) or "
                           "compare the evaluations themselves")
    return candidate


def version_candidate(serving_dir: str | os.PathLike, version: Any,
                      config: Any = None) -> Candidate:
    """Like :func:`pushed_version`, but a version whose evaluation cannot be read comes
    back with ``result`` None and ``source`` saying why (for the versions view)."""
    folder = os.path.join(os.path.realpath(os.fspath(serving_dir)), str(version).strip())
    if not os.path.isdir(folder):
        from toolkit.models import list_versions

        known = ", ".join(str(row.version) for row in list_versions(serving_dir))
        raise ToolkitError(f"no version {version} in {os.fspath(serving_dir)}; versions: {known}")
    name = f"version {str(version).strip()}"
    try:
        with open(os.path.join(folder, PUSH_RECORD), encoding="utf-8") as handle:
            record = json.load(handle)
    except (OSError, ValueError):
        return Candidate(name, None, source=f"{PUSH_RECORD} is missing or unreadable")
    blessings = (record.get("blessings") or {}).get("model_blessing") or []
    if not blessings:
        return Candidate(name, None, source="pushed without a model blessing (no evaluation)")
    store = _open_sqlite(record.get("store"), record.get("pipeline_name"), config)
    if store is None:
        return Candidate(name, None, source=f"its store ({record.get('store')}) is not readable")
    try:
        producer = store.producer_of(int(blessings[0]["id"]))
        evaluations = store.outputs_of(producer).get("evaluation", []) if producer else []
    except (ToolkitError, KeyError, TypeError, ValueError):
        evaluations = []
    if not evaluations:
        return Candidate(name, None, store=store, source="its blessing has no evaluation in the store")
    evaluation = evaluations[0]
    return Candidate(name, evaluation.load(), evaluation, store, source=folder)


# -- the store -----------------------------------------------------------------------
def store_of(artifact: Any, config: Any = None) -> Any:
    """The store an artifact was read from (its ``store_location``), else the one of the
    pipeline root holding its folder, else ``config``; None when none is found."""
    location = str(getattr(artifact, "store_location", "") or "")
    store = _open_sqlite(location, None, None) if location.startswith(SQLITE_PREFIX) else None
    return store if store is not None else store_for_folder(str(artifact.uri), config)


def store_for_folder(folder: str, config: Any = None) -> Any:
    """The ``metadata.sqlite`` of the nearest folder above ``folder``, else ``config``."""
    path = os.path.abspath(folder)
    while True:
        candidate = os.path.join(path, STORE_FILE)
        if os.path.isfile(candidate):
            return _open_sqlite(SQLITE_PREFIX + candidate, None, None)
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return _open_config(config, None) if config is not None else None


def _open_sqlite(location: Any, pipeline_name: Any, config: Any) -> Any:
    location = str(location or "")
    if config is not None:
        return _open_config(config, pipeline_name)
    if not location.startswith(SQLITE_PREFIX):
        return None
    path = location[len(SQLITE_PREFIX):]
    if not os.path.isfile(path):
        return None
    from toolkit.metadata import sqlite_config

    return _open_config(sqlite_config(path), pipeline_name)


_STORES: dict[tuple[str, str], Any] = {}


def _open_config(config: Any, pipeline_name: Any) -> Any:
    """A store on ``config`` (one per location and pipeline, reused)."""
    from toolkit.metadata import MetadataStore

    name = str(pipeline_name or _pipeline_name(config) or "pipeline")
    key = (config.SerializeToString().hex(), name)
    if key not in _STORES:
        _STORES[key] = MetadataStore(name, config)
    return _STORES[key]


def _pipeline_name(config: Any) -> str | None:
    """The name of a pipeline context already in the store, so opening it adds none."""
    from ml_metadata.metadata_store import metadata_store

    try:
        raw = metadata_store.MetadataStore(config)
        contexts = raw.get_contexts_by_type("pipeline")
    except Exception:  # noqa: BLE001 - a store that cannot be read is reported later
        return None
    return contexts[0].name if contexts else None


def _artifact_by_uri(store: Any, folder: str) -> Any:
    wanted = os.path.realpath(folder)
    found = [a for a in store.mlmd.get_artifacts_by_uri(folder)] or [
        a for a in store.mlmd.get_artifacts_by_uri(wanted)]
    if not found:
        return None
    return store.artifact(max(a.id for a in found))


# -- lineage -------------------------------------------------------------------------
def _lineage_parameters(candidate: Candidate) -> dict[tuple[str, str], Any]:
    """``(component id, parameter) -> value`` for every execution upstream of the
    candidate's evaluation: its recorded parameters, its module file's fingerprint, and
    of each input the data span and version and, for data no execution made, its URI.
    Artifact ids of outputs made inside the lineage are left out: they differ between any
    two runs, and what made them differ is in the parameters upstream. The baseline model
    an Evaluator measured against is not followed: it is the reference, not the
    candidate's making (in a sweep it is another point's model). Where one component ran
    more than once upstream, the execution nearest the evaluation is the one listed."""
    store, evaluation = candidate.store, candidate.evaluation
    if store is None or evaluation is None or evaluation.id is None:
        return {}
    found: dict[tuple[str, str], Any] = {}
    producer = store.producer_of(int(evaluation.id))
    todo = [producer] if producer is not None else []
    seen: set[int] = set()
    components: set[str] = set()
    while todo and len(seen) < MAX_EXECUTIONS:
        execution_id = todo.pop()
        if execution_id in seen:
            continue
        seen.add(execution_id)
        execution = store.execution(execution_id)
        component = execution.get("component_id") or f"execution {execution_id}"
        if component in components:
            continue
        components.add(component)
        for name, value in sorted(recorded_parameters(execution.get("parameters") or "").items()):
            found[(component, name)] = value
        if execution.get("module_fingerprint"):
            found[(component, "module_fingerprint")] = execution["module_fingerprint"]
        for key, artifacts in sorted(store.inputs_of(execution_id).items()):
            if key in NOT_FOLLOWED:
                continue
            for artifact in artifacts:
                properties = artifact.properties or {}
                for prop in ("span", "version"):
                    if properties.get(prop) not in (None, ""):
                        found[(component, f"{key} {prop}")] = properties[prop]
                made_by = store.producer_of(artifact.id)
                if made_by is None:
                    found[(component, f"{key} (imported)")] = artifact.uri
                elif made_by not in seen:
                    todo.insert(0, made_by)  # breadth first: the nearest execution wins
    return found


# -- the long frame ------------------------------------------------------------------
def _long_frame(candidates: Sequence[Candidate]) -> Any:
    import pandas as pd

    parts = []
    for c in candidates:
        frame = c.result.to_dataframe()
        model = c.model_name
        if model is not None and (frame["model"] == model).any():
            frame = frame[frame["model"] == model]
        frame = frame[~frame["is_cross_slice"].astype(bool)] if "is_cross_slice" in frame else frame
        parts.append(pd.DataFrame({
            "candidate": c.name, "slice": frame["slice"].to_numpy(),
            "metric": frame["metric"].to_numpy(),
            "sub_key": frame["sub_key"].fillna("").astype(str).to_numpy(),
            "class_id": frame["class_id"].to_numpy(),
            "threshold": frame["threshold"].astype(float).to_numpy(),
            "value": pd.to_numeric(frame["value"], errors="coerce").astype(float).to_numpy(),
            "lower": pd.to_numeric(frame["lower"], errors="coerce").astype(float).to_numpy(),
            "upper": pd.to_numeric(frame["upper"], errors="coerce").astype(float).to_numpy()}))
    if not parts:
        return pd.DataFrame(columns=COLUMNS)
    frame = pd.concat(parts, ignore_index=True)
    frame["class_id"] = frame["class_id"].astype("Int64")
    return measured_from(frame, candidates[0].name, COLUMNS)


def measured_from(frame: Any, baseline: str, columns: Sequence[str]) -> Any:
    """``frame`` (long form) with ``delta``, the value minus ``baseline``'s for the same
    slice, metric, class and threshold, and ``distinct``, True where both intervals exist
    and do not overlap; ``columns`` of the result, in that order."""
    import numpy as np

    ids = ["slice", "metric", "sub_key", "threshold_key"]
    keyed = frame.assign(threshold_key=frame["threshold"].fillna(-np.inf))
    ref = keyed[keyed["candidate"] == baseline].drop_duplicates(ids)
    ref = ref[ids + ["value", "lower", "upper"]].rename(
        columns={"value": "_ref", "lower": "_ref_lower", "upper": "_ref_upper"})
    merged = keyed.merge(ref, on=ids, how="left")
    merged["delta"] = merged["value"] - merged["_ref"]
    apart = (merged["lower"] > merged["_ref_upper"]) | (merged["upper"] < merged["_ref_lower"])
    merged["distinct"] = apart.fillna(False).astype(bool)
    return merged[list(columns)].reset_index(drop=True)


# -- small helpers -------------------------------------------------------------------
def check_line(check: Any) -> str:
    """One failed (or passed) threshold check as a line."""
    value = "missing" if check.value is None else f"{check.value:.4g}"
    rule = check.threshold.describe() if hasattr(check.threshold, "describe") else str(check.threshold)
    return one_line(f"{check.metric} on {check.slice} = {value}, needs {rule}")


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _num(value: Any) -> str:
    return f"{float(value):.4g}" if _finite(value) else "-"


def _short(value: Any, n: int = 60) -> str:
    text = one_line(value if isinstance(value, str) else repr(value))
    return text if len(text) <= n else text[:n] + "…"



def version_candidates(serving_dir: str | os.PathLike, config: Any = None) -> list[Candidate]:
    """Every pushed version of ``serving_dir`` in push order (version numbers ascending;
    a rollback is pushed as a new number), each with the evaluation that blessed it, or
    ``result`` None and ``source`` saying why not."""
    from toolkit.components.pusher import versions

    path = os.path.realpath(os.fspath(serving_dir))
    found = versions(path) if os.path.isdir(path) else []
    if not found:
        raise ToolkitError(f"{os.fspath(serving_dir)} is not a serving directory: it holds no "
                           "numbered version folders (what a Pusher pushes)")
    return [version_candidate(path, number, config) for number in found]


#: the versions page's renderer (:mod:`toolkit.visualize.versions`), named as :data:`VIEW` is
VERSIONS_VIEW = "toolkit.visualize.versions:versions_page"
#: the versions page beside the version folders (a server loads only the numbered folders)
VERSIONS_PAGE = "toolkit-versions.html"


def write_versions_page(serving_dir: str | os.PathLike, **options: Any) -> str:
    """Write ``SERVING_DIR/toolkit-versions.html``: every pushed version's metric per slice
    (``options`` as for ``toolkit.show_versions``), the page each version's report links to."""
    module, _, function = VERSIONS_VIEW.partition(":")
    page = getattr(importlib.import_module(module), function)(serving_dir, **options)
    path = os.path.join(os.fspath(serving_dir), VERSIONS_PAGE)
    partial = os.path.join(os.fspath(serving_dir), f".{VERSIONS_PAGE}.partial")
    with open(partial, "w", encoding="utf-8") as handle:
        handle.write(page)
    os.replace(partial, path)
    return path
