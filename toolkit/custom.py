"""Custom components from plain Python functions, as TFX's ``@component`` does.

::

    from toolkit.custom import component, InputArtifact, OutputArtifact, Parameter
    from toolkit.artifacts import Examples, ModelBlessing

    @component
    def FareCheck(examples: InputArtifact[Examples], blessing: OutputArtifact[ModelBlessing],
                  max_fare: Parameter[float] = 500.0):
        ...  # read examples.uri, write into blessing.uri, set blessing.properties

    check = FareCheck(examples=example_gen.outputs["examples"], max_fare=300.0)
    context.run(check)

The decorated function becomes a component class: it runs through
``context.run`` like a standard one, is recorded in ML Metadata with its inputs
and outputs (lineage), and is cached. Its own source code is part of the cache
key, so editing the function re-runs it; code it calls in other functions or
modules is not, as for a ``preprocessing_fn`` passed as a function.

Inputs receive the artifact (``.uri``, ``.properties``, ``.split_names``);
outputs receive a fresh artifact whose folder the function fills; parameters
(``int``, ``float``, ``str``, ``bool``, ``list``, ``dict``, bare or wrapped in
``Parameter[...]``) receive values. The function returns nothing.
"""
from __future__ import annotations

import hashlib
import inspect
import sys
import typing
from typing import Any, Callable, Generic, TypeVar

from toolkit.artifacts import ARTIFACT_TYPES, Artifact, register_artifact_type
from toolkit.base_component import BaseComponent, InputSpec
from toolkit.base_component import ExecutionParameter
from toolkit.errors import ToolkitError

T = TypeVar("T")

__all__ = ["component", "InputArtifact", "OutputArtifact", "Parameter"]

_PARAMETER_TYPES = (int, float, str, bool, list, dict)


class InputArtifact(Generic[T]):
    """Annotation: ``examples: InputArtifact[Examples]`` is an input channel of that type."""


class OutputArtifact(Generic[T]):
    """Annotation: ``model: OutputArtifact[Model]`` is an output the function writes."""


class Parameter(Generic[T]):
    """Annotation: ``steps: Parameter[int]`` is a parameter (same as a bare ``int``)."""


class _FunctionComponent(BaseComponent):
    """Base of the classes :func:`component` makes."""

    _fn: Callable[..., None] | None = None
    _order: tuple[str, ...] = ()

    def __init__(self, *args: Any, **kwargs: Any):
        if len(args) > len(self._order):
            raise TypeError(f"{type(self).__name__} takes at most {len(self._order)} positional "
                            f"arguments ({', '.join(self._order)}), got {len(args)}")
        for name, value in zip(self._order, args):
            if name in kwargs:
                raise TypeError(f"{type(self).__name__} got two values for {name!r}")
            kwargs[name] = value
        for key, value in kwargs.items():
            spec = self.PARAMETERS.get(key)
            if spec is not None and value is not None:
                _check_type(type(self).__name__, key, value, spec.type)
        super().__init__(**kwargs)

    def Do(self, input_dict, output_dict, exec_properties, ctx) -> None:
        from toolkit.components._module import call_user_function, function_label
        from toolkit.errors import UserCodeError

        fn = type(self)._fn
        kwargs: dict[str, Any] = {}
        for key in self.INPUTS:
            arts = input_dict.get(key) or []
            kwargs[key] = arts[0] if arts else None
        for key in self.OUTPUTS:
            kwargs[key] = output_dict[key][0]
        for key in self.PARAMETERS:
            kwargs[key] = exec_properties.get(key)
        label = function_label(fn)
        returned = call_user_function(fn, label, **kwargs)
        if returned is not None:
            raise UserCodeError(f"{label} returned a {type(returned).__name__}; a component "
                                "function returns nothing: write results into its output "
                                "artifacts (files under .uri, values in .properties)")


def component(fn: Callable[..., None] | None = None, *,
              executor_version: str | None = None) -> Any:
    """Turn a typed function into a component class (usable as ``@component`` or
    ``@component()``).

    Args:
        fn: the function; its annotations declare inputs (``InputArtifact[T]``),
            outputs (``OutputArtifact[T]``) and parameters.
        executor_version: overrides the source digest in the cache key (rarely needed:
            for a function whose source cannot be read).
    """
    caller = sys._getframe(1).f_locals
    if fn is None:
        return lambda f: _make(f, executor_version, caller)
    return _make(fn, executor_version, caller)


def _make(fn: Callable[..., None], executor_version: str | None,
          caller: dict[str, Any]) -> type[BaseComponent]:
    if not callable(fn) or not hasattr(fn, "__code__"):
        raise TypeError("@component decorates a function")
    inputs, outputs, parameters, order = _declarations(fn, caller)
    if not outputs and not inputs:
        raise ToolkitError(f"@component {fn.__name__}: annotate at least one argument as "
                           "InputArtifact[...] or OutputArtifact[...]")
    attrs = {
        "INPUTS": inputs, "OUTPUTS": outputs, "PARAMETERS": parameters,
        "EXECUTOR_VERSION": executor_version or f"source-{source_digest(fn)}",
        "_fn": staticmethod(fn), "_order": tuple(order),
        "__module__": fn.__module__, "__qualname__": fn.__qualname__,
        "__doc__": fn.__doc__ or f"Component made from the function {fn.__name__}.",
    }
    return type(fn.__name__, (_FunctionComponent,), attrs)


def source_digest(fn: Callable[..., Any]) -> str:
    """sha256 of the function's source (of its bytecode and constants if the source
    cannot be read, as for a function typed into a plain Python prompt)."""
    try:
        text = inspect.getsource(fn)
    except (OSError, TypeError):
        code = fn.__code__
        text = repr((code.co_code, code.co_consts, code.co_names, code.co_varnames))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _declarations(fn: Callable[..., Any], caller: dict[str, Any]):
    """Inputs, outputs, parameters and argument order from the annotations.

    String annotations (``from __future__ import annotations``) are resolved in the
    function's module and, for a function defined inside another, in the scope
    where ``@component`` was applied.
    """
    try:
        hints = typing.get_type_hints(fn, localns=dict(caller))
    except Exception as exc:
        raise ToolkitError(f"@component {fn.__name__}: cannot read its annotations: "
                           f"{type(exc).__name__}: {exc}") from None
    signature = inspect.signature(fn)
    inputs: dict[str, InputSpec] = {}
    outputs: dict[str, type[Artifact]] = {}
    parameters: dict[str, ExecutionParameter] = {}
    order: list[str] = []
    for name, param in signature.parameters.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise ToolkitError(f"@component {fn.__name__}: *args and **kwargs are not supported")
        if name not in hints:
            raise ToolkitError(f"@component {fn.__name__}: argument {name!r} needs an annotation "
                               "(InputArtifact[...], OutputArtifact[...] or a parameter type)")
        hint, optional = _strip_optional(hints[name])
        has_default = param.default is not inspect.Parameter.empty
        origin = typing.get_origin(hint)
        if origin in (InputArtifact, OutputArtifact):
            art_type = _artifact_type(fn, name, typing.get_args(hint))
            if origin is InputArtifact:
                inputs[name] = InputSpec(art_type, optional=optional or has_default)
                order.append(name)
            else:
                outputs[name] = art_type
            continue
        if origin is Parameter:
            hint = typing.get_args(hint)[0]
        base = typing.get_origin(hint) or hint
        if base not in _PARAMETER_TYPES:
            raise ToolkitError(f"@component {fn.__name__}: argument {name!r} has type {hint!r}; "
                               "use InputArtifact[...], OutputArtifact[...] or one of int, "
                               "float, str, bool, list, dict")
        parameters[name] = ExecutionParameter(base, default=param.default if has_default else None,
                                         required=not has_default and not optional)
        order.append(name)
    return inputs, outputs, parameters, order


def _strip_optional(hint: Any) -> tuple[Any, bool]:
    if typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(hint)) == 2:
            return args[0], True
    return hint, False


def _artifact_type(fn: Callable[..., Any], name: str, args: tuple) -> type[Artifact]:
    if len(args) != 1 or not (isinstance(args[0], type) and issubclass(args[0], Artifact)):
        raise ToolkitError(f"@component {fn.__name__}: {name!r} must be annotated with an "
                           "artifact type, e.g. InputArtifact[Examples]")
    art_type = args[0]
    if ARTIFACT_TYPES.get(art_type.TYPE_NAME) is None:
        register_artifact_type(art_type)
    return art_type


def _check_type(owner: str, key: str, value: Any, expected: type) -> None:
    ok = isinstance(value, expected) and not (expected is int and isinstance(value, bool))
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        ok = True
    if not ok:
        raise TypeError(f"{owner}: parameter {key!r} must be {expected.__name__}, "
                        f"got {type(value).__name__} {value!r}")
