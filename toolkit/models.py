"""Pushed model versions: list them, show one's report, verify them, and roll back.

A serving directory is what a Pusher pushes to: numbered version folders, each a
SavedModel plus ``toolkit-push.json`` (written by the Pusher into the hidden copy, so it
appears with the version): the model id, its blessings, the data spans, when, and which
pipeline, metadata store, execution and ``toolkit run`` folder pushed it. That record is
how a serving directory leads back to its store: ``list_versions`` opens the store it
names (a SQLite file; a MySQL store needs ``metadata_connection_config``, since no
password is recorded) to add each blessing's metrics, from the evaluation that blessed it.

``rollback`` re-publishes an older version as the newest version number, with the
Pusher's own :func:`~toolkit.components.pusher.push` (hidden copy, then one rename; the
Pusher's version rule, so two rollbacks at once get distinct numbers), so a server that
loads the highest version switches to it. Nothing is ever deleted. With a store it is
recorded there as a ``Rollback`` execution (``reason=rollback``) whose output is the new
PushedModel. Without one it still rolls back, since restoring serving must not wait for
a database, and says in one line that it was not recorded; the new version's
``toolkit-push.json`` records the rollback either way. The re-published version gets a
report of its own (:mod:`toolkit.model_report`), from the store's lineage, else from the
rolled-back version's report.

``verify`` hashes every file of a version against the sha256 its push recorded in
``toolkit-push.json`` and names each file that differs; a rollback refuses a version that
differs, since it would serve bytes nobody evaluated.

``show`` says where a version's report page (``toolkit-report.html``, written with the
version) is, with a short text summary read from the report's data, so it needs no store.
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Any

from toolkit import _env, storage
from toolkit._process import DEFAULT_LEASE_SECONDS
from toolkit._text import show_controls, squeeze
from toolkit.artifacts import Artifact, PushedModel
from toolkit.components._model_io import has_saved_model
from toolkit.components.pusher import VERSION_RECORD, push, upstream_spans, versions
from toolkit.errors import ToolkitError
from toolkit.publishing import changed_files, has_hashes
from toolkit.model_report import (
    REPORT_FILE,
    collect_report,
    pushed_by,
    read_report,
    report_writer,
    summary_lines,
)

ROLLBACK_COMPONENT = "Rollback"
SQLITE_PREFIX = "SQLite file "


@dataclasses.dataclass
class PushedVersion:
    """One version folder of a serving directory."""

    version: int
    path: str
    model_id: int | None = None
    #: True/False: every blessing given blesses it / one does not; None: no blessing known
    blessed: bool | None = None
    #: the blessing's threshold metrics (overall slice first), metric -> value
    metrics: dict[str, float | None] = dataclasses.field(default_factory=dict)
    spans: list[int] = dataclasses.field(default_factory=list)
    pushed_at: float | None = None
    #: which pipeline, execution and run pushed it, one line
    pushed_by: str = ""
    #: "push", "rollback", or "" when nothing records it
    reason: str = ""
    rolled_back_from: int | None = None
    record: dict[str, Any] = dataclasses.field(default_factory=dict, repr=False)


class VersionTable(list):
    """``list_versions``' rows, oldest first; prints as a table. ``note`` says which
    store was read, or why none was."""

    COLUMNS = ("version", "model", "blessing", "metrics", "spans", "pushed (UTC)", "by")

    def __init__(self, rows: list[PushedVersion], serving_dir: str, note: str):
        super().__init__(rows)
        self.serving_dir = serving_dir
        self.note = note

    def rows(self) -> list[tuple[str, ...]]:
        return [_cells(row) for row in self]

    def __repr__(self) -> str:
        table = [self.COLUMNS, *self.rows()]
        widths = [max(len(r[i]) for r in table) for i in range(len(self.COLUMNS))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in table]
        if self:
            lines.append(f"version {self[-1].version} is the highest: a server that loads the "
                         "highest version serves it")
        lines.append(self.note)
        return show_controls("\n".join(lines))


@dataclasses.dataclass
class RolledBack:
    """What ``rollback`` did: ``version`` (new, the highest) now holds ``from_version``."""

    version: int
    path: str
    from_version: int
    #: the store the rollback is recorded in, or None
    recorded_in: str | None
    execution_id: int | None
    note: str

    def __str__(self) -> str:
        return (f"version {self.from_version} re-published as version {self.version} "
                f"({self.path}); {self.note}")


def list_versions(serving_dir: str | os.PathLike, metadata_connection_config: Any = None,
                  pipeline_root: str | os.PathLike | None = None,
                  pipeline_name: str | None = None) -> VersionTable:
    """Every pushed version in ``serving_dir``, oldest first: version, model id, blessing
    and its metrics, data spans, when and by which run.

    The store is ``metadata_connection_config``, else ``<pipeline_root>/metadata.sqlite``,
    else the SQLite store named in the newest ``toolkit-push.json``; without one the
    metrics are left out (the rest comes from the version folders)."""
    destination, found = _serving_dir(serving_dir)
    records = {v: _read_record(storage.join(destination, str(v))) for v in found}
    store, note = _open_store(records, metadata_connection_config, pipeline_root, pipeline_name)
    rows = [_row(destination, v, records[v], store) for v in found]
    return VersionTable(rows, destination, note)


def rollback(serving_dir: str | os.PathLike, to: int | str,
             metadata_connection_config: Any = None,
             pipeline_root: str | os.PathLike | None = None, pipeline_name: str | None = None,
             lease_s: float = DEFAULT_LEASE_SECONDS) -> RolledBack:
    """Re-publish version ``to`` as a new version above every one present, atomically;
    nothing is deleted. Recorded in the store (found as for :func:`list_versions`) as a
    ``Rollback`` execution with ``reason=rollback``; without a store it still rolls back
    and ``note`` says it was not recorded."""
    destination, found = _serving_dir(serving_dir)
    old = _version_number(to, destination, found)
    source = storage.join(destination, str(old))
    if not has_saved_model(source):
        raise ToolkitError(f"version {old} in {destination} holds no SavedModel "
                           "(saved_model.pb): refusing to roll back to it")
    old_record = _read_record(source)
    damaged = _verify_one(destination, old)
    if damaged.changes:
        raise ToolkitError(f"version {old} in {destination} is not what was pushed "
                           f"({', '.join(damaged.changes)}): refusing to roll back to it; "
                           "`toolkit models verify` lists the differences")
    store, store_note = _open_store({old: old_record}, metadata_connection_config,
                                    pipeline_root, pipeline_name)
    if store is not None and not _same_store(old_record, store):
        store, store_note = None, (f"not recorded in a metadata store: version {old} was "
                                   f"pushed with {old_record.get('store')}, not {store.location}")
    started = time.perf_counter()
    execution_id = None
    if store is not None:
        execution_id = _start_rollback(store, destination, old, old_record)
    record = {**old_record, "reason": "rollback", "rolled_back_from": old,
              "pushed_at": time.time(), "execution_id": execution_id,
              "component_id": ROLLBACK_COMPONENT, "run": None,
              "store": store.location if store is not None else old_record.get("store"),
              "pipeline_name": store.pipeline_name if store is not None
              else old_record.get("pipeline_name")}
    report = _rollback_report(store, record, source, destination)
    try:
        version, path, _ = push(source, destination, lease_s=lease_s, record=record,
                                prepare=report_writer(report))
    except BaseException as exc:
        if store is not None:
            store.fail_execution(execution_id, f"rollback failed: {exc}", only_if_running=True)
        raise
    if store is None:
        return RolledBack(version, path, old, None, None, store_note)
    pushed = PushedModel(uri=path, properties={
        "pushed": 1, "pushed_version": str(version), "pushed_destination": destination,
        "reason": "rollback", "rolled_back_from": old})
    store.complete_execution(execution_id, {"pushed_model": [pushed]},
                             time.perf_counter() - started,
                             outcome=f"rollback: version {old} re-published as version {version}")
    return RolledBack(version, path, old, store.location, execution_id,
                      f"recorded in {store.location} as execution {execution_id} "
                      "(reason rollback)")


@dataclasses.dataclass
class VersionReport:
    """What ``show`` says about one version: where its report page is, and its summary."""

    version: int
    path: str
    #: the version's ``toolkit-report.html``, or None when it has none
    report_path: str | None
    row: PushedVersion
    #: the report's data (``toolkit-report.json``), or None
    report: dict[str, Any] | None = dataclasses.field(default=None, repr=False)

    def lines(self) -> list[str]:
        head = [f"version {self.version} in {os.path.dirname(self.path)}"]
        if self.report_path is not None:
            head.append(f"report: {self.report_path}")
        else:
            head.append(f"report: none in {self.path} (pushed before reports were written)")
        if self.report is not None:
            body = summary_lines({**self.report, "version": self.version})
        else:
            body = [line for line in _cells_summary(self.row)]
        return [show_controls(line) for line in head + body]

    def __str__(self) -> str:
        return "\n".join(self.lines())

    __repr__ = __str__


def show(serving_dir: str | os.PathLike, version: int | str,
         metadata_connection_config: Any = None,
         pipeline_root: str | os.PathLike | None = None,
         pipeline_name: str | None = None) -> VersionReport:
    """Where version ``version``'s report is, with a short summary: the model, the
    blessing and the thresholds it passed, data spans, infra latency, when and which run.

    The summary comes from the report written with the version; a version without one
    (pushed before reports were written) is summarised as :func:`list_versions` lists it."""
    destination, found = _serving_dir(serving_dir)
    number = _version_number(version, destination, found)
    folder = storage.join(destination, str(number))
    record = _read_record(folder)
    report = read_report(folder)
    page = storage.join(folder, REPORT_FILE)
    if report is None:
        store, _ = _open_store({number: record}, metadata_connection_config, pipeline_root,
                               pipeline_name)
        row = _row(destination, number, record, store)
    else:
        row = _row(destination, number, record, None)
    return VersionReport(number, folder, page if storage.is_file(page) else None, row, report)


def _cells_summary(row: PushedVersion) -> list[str]:
    cells = dict(zip(VersionTable.COLUMNS, _cells(row)))
    return [f"model: {cells['model']}", f"blessing: {cells['blessing']}",
            f"  metrics: {cells['metrics']}", f"data spans: {cells['spans']}",
            f"pushed: {cells['pushed (UTC)']} UTC by {cells['by']}"]


def _rollback_report(store: Any, record: dict[str, Any], source: str,
                     destination: str) -> dict[str, Any]:
    """The re-published version's report: from the store's lineage, else the rolled-back
    version's own report with the rollback's facts (the store is not needed to roll back)."""
    if store is not None:
        return collect_report(store, record, destination=destination)
    old = read_report(source)
    if old is None:
        return collect_report(None, record, destination=destination)
    keys = ("reason", "rolled_back_from", "pushed_at", "execution_id", "component_id", "run",
            "store", "pipeline_name")
    return {**old, **{k: record.get(k) for k in keys}, "destination": destination,
            "notes": [*old.get("notes", []),
                      ("no metadata store was read for this rollback: the sections below are "
                       f"those of version {record.get('rolled_back_from')}'s report")]}


@dataclasses.dataclass
class Verified:
    """What ``verify`` found of one version: every file against the sha256 its push
    recorded (``toolkit-push.json``)."""

    version: int
    path: str
    #: each file that differs: ``"<path> (changed)"``, ``"(missing)"`` or ``"(added)"``
    changes: list[str]
    #: files checked (0 when nothing could be checked)
    files: int
    #: why the version could not be checked at all (pushed without file hashes), or ""
    unverifiable: str = ""

    @property
    def ok(self) -> bool:
        return not self.changes and not self.unverifiable

    def line(self) -> str:
        if self.unverifiable:
            return show_controls(f"version {self.version}: cannot verify: {self.unverifiable}")
        if self.ok:
            return f"version {self.version}: ok ({self.files} files, every byte as pushed)"
        return show_controls(f"version {self.version}: DIFFERS from what was pushed: "
                             + ", ".join(self.changes))


def verify(serving_dir: str | os.PathLike, version: int | str | None = None) -> list[Verified]:
    """Check every byte of version ``version`` (default: every version) against the
    sha256 of each file recorded when it was pushed: a file changed in place (even at the
    same size and with its times restored), replaced, added or missing is named. Needs no
    metadata store: the hashes are in the version's ``toolkit-push.json``."""
    destination, found = _serving_dir(serving_dir)
    wanted = found if version is None else [_version_number(version, destination, found)]
    return [_verify_one(destination, number) for number in wanted]


def _verify_one(destination: str, number: int) -> Verified:
    folder = storage.join(destination, str(number))
    files = _read_record(folder).get("files")
    if not has_hashes(files):
        return Verified(number, folder, [], 0, f"{storage.join(folder, VERSION_RECORD)} "
                        "records no file hashes (pushed by an older toolkit, or the record "
                        "is missing or unreadable)")
    changes = changed_files(folder, files, skip={VERSION_RECORD}, every_byte=True)
    return Verified(number, folder, changes, len(files))


# -- serving directory ---------------------------------------------------------------
def _serving_dir(serving_dir: str | os.PathLike) -> tuple[str, list[int]]:
    """The directory's real path and its version numbers; a one-line error when it is
    not a serving directory."""
    path = storage.resolve(os.fspath(serving_dir))
    if not storage.is_dir(path):
        raise ToolkitError(f"{os.fspath(serving_dir)} is not a serving directory: "
                           "no such folder")
    found = versions(path)
    if not found:
        raise ToolkitError(f"{os.fspath(serving_dir)} is not a serving directory: it holds "
                           "no numbered version folders (what a Pusher pushes)")
    return path, found


def _version_number(to: int | str, destination: str, found: list[int]) -> int:
    text = str(to).strip()
    if not text.isdigit() or int(text) not in found:
        raise ToolkitError(f"no version {text} in {destination}; versions: "
                           f"{', '.join(str(v) for v in found)}")
    return int(text)


def _read_record(folder: str) -> dict[str, Any]:
    try:
        record = json.loads(storage.read_text(storage.join(folder, VERSION_RECORD)))
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


# -- the metadata store --------------------------------------------------------------
def _open_store(records: dict[int, dict[str, Any]], config: Any,
                pipeline_root: str | os.PathLike | None, pipeline_name: str | None):
    """(store or None, one line saying which store or why none). A SQLite file that does
    not exist is never created here."""
    from toolkit.metadata import MetadataStore, sqlite_config

    newest = next((r for _, r in sorted(records.items(), reverse=True) if r.get("store")), {})
    name = pipeline_name or newest.get("pipeline_name") or "pipeline"
    if config is None:
        if pipeline_root is not None:
            path = os.path.join(os.path.abspath(os.fspath(pipeline_root)), "metadata.sqlite")
        elif str(newest.get("store") or "").startswith(SQLITE_PREFIX):
            path = newest["store"][len(SQLITE_PREFIX):]
        elif newest.get("store"):
            return None, (f"no metadata store read: the versions were pushed with "
                          f"{newest['store']}; pass its connection config (or set "
                          f"{_env.MYSQL_PREFIX}*) to add it")
        else:
            return None, ("no metadata store read: no version records one; pass the "
                          "pipeline root to add it")
        if not os.path.isfile(path):
            return None, f"no metadata store read: {path} does not exist"
        config = sqlite_config(path)
    store = MetadataStore(name, config)
    return store, f"metadata store: {store.location}"


def _same_store(record: dict[str, Any], store: Any) -> bool:
    """Whether the ids in ``record`` are ids in ``store`` (a record naming no store is
    trusted to belong to the store the caller gave)."""
    return not record.get("store") or record["store"] == store.location


def _start_rollback(store: Any, destination: str, old: int, record: dict[str, Any]) -> int:
    """A RUNNING ``Rollback`` execution with ``reason=rollback``, whose inputs are the
    model and the PushedModel of the version rolled back to, when the store has them."""
    inputs: dict[str, list[Artifact]] = {}
    pushed = _pushed_artifact(store, destination, old)
    if pushed is not None:
        inputs["pushed_model"] = [pushed]
    if record.get("model_id") is not None:
        try:
            inputs["model"] = [store.artifact(int(record["model_id"]))]
        except ToolkitError:
            pass
    parameters = json.dumps({"serving_dir": destination, "to": old, "reason": "rollback"},
                            sort_keys=True)
    execution_id = store.start_execution(ROLLBACK_COMPONENT, ROLLBACK_COMPONENT, "",
                                         parameters, "", inputs)
    [execution] = store.mlmd.get_executions_by_id([execution_id])
    execution.custom_properties["reason"].string_value = "rollback"
    execution.custom_properties["rolled_back_from"].int_value = old
    store.mlmd.put_executions([execution])
    return execution_id


def _pushed_artifact(store: Any, destination: str, version: int) -> Artifact | None:
    """The store's PushedModel for ``destination/version`` (the newest if several)."""
    found = [a for a in store.artifacts("PushedModel")
             if str(a.properties.get("pushed_version")) == str(version)
             and _real(str(a.properties.get("pushed_destination") or "")) == destination]
    return max(found, key=lambda a: a.id) if found else None


def _real(uri: str) -> str:
    """The resolved form of a recorded destination; as recorded where this process has no
    backend for it (it is then no destination here)."""
    return storage.resolve(uri) if storage.reachable(uri) else uri


# -- rows ----------------------------------------------------------------------------
def _row(destination: str, version: int, record: dict[str, Any], store: Any) -> PushedVersion:
    path = storage.join(destination, str(version))
    if not record and store is not None:
        record = _record_from_store(store, destination, version)
    blessings = [b for arts in (record.get("blessings") or {}).values() for b in arts]
    row = PushedVersion(
        version=version, path=path, model_id=record.get("model_id"),
        blessed=all(int(b.get("blessed", 0)) == 1 for b in blessings) if blessings else None,
        spans=list(record.get("spans") or []), pushed_at=record.get("pushed_at"),
        pushed_by=pushed_by(record) if record else "", reason=str(record.get("reason") or ""),
        rolled_back_from=record.get("rolled_back_from"), record=record)
    if store is not None and _same_store(record, store):
        row.metrics = _blessing_metrics(store, record)
    return row


def _record_from_store(store: Any, destination: str, version: int) -> dict[str, Any]:
    """What the store knows of a version whose folder has no ``toolkit-push.json`` (pushed
    before the Pusher wrote one): the Pusher execution's model and blessings."""
    pushed = _pushed_artifact(store, destination, version)
    execution_id = store.producer_of(pushed.id) if pushed is not None else None
    if execution_id is None:
        return {}
    inputs = store.inputs_of(execution_id)
    execution = store.execution(execution_id)
    model = (inputs.get("model") or [None])[0]
    return {"reason": "push", "model_id": model.id if model is not None else None,
            "blessings": {key: [{"id": b.id, "blessed": int(b.properties.get("blessed", 0) or 0)}
                                for b in inputs.get(key, [])]
                          for key in ("model_blessing", "infra_blessing") if inputs.get(key)},
            "spans": upstream_spans(store, model) if model is not None else [],
            "pushed_at": execution.get("create_time"), "pipeline_name": store.pipeline_name,
            "store": store.location, "execution_id": execution_id,
            "component_id": execution.get("component_id")}


def _blessing_metrics(store: Any, record: dict[str, Any]) -> dict[str, float | None]:
    """Metric -> value of every threshold checked by the evaluation that produced the
    model blessing (overall slice as the metric's name, other slices as ``metric @ slice``)."""
    metrics: dict[str, float | None] = {}
    for blessing in (record.get("blessings") or {}).get("model_blessing", []):
        try:
            producer = store.producer_of(int(blessing["id"]))
            evaluations = store.outputs_of(producer).get("evaluation", []) if producer else []
            result = evaluations[0].load() if evaluations else None
        except (ToolkitError, KeyError, TypeError, ValueError):
            continue
        if result is None or result.validation is None:
            continue
        checks = sorted(result.validation.checks, key=lambda c: len(c.slice_key))
        for check in checks:
            name = check.metric if not check.slice_key else f"{check.metric} @ {check.slice}"
            metrics.setdefault(name, check.value)
    return metrics



def _cells(row: PushedVersion) -> tuple[str, ...]:
    version = str(row.version)
    if row.reason == "rollback":
        version += f" (rollback of {row.rolled_back_from})"
    blessing = {True: "blessed", False: "NOT blessed", None: "-"}[row.blessed]
    metrics = ", ".join(f"{k}={'?' if v is None else f'{v:.4g}'}"
                        for k, v in row.metrics.items()) or "-"
    when = (time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(row.pushed_at))
            if row.pushed_at else "-")
    return (version, "-" if row.model_id is None else f"#{row.model_id}", blessing,
            squeeze(metrics), ",".join(str(s) for s in row.spans) or "-", when,
            squeeze(row.pushed_by) or "-")
