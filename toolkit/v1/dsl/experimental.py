"""``tfx.dsl.experimental``: the strategies a ``tfx.dsl.Resolver`` picks artifacts with."""
from __future__ import annotations

from typing import Any

from toolkit.components.resolver import (
    LatestArtifactStrategy,
    LatestBlessedModelStrategy,
    ResolverStrategy,
    SpanRangeStrategy,
)

__all__ = ["LatestArtifactStrategy", "LatestBlessedModelStrategy", "ResolverStrategy",
           "SpanRangeStrategy"]

NOT_PROVIDED = {
    "RuntimeParameter": "parameters of an exported notebook are its `parameters` cell",
    "create_container_component": "write a Python function component "
                                  "(tfx.dsl.components.component)",
}


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    from toolkit.v1._names import missing

    missing(__name__, name, __all__, NOT_PROVIDED.get(name))
