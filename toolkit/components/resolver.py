"""Nodes whose outputs are artifacts that already exist: resolvers and the importer.

The baseline an Evaluator compares a candidate with is the latest blessed model.
Two ways to get it:

- :func:`latest_blessed_model`, a query on the context's metadata store returning a
  channel, usable directly as an Evaluator's ``baseline_model``::

      baseline = latest_blessed_model(context, exclude=trainer.outputs["model"])

- :class:`Resolver`, TFX's node for the same, run like any component::

      resolver = Resolver(strategy_class=LatestBlessedModelStrategy,
                          model=Channel(type=Model),
                          model_blessing=Channel(type=ModelBlessing)).with_id("latest_blessed")
      context.run(resolver)
      Evaluator(..., baseline_model=resolver.outputs["model"])

On the first run there is no blessed model yet: the channel is empty and the
Evaluator evaluates the candidate alone, as in TFX.

:class:`Importer` registers a folder that exists outside the pipeline (a curated
schema, a model trained elsewhere) as an artifact.

A Resolver's and an Importer's outputs are not written by their execution: they
reference existing artifacts (an Importer's may be registered new, at its own uri).
So the driver must neither stage nor publish folders for them and must not reuse
an earlier resolution from the cache; they say so with the class attribute
``REFERENCES_EXISTING_ARTIFACTS = True``. The driver then passes ``{key: []}`` as
``output_dict``, and the executor fills it with artifacts already in the store (with
an id) or to be registered at their own uri (no id). Their executors need the
metadata store (``ctx.store``).
"""
from __future__ import annotations

import os
from typing import Any, ClassVar

from toolkit.artifacts import (
    ARTIFACT_TYPES,
    Artifact,
    Model,
    ModelBlessing,
    register_artifact_type,
)
from toolkit.base_component import BaseComponent, Channel, ExecutionParameter
from toolkit.errors import ToolkitError, WiringError


def latest_blessed_model(context: Any, exclude: Any = None,
                         producer: str | None = None) -> Channel:
    """A channel holding the newest Model some ModelBlessing blessed (or no artifact).

    Args:
        context: the ``InteractiveContext`` whose metadata store is searched.
        exclude: a model (a channel or artifact, typically the Trainer's current
            ``model``) never to return. Pass the candidate: when the notebook is run
            again with a cached Trainer, the candidate was blessed by the earlier run
            and would otherwise become its own baseline.
        producer: only consider blessings produced by this component id (when a
            pipeline has several Evaluators).

    A blessing counts when ``blessed == 1``; its model is ``current_model_id``, or
    the ``model`` input of the execution that produced the blessing. Models whose
    files are gone are skipped.
    """
    store = context.store
    excluded = _ids(exclude)
    blessings = [b for b in _live(store.artifacts(ModelBlessing.TYPE_NAME))
                 if producer is None or b.producer == producer]
    for model, _ in blessed_models(store, blessings):
        if model.id not in excluded:
            return Channel(Model, artifacts=[model])
    return Channel(Model, artifacts=[])


def blessed_models(store: Any, blessings: list[Artifact]) -> list[tuple[Artifact, Artifact]]:
    """``(model, blessing)`` for every blessing with ``blessed == 1`` whose model is live
    with its folder present, newest blessing first."""
    found = []
    for blessing in sorted(blessings, key=lambda b: b.id or 0, reverse=True):
        if int(blessing.properties.get("blessed", 0) or 0) != 1:
            continue
        model = _blessed_model(store, blessing)
        if model is not None and _usable(model):
            found.append((model, blessing))
    return found


# -- TFX's Resolver -------------------------------------------------------------------------
class ResolverStrategy:
    """How a :class:`Resolver` picks artifacts: ``resolve(store, candidates)`` gets, per
    channel key, the live artifacts of that channel (oldest first) and returns the
    chosen ones per key."""

    def resolve(self, store: Any, candidates: dict[str, list[Artifact]]
                ) -> dict[str, list[Artifact]]:
        raise NotImplementedError


class LatestArtifactStrategy(ResolverStrategy):
    """The newest ``desired_num_of_artifacts`` artifacts of each channel (oldest first)."""

    def __init__(self, desired_num_of_artifacts: int = 1):
        if int(desired_num_of_artifacts) < 1:
            raise ValueError("desired_num_of_artifacts must be at least 1")
        self.desired_num_of_artifacts = int(desired_num_of_artifacts)

    def resolve(self, store, candidates):
        return {key: arts[-self.desired_num_of_artifacts:] for key, arts in candidates.items()}


class LatestBlessedModelStrategy(ResolverStrategy):
    """The newest model that a blessing of the ``model_blessing`` channel blessed, with
    that blessing; nothing when none is blessed yet. Needs the keys ``model`` and
    ``model_blessing``, as in TFX."""

    KEYS: ClassVar[tuple[str, str]] = ("model", "model_blessing")

    def resolve(self, store, candidates):
        allowed = {m.id for m in candidates["model"]}
        for model, blessing in sorted(blessed_models(store, candidates["model_blessing"]),
                                      key=lambda pair: pair[0].id or 0, reverse=True):
            if model.id in allowed:
                return {"model": [model], "model_blessing": [blessing]}
        return {"model": [], "model_blessing": []}


class Resolver(BaseComponent):
    """TFX's Resolver node: picks existing artifacts from the metadata store.

    Args:
        strategy_class: a :class:`ResolverStrategy` subclass, such as
            :class:`LatestBlessedModelStrategy` or :class:`LatestArtifactStrategy`.
        config: keyword arguments for the strategy
            (``{"desired_num_of_artifacts": 2}``).
        **channels: what to choose from, by key: ``Channel(type=Model)`` means every
            Model of the pipeline, ``trainer.outputs["model"]`` the Models that
            component produced, a channel over given artifacts just those.

    ``outputs`` has the same keys and types as ``channels``; after
    ``context.run(resolver)`` they hold the chosen artifacts themselves (nothing is
    copied). A resolution depends on what the store holds now, so it is never taken
    from the cache.
    """

    INPUTS: ClassVar[dict] = {}
    PARAMETERS = {"strategy": ExecutionParameter(str, required=True),
                  "config": ExecutionParameter(dict),
                  "channels": ExecutionParameter(dict)}
    REFERENCES_EXISTING_ARTIFACTS: ClassVar[bool] = True

    def __init__(self, strategy_class: type[ResolverStrategy] | None = None,
                 config: dict[str, Any] | None = None, **channels: Channel):
        if not (isinstance(strategy_class, type) and issubclass(strategy_class, ResolverStrategy)):
            raise WiringError("Resolver: strategy_class must be a ResolverStrategy class such as "
                              "LatestBlessedModelStrategy or LatestArtifactStrategy, got "
                              f"{strategy_class!r}")
        if not channels:
            raise WiringError("Resolver: give at least one channel to resolve, e.g. "
                              "model=Channel(type=Model)")
        for key, channel in channels.items():
            if not isinstance(channel, Channel):
                raise WiringError(f"Resolver: {key} must be a channel such as "
                                  f"Channel(type=Model), got {type(channel).__name__}")
        missing = [k for k in getattr(strategy_class, "KEYS", ()) if k not in channels]
        if missing:
            raise WiringError(f"Resolver: {strategy_class.__name__} needs the channels "
                              f"{', '.join(missing)}")
        self._strategy = strategy_class(**dict(config or {}))
        self._channels = dict(channels)
        self.OUTPUTS = {key: channel.type for key, channel in channels.items()}
        super().__init__(strategy=f"{strategy_class.__module__}.{strategy_class.__qualname__}",
                         config=dict(config or {}),
                         channels={key: _channel_spec(c) for key, c in channels.items()})

    def resolve(self, store: Any) -> dict[str, list[Artifact]]:
        """The artifacts the strategy picks from ``store`` now, per output key."""
        candidates = {key: _candidates(store, channel) for key, channel in self._channels.items()}
        resolved = self._strategy.resolve(store, candidates)
        return {key: list(resolved.get(key) or []) for key in self._channels}

    def Do(self, input_dict, output_dict, exec_properties, ctx) -> None:
        resolved = self.resolve(ctx.store)
        _hand_over(output_dict, resolved)
        ctx.log(", ".join(f"{key}: " + (", ".join(f"{a.TYPE_NAME} #{a.id}" for a in arts)
                                        or "nothing (none qualifies yet)")
                          for key, arts in resolved.items()))


class Importer(BaseComponent):
    """TFX's Importer node: registers an existing folder as an artifact.

    Args:
        source_uri: the folder (or file) to import; it is referenced, not copied.
        artifact_type: the artifact class (``standard_artifacts.Schema``, ...).
        reimport: register a new artifact even when one of this type already has this
            uri (default: reuse it, as TFX does).
        properties, custom_properties: properties of the new artifact.

    ``outputs["result"]`` holds the artifact once the importer has run.
    """

    INPUTS: ClassVar[dict] = {}
    PARAMETERS = {"source_uri": ExecutionParameter(str, required=True),
                  "artifact_type": ExecutionParameter(str, required=True),
                  "reimport": ExecutionParameter(bool, default=False),
                  "properties": ExecutionParameter(dict),
                  "custom_properties": ExecutionParameter(dict)}
    REFERENCES_EXISTING_ARTIFACTS: ClassVar[bool] = True
    #: TFX's output key
    IMPORT_RESULT_KEY: ClassVar[str] = "result"

    def __init__(self, source_uri: str, artifact_type: type[Artifact], reimport: bool = False,
                 properties: dict[str, Any] | None = None,
                 custom_properties: dict[str, Any] | None = None):
        if not (isinstance(artifact_type, type) and issubclass(artifact_type, Artifact)):
            raise WiringError(f"Importer: artifact_type must be an artifact class such as "
                              f"standard_artifacts.Schema, got {artifact_type!r}")
        if ARTIFACT_TYPES.get(artifact_type.TYPE_NAME) is None:
            register_artifact_type(artifact_type)
        self._artifact_type = artifact_type
        self.OUTPUTS = {self.IMPORT_RESULT_KEY: artifact_type}
        uri = os.fspath(source_uri)
        super().__init__(source_uri=uri if "://" in uri else os.path.abspath(uri),
                         artifact_type=artifact_type.TYPE_NAME, reimport=bool(reimport),
                         properties=dict(properties or {}),
                         custom_properties=dict(custom_properties or {}))

    def imported(self, store: Any) -> Artifact:
        """The artifact to output: an existing one with this uri and type (unless
        ``reimport``), else a new one (no id: the driver registers it)."""
        uri = self.exec_properties["source_uri"]
        if "://" not in uri and not os.path.exists(uri):
            raise ToolkitError(f"{self.id}: source_uri {uri} does not exist")
        if not self.exec_properties["reimport"]:
            same = [a for a in _live(store.artifacts(self._artifact_type.TYPE_NAME))
                    if a.uri == uri]
            if same:
                return max(same, key=lambda a: a.id or 0)
        properties = {**self.exec_properties["properties"],
                      **self.exec_properties["custom_properties"]}
        return self._artifact_type(uri=uri, properties=properties, producer=self.id)

    def Do(self, input_dict, output_dict, exec_properties, ctx) -> None:
        artifact = self.imported(ctx.store)
        _hand_over(output_dict, {self.IMPORT_RESULT_KEY: [artifact]})
        ctx.log(f"{artifact.TYPE_NAME} at {artifact.uri}: "
                + (f"already registered as #{artifact.id}" if artifact.id is not None
                   else "registered now"))


def _hand_over(output_dict: dict[str, list[Artifact]],
               resolved: dict[str, list[Artifact]]) -> None:
    """Put the chosen artifacts into ``output_dict`` (empty lists from the driver, since
    ``REFERENCES_EXISTING_ARTIFACTS`` is set)."""
    for key, arts in resolved.items():
        output_dict.setdefault(key, [])
        output_dict[key][:] = arts


def _channel_spec(channel: Channel) -> dict[str, Any]:
    """What a resolver channel stands for, recorded as a parameter."""
    spec: dict[str, Any] = {"type": channel.type_name}
    if channel.producer is not None:
        spec["producer"] = channel.producer_id
        spec["output_key"] = channel.output_key
    elif channel.has_artifacts:
        spec["artifacts"] = [a.id for a in channel.get()]
    return spec


def _candidates(store: Any, channel: Channel) -> list[Artifact]:
    """The live artifacts a resolver channel stands for, oldest first."""
    if channel.producer is None and channel.has_artifacts:
        arts = channel.get()
    else:
        arts = [a for a in store.artifacts(channel.type_name)
                if channel.producer is None or a.producer == channel.producer_id]
    return sorted((a for a in arts if _usable(a)), key=lambda a: a.id or 0)


def _live(artifacts: list[Artifact]) -> list[Artifact]:
    return [a for a in artifacts if getattr(a, "state", "LIVE") == "LIVE"]


def _usable(artifact: Artifact) -> bool:
    return (getattr(artifact, "state", "LIVE") == "LIVE" and artifact.id is not None
            and os.path.isdir(artifact.uri))


def _blessed_model(store: Any, blessing: Artifact) -> Artifact | None:
    model_id = blessing.properties.get("current_model_id")
    if model_id not in (None, "", 0):
        try:
            return store.artifact(int(model_id))
        except Exception:  # a blessing pointing at a model from another store
            return None
    execution = store.producer_of(blessing.id)
    if execution is None:
        return None
    models = store.inputs_of(execution).get("model") or []
    return models[0] if models else None


def _ids(item: Any) -> set[int]:
    if item is None:
        return set()
    if isinstance(item, Channel):
        return {a.id for a in item.get() if a.id is not None}
    if isinstance(item, Artifact):
        return {item.id} if item.id is not None else set()
    if isinstance(item, (list, tuple, set)):
        return set().union(*(_ids(i) for i in item)) if item else set()
    raise TypeError(f"exclude must be a channel, an artifact or a list of them, "
                    f"got {type(item).__name__}")
