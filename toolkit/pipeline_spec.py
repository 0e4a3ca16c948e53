"""A :class:`~toolkit.pipeline.Pipeline` as data, so that another process builds the same
components: what a Kubeflow task of ``KubeflowV2DagRunner`` rebuilds its pipeline from.

Two ways could carry a pipeline into a task's container: import the user's pipeline
module there and call the function that built it, or carry the pipeline itself as data.
This module does the second, because the ``Pipeline`` object is the only thing the
runner is given: a pipeline built in a notebook cell has no module to import, the
builder's name and arguments are not known to the runner, and a module run again may
build something else (other environment, other time). A task must rebuild components
whose cache keys equal the ones computed where they ran, since that is how it finds its
upstream's outputs in the shared store; carrying the components' state does that.

Each component becomes its class's import path and its instance state (id, parameters,
input channels, and whatever else its constructor kept: a Resolver's strategy, an
Importer's artifact type), as tagged JSON: a channel as its producer's id and output key
(or its artifact type when it has no producer), a class or function as its import path,
a proto message as its JSON form, another object as its class and fields. Rebuilding
creates the instances without calling their constructors and restores that state, then
each component's output channels as ``BaseComponent`` makes them.

:func:`pipeline_to_spec` rebuilds what it wrote and compares it with the original
(classes, ids, parameters as the cache key encodes them, wiring, outputs), so anything
that cannot be carried is refused when the pipeline is compiled, in one line naming the
component, the value and the fix, rather than failing inside a task. Files the
parameters name by content (module files) are recorded with their SHA-256, so that a
task running on other files (an image built from other sources) stops at once.
"""
from __future__ import annotations

import enum
import importlib
import math
import os
import pathlib
import types
from typing import Any, Iterable

from toolkit import storage
from toolkit.base_component import BaseComponent, Channel
from toolkit.errors import ToolkitError

__all__ = ["SPEC_FORMAT", "check_files", "pipeline_from_spec", "pipeline_to_spec",
           "restrict_spec"]

#: the version of the spec's layout; a task refuses a spec of another version
SPEC_FORMAT = 1
_WHO = "KubeflowV2DagRunner"


class SpecError(ToolkitError):
    """A pipeline that cannot be carried to a task, or a spec that cannot be rebuilt."""


# -- writing ------------------------------------------------------------------------------
def pipeline_to_spec(pipeline: Any) -> dict[str, Any]:
    """The JSON-able spec of ``pipeline`` (a :class:`toolkit.pipeline.Pipeline`), checked by
    rebuilding it; raises :class:`SpecError` naming what cannot be carried."""
    components = pipeline.components
    spec = {
        "format": SPEC_FORMAT,
        "pipeline_name": pipeline.pipeline_name,
        "pipeline_root": pipeline.pipeline_root,
        "enable_cache": pipeline.enable_cache,
        "beam_pipeline_args": list(pipeline.beam_pipeline_args),
        "metadata_connection_config": _encode(pipeline.metadata_connection_config,
                                              "the pipeline's metadata_connection_config"),
        "components": [_component_spec(c) for c in components],
        "files": _content_files(components),
    }
    _check_round_trip(components, pipeline_from_spec(spec).components)
    return spec


def _component_spec(component: BaseComponent) -> dict[str, Any]:
    state = {name: _encode(value, f"{component.id}.{name}")
             for name, value in vars(component).items() if name != "outputs"}
    return {"id": component.id, "class": _import_path(type(component), f"{component.id}'s class"),
            "state": state}


def _content_files(components: Iterable[BaseComponent]) -> dict[str, str]:
    """The files parameters name by content (``fingerprint="file"``: module files, schema
    files): path as given -> SHA-256 now."""
    from toolkit.publishing import sha256_file

    files: dict[str, str] = {}
    for component in components:
        for key, parameter in component.PARAMETERS.items():
            value = component.exec_properties.get(key)
            if parameter.fingerprint == "file" and isinstance(value, (str, os.PathLike)):
                path = os.fspath(value)
                if storage.exists(path) and not storage.is_dir(path):
                    files[path] = sha256_file(path)
    return files


def _import_path(obj: Any, what: str) -> str:
    """``module:qualname`` of a class or function that another process can import."""
    module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    name = getattr(obj, "__name__", repr(obj))
    if not module or not qualname or module == "__main__" or "<" in qualname:
        raise SpecError(f"{_WHO} cannot carry {what} ({name}, defined in "
                        f"{'the notebook or main script' if module == '__main__' else 'a function'}) "
                        f"to a Kubeflow task: define {name} at the top of a module file the "
                        "task's image has, and import it from there")
    try:
        found = _resolve(f"{module}:{qualname}")
    except SpecError:
        found = None
    if found is not obj:
        raise SpecError(f"{_WHO} cannot carry {what} ({name}): {module}.{qualname} does not "
                        f"import as that object; define {name} at the top of a module file")
    return f"{module}:{qualname}"


def _encode(value: Any, where: str) -> Any:
    """A JSON form of ``value``; containers and anything not plain JSON are tagged
    ``{"$kind": ...}``, so a user's dict can never be read as a tag."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, enum.Enum):
        return {"$enum": _import_path(type(value), where), "name": value.name}
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"$float": repr(value)}
    if isinstance(value, os.PathLike):
        return {"$path": os.fspath(value)}
    if isinstance(value, Channel):
        return _encode_channel(value, where)
    if isinstance(value, (BaseComponent,)) or _is_artifact(value):
        raise SpecError(f"{_WHO} cannot carry {where} (a {type(value).__name__} object) to a "
                        "Kubeflow task: components reach each other through channels; pass "
                        "component.outputs[...] instead")
    if isinstance(value, list):
        return [_encode(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, tuple):
        return {"$tuple": [_encode(v, f"{where}[{i}]") for i, v in enumerate(value)]}
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value):
            return {"$dict": {k: _encode(v, f"{where}[{k!r}]") for k, v in value.items()}}
        return {"$items": [[_encode(k, f"{where} key"), _encode(v, f"{where}[{k!r}]")]
                           for k, v in value.items()]}
    if hasattr(value, "DESCRIPTOR") and hasattr(value, "SerializeToString"):
        from google.protobuf import json_format

        return {"$proto": _import_path(type(value), where),
                "json": json_format.MessageToDict(value, preserving_proto_field_name=True)}
    if isinstance(value, type):
        return {"$class": _import_path(value, where)}
    if isinstance(value, (types.FunctionType, types.BuiltinFunctionType)):
        return {"$function": _import_path(value, where)}
    if hasattr(value, "__dict__") and not callable(value):
        cls = _import_path(type(value), f"{where} (a {type(value).__name__})")
        return {"$object": cls, "state": {k: _encode(v, f"{where}.{k}")
                                          for k, v in vars(value).items()}}
    raise SpecError(f"{_WHO} cannot carry {where} (a {type(value).__name__}) to a Kubeflow task: "
                    "give it a JSON value (str, number, bool, list, dict), a proto message, or "
                    "an object of a class defined in a module file")


def _encode_channel(channel: Channel, where: str) -> dict[str, Any]:
    if channel.producer is not None:
        if channel.producer.outputs.get(channel.output_key) is not channel:
            raise SpecError(f"{_WHO} cannot carry {where}: it is not an output channel of "
                            f"{channel.producer.id}; wire {channel.producer.id}.outputs[...] itself")
        return {"$channel": {"producer": channel.producer.id, "output": channel.output_key}}
    if channel.has_artifacts:
        raise SpecError(f"{_WHO} cannot carry {where} (a channel over artifacts of an earlier "
                        "run) to a Kubeflow task: pick them in the pipeline with "
                        "tfx.dsl.Resolver, or register them with tfx.dsl.Importer")
    return {"$channel": {"type": _import_path(channel.type, where)}}


def _is_artifact(value: Any) -> bool:
    from toolkit.artifacts import Artifact

    return isinstance(value, Artifact)


def restrict_spec(spec: dict[str, Any], component_id: str) -> dict[str, Any]:
    """``spec`` with only ``component_id`` and the components it refers to, directly or
    not (through its inputs or any channel it holds), in the spec's order: what the task
    of ``component_id`` rebuilds."""
    by_id = {c["id"]: c for c in spec["components"]}
    needed: set[str] = set()
    todo = [component_id]
    while todo:
        current = todo.pop()
        if current not in needed:
            needed.add(current)
            todo.extend(_producers(by_id[current]["state"]))
    components = [c for c in spec["components"] if c["id"] in needed]
    return dict(spec, components=components, files={
        path: digest for path, digest in spec["files"].items()
        if any(_names_file(c["state"], path) for c in components)})


def _producers(value: Any) -> list[str]:
    if isinstance(value, list):
        return [p for v in value for p in _producers(v)]
    if isinstance(value, dict):
        channel = value.get("$channel")
        if isinstance(channel, dict) and "producer" in channel:
            return [channel["producer"]]
        return [p for v in value.values() for p in _producers(v)]
    return []


def _names_file(value: Any, path: str) -> bool:
    if isinstance(value, list):
        return any(_names_file(v, path) for v in value)
    if isinstance(value, dict):
        return any(_names_file(v, path) for v in value.values())
    return value == path


# -- reading ------------------------------------------------------------------------------
def pipeline_from_spec(spec: dict[str, Any]) -> Any:
    """The :class:`toolkit.pipeline.Pipeline` a spec describes (its components rebuilt)."""
    from toolkit.pipeline import Pipeline

    if spec.get("format") != SPEC_FORMAT:
        raise SpecError(f"the pipeline spec has format {spec.get('format')!r}; this toolkit reads "
                        f"format {SPEC_FORMAT}: compile the pipeline again with this version")
    built: dict[str, BaseComponent] = {}
    for item in spec["components"]:
        cls = _resolve(item["class"])
        if not (isinstance(cls, type) and issubclass(cls, BaseComponent)):
            raise SpecError(f"{item['class']} is not a component class")
        component = cls.__new__(cls)
        for name, value in item["state"].items():
            setattr(component, name, _decode(value, built))
        component.outputs = {key: Channel(art_type, producer=component, output_key=key)
                             for key, art_type in component.OUTPUTS.items()}
        built[item["id"]] = component
    return Pipeline(pipeline_name=spec["pipeline_name"], pipeline_root=spec["pipeline_root"],
                    metadata_connection_config=_decode(spec["metadata_connection_config"], built),
                    components=list(built.values()), enable_cache=spec["enable_cache"],
                    beam_pipeline_args=spec["beam_pipeline_args"])


def _decode(value: Any, built: dict[str, BaseComponent]) -> Any:
    if isinstance(value, list):
        return [_decode(v, built) for v in value]
    if not isinstance(value, dict):
        return value
    [(kind, body)] = [(k, v) for k, v in value.items() if k.startswith("$")]
    if kind == "$dict":
        return {k: _decode(v, built) for k, v in body.items()}
    if kind == "$items":
        return {_decode(k, built): _decode(v, built) for k, v in body}
    if kind == "$tuple":
        return tuple(_decode(v, built) for v in body)
    if kind == "$float":
        return float(body)
    if kind == "$path":
        return pathlib.Path(body)
    if kind == "$enum":
        return _resolve(body)[value["name"]]
    if kind in ("$class", "$function"):
        return _resolve(body)
    if kind == "$proto":
        from google.protobuf import json_format

        return json_format.ParseDict(value["json"], _resolve(body)())
    if kind == "$channel":
        if "producer" in body:
            return built[body["producer"]].outputs[body["output"]]
        return Channel(_resolve(body["type"]))
    if kind == "$object":
        cls = _resolve(body)
        obj = cls.__new__(cls)
        obj.__dict__.update({k: _decode(v, built) for k, v in value["state"].items()})
        return obj
    raise SpecError(f"the pipeline spec holds an unknown value kind {kind!r}")


def _resolve(path: str) -> Any:
    module, _, qualname = path.partition(":")
    try:
        found: Any = importlib.import_module(module)
        for part in qualname.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError) as exc:
        raise SpecError(f"cannot import {module}.{qualname} ({exc}); the task's image needs the "
                        "modules the pipeline's components come from") from None
    return found


# -- checking -----------------------------------------------------------------------------
def _check_round_trip(original: list[BaseComponent], rebuilt: list[BaseComponent]) -> None:
    """Refuse a spec whose rebuilt components would not be the same to the cache."""
    from toolkit.cache import canonical_json, encode_parameter

    for before, after in zip(original, rebuilt, strict=True):
        what = {
            "class": (type(before), type(after)),
            "id": (before.id, after.id),
            "parameters": tuple(canonical_json(encode_parameter(c.exec_properties))
                                for c in (before, after)),
            "inputs": tuple(_wiring(c) for c in (before, after)),
            "outputs": tuple({k: ch.type for k, ch in c.outputs.items()} for c in (before, after)),
        }
        for name, (was, now) in what.items():
            if was != now:
                raise SpecError(f"{_WHO} cannot carry {before.id} to a Kubeflow task: its "
                                f"{name} would differ there ({was!r} vs {now!r}); give it "
                                "plain JSON parameters")


def _wiring(component: BaseComponent) -> dict[str, Any]:
    return {key: None if ch is None else (ch.producer.id if ch.producer else None,
                                          ch.output_key, ch.type)
            for key, ch in component.inputs.items()}


def check_files(files: dict[str, str]) -> None:
    """Refuse to run on module files other than those the pipeline was compiled with."""
    from toolkit.publishing import sha256_file

    for path, digest in files.items():
        if not storage.exists(path) or storage.is_dir(path):
            raise SpecError(f"{path}: the pipeline's file is not here (working directory "
                            f"{os.getcwd()}); build the image with it, or run the task where "
                            "the pipeline was compiled")
        found = sha256_file(path)
        if found != digest:
            raise SpecError(f"{path} is not the file the pipeline was compiled with (sha256 "
                            f"{found[:12]}, compiled with {digest[:12]}); rebuild the image or "
                            "compile the pipeline again")
