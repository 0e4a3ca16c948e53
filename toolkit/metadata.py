"""The ML Metadata store: artifacts, executions, events, the pipeline context, cache lookup.

SQLite at ``<pipeline_root>/metadata.sqlite`` by default; any MLMD
``ConnectionConfig`` (MySQL for shared deployments) can be passed instead.
"""
from __future__ import annotations

import json
import os
import time
from typing import Any, Callable, Iterable

from toolkit._process import Owner, lease_seconds
from toolkit.artifacts import ARTIFACT_TYPES, Artifact
from toolkit.errors import ToolkitError

PIPELINE_CONTEXT_TYPE = "pipeline"
#: TFX's context types for one component of a pipeline and for one run of a pipeline
NODE_CONTEXT_TYPE = "node"
PIPELINE_RUN_CONTEXT_TYPE = "pipeline_run"
EXECUTION_PROPERTIES = ("component_id", "component_type", "cache_key", "parameters",
                        "module_fingerprint", "error", "pid", "started_at", "duration_s",
                        "host", "pid_started", "heartbeat_at", "lease_s", "outcome")

_STATE_NAMES = {0: "UNKNOWN", 1: "NEW", 2: "RUNNING", 3: "COMPLETE", 4: "FAILED",
                5: "CACHED", 6: "CANCELED"}


def node_context_name(pipeline_name: str, component_id: str) -> str:
    """The name of a component's ``node`` context, TFX's ``<pipeline name>.<component id>``."""
    return f"{pipeline_name}.{component_id}"


def sqlite_config(path: str):
    from ml_metadata.proto import metadata_store_pb2

    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = path
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
    return config


class MetadataStore:
    """A thin, typed layer over ``ml_metadata.MetadataStore`` for one pipeline."""

    def __init__(self, pipeline_name: str, connection_config: Any):
        from ml_metadata.metadata_store import metadata_store

        self.pipeline_name = pipeline_name
        sqlite_path = _sqlite_path(connection_config)
        damage = _sqlite_damage(sqlite_path) if sqlite_path else None
        if damage:
            _start_over(sqlite_path, damage)
        old_version = _sqlite_schema_version(sqlite_path) if sqlite_path else None

        def open_store():
            return _with_retry(lambda: metadata_store.MetadataStore(
                connection_config, enable_upgrade_migration=True))

        try:
            store = open_store()
        except Exception as exc:  # MLMD raises its own error types for bad/old databases
            if sqlite_path and _is_corrupt(exc):
                _start_over(sqlite_path, _mlmd_message(exc))
                store = open_store()
            else:
                raise ToolkitError(f"cannot open the metadata store "
                                   f"({_describe(connection_config)}): {_mlmd_message(exc)}") from None
        self._store = _Retrying(store)
        if old_version is not None:
            new_version = _sqlite_schema_version(sqlite_path)
            if new_version is not None and new_version > old_version:
                print(f"metadata store {sqlite_path}: upgraded from ML Metadata schema version "
                      f"{old_version} to {new_version}", flush=True)
        self.location = _describe(connection_config)
        self._artifact_type_ids: dict[str, int] = {}
        self._execution_type_ids: dict[str, int] = {}
        self._context_ids: dict[tuple[str, str], int] = {}
        #: names the ``pipeline_run`` context every execution recorded from now on joins
        #: (a pipeline runner sets it for the length of one run; ``None``: no run context)
        self.run_id: str | None = None
        self._context_id = self._ensure_context()

    def has_executions(self) -> bool:
        """Whether the store records any execution at all (of any pipeline)."""
        from ml_metadata.metadata_store import metadata_store

        return bool(self._store.get_executions(
            list_options=metadata_store.ListOptions(limit=1)))

    @property
    def mlmd(self):
        """The underlying ``ml_metadata`` store, for users who query it directly."""
        return self._store.wrapped

    # -- types ---------------------------------------------------------------
    def _artifact_type_id(self, cls: type[Artifact]) -> int:
        from ml_metadata.proto import metadata_store_pb2 as pb

        name = cls.TYPE_NAME
        if name not in self._artifact_type_ids:
            kinds = {"string": pb.STRING, "int": pb.INT, "double": pb.DOUBLE}
            art_type = pb.ArtifactType(name=name)
            for prop, kind in cls.PROPERTIES.items():
                art_type.properties[prop] = kinds[kind]
            self._artifact_type_ids[name] = self._store.put_artifact_type(
                art_type, can_add_fields=True, can_omit_fields=True)
        return self._artifact_type_ids[name]

    def _execution_type_id(self, name: str) -> int:
        from ml_metadata.proto import metadata_store_pb2 as pb

        if name not in self._execution_type_ids:
            ex_type = pb.ExecutionType(name=name)
            for prop in EXECUTION_PROPERTIES:
                ex_type.properties[prop] = pb.STRING
            self._execution_type_ids[name] = self._store.put_execution_type(
                ex_type, can_add_fields=True, can_omit_fields=True)
        return self._execution_type_ids[name]

    def _ensure_context(self, type_name: str = PIPELINE_CONTEXT_TYPE,
                        name: str | None = None) -> int:
        """The id of the context ``(type_name, name)`` (default: this pipeline's), created
        on first use; contexts of one run are looked up once."""
        from ml_metadata.proto import metadata_store_pb2 as pb

        name = self.pipeline_name if name is None else name
        known = self._context_ids.get((type_name, name))
        if known is not None:
            return known
        type_id = self._store.put_context_type(pb.ContextType(name=type_name))
        existing = self._store.get_context_by_type_and_name(type_name, name)
        if existing is None:
            try:
                [context_id] = self._store.put_contexts([pb.Context(type_id=type_id, name=name)])
            except Exception:  # another process created it first
                existing = self._store.get_context_by_type_and_name(type_name, name)
                if existing is None:
                    raise
        context_id = existing.id if existing is not None else context_id
        self._context_ids[(type_name, name)] = context_id
        return context_id

    # -- executions ------------------------------------------------------------
    def start_execution(self, component_type: str, component_id: str, cache_key: str,
                        parameters: str, module_fingerprint: str,
                        inputs: dict[str, list[Artifact]], owner: Owner | None = None) -> int:
        """Record a RUNNING execution owned by ``owner`` (host, pid, start time, first
        heartbeat, lease; default: this process with the default lease) with its input
        events; returns its id."""
        from ml_metadata.proto import metadata_store_pb2 as pb

        owner = owner or Owner.current(lease_seconds())

        execution = pb.Execution(type_id=self._execution_type_id(component_type),
                                 last_known_state=pb.Execution.RUNNING)
        props = {"component_id": component_id, "component_type": component_type,
                 "cache_key": cache_key, "parameters": parameters,
                 "module_fingerprint": module_fingerprint, "pid": str(owner.pid),
                 "started_at": f"{time.time():.3f}", "host": owner.host,
                 "pid_started": owner.pid_started, "heartbeat_at": f"{owner.heartbeat_at:.3f}",
                 "lease_s": f"{owner.lease_s:g}"}
        for key, value in props.items():
            execution.properties[key].string_value = value
        pairs = []
        # ML Metadata keeps one INPUT event per (artifact, execution): an artifact wired to
        # several inputs (statistics and baseline_statistics) gets one event whose path
        # holds every (key, index) it is read under
        by_artifact: dict[int, Any] = {}
        for key, artifacts in inputs.items():
            for index, artifact in enumerate(artifacts):
                known = by_artifact.get(artifact.id) if artifact.id is not None else None
                if known is not None:
                    known.path.steps.add().key = key
                    known.path.steps.add().index = index
                    continue
                event = _event(pb.Event.INPUT, key, index)
                pairs.append((self._input_pb(artifact), event))
                if artifact.id is not None:
                    by_artifact[artifact.id] = event
        execution_id, _, _ = self._store.put_execution(
            execution, pairs, self._contexts_pb(component_id), reuse_context_if_already_exist=True)
        return execution_id

    def complete_execution(self, execution_id: int, outputs: dict[str, list[Artifact]],
                           duration_s: float, cached_from: int | None = None,
                           outcome: str | None = None) -> None:
        """Register output artifacts LIVE and mark the execution COMPLETE (or CACHED),
        all in one MLMD transaction; ``outcome`` is the component's one-line account of
        what it did (see ``BaseComponent.outcome``).

        An execution that another process declared abandoned meanwhile (its lease ran
        out) is not brought back: its folders may already be gone, so this raises."""
        from ml_metadata.proto import metadata_store_pb2 as pb

        [execution] = self._store.get_executions_by_id([execution_id])
        if execution.last_known_state != pb.Execution.RUNNING:
            reason = execution.properties["error"].string_value if (
                "error" in execution.properties) else ""
            raise ToolkitError(f"execution {execution_id} is no longer running "
                               f"({_STATE_NAMES.get(execution.last_known_state, 'UNKNOWN')}"
                               f"{': ' + reason.splitlines()[0] if reason else ''}); "
                               "its outputs are not registered")
        execution.last_known_state = pb.Execution.CACHED if cached_from else pb.Execution.COMPLETE
        execution.properties["duration_s"].string_value = f"{duration_s:.3f}"
        if outcome:
            execution.properties["outcome"].string_value = outcome
        if cached_from:
            execution.custom_properties["cached_from"].int_value = cached_from
        pairs = []
        component_id = execution.properties["component_id"].string_value
        for key, artifacts in outputs.items():
            for index, artifact in enumerate(artifacts):
                if artifact.id is not None:
                    art_pb = self._load_pb_artifact(artifact.id)
                else:
                    art_pb = self._to_pb(artifact, key, component_id)
                pairs.append((art_pb, _event(pb.Event.OUTPUT, key, index)))
        _, artifact_ids, _ = self._store.put_execution(
            execution, pairs, self._contexts_pb(component_id), reuse_context_if_already_exist=True)
        flat = [a for arts in outputs.values() for a in arts]
        for artifact, art_id in zip(flat, artifact_ids):
            artifact.id = art_id
            artifact.store_location = self.location

    def fail_execution(self, execution_id: int, message: str,
                       only_if_running: bool = False) -> bool:
        """Mark the execution FAILED with ``message``; with ``only_if_running``, leave an
        execution alone that is no longer RUNNING (a reaper must not overwrite an
        execution that completed after it looked). Returns whether it was marked."""
        from ml_metadata.proto import metadata_store_pb2 as pb

        [execution] = self._store.get_executions_by_id([execution_id])
        if only_if_running and execution.last_known_state != pb.Execution.RUNNING:
            return False
        execution.last_known_state = pb.Execution.FAILED
        execution.properties["error"].string_value = message[:4000]
        self._store.put_executions([execution])
        return True

    def executions(self, component_id: str | None = None) -> list[dict[str, Any]]:
        """Executions of this pipeline, oldest first, as plain dicts."""
        rows = []
        for ex in self._store.get_executions_by_context(self._context_id):
            row = self._execution_dict(ex)
            if component_id is None or row["component_id"] == component_id:
                rows.append(row)
        rows.sort(key=lambda r: r["id"])
        return rows

    def execution(self, execution_id: int) -> dict[str, Any]:
        [ex] = self._store.get_executions_by_id([execution_id])
        return self._execution_dict(ex)

    def find_cached(self, component_id: str, cache_key: str) -> tuple[int, dict[str, list[Artifact]]] | None:
        """The newest complete execution with this cache key, with its outputs."""
        candidates = [e for e in self.executions(component_id)
                      if e["cache_key"] == cache_key and e["state"] in ("COMPLETE",)]
        for row in reversed(candidates):
            outputs = self.outputs_of(row["id"])
            if outputs:
                return row["id"], outputs
        return None

    def outputs_of(self, execution_id: int) -> dict[str, list[Artifact]]:
        return self._artifacts_of(execution_id, output=True)

    def inputs_of(self, execution_id: int) -> dict[str, list[Artifact]]:
        return self._artifacts_of(execution_id, output=False)

    def _artifacts_of(self, execution_id: int, output: bool) -> dict[str, list[Artifact]]:
        from ml_metadata.proto import metadata_store_pb2 as pb

        wanted = pb.Event.OUTPUT if output else pb.Event.INPUT
        events = [e for e in self._store.get_events_by_execution_ids([execution_id])
                  if e.type == wanted]
        if not events:
            return {}
        by_id = {a.id: a for a in self._store.get_artifacts_by_id([e.artifact_id for e in events])}
        result: dict[str, list[tuple[int, Artifact]]] = {}
        for event in events:
            steps = list(event.path.steps)
            # (key, index) pairs: several when one artifact is wired to several inputs
            places = [(steps[i].key, steps[i + 1].index if i + 1 < len(steps) else 0)
                      for i in range(0, len(steps), 2)] or [("output", 0)]
            for key, index in places:
                result.setdefault(key, []).append((index, self._from_pb(by_id[event.artifact_id])))
        return {k: [a for _, a in sorted(v, key=lambda t: t[0])] for k, v in result.items()}

    def producer_of(self, artifact_id: int) -> int | None:
        from ml_metadata.proto import metadata_store_pb2 as pb

        events = [e for e in self._store.get_events_by_artifact_ids([artifact_id])
                  if e.type == pb.Event.OUTPUT]
        return min(e.execution_id for e in events) if events else None

    def artifact(self, artifact_id: int) -> Artifact:
        found = self._store.get_artifacts_by_id([artifact_id])
        if not found:
            raise ToolkitError(f"no artifact with id {artifact_id} in the metadata store")
        return self._from_pb(found[0])

    def artifacts(self, type_name: str | None = None) -> list[Artifact]:
        arts = self._store.get_artifacts_by_context(self._context_id)
        out = [self._from_pb(a) for a in arts]
        return [a for a in out if type_name is None or a.TYPE_NAME == type_name]

    def mark_artifacts_deleted(self, artifacts: Iterable[Artifact]) -> None:
        """Artifacts whose files are gone or damaged are never offered by the cache again."""
        from ml_metadata.proto import metadata_store_pb2 as pb

        ids = [a.id for a in artifacts if a.id is not None]
        if not ids:
            return
        found = self._store.get_artifacts_by_id(ids)
        for art in found:
            art.state = pb.Artifact.DELETED
        self._store.put_artifacts(found)

    # -- conversions -----------------------------------------------------------
    def _contexts_pb(self, component_id: str) -> list[Any]:
        """The contexts an execution of ``component_id`` and its artifacts belong to, as TFX
        records them: the pipeline, the node (``<pipeline>.<component id>``) and, during a
        pipeline run, the run, so TFX's ML Metadata queries find them."""
        ids = [self._context_id,
               self._ensure_context(NODE_CONTEXT_TYPE, node_context_name(self.pipeline_name,
                                                                         component_id))]
        if self.run_id is not None:
            ids.append(self._ensure_context(PIPELINE_RUN_CONTEXT_TYPE, self.run_id))
        return list(self._store.get_contexts_by_id(ids))

    def _load_pb_artifact(self, artifact_id: int | None):
        if artifact_id is None:
            raise ToolkitError("input artifact has no id: it was never registered")
        found = self._store.get_artifacts_by_id([artifact_id])
        if not found:
            raise ToolkitError(f"artifact #{artifact_id} is not in {self.location}")
        return found[0]

    def _input_pb(self, artifact: Artifact):
        """An input from this store as it is; one from another store (another pipeline)
        is registered here once, by uri, marked as imported."""
        if getattr(artifact, "store_location", self.location) == self.location:
            return self._load_pb_artifact(artifact.id)
        type_id = self._artifact_type_id(type(artifact))
        for existing in self._store.get_artifacts_by_uri(artifact.uri):
            if existing.type_id == type_id:
                return existing
        art = self._to_pb(artifact, "imported", artifact.producer or "(imported)")
        art.custom_properties["imported_from"].string_value = (
            f"{artifact.store_location} artifact #{artifact.id}")
        [new_id] = self._store.put_artifacts([art])
        art.id = new_id
        return art

    def _to_pb(self, artifact: Artifact, output_key: str, component_id: str):
        from ml_metadata.proto import metadata_store_pb2 as pb

        art = pb.Artifact(type_id=self._artifact_type_id(type(artifact)), uri=artifact.uri,
                          state=pb.Artifact.LIVE)
        for key, value in artifact.properties.items():
            if value is None:
                continue
            kind = type(artifact).PROPERTIES.get(key)
            target = art.properties[key] if kind else art.custom_properties[key]
            kind = kind or _kind_of(value)
            if kind == "int":
                target.int_value = int(value)
            elif kind == "double":
                target.double_value = float(value)
            else:
                target.string_value = value if isinstance(value, str) else json.dumps(value)
        art.custom_properties["output_key"].string_value = output_key
        art.custom_properties["producer_component"].string_value = component_id
        return art

    def _from_pb(self, art) -> Artifact:
        type_name = self._store.get_artifact_types_by_id([art.type_id])[0].name
        cls = ARTIFACT_TYPES.get(type_name)
        if cls is None:
            cls = type(type_name, (Artifact,), {"TYPE_NAME": type_name})
        props: dict[str, Any] = {}
        for mapping in (art.properties, art.custom_properties):
            for key, value in mapping.items():
                which = value.WhichOneof("value")
                if which is not None:
                    props[key] = getattr(value, which)
        producer = props.pop("producer_component", None)
        props.pop("output_key", None)
        artifact = cls(uri=art.uri, properties=props, id=art.id, producer=producer)
        artifact.store_location = self.location
        artifact.state = _ARTIFACT_STATES.get(art.state, "UNKNOWN")
        return artifact

    def _execution_dict(self, ex) -> dict[str, Any]:
        row = {key: ex.properties[key].string_value if key in ex.properties else ""
               for key in EXECUTION_PROPERTIES}
        row["id"] = ex.id
        row["state"] = _STATE_NAMES.get(ex.last_known_state, "UNKNOWN")
        row["cached_from"] = (ex.custom_properties["cached_from"].int_value
                              if "cached_from" in ex.custom_properties else None)
        row["create_time"] = ex.create_time_since_epoch / 1000.0
        return row


def heartbeat_renewer(connection_config: Any, execution_id: int,
                      retry_budget: float = 10.0) -> Callable[[], None]:
    """A function that stamps ``heartbeat_at = now`` on one execution, for
    :class:`toolkit._process.Heartbeat`.

    It opens its own MLMD connection on first call, in the thread that calls it (MLMD
    connections are not shared between threads), and writes only ``heartbeat_at``
    (a field mask): an update racing with the run's own completion can never turn a
    finished execution back into a running one. SQLite and MySQL alike."""
    state: dict[str, Any] = {}

    def renew() -> None:
        from ml_metadata.metadata_store import metadata_store
        from ml_metadata.proto import metadata_store_pb2 as pb

        if "store" not in state:
            state["store"] = _with_retry(
                lambda: metadata_store.MetadataStore(connection_config), retry_budget)
            [execution] = _with_retry(
                lambda: state["store"].get_executions_by_id([execution_id]), retry_budget)
            state["type_id"] = execution.type_id
        update = pb.Execution(id=execution_id, type_id=state["type_id"])
        update.properties["heartbeat_at"].string_value = f"{time.time():.3f}"
        _with_retry(lambda: state["store"].put_executions(
            [update], field_mask_paths=["properties.heartbeat_at"]), retry_budget)
    return renew


def shared_between_processes(connection_config: Any) -> bool:
    """Whether other processes can see this store (an in-memory SQLite store is private
    to its connection, so nothing there needs a heartbeat)."""
    if connection_config.HasField("sqlite"):
        return connection_config.sqlite.filename_uri not in ("", ":memory:")
    return not connection_config.HasField("fake_database")


_ARTIFACT_STATES = {0: "UNKNOWN", 1: "PENDING", 2: "LIVE", 3: "MARKED_FOR_DELETION",
                    4: "DELETED", 5: "ABANDONED", 6: "REFERENCE"}


def _event(kind, key: str, index: int):
    from ml_metadata.proto import metadata_store_pb2 as pb

    event = pb.Event(type=kind)
    event.path.steps.add().key = key
    event.path.steps.add().index = index
    return event


def _kind_of(value: Any) -> str:
    if isinstance(value, bool) or isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "double"
    return "string"


def _describe(config: Any) -> str:
    if config.HasField("sqlite"):
        return f"SQLite file {os.path.abspath(config.sqlite.filename_uri)}"
    if config.HasField("mysql"):
        return f"MySQL {config.mysql.host}:{config.mysql.port}/{config.mysql.database}"
    return "in-memory or custom connection"


# -- SQLite: concurrent use, damaged and old files ---------------------------------------
#: words of MLMD errors that clear up on retry: SQLite's busy/locked, and MySQL/MariaDB's
#: deadlock and lock-wait errors, after which the server has rolled the transaction back
_TRANSIENT = ("database is locked", "database table is locked", "database schema is locked",
              "database is busy", "subset of tables", "please retry",
              "concurrent writes aborted", "deadlock found when trying to get lock",
              "try restarting transaction", "lock wait timeout exceeded")
#: SQLite's own words for a file that is not (or no longer) a database
_CORRUPT = ("file is not a database", "database disk image is malformed",
            "file is encrypted or is not a database")
RETRY_SECONDS = 60.0


def _mlmd_message(exc: BaseException) -> str:
    """MLMD's message without the SQL it was running."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    prefix = "Error when executing query: "
    if text.startswith(prefix):
        text = text[len(prefix):]
    return text.split(" query: ")[0]


def _is_transient(exc: BaseException) -> bool:
    text = str(exc).lower()
    return any(marker in text for marker in _TRANSIENT)


def _is_corrupt(exc: BaseException) -> bool:
    text = str(exc).lower()
    return any(marker in text for marker in _CORRUPT)


def _with_retry(call, budget: float = RETRY_SECONDS):
    """Run ``call``, retrying with backoff while SQLite reports another writer (busy/locked)
    or MLMD a half-created database; other errors propagate at once."""
    deadline = time.monotonic() + budget
    delay = 0.02
    while True:
        try:
            return call()
        except Exception as exc:
            if not _is_transient(exc) or time.monotonic() + delay > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 1.0)


class _Retrying:
    """Every call on the wrapped MLMD store retried while SQLite is busy: several
    processes (runs of one pipeline) share one metadata file."""

    def __init__(self, store: Any):
        self.wrapped = store

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.wrapped, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            return _with_retry(lambda: attr(*args, **kwargs))
        return call


def _sqlite_path(config: Any) -> str | None:
    if config is None or not config.HasField("sqlite"):
        return None
    path = config.sqlite.filename_uri
    if not path or path.startswith("file:") or path == ":memory:":
        return None
    return os.path.abspath(path)


def _query_readonly(path: str, sql: str, timeout: float):
    """The first row of ``sql`` on an existing SQLite file opened read-only, or None when
    the file is missing or empty. SQLite errors propagate to the caller."""
    import sqlite3

    if not os.path.isfile(path) or os.path.getsize(path) == 0:
        return None
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=timeout)
    try:
        return connection.execute(sql).fetchone()
    finally:
        connection.close()


def _sqlite_schema_version(path: str) -> int | None:
    """The MLMD schema version recorded in an existing SQLite store, read without MLMD."""
    import sqlite3

    try:
        row = _query_readonly(path, "SELECT schema_version FROM MLMDEnv", timeout=5)
    except sqlite3.Error:
        return None
    return int(row[0]) if row and row[0] is not None else None


def _sqlite_damage(path: str) -> str | None:
    """SQLite's verdict on an existing store file when it is damaged (truncated, overwritten),
    else None. A file busy with another writer is not damaged."""
    import sqlite3

    try:
        verdict = _query_readonly(path, "PRAGMA quick_check", timeout=30)
    except sqlite3.DatabaseError as exc:
        return str(exc) if _is_corrupt(exc) else None
    if verdict and verdict[0] != "ok":
        return f"integrity check: {verdict[0]}"
    return None


def _start_over(path: str, reason: str) -> None:
    aside = _quarantine(path)
    print(f"metadata store {path} is damaged ({reason}); moved it to {aside} and started a "
          "new store: earlier results are not reused", flush=True)


def _quarantine(path: str) -> str:
    """Move a damaged SQLite file (and its journal) aside, keeping it for inspection."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    aside = f"{path}.corrupt-{stamp}-{os.getpid()}"
    for suffix in ("", "-journal", "-wal", "-shm"):
        try:
            os.replace(path + suffix, aside + suffix)
        except FileNotFoundError:  # another process moved it first, or no journal
            pass
    return aside
