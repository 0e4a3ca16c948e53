"""Components: a spec (inputs, outputs, parameters) plus an executor ``Do``.

As in TFX, a component object holds no data: constructing it only records its
wiring and parameters. The launcher (:mod:`toolkit.launcher`) resolves its input
channels to artifacts, asks its driver hook :meth:`BaseComponent.resolve_exec_properties`
what this run reads, computes the cache key, calls
``Do(input_dict, output_dict, exec_properties, ctx)`` and publishes the outputs.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable, ClassVar

from toolkit._process import DEFAULT_LEASE_SECONDS
from toolkit.artifacts import Artifact
from toolkit.cache import fingerprint_path
from toolkit.errors import ToolkitError, UpstreamNotRunError, WiringError


@dataclasses.dataclass(frozen=True)
class InputSpec:
    type: type[Artifact]
    optional: bool = False


@dataclasses.dataclass(frozen=True)
class ExecutionParameter:
    """A component parameter.

    ``fingerprint`` names how the value's *content* enters the cache key:
    ``"file"`` hashes the file it points to (module files, schema files),
    ``"tree"`` fingerprints a data folder by file names, sizes and mtimes.
    """
    type: Any = object
    default: Any = None
    required: bool = False
    fingerprint: str | None = None


class Channel:
    """A typed handle on the output of one component; ``get()`` gives its artifacts."""

    def __init__(self, type: type[Artifact], producer: "BaseComponent | None" = None,
                 output_key: str | None = None,
                 artifacts: list[Artifact] | None = None):
        self.type = type
        self.producer = producer
        self.output_key = output_key
        self._artifacts: list[Artifact] | None = artifacts

    @classmethod
    def from_artifacts(cls, artifacts: list[Artifact]) -> "Channel":
        """A channel over artifacts that already exist (for example from another run)."""
        if not artifacts:
            raise ToolkitError("Channel.from_artifacts needs at least one artifact")
        return cls(type(artifacts[0]), artifacts=list(artifacts))

    @property
    def type_name(self) -> str:
        return self.type.TYPE_NAME

    @property
    def producer_id(self) -> str:
        return self.producer.id if self.producer is not None else "(imported)"

    def get(self) -> list[Artifact]:
        """The artifacts of the producer's last run in this context ([] before it runs)."""
        return list(self._artifacts or [])

    @property
    def has_artifacts(self) -> bool:
        """Whether artifacts are attached, so "not run yet" differs from "ran, produced none"."""
        return self._artifacts is not None

    def set_artifacts(self, artifacts: list[Artifact]) -> None:
        """Attach the artifacts a run produced, so consumers resolve to exactly these."""
        self._artifacts = list(artifacts)

    def resolve(self, consumer_id: str, key: str) -> list[Artifact]:
        if self._artifacts is None:
            raise UpstreamNotRunError(
                f"{consumer_id}: input '{key}' comes from {self.producer_id}"
                f".outputs['{self.output_key}'], which has not run in this context. "
                f"Run context.run({self.producer_id.split('.')[0].lower()}) first "
                f"(component id '{self.producer_id}').")
        return list(self._artifacts)

    def __repr__(self) -> str:
        return (f"Channel(type={self.type_name}, producer={self.producer_id}, "
                f"output_key={self.output_key!r}, artifacts={len(self.get())})")


@dataclasses.dataclass
class ExecutorContext:
    """What every executor may use beyond its inputs, outputs and parameters.

    What only some executors need is handed to those that declare it:
    :class:`ExternalEffects` to components with ``HAS_EXTERNAL_EFFECTS``."""
    component_id: str
    pipeline_root: str
    execution_id: int
    tmp_dir: str
    beam_pipeline_args: list[str]
    production: bool = False
    log: Callable[[str], None] = print
    #: the pipeline's metadata store (a ``toolkit.metadata.MetadataStore``), read-only by
    #: convention. It stays here because reading what the pipeline recorded is open to any
    #: executor, as TFX's executors may read lineage: resolvers and importers find
    #: artifacts recorded earlier, the Pusher describes its model's lineage in the version
    #: record and report. Executors that need none of it ignore it.
    store: Any = None


@dataclasses.dataclass(frozen=True)
class ExternalEffects:
    """What the launcher hands, as ``Do(..., effects=...)``, the executor of a component
    whose work reaches outside its artifact folders (``HAS_EXTERNAL_EFFECTS``: the
    Pusher's version folder in the serving destination).

    Such work is not published by the launcher, so the executor claims it itself (for
    ``lease_seconds`` per heartbeat), and when it replaces a cached execution whose
    outside effect is gone (see :meth:`BaseComponent.missing_external_effects`) it is told
    what that execution claimed, so it can continue above it rather than reuse a number
    or a name."""
    #: the outputs of the cached execution this run replaces, else None
    replaced: dict[str, list[Artifact]] | None = None
    #: the context's lease: work left outside the artifact folders while the executor
    #: runs is vouched for this long per heartbeat (renewed every third of it)
    lease_seconds: float = DEFAULT_LEASE_SECONDS


@dataclasses.dataclass(frozen=True)
class ResolvedProperties:
    """What a component's driver hook (:meth:`BaseComponent.resolve_exec_properties`)
    resolved for one run, before its cache key is computed.

    The cache key records the component's declared parameters and these
    ``fingerprints``; ``exec_properties`` is what ``Do`` receives: the declared parameters
    plus anything resolved for this run (ExampleGen adds the spans and files it resolved),
    so the executor reads exactly what the key describes."""
    exec_properties: dict[str, Any]
    #: content fingerprints that enter the cache key (files, folders, resolved inputs)
    fingerprints: dict[str, str]


class BaseComponent:
    """Base class of all components. Subclasses declare INPUTS, OUTPUTS, PARAMETERS
    and implement ``Do``."""

    INPUTS: ClassVar[dict[str, InputSpec]] = {}
    OUTPUTS: ClassVar[dict[str, type[Artifact]]] = {}
    PARAMETERS: ClassVar[dict[str, ExecutionParameter]] = {}
    #: bump when an executor changes what it writes, so old cache entries are not reused
    EXECUTOR_VERSION: ClassVar[str] = "1"
    #: True for nodes whose outputs are artifacts recorded earlier (resolvers, importers):
    #: the driver gives ``Do`` empty output lists to fill instead of new staged folders,
    #: publishes nothing, and never takes them from the cache, since what they find can
    #: change between runs while their inputs and parameters do not
    REFERENCES_EXISTING_ARTIFACTS: ClassVar[bool] = False
    #: True for components whose work reaches outside their artifact folders (they
    #: override ``missing_external_effects``): ``Do`` then takes a keyword argument
    #: ``effects``, an :class:`ExternalEffects`
    HAS_EXTERNAL_EFFECTS: ClassVar[bool] = False

    def __init__(self, **kwargs: Any):
        inputs: dict[str, Channel | None] = {}
        params: dict[str, Any] = {}
        cls_name = type(self).__name__
        for key, value in kwargs.items():
            if key in self.INPUTS:
                inputs[key] = value
            elif key in self.PARAMETERS:
                params[key] = value
            else:
                known = sorted(set(self.INPUTS) | set(self.PARAMETERS))
                raise TypeError(f"{cls_name} got an unexpected argument {key!r}; "
                                f"it takes {', '.join(known)}")
        self._id = cls_name
        for key, spec in self.INPUTS.items():
            channel = inputs.get(key)
            if channel is None:
                if not spec.optional:
                    raise WiringError(f"{cls_name}: input '{key}' is required "
                                      f"(a channel of type {spec.type.TYPE_NAME})")
                continue
            if not isinstance(channel, Channel):
                raise WiringError(
                    f"{cls_name}: input '{key}' must be a channel such as "
                    f"other_component.outputs['...'], got {type(channel).__name__}")
            if not issubclass(channel.type, spec.type):
                raise WiringError(
                    f"{cls_name}: input '{key}' expects {spec.type.TYPE_NAME} but is wired "
                    f"to {channel.producer_id}.outputs['{channel.output_key}'] of type "
                    f"{channel.type_name}")
        for key, spec in self.PARAMETERS.items():
            if key not in params:
                if spec.required:
                    raise TypeError(f"{cls_name}: parameter '{key}' is required")
                params[key] = spec.default
        self.inputs: dict[str, Channel | None] = {k: inputs.get(k) for k in self.INPUTS}
        self.exec_properties: dict[str, Any] = params
        self.outputs: dict[str, Channel] = {
            key: Channel(art_type, producer=self, output_key=key)
            for key, art_type in self.OUTPUTS.items()}

    # -- identity ------------------------------------------------------------
    @property
    def id(self) -> str:
        return self._id

    def with_id(self, id: str) -> "BaseComponent":
        """Give this component instance its own id (needed when a pipeline has two of a kind)."""
        if not id or any(c in id for c in "/\\") or id.startswith("."):
            raise ValueError(f"invalid component id {id!r}")
        self._id = id
        return self

    # -- execution -----------------------------------------------------------
    def Do(self, input_dict: dict[str, list[Artifact]],
           output_dict: dict[str, list[Artifact]],
           exec_properties: dict[str, Any], ctx: ExecutorContext) -> None:
        raise NotImplementedError

    def gate(self, outputs: dict[str, list[Artifact]],
             exec_properties: dict[str, Any]) -> str | None:
        """The production gate, asked after every run (cached or not) once the outputs are
        recorded: ``None`` lets the pipeline go on; a string is the one-line reason to stop
        it, which a notebook shows beside the result and a production run raises as
        :class:`toolkit.errors.GateError`. Components that judge their outputs (validators,
        pushers) override it."""
        return None

    def missing_external_effects(self, outputs: dict[str, list[Artifact]]) -> str | None:
        """Asked before a cached execution with these ``outputs`` is reused: a one-line
        note saying what it did outside its artifact folders that is gone or changed (and
        what running again does), or ``None`` when everything is still there.

        The cache checks the artifact folders themselves against their manifests; only a
        component whose effect lies elsewhere (the Pusher's version folder in the serving
        destination) can tell whether that effect still exists, and a cached result must
        never claim an effect that is gone. With a note, the launcher prints it and runs
        the component again, handing the executor the outputs it replaces
        (:class:`ExternalEffects`). Default: the component does nothing outside its folders."""
        return None

    def outcome(self, outputs: dict[str, list[Artifact]], cached: bool) -> str | None:
        """One line on what this execution did that its artifact list does not say,
        recorded with the execution and shown by ``context.executions()`` and the run's
        result (the Pusher: "pushed now as version N" or "already pushed as version N
        (cached)"); ``None`` for nothing to add."""
        return None

    def resolve_exec_properties(self, inputs: dict[str, list[Artifact]]) -> ResolvedProperties:
        """The driver hook (TFX's driver in miniature): what this run reads, resolved now,
        before the cache key is computed from it. ``inputs`` are the resolved input
        artifacts.

        A component whose parameters name something that changes between runs while the
        parameters do not (ExampleGen's ``{SPAN}`` patterns: the latest span) resolves it
        here once, so that the cache key and the executor see the same resolution; it
        must not raise for bad input (``Do`` raises it again, as a failed execution that
        is recorded). Default: the declared parameters and :meth:`fingerprints`."""
        return ResolvedProperties(dict(self.exec_properties), self.fingerprints())

    def fingerprints(self) -> dict[str, str]:
        """Content fingerprints of file/folder parameters (``ExecutionParameter.fingerprint``),
        part of the cache key through the default :meth:`resolve_exec_properties`."""
        out = {}
        for key, spec in self.PARAMETERS.items():
            value = self.exec_properties.get(key)
            if spec.fingerprint and value is not None and isinstance(value, (str, os.PathLike)):
                out[key] = fingerprint_path(os.fspath(value), spec.fingerprint)
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}(id={self.id!r})"

