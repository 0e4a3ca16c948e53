"""How views reach an artifact's data: through the toolkit's artifact classes and their ``load()``.

Views never read artifact files on their own: the artifact class knows its layout
(:mod:`toolkit.artifacts`), so a view of a TFX artifact, a ``SimpleNamespace`` with
a ``uri`` or a bare folder builds the toolkit's class of that type and calls its
``load``. One reader per artifact type, shared by views and user code alike.
"""
from __future__ import annotations

import json
import os
from typing import Any

from toolkit.artifacts import ARTIFACT_TYPES, Artifact, files_by_split


def toolkit_artifact(source: Any, type_name: str) -> Artifact:
    """``source`` as the toolkit's artifact class registered for ``type_name``.

    A toolkit artifact of that class is returned as it is. Anything else with a
    ``uri`` (a TFX artifact, a stand-in) gives a new one with its uri, id, producer
    and split names; a path gives one for that folder.
    """
    cls = ARTIFACT_TYPES[type_name]
    if isinstance(source, cls):
        return source
    if isinstance(source, (str, os.PathLike)):
        return cls(uri=os.fspath(source))
    artifact = cls(uri=str(source.uri), id=getattr(source, "id", None),
                   producer=getattr(source, "producer", None))
    names = split_names_of(source)
    if names:
        artifact.split_names = names
    return artifact


def split_names_of(source: Any) -> list[str]:
    """The split names an artifact records (TFX keeps them as a JSON string)."""
    names = getattr(source, "split_names", None)
    if isinstance(names, str):
        try:
            names = json.loads(names)
        except ValueError:
            return []
    if not isinstance(names, (list, tuple)):
        return []
    return [str(name) for name in names]


def splits_with(artifact: Artifact, file_name: str) -> list[str]:
    """The splits to read: those the artifact records, else its ``Split-*/<file_name>`` folders."""
    return artifact.split_names or list(files_by_split(artifact.uri, file_name))
