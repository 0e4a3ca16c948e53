"""The cache key: what must be unchanged for an earlier execution's outputs to be reused.

An execution is reused when its component class, executor version, component id,
parameters, the content of the files its parameters name, and the identities of
its input artifacts all match. Every recorded execution carries this key, so the
formula is part of the on-disk format: changing it would silently turn every
existing cache entry into a miss. The encodings here (``encode_parameter``,
``canonical_json``, ``fingerprint_path``) are stable across processes and Python
versions for the same reason. Reuse also needs the outputs to be intact on disk,
which :func:`unusable_outputs` checks against their publishing manifests.
"""
from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import os
from typing import Any

from toolkit import storage
from toolkit.artifacts import Artifact
from toolkit.errors import ToolkitError
from toolkit.publishing import manifest_ok, sha256_file


@dataclasses.dataclass(frozen=True)
class CacheKey:
    """An execution's cache key, with the two parts the metadata store records beside it."""
    digest: str
    #: canonical JSON of the encoded parameters
    parameters: str
    #: canonical JSON of the fingerprints of the files and folders parameters name
    module_fingerprint: str


def cache_key(component, inputs: dict[str, list[Artifact]], store_location: str,
              resolved=None) -> CacheKey:
    """The cache key of running ``component`` (a ``BaseComponent``) on ``inputs`` with the
    metadata store at ``store_location``.

    ``resolved`` is what the component's driver hook resolved for this run (a
    ``ResolvedProperties``); the launcher passes the one it hands the executor, so the key
    describes what is read. Without it the hook is asked here. The key records the
    *declared* parameters and the resolved fingerprints, as it always has."""
    if resolved is None:
        resolved = component.resolve_exec_properties(inputs)
    parameters = canonical_json(encode_parameter(component.exec_properties))
    fingerprints = resolved.fingerprints
    digest = _sha256(canonical_json({
        "component_type": f"{type(component).__module__}.{type(component).__qualname__}",
        "executor_version": component.EXECUTOR_VERSION,
        "component_id": component.id,
        "parameters": parameters,
        "fingerprints": fingerprints,
        "inputs": {k: [input_identity(a, store_location) for a in v]
                   for k, v in sorted(inputs.items())},
    }))
    return CacheKey(digest, parameters, canonical_json(fingerprints))


def input_identity(artifact: Artifact, store_location: str) -> Any:
    """An input's identity for the cache key: its id in this store, or its uri if it comes
    from another pipeline's store (where the same id means another artifact)."""
    if getattr(artifact, "store_location", store_location) == store_location:
        return artifact.id
    return f"uri:{artifact.uri}"


def unusable_outputs(outputs: dict[str, list[Artifact]]) -> list[Artifact]:
    """The cached outputs that cannot be reused: no longer live in the store, or changed or
    missing on disk since they were published."""
    return [a for arts in outputs.values() for a in arts
            if getattr(a, "state", "LIVE") != "LIVE" or not manifest_ok(a.uri)]


def fingerprint_path(path: str, kind: str) -> str:
    """``file``: sha256 of the content; ``tree``: names, sizes and mtimes of the files, in
    :func:`toolkit.storage.walk`'s order (part of the key's format: keep it).

    In an object store, a file is known by its size and identity (the ETag, or the
    generation) instead: the store computed it from the bytes, so nothing is read again,
    and an object uploaded again with the same bytes keeps its key, where its time
    would not."""
    if not storage.exists(path):
        return "missing"
    remote = storage.scheme_of(path) != "file"
    if kind == "file" and storage.is_file(path):
        if remote:
            st = storage.stat(path)
            return f"object:{st.size}:{st.identity}"
        return sha256_file(path)
    digest = hashlib.sha256()
    for rel in storage.walk(path):
        st = storage.stat(storage.join(path, rel))
        digest.update(f"{rel}\0{st.size}\0{st.identity if remote else st.mtime_ns}\n".encode())
    return digest.hexdigest()


def encode_parameter(value: Any) -> Any:
    """A JSON-able form of a parameter value, stable across processes (for the cache key)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [encode_parameter(v) for v in value]
    if isinstance(value, dict):
        return {str(k): encode_parameter(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if hasattr(value, "DESCRIPTOR") and hasattr(value, "SerializeToString"):
        from google.protobuf import json_format
        return {"proto": value.DESCRIPTOR.full_name,
                "value": json_format.MessageToDict(value, preserving_proto_field_name=True)}
    if callable(value):
        try:
            source = inspect.getsource(value)
        except (OSError, TypeError):
            source = repr(value)
        return {"callable": getattr(value, "__qualname__", repr(value)),
                "source_sha256": hashlib.sha256(source.encode()).hexdigest()}
    if hasattr(value, "__dict__"):
        return {"object": type(value).__name__, "fields": encode_parameter(vars(value))}
    raise ToolkitError(f"parameter value of type {type(value).__name__} cannot be recorded")


def canonical_json(value: Any) -> str:
    """One JSON text per value: sorted keys, no spaces, anything unknown as its ``str``."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
