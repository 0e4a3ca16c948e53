"""Evaluation engines by name: what ``engine=`` chooses in :func:`toolkit.evaluate` and in
the Evaluator.

An engine is either the toolkit's vectorized engine (:mod:`toolkit.evaluation.engine` in
process, :mod:`toolkit.evaluation.beam_engine` when the Evaluator has
``beam_pipeline_args``), strict (``"toolkit"``: a metric it lacks is refused) or handing
what it lacks to TFMA with a warning (``"auto"``); or an engine that computes every
metric itself (``"tfma"``, TFMA's pipeline). An engine of the second kind is named by
``"module:function"``, so that choosing among engines imports neither TFMA nor Beam:
its module is imported when it runs, as papermill imports a registered engine.

Adding one is an :class:`EvaluationEngine` and ``register_engine(...)``; the evaluation
and the Evaluator then accept its name, and an unknown name fails in one line naming the
known ones.
"""
from __future__ import annotations

import dataclasses
import importlib
from typing import Any, Callable

from toolkit._registry import Registry
from toolkit.errors import ToolkitError, UnknownNameError
from toolkit.evaluation.errors import EvalConfigError

#: ``(data, config, metrics) -> list[SliceMetrics]``: every metric of every slice of the
#: frame, ``metrics`` being ``(metrics spec index, MetricConfig)`` pairs of the config
ComputeAll = Callable[..., list]


class UnknownEngineError(EvalConfigError, UnknownNameError):
    """``engine=`` names no registered engine: a configuration error, and a registry's."""


@dataclasses.dataclass(frozen=True)
class EvaluationEngine:
    """One choice of ``engine=``.

    ``computes``: None for the toolkit's vectorized engine; else the function (or its
    ``"module:function"``) that computes every metric itself (:data:`ComputeAll`).
    ``falls_back``: for the vectorized engine, whether metrics it lacks are computed by
    TFMA with a warning (else they are refused). ``beam_arguments``: for an engine that
    computes every metric itself, the context manager (or its ``"module:function"``)
    that hands it the Evaluator's ``beam_pipeline_args`` while it runs; None when it
    does not run on Beam. The vectorized engine runs on Beam by its own pipeline."""

    name: str
    help: str
    computes: str | ComputeAll | None = None
    falls_back: bool = False
    beam_arguments: str | Callable[..., Any] | None = None

    @property
    def vectorized(self) -> bool:
        """Whether this is the toolkit's own engine (in process, or on Beam)."""
        return self.computes is None

    def compute_all(self) -> ComputeAll:
        """The function that computes every metric (imported now)."""
        return _load(self.computes, self.name)

    def on_beam(self, beam_pipeline_args: list[str]) -> Any:
        """The context within which :meth:`compute_all` runs on Beam with these arguments;
        a one-line :class:`ToolkitError` when this engine does not run on Beam."""
        if self.beam_arguments is None:
            raise ToolkitError(f"the {self.name} evaluation engine does not run on Beam: run the "
                               "Evaluator without beam_pipeline_args, or with engine='auto'")
        return _load(self.beam_arguments, self.name)(beam_pipeline_args)


def _load(target: str | Callable[..., Any] | None, engine: str) -> Callable[..., Any]:
    if callable(target):
        return target
    module_name, _, attribute = str(target).partition(":")
    try:
        return getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise ToolkitError(f"the {engine} evaluation engine cannot load {target} ({exc})") from None


class EngineRegistry(Registry[EvaluationEngine]):
    """The evaluation engines by name; an unknown name is an :class:`UnknownEngineError`."""

    unknown = UnknownEngineError

    def __init__(self) -> None:
        super().__init__("evaluation engine")

    def register(self, name: str, entry: EvaluationEngine) -> EvaluationEngine:
        if not isinstance(entry, EvaluationEngine) or entry.name != name:
            raise ToolkitError(f"register_engine({name!r}, ...) takes an EvaluationEngine "
                               f"named {name!r}")
        if entry.vectorized and entry.beam_arguments is not None:
            raise ToolkitError(f"evaluation engine {name!r}: beam_arguments are for an engine "
                               "that computes every metric itself (computes=...)")
        return super().register(name, entry)


#: every engine ``engine=`` may name
ENGINES = EngineRegistry()


def register_engine(engine: EvaluationEngine) -> EvaluationEngine:
    """Make ``engine`` a choice of ``engine=`` (``ENGINES.register``)."""
    return ENGINES.register(engine.name, engine)


register_engine(EvaluationEngine(
    "auto", "the vectorized engine; TFMA computes the metrics it lacks, with a warning",
    falls_back=True))
register_engine(EvaluationEngine(
    "toolkit", "the vectorized engine only; a metric it lacks is refused"))
register_engine(EvaluationEngine(
    "tfma", "TFMA's pipeline for every metric",
    computes="toolkit.evaluation.tfma_adapter:run",
    beam_arguments="toolkit.evaluation.tfma_adapter:beam_pipeline_args"))
