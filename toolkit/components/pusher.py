"""Pusher: copies a blessed SavedModel to ``<destination>/<version>/``, atomically.

Serving systems (TF Serving, and most others) watch a base directory and load
the highest numbered version. So a version must appear complete or not at all:
the model is copied into a hidden folder inside the destination and renamed
into place in one step. Versions are never overwritten; older ones stay for
rollback.

The pushed version lies outside the Pusher's artifact folder, so a cached push is
reused only while that version folder still holds every file it was pushed with
(``push.json`` lists them); otherwise the Pusher runs again and pushes a new version
above the lost one. The hidden copy records its owner (host, pid, process start time,
a heartbeat renewed while copying): another process removes a copy left behind only
once its owner is provably gone on the same host, or its lease has expired, because
the destination may be shared by machines that cannot see each other's processes.

Each version folder also holds ``toolkit-push.json`` beside the SavedModel (written into
the hidden copy, so it appears with the version): the model id, its blessings, the data
spans it was trained on, when, and which pipeline, store, execution and run pushed it.
``toolkit models`` (:mod:`toolkit.models`) lists and rolls back versions from it. Beside
it, in the same hidden copy, the version's report (``toolkit-report.html`` and its data,
see :mod:`toolkit.model_report`): training data, evaluation, infra validation, lineage and
parameters, from the metadata store.
"""
from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from typing import Any, Callable

from toolkit import _env, storage
from toolkit._process import (
    DEFAULT_LEASE_SECONDS,
    Heartbeat,
    Owner,
    abandoned_reason,
    pid_alive,
)
from toolkit.artifacts import InfraBlessing, Model, ModelBlessing, PushedModel
from toolkit.base_component import (
    BaseComponent,
    ExecutionParameter,
    ExecutorContext,
    ExternalEffects,
    InputSpec,
)
from toolkit.components._model_io import (
    blessing_verdict,
    has_saved_model,
    serving_model_path,
)
from toolkit.errors import PushRefused, ToolkitError
from toolkit.model_report import REPORT_FILE, collect_report, report_writer
from toolkit.publishing import (
    changed_files,
    file_sizes,
    fingerprint,
    has_hashes,
    link_or_copy,
    without_stamps,
)

#: environment variable naming the folder push destinations must stay inside
PUSH_ROOT_ENV = _env.PUSH_ROOT


class Pusher(BaseComponent):
    """Pushes a model to a filesystem destination if every blessing given blesses it.

    Args:
        model: the Model channel (a Trainer's ``model``).
        model_blessing: an Evaluator's ``blessing``.
        infra_blessing: an InfraValidator's ``blessing``.
        push_destination: a folder, or TFX's form
            ``{"filesystem": {"base_directory": "serving/taxi"}}``.
        allowed_root: destinations must resolve (symlinks included) inside this
            folder; default: ``$TOOLKIT_PUSH_ROOT``, else the working directory.
        require_blessing: with no blessing wired at all the push is refused; set
            False to push an unvalidated model on purpose.

    A model that a given blessing does not bless is not pushed: the execution
    completes with ``pushed_model.pushed == 0`` and the reason, and in production
    mode the pipeline stops there (``gate``). ``pushed_version`` is an integer, the
    push time in seconds, or one more than the newest existing version if that
    is higher, so versions always increase. A cached push whose version folder is
    gone or changed is pushed again, as a version above the lost one. Each version
    holds its report beside the SavedModel (``toolkit-report.html``).
    """

    INPUTS = {"model": InputSpec(Model),
              "model_blessing": InputSpec(ModelBlessing, optional=True),
              "infra_blessing": InputSpec(InfraBlessing, optional=True)}
    OUTPUTS = {"pushed_model": PushedModel}
    #: 2: each version folder holds its report (toolkit-report.html)
    EXECUTOR_VERSION = "2"
    PARAMETERS = {"push_destination": ExecutionParameter(object, required=True),
                  "allowed_root": ExecutionParameter(str),
                  "require_blessing": ExecutionParameter(bool, default=True)}
    #: the pushed version lies in the destination, outside the artifact folder
    HAS_EXTERNAL_EFFECTS = True

    def __init__(self, model, push_destination: Any, model_blessing=None, infra_blessing=None,
                 allowed_root: str | None = None, require_blessing: bool = True):
        super().__init__(model=model, model_blessing=model_blessing,
                         infra_blessing=infra_blessing,
                         push_destination=_destination_text(push_destination),
                         allowed_root=None if allowed_root is None else os.fspath(allowed_root),
                         require_blessing=bool(require_blessing))

    def Do(self, input_dict, output_dict, exec_properties, ctx: ExecutorContext,
           effects: ExternalEffects | None = None) -> None:
        """Push, claiming the hidden copy for ``effects.lease_seconds`` per heartbeat and
        numbering the version above any that ``effects.replaced`` claimed (a cached push
        whose version is gone)."""
        effects = effects or ExternalEffects()
        model: Model = input_dict["model"][0]
        pushed: PushedModel = output_dict["pushed_model"][0]
        blessings = {k: input_dict.get(k) or [] for k in ("model_blessing", "infra_blessing")}
        destination = resolve_destination(exec_properties["push_destination"],
                                          exec_properties.get("allowed_root"))
        pushed.properties.update(pushed=0, pushed_destination=destination, pushed_version="")
        if not any(blessings.values()):
            if exec_properties.get("require_blessing", True):
                raise PushRefused(
                    f"refusing to push Model #{model.id}: no model_blessing or infra_blessing "
                    "is given. Wire model_blessing=evaluator.outputs['blessing'] (and/or "
                    "infra_blessing=infra_validator.outputs['blessing']), or pass "
                    "require_blessing=False to push an unvalidated model on purpose")
            ctx.log("pushing without a blessing (require_blessing=False)")
        reason = blessing_verdict(model, blessings)
        if reason:
            pushed.properties["reason"] = f"not pushed: {reason}"
            _write_record(pushed, {"pushed": False, "reason": reason, "model_id": model.id,
                                   "destination": destination})
            ctx.log(f"NOT pushed: {reason}")
            return
        source = serving_model_path(model)
        if not has_saved_model(source):
            raise ToolkitError(f"Model #{model.id} has no SavedModel in {source}")
        record = version_record(model, blessings, ctx)
        report = collect_report(getattr(ctx, "store", None), record, destination=destination)
        version, path, files = push(source, destination, lease_s=effects.lease_seconds,
                                    above=_claimed_version(effects.replaced), log=ctx.log,
                                    record=record, prepare=report_writer(report))
        # as TFX's Pusher does, the artifact holds the SavedModel, so
        # tf.saved_model.load(pushed_model.uri) works (tutorials do this): the version's
        # own files, hard-linked where the filesystem allows, so a push costs the model's
        # size once on disk, not twice
        if not link_or_copy(path, pushed.uri, only=set(file_sizes(source))):
            why = ("another filesystem?" if storage.scheme_of(path) == "file" else
                   "an object store has no links")
            ctx.log(f"{pushed.uri} holds a copy of the model: {path} cannot be hard-linked "
                    f"from there ({why})")
        pushed.properties.update(pushed=1, pushed_version=str(version))
        # the claim a cache hit checks: every file of the version, stamped after the links
        # were made (a link changes a file's ctime)
        _write_record(pushed, {"pushed": True, "model_id": model.id, "model_uri": model.uri,
                               "destination": destination, "version": version, "path": path,
                               "pushed_at": time.time(),
                               "files": fingerprint(path, known=files)})
        ctx.log(f"pushed Model #{model.id} as version {version}: {path} (report: "
                f"{storage.join(path, REPORT_FILE)})")

    def missing_external_effects(self, outputs) -> str | None:
        """A cached push counts only while ``<destination>/<version>`` holds exactly the
        files it was pushed with, byte for byte: none missing, none added, none changed
        (``push.json`` holds each file's sha256 and a stamp that any write, replacement or
        restore changes, so an intact version costs a ``stat`` per file; a moved stamp
        costs that file's hash). A record from before hashes were kept proves nothing
        about content, so that version is pushed again."""
        for pushed in outputs.get("pushed_model", []):
            record = _read_record(pushed)
            if not record.get("pushed"):
                continue
            version, destination = record.get("version"), record.get("destination")
            folder = storage.join(str(destination), str(version))
            if not storage.is_dir(folder):
                return f"pushed version {version} at {destination} is gone; pushing again"
            files = record.get("files")
            if not has_hashes(files):
                return (f"pushed version {version} at {destination} was recorded without "
                        "content hashes (by an older toolkit), so it cannot be shown "
                        "unchanged; pushing again")
            changed = changed_files(folder, files)
            if changed:
                return (f"pushed version {version} at {destination} is not what was pushed "
                        f"({_listed(changed)}); pushing again")
        return None

    def outcome(self, outputs, cached: bool) -> str | None:
        """"pushed now as version N", "already pushed as version N (cached)", or why not."""
        for pushed in outputs.get("pushed_model", []):
            version = pushed.properties.get("pushed_version")
            if int(pushed.properties.get("pushed", 0) or 0) == 1 and version not in (None, ""):
                return (f"already pushed as version {version} (cached)" if cached
                        else f"pushed now as version {version}")
            return pushed.properties.get("reason") or "not pushed"
        return None

    def gate(self, outputs, exec_properties) -> str | None:
        """In production mode, a model not pushed for want of a blessing stops the run."""
        pushed = outputs["pushed_model"][0]
        if int(pushed.properties.get("pushed", 0) or 0) == 1:
            return None
        return pushed.properties.get("reason") or "model not pushed"


def resolve_destination(destination: str, allowed_root: str | None) -> str:
    """The destination's real path, refused if it is outside the allowed root."""
    root = allowed_root or os.environ.get(PUSH_ROOT_ENV) or os.getcwd()
    real, real_root, inside = storage.within(destination, root)
    if not inside:
        raise PushRefused(
            f"push_destination {destination} resolves to {real}, outside the allowed root "
            f"{real_root}; pass allowed_root=... (or set ${PUSH_ROOT_ENV}) to allow it")
    return real


#: inside a hidden copy folder: who is copying (``toolkit._process.Owner`` as JSON)
OWNER_FILE = "owner.json"
#: inside a version folder, beside the SavedModel: what was pushed, by whom (JSON)
VERSION_RECORD = "toolkit-push.json"
#: in a hidden push copy on an object store: the version its upload fills
CLAIM_FILE = "target-version"


def push(source: str, destination: str, lease_s: float = DEFAULT_LEASE_SECONDS,
         above: int = 0, log: Callable[[str], None] | None = None,
         record: dict[str, Any] | None = None,
         prepare: Callable[[str, int], None] | None = None
         ) -> tuple[int, str, dict[str, dict]]:
    """Copy ``source`` to ``destination/<version>`` atomically; returns (version, path,
    fingerprint of every file in it but ``toolkit-push.json``).

    The version is above ``above`` (a version this push replaces), above every version
    present, and at least the time in seconds. The copy is made in
    ``.pushing-<pid>-<ns>-<token>/model`` beside the versions, with an owner file whose
    heartbeat is renewed every third of ``lease_s`` while copying, then renamed into place.
    ``record``, when given, is written into the copy as ``toolkit-push.json`` (replacing
    one copied from ``source``), so the version never appears without it; its ``files``
    hold the size and sha256 of every other file of the version, what ``toolkit models
    verify`` checks. ``prepare``,
    when given, is called as ``prepare(copy_folder, version)`` before each attempt to
    rename the copy into ``destination/<version>`` (the version's report is written so),
    so whatever it writes appears with the version, numbered as it is published.
    """
    storage.makedirs(destination)
    atomic = storage.backend_for(destination).atomic_commit
    _remove_abandoned_copies(destination, lease_s, log)
    hidden = storage.join(destination,
                          f".pushing-{os.getpid()}-{time.time_ns()}-{uuid.uuid4().hex[:8]}")
    storage.makedirs(hidden, exist_ok=False)
    heartbeat = None
    try:
        _write_owner(hidden, lease_s)
        heartbeat = Heartbeat(lambda: _write_owner(hidden, lease_s), lease_s / 3,
                              f"push copy {hidden}").start()
        staging = storage.join(hidden, "model")
        storage.copy_tree(source, staging)
        with contextlib.suppress(FileNotFoundError):
            storage.remove(storage.join(staging, VERSION_RECORD))  # one copied from source
        files: dict[str, dict] = {}
        version = max(int(time.time()), _newest(destination) + 1, above + 1)
        for _ in range(1000):
            target = storage.join(destination, str(version))
            if not storage.exists(target):
                if prepare is not None:
                    prepare(staging, version)
                files = fingerprint(staging, skip={VERSION_RECORD}, known=files)
                marker = {**record, "files": without_stamps(files)} if record is not None \
                    else None
                if marker is not None and atomic:
                    _write_json(storage.join(staging, VERSION_RECORD), marker)
                if not atomic:
                    # no rename: the copy into ``target`` can be cut short, so the version
                    # it fills is named in the hidden copy, for whoever removes it
                    storage.write_text(storage.join(hidden, CLAIM_FILE), str(version))
                try:
                    storage.move(staging, target)
                    if marker is not None and not atomic:
                        # no rename here: the record is written last, and a version is
                        # listed only once it is there (see ``versions``)
                        _write_json(storage.join(target, VERSION_RECORD), marker)
                    return version, target, files
                except OSError:
                    if not storage.exists(target):
                        raise
            version += 1
        raise ToolkitError(f"{destination}: no free version number after {version}")
    finally:
        if heartbeat is not None:
            heartbeat.stop()
        storage.remove_tree(hidden)


def version_record(model: Model, blessings: dict[str, list[Any]],
                   ctx: ExecutorContext) -> dict[str, Any]:
    """What ``toolkit-push.json`` says about a push: the model, its blessings, the spans of
    the Examples upstream of the model (from the store's lineage), when, and who pushed it:
    the pipeline, its store, the execution, and the ``toolkit run`` folder if any."""
    store = getattr(ctx, "store", None)
    run_log = os.environ.get(_env.RUN_LOG)
    return {"reason": "push", "model_id": model.id, "model_uri": model.uri,
            "blessings": {key: [{"id": b.id, "blessed": int(b.properties.get("blessed", 0) or 0)}
                                for b in arts] for key, arts in blessings.items() if arts},
            "spans": upstream_spans(store, model), "pushed_at": time.time(),
            "pipeline_name": getattr(store, "pipeline_name", None),
            "pipeline_root": ctx.pipeline_root, "store": getattr(store, "location", None),
            "execution_id": ctx.execution_id, "component_id": ctx.component_id,
            "run": os.path.dirname(run_log) if run_log else None}


def upstream_spans(store: Any, model: Model, limit: int = 200) -> list[int]:
    """Every span of the Examples artifacts upstream of ``model`` (a window's every span),
    sorted."""
    if store is None or model.id is None:
        return []
    spans, seen, todo = set(), set(), [model.id]
    while todo and len(seen) < limit:
        artifact_id = todo.pop()
        if artifact_id in seen:
            continue
        seen.add(artifact_id)
        producer = store.producer_of(artifact_id)
        for arts in (store.inputs_of(producer) if producer is not None else {}).values():
            for art in arts:
                if art.TYPE_NAME == "Examples":
                    spans.update(_spans_of(art))
                todo.append(art.id)
    return sorted(spans)


def _spans_of(examples: Any) -> list[int]:
    """Every span an Examples artifact holds: its window (``spans``, a JSON list) when it
    was read over a range, else its one ``span``."""
    window = examples.properties.get("spans")
    if window not in (None, ""):
        with contextlib.suppress(ValueError, TypeError):
            return [int(span) for span in json.loads(window)]
    span = examples.properties.get("span")
    return [int(span)] if str(span if span is not None else "") != "" else []


def _write_owner(hidden: str, lease_s: float) -> None:
    """This process as the owner of the copy in ``hidden``, with a heartbeat of now,
    replaced atomically so a reader never sees half a file."""
    partial = storage.join(hidden, f".{OWNER_FILE}.partial")
    storage.write_text(partial, json.dumps(vars(Owner.current(lease_s))))
    storage.move(partial, storage.join(hidden, OWNER_FILE))


def _read_owner(hidden: str) -> Owner | None:
    try:
        data = json.loads(storage.read_text(storage.join(hidden, OWNER_FILE)))
        return Owner(str(data["host"]), int(data["pid"]), str(data.get("pid_started") or ""),
                     float(data["heartbeat_at"]), float(data["lease_s"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _remove_abandoned_copies(destination: str, lease_s: float,
                             log: Callable[[str], None] | None = None) -> None:
    """Remove hidden copies of pushes that are provably abandoned: the owner recorded in
    the copy ended on this host, or its heartbeat is older than its lease. A copy from
    before owners were recorded (``.pushing-<pid>-<ns>``) goes when its pid is not alive
    here; one whose owner file is missing or unreadable, once it is older than
    ``lease_s`` (its owner writes the file right after creating the folder)."""
    for name in storage.listdir(destination):
        parts = name.split("-")
        if parts[0] != ".pushing" or len(parts) < 3 or not parts[1].isdigit():
            continue
        path = storage.join(destination, name)
        owner = _read_owner(path)
        if owner is not None:
            reason = abandoned_reason(owner)
        elif len(parts) == 3:
            reason = None if pid_alive(int(parts[1])) else f"process {parts[1]} ended"
        else:
            try:
                age = time.time() - storage.stat(path).mtime_ns / 1e9
            except OSError:
                continue
            reason = f"no owner recorded for {age:.0f} s" if age > lease_s else None
        if reason is None:
            continue
        _remove_unfinished_version(destination, path, log)
        storage.remove_tree(path)
        if log is not None:
            log(f"removed the abandoned push copy {path} ({reason})")


def _remove_unfinished_version(destination: str, hidden: str,
                               log: Callable[[str], None] | None) -> None:
    """The version an abandoned copy was filling when it was cut short (an object store:
    no rename), when its record is missing: never listed, and its number is free again."""
    try:
        claimed = storage.read_text(storage.join(hidden, CLAIM_FILE)).strip()
    except OSError:
        return
    target = storage.join(destination, claimed)
    if not claimed.isdigit() or storage.is_file(storage.join(target, VERSION_RECORD)):
        return
    storage.remove_tree(target)
    if log is not None:
        log(f"removed the unfinished version {target} of an abandoned push")


def versions(destination: str) -> list[int]:
    """The version numbers present in a push destination, oldest first. Where publishing
    is a copy (an object store), a version counts only once its ``toolkit-push.json``,
    written last, is there: a push cut short mid-upload is never listed."""
    if not storage.is_dir(destination):
        return []
    complete = storage.is_dir if storage.backend_for(destination).atomic_commit else \
        (lambda folder: storage.is_file(storage.join(folder, VERSION_RECORD)))
    return sorted(int(n) for n in storage.listdir(destination)
                  if n.isdigit() and complete(storage.join(destination, n)))


def _newest(destination: str) -> int:
    found = versions(destination)
    return found[-1] if found else 0


def _destination_text(destination: Any) -> str:
    """A folder from a path, TFX's dict form, or a PushDestination-like object."""
    if isinstance(destination, (str, os.PathLike)):
        return os.fspath(destination)
    if isinstance(destination, dict):
        filesystem = destination.get("filesystem") or {}
        base = filesystem.get("base_directory") if isinstance(filesystem, dict) else getattr(
            filesystem, "base_directory", None)
    else:
        base = getattr(getattr(destination, "filesystem", None), "base_directory", None)
    if not base:
        raise TypeError("push_destination must be a folder or "
                        "{'filesystem': {'base_directory': folder}}")
    return os.fspath(base)


def _claimed_version(outputs: dict[str, list[Any]] | None) -> int:
    """The highest version a replaced execution's outputs claim to have pushed (0: none)."""
    found = [int(a.properties.get("pushed_version")) for a in (outputs or {}).get(
        "pushed_model", []) if str(a.properties.get("pushed_version") or "").isdigit()]
    return max(found, default=0)


def _read_record(pushed: PushedModel) -> dict[str, Any]:
    """The artifact's ``push.json`` ({} when it is missing or unreadable)."""
    try:
        record = json.loads(storage.read_text(storage.join(pushed.uri, "push.json")))
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _write_record(pushed: PushedModel, record: dict[str, Any]) -> None:
    _write_json(storage.join(pushed.uri, "push.json"), record)


def _write_json(path: str, record: dict[str, Any]) -> None:
    storage.write_text(path, json.dumps(record, indent=2, sort_keys=True))


def _listed(changes: list[str], most: int = 3) -> str:
    """The first few changes, and how many more."""
    more = f" and {len(changes) - most} more" if len(changes) > most else ""
    return ", ".join(changes[:most]) + more
