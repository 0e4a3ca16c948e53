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

Spans (see ``CsvExampleGen``'s ``input_config`` patterns) have two strategies:
:class:`SpanRangeStrategy` (TFX's name) picks the Examples of the latest N spans, for
training on a rolling window; :class:`PreviousSpanStrategy` picks the artifact of the
span before the current one, typically the statistics to give ExampleValidator as
``baseline_statistics`` so drift is checked span over span::

      previous = Resolver(strategy_class=PreviousSpanStrategy,
                          statistics=statistics_gen.outputs["statistics"]
                          ).with_id("previous_statistics")
      context.run(previous)
      ExampleValidator(statistics=statistics_gen.outputs["statistics"], schema=...,
                       baseline_statistics=previous.outputs["statistics"])

Both are nodes run by ``context.run``, so an exported notebook runs them too.

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

from toolkit import storage
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
    chosen ones per key.

    Before calling it the Resolver sets ``current``: per key, the artifacts the channel
    holds in this session (what its producer output when it last ran here), empty when
    its producer has not run; strategies that pick relative to "now" read it."""

    current: dict[str, list[Artifact]]

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


class SpanRangeStrategy(ResolverStrategy):
    """TFX's strategy for spans: the artifacts of a range of spans, newest span first.

    Args:
        range_config: TFX's ``RangeConfig``: ``{"rolling_range": {"num_spans": N}}`` for
            the latest N span numbers (none below ``start_span_number``), or
            ``{"static_range": {"start_span_number": A, "end_span_number": B}}``.
        num_spans: shorthand for a rolling range of ``num_spans`` spans.

    An artifact's span is its ``span`` property (ExampleGen sets it from its
    ``{SPAN}`` or date pattern) or, for artifacts without one such as statistics, the
    span of the Examples it was computed from. Of several artifacts of one span (a span
    ingested again, a newer version) the one with the highest version, then the newest,
    is chosen. Artifacts with no span are left out.
    """

    def __init__(self, range_config: dict[str, Any] | None = None,
                 num_spans: int | None = None):
        if (range_config is None) == (num_spans is None):
            raise WiringError("SpanRangeStrategy: give config={'num_spans': N} or "
                              "config={'range_config': {'rolling_range': {'num_spans': N}}}")
        if num_spans is not None:
            range_config = {"rolling_range": {"num_spans": int(num_spans)}}
        config = dict(range_config or {})
        static, rolling = config.get("static_range"), config.get("rolling_range")
        if (static is None) == (rolling is None):
            raise WiringError("SpanRangeStrategy: range_config needs one of static_range "
                              "and rolling_range")
        if rolling is not None and int(rolling.get("num_spans", 0) or 0) < 1:
            raise WiringError("SpanRangeStrategy: rolling_range num_spans must be at least 1")
        self.static = dict(static) if static is not None else None
        self.rolling = dict(rolling) if rolling is not None else None

    def resolve(self, store, candidates):
        result = {}
        for key, arts in candidates.items():
            by_span = _newest_per_span(store, arts)
            if not by_span:
                result[key] = []
                continue
            if self.static is not None:
                low = int(self.static.get("start_span_number", 0) or 0)
                high = int(self.static.get("end_span_number", low) or 0)
            else:
                high = max(by_span)
                low = max(int(self.rolling.get("start_span_number", 0) or 0),
                          high - int(self.rolling["num_spans"]) + 1)
            result[key] = [by_span[s] for s in sorted(by_span, reverse=True) if low <= s <= high]
        return result


class PreviousSpanStrategy(ResolverStrategy):
    """The artifact of the span just before the current one, per channel: the baseline
    for drift span over span (``ExampleValidator(baseline_statistics=...)``).

    Args:
        span: the current span; by default the span of what the channel holds in this
            session (its producer's latest run), else the newest span among its artifacts.

    "Just before" is the highest span below the current one that has an artifact, so
    gaps (a missing day) are skipped. Spans are found as :class:`SpanRangeStrategy`
    finds them. Nothing is returned for the first span: ExampleValidator then checks
    the schema alone.
    """

    def __init__(self, span: int | None = None):
        self.span = None if span is None else int(span)

    def resolve(self, store, candidates):
        result = {}
        for key, arts in candidates.items():
            by_span = _newest_per_span(store, arts)
            current = self.span
            if current is None:
                now = (getattr(self, "current", None) or {}).get(key, [])
                spans = [s for s in (artifact_span(store, a) for a in now) if s is not None]
                current = max(spans) if spans else (max(by_span) if by_span else None)
            earlier = [s for s in by_span if current is not None and s < current]
            result[key] = [by_span[max(earlier)]] if earlier else []
        return result


def artifact_span(store: Any, artifact: Artifact, limit: int = 50) -> int | None:
    """An artifact's span: its ``span`` property, else the highest span of the Examples
    nearest upstream of it in the lineage (statistics, anomalies, transformed data); None
    when there is none."""
    own = _span_property(artifact)
    if own is not None or store is None or artifact.id is None:
        return own
    seen, level = set(), [artifact.id]
    while level and len(seen) < limit:
        spans, upstream = [], []
        for artifact_id in level:
            if artifact_id in seen:
                continue
            seen.add(artifact_id)
            producer = store.producer_of(artifact_id)
            for arts in (store.inputs_of(producer) if producer is not None else {}).values():
                for art in arts:
                    span = _span_property(art)
                    if span is not None:
                        spans.append(span)
                    elif art.id is not None:
                        upstream.append(art.id)
        if spans:
            return max(spans)
        level = upstream
    return None


def previous_span_statistics(context: Any, statistics: Channel) -> Channel:
    """The statistics of the span before the one ``statistics`` (a StatisticsGen's output
    that has run) holds, as a channel for ``ExampleValidator(baseline_statistics=...)``;
    empty for the first span. A query, like :func:`latest_blessed_model`; in a pipeline
    that should record the choice, run a :class:`Resolver` with
    :class:`PreviousSpanStrategy` instead."""
    strategy = PreviousSpanStrategy()
    strategy.current = {"statistics": statistics.get() if statistics.has_artifacts else []}
    chosen = strategy.resolve(context.store, {"statistics": _candidates(context.store,
                                                                        statistics)})
    return Channel(statistics.type, artifacts=chosen["statistics"])


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
        self._strategy.current = {
            key: list(channel.get()) if channel.producer is not None and channel.has_artifacts
            else [] for key, channel in self._channels.items()}
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
        if storage.reachable(uri) and not storage.exists(uri):
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


def _span_property(artifact: Artifact) -> int | None:
    value = artifact.properties.get("span")
    return None if value in (None, "") else int(value)


def _newest_per_span(store: Any, artifacts: list[Artifact]) -> dict[int, Artifact]:
    """span -> the artifact of that span with the highest version, then the newest."""
    best: dict[int, tuple[tuple[int, int], Artifact]] = {}
    for art in artifacts:
        span = artifact_span(store, art)
        if span is None:
            continue
        version = art.properties.get("version")
        rank = (-1 if version in (None, "") else int(version), art.id or 0)
        if span not in best or rank > best[span][0]:
            best[span] = (rank, art)
    return {span: art for span, (_, art) in best.items()}


def _live(artifacts: list[Artifact]) -> list[Artifact]:
    return [a for a in artifacts if getattr(a, "state", "LIVE") == "LIVE"]


def _usable(artifact: Artifact) -> bool:
    return (getattr(artifact, "state", "LIVE") == "LIVE" and artifact.id is not None
            and storage.reachable(artifact.uri) and storage.is_dir(artifact.uri))


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
