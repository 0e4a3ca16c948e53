"""The launcher's vocabulary: one run of a component, a policy's ruling on it, and the
decision that links the driver, the executor and the publisher.

As in TFX's ``base_component_launcher.launch()``, one object says what happens to a run
and why: :func:`toolkit.launcher.Launcher.decide` makes it, and everything after it
(execute, publish, record, the hooks) reads it and never derives it again.
"""
from __future__ import annotations

import dataclasses
import enum
import time
from typing import Any, NamedTuple

from toolkit.artifacts import Artifact
from toolkit.base_component import BaseComponent, ResolvedProperties
from toolkit.cache import CacheKey


class Role(enum.Enum):
    """What a run does with its component."""
    #: run the executor into new staged folders, publish them, record a new execution
    COMPUTE = "compute"
    #: record a new execution that reuses an earlier one's outputs (a cache hit)
    REUSE = "reuse"
    #: take an execution recorded earlier as it is and record nothing (a policy rules it,
    #: for a component another process computed: a pipeline step's upstream)
    READ = "read-from-store"
    #: neither execute nor record (a policy rules it: the component is not this run's)
    SKIP = "skip"
    #: single flight: another live process is computing the same cache key right now;
    #: wait for its record, then decide again (REUSE its outputs, or COMPUTE if it died).
    #: Only Launcher.decide chooses it.
    WAIT = "wait"


@dataclasses.dataclass(frozen=True)
class Ruling:
    """A policy's say, before the cache is asked, on how one component takes part in this
    run: READ it from the store or SKIP it, with the reason shown to the user. A component
    no policy rules on is decided by the cache."""
    role: Role
    reason: str

    def __post_init__(self) -> None:
        if self.role not in (Role.READ, Role.SKIP):
            raise ValueError(f"a policy may rule READ or SKIP, not {self.role.name}: computing "
                             "and reusing are decided by the cache")


class Awaited(NamedTuple):
    """The execution another process is computing with this run's cache key."""
    execution_id: int
    #: who computes it, for people: ``"<hostname>/<pid>"``
    owner: str


class Hit(NamedTuple):
    """An execution recorded earlier whose outputs this run takes."""
    execution_id: int
    outputs: dict[str, list[Artifact]]


@dataclasses.dataclass(frozen=True)
class Decision:
    """What :meth:`toolkit.launcher.Launcher.decide` chose for one run, and why.

    ``key`` is the run's cache key (None only when skipped: a skipped component is not
    even resolved); ``hit`` the execution reused or read; ``replaced`` the outputs of a
    cached execution that is recomputed because what it did outside its artifact folders
    is gone; ``awaited`` the execution a WAIT waits for; ``reason`` one line for people
    (``context.run`` results, logs, tests)."""
    role: Role
    reason: str
    key: CacheKey | None = None
    hit: Hit | None = None
    replaced: dict[str, list[Artifact]] | None = None
    awaited: Awaited | None = None

    def __post_init__(self) -> None:
        if (self.hit is not None) != (self.role in (Role.REUSE, Role.READ)):
            raise ValueError(f"a {self.role.name} decision "
                             f"{'needs' if self.hit is None else 'takes no'} hit")
        if self.replaced is not None and self.role is not Role.COMPUTE:
            raise ValueError("only a COMPUTE decision replaces outputs")
        if (self.awaited is not None) != (self.role is Role.WAIT):
            raise ValueError(f"a {self.role.name} decision "
                             f"{'needs' if self.awaited is None else 'takes no'} awaited execution")
        if (self.key is None) != (self.role is Role.SKIP):
            raise ValueError(f"a {self.role.name} decision "
                             f"{'needs' if self.key is None else 'takes no'} cache key")

    @property
    def records(self) -> bool:
        """Whether the run records a new execution (computed or reused)."""
        return self.role in (Role.COMPUTE, Role.REUSE)


@dataclasses.dataclass
class Run:
    """One ``context.run(component)`` on its way through the launcher, filled in phase by
    phase: the hooks receive it, so they need nothing from the launcher itself."""
    component: BaseComponent
    #: the pipeline's metadata store (a ``toolkit.metadata.MetadataStore``)
    store: Any
    pipeline_root: str
    enable_cache: bool = True
    #: this run's Beam arguments (None: the context's)
    beam_pipeline_args: list[str] | None = None
    started: float = dataclasses.field(default_factory=time.perf_counter)
    #: set by the first policy that rules on the run (``RunHook.before_decide``)
    ruling: Ruling | None = None
    #: the input artifacts, resolved from the channels by ``decide``
    inputs: dict[str, list[Artifact]] = dataclasses.field(default_factory=dict)
    #: what the component's driver hook resolved, set by ``decide``
    resolved: ResolvedProperties | None = None
    #: the execution recorded for this run, once there is one
    execution_id: int | None = None

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started
