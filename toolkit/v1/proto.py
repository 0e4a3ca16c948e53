"""``tfx.proto``: TFX's configuration messages as small classes of the toolkit's own.

TFX's ``*_pb2`` modules cannot be installed here, and the toolkit's components take
their configuration as plain dicts with TFX's field names. So each message here *is*
such a dict (a ``dict`` subclass holding only the fields that were set), built the
protobuf way: keyword arguments with TFX's field names, nested messages as
attributes, repeated fields as lists::

    tfx.proto.PushDestination(filesystem=tfx.proto.PushDestination.Filesystem(
        base_directory="serving/taxi"))
    == {"filesystem": {"base_directory": "serving/taxi"}}

A component therefore accepts a message wherever it accepts the dict, and the
message and its equal dict give the same cache key. Reading an unset field gives
its default (``0``, ``""``, ``False``, an empty message or list), as protobuf does;
writing to an unset nested message or list attaches it. :func:`to_dict` gives the
plain nested dict.
"""
from __future__ import annotations

import enum
from typing import Any, Callable, ClassVar

__all__ = [
    "TrainArgs", "EvalArgs", "TuneArgs",
    "Input", "Output", "SplitConfig", "PayloadFormat", "CustomConfig",
    "RangeConfig", "StaticRange", "RollingRange",
    "SplitsConfig",
    "PushDestination", "Versioning",
    "ServingSpec", "TensorFlowServing", "LocalDockerConfig", "KubernetesConfig",
    "RequestSpec", "TensorFlowServingRequestSpec", "ValidationSpec",
    "DataSpec", "ModelSpec",
    "to_dict",
]

#: tfx.v1.proto names that are not provided, with what to do instead
NOT_PROVIDED = {
    "OutputExampleSpec": "the BulkInferrer always writes every input column plus the predictions",
    "OutputColumnsSpec": "the BulkInferrer always writes every input column plus the predictions",
    "ClassifyOutput": "the BulkInferrer always writes every input column plus the predictions",
    "RegressOutput": "the BulkInferrer always writes every input column plus the predictions",
    "PredictOutput": "the BulkInferrer always writes every input column plus the predictions",
    "PredictOutputCol": "the BulkInferrer always writes every input column plus the predictions",
    "FeatureSlicingSpec": "give the Evaluator a tfma.EvalConfig with slicing_specs",
    "SingleSlicingSpec": "give the Evaluator a tfma.EvalConfig with slicing_specs",
    "ExampleDiffConfig": "there is no ExampleDiff component",
    "PairedExampleSkew": "there is no ExampleDiff component",
    "DistributionValidatorConfig": "there is no DistributionValidator component",
    "FeatureComparator": "there is no DistributionValidator component",
    "PodOverrides": "the InfraValidator serves models in a local process, not on Kubernetes",
    "EnvVar": "the InfraValidator serves models in a local process, not on Kubernetes",
    "EnvVarSource": "the InfraValidator serves models in a local process, not on Kubernetes",
    "SecretKeySelector": "the InfraValidator serves models in a local process, not on Kubernetes",
    "orchestration": None,
}


class Message(dict):
    """Base of the messages: a dict of the fields that are set, with protobuf-style access.

    Subclasses declare ``FIELDS``: field name -> default. A default of ``0``, ``0.0``,
    ``""`` or ``False`` makes a scalar field of that type; a ``Message`` subclass a
    nested message; ``[str]``, ``[int]`` or ``[SomeMessage]`` a repeated field; ``{}`` a
    map of strings. An enum class makes an enum field (its members are ints).
    """

    FIELDS: ClassVar[dict[str, Any]] = {}

    def __init__(self, **fields: Any):
        super().__init__()
        for name, value in fields.items():
            self._field(name, ValueError)
            setattr(self, name, value)

    # -- field access ------------------------------------------------------------
    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        spec = self._field(name, AttributeError)
        if name in self:
            return self[name]
        return _default(spec, lambda value: self._attach(name, value))

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_"):
            object.__setattr__(self, name, value)
            return
        spec = self._field(name, AttributeError)
        if value is None:
            self.pop(name, None)
            return
        self[name] = _coerce(type(self).__name__, name, spec, value)
        self._attached()

    def __delattr__(self, name: str) -> None:
        self._field(name, AttributeError)
        self.pop(name, None)

    def _field(self, name: str, error: type[Exception]) -> Any:
        try:
            return self.FIELDS[name]
        except KeyError:
            known = ", ".join(self.FIELDS) or "none"
            raise error(f'Protocol message {type(self).__name__} has no "{name}" field '
                        f"(its fields: {known})") from None

    def _attach(self, name: str, value: Any) -> None:
        """Keep ``value``, handed out for the unset field ``name``, once it is written to."""
        if name not in self:
            self[name] = value
        self._attached()

    def _attached(self) -> None:
        """A nested message handed out while unset joins its parent on its first write."""
        hook = self.__dict__.pop("_parent_attach", None)
        if hook is not None:
            hook(self)

    # -- the protobuf methods tutorials use ---------------------------------------
    def HasField(self, name: str) -> bool:
        self._field(name, ValueError)
        return name in self

    def ClearField(self, name: str) -> None:
        self._field(name, ValueError)
        self.pop(name, None)

    def CopyFrom(self, other: Any) -> None:
        self.clear()
        self.MergeFrom(other)

    def MergeFrom(self, other: Any) -> None:
        for name, value in dict(other).items():
            setattr(self, name, value)

    def to_dict(self) -> dict[str, Any]:
        """The plain nested dict the toolkit's components take."""
        return to_dict(self)

    # -- equality and display ------------------------------------------------------
    def __eq__(self, other: Any) -> bool:
        if isinstance(other, Message) and type(other) is not type(self):
            return False
        return dict.__eq__(self, other)

    def __ne__(self, other: Any) -> bool:
        return not self == other

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self.items())
        return f"{type(self).__qualname__}({inner})"

    def __reduce__(self):
        return (_rebuild, (type(self), to_dict(self)))

    def __copy__(self):
        return type(self)(**dict(self))

    def __deepcopy__(self, memo: dict) -> "Message":
        return _rebuild(type(self), to_dict(self))


def _rebuild(cls: type[Message], fields: dict[str, Any]) -> Message:
    return cls(**fields)


class _Repeated(list):
    """A repeated field read before it was set: attaches itself when first filled."""

    def __init__(self, attach: Callable[[Any], None], coerce: Callable[[Any], Any]):
        super().__init__()
        self._attach = attach
        self._coerce = coerce

    def append(self, value: Any) -> None:
        super().append(self._coerce(value))
        self._attach(self)

    def extend(self, values: Any) -> None:
        super().extend(self._coerce(v) for v in values)
        if self:
            self._attach(self)

    def add(self, **fields: Any) -> Any:
        """protobuf's ``repeated_message.add(...)``."""
        item = self._coerce(fields)
        super().append(item)
        self._attach(self)
        return item


def _default(spec: Any, attach: Callable[[Any], None]) -> Any:
    if isinstance(spec, list):
        return _Repeated(attach, lambda v: _coerce("", "", spec[0], v))
    if isinstance(spec, dict):
        return {}
    if isinstance(spec, type) and issubclass(spec, Message):
        child = spec()
        object.__setattr__(child, "_parent_attach", attach)
        return child
    if isinstance(spec, type) and issubclass(spec, enum.IntEnum):
        return spec(0)
    return spec




def _coerce(owner: str, name: str, spec: Any, value: Any) -> Any:
    where = f"{owner}.{name}" if owner else "a repeated field"
    if isinstance(spec, list):
        if isinstance(value, (str, bytes, dict)) or not hasattr(value, "__iter__"):
            raise TypeError(f"{where} is a repeated field: give a list, got {value!r}")
        return [_coerce(owner, name, spec[0], v) for v in value]
    if isinstance(spec, dict):
        if not isinstance(value, dict):
            raise TypeError(f"{where} is a map: give a dict, got {value!r}")
        return {str(k): str(v) for k, v in value.items()}
    if isinstance(spec, type) and issubclass(spec, Message):
        if isinstance(value, spec):
            return value
        if isinstance(value, Message):
            raise TypeError(f"{where} takes a {spec.__qualname__}, got a "
                            f"{type(value).__qualname__}")
        if isinstance(value, dict):
            return spec(**value)
        raise TypeError(f"{where} takes a {spec.__qualname__} (or a dict), got {value!r}")
    if isinstance(spec, type) and issubclass(spec, enum.IntEnum):
        try:
            return spec[value] if isinstance(value, str) else spec(value)
        except (KeyError, ValueError):
            raise ValueError(f"{where}: {value!r} is not one of "
                             f"{', '.join(m.name for m in spec)}") from None
    if isinstance(spec, bool):
        if not isinstance(value, bool):
            raise TypeError(f"{where} takes a bool, got {value!r}")
        return value
    if isinstance(spec, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{where} takes an int, got {value!r}")
        return value
    if isinstance(spec, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{where} takes a number, got {value!r}")
        return float(value)
    if not isinstance(value, str):
        raise TypeError(f"{where} takes a str, got {value!r}")
    return value


def to_dict(value: Any) -> Any:
    """``value`` with every message (at any depth) turned into a plain dict, enum values
    into ints; anything else as it is. Components can take the result as their dict
    parameters."""
    if isinstance(value, enum.IntEnum):
        return int(value)
    if isinstance(value, dict):
        return {k: to_dict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_dict(v) for v in value]
    return value


# -- Trainer ----------------------------------------------------------------------------
class TrainArgs(Message):
    """Trainer ``train_args``: ``splits`` to train on (``["train"]``), ``num_steps``."""
    FIELDS = {"splits": [str], "num_steps": 0}


class EvalArgs(Message):
    """Trainer ``eval_args``: ``splits`` to evaluate on (``["eval"]``), ``num_steps``."""
    FIELDS = {"splits": [str], "num_steps": 0}


# -- Tuner --------------------------------------------------------------------------------
class TuneArgs(Message):
    """Tuner ``tune_args``: ``num_parallel_trials``, trials run at once in worker processes of
    this machine (TFX's in-process Tuner refuses it; unset runs them one after another)."""
    FIELDS = {"num_parallel_trials": 0}


# -- ExampleGen ---------------------------------------------------------------------------
class PayloadFormat(enum.IntEnum):
    """What ExampleGen writes into each split (TFX's enum values)."""
    FORMAT_UNSPECIFIED = 0
    FORMAT_TF_EXAMPLE = 6
    FORMAT_TF_SEQUENCE_EXAMPLE = 7
    FORMAT_PROTO = 11
    FORMAT_PARQUET = 15

    @classmethod
    def Name(cls, number: int) -> str:
        return cls(number).name

    @classmethod
    def Value(cls, name: str) -> int:
        return int(cls[name])


class Input(Message):
    """ExampleGen ``input_config``: data already split into files by pattern."""

    class Split(Message):
        FIELDS = {"name": "", "pattern": ""}

    FIELDS = {"splits": [Split]}


class SplitConfig(Message):
    """The hash split of ExampleGen's ``output_config``."""

    class Split(Message):
        FIELDS = {"name": "", "hash_buckets": 0}

    FIELDS = {"splits": [Split], "partition_feature_name": ""}


class Output(Message):
    """ExampleGen ``output_config``."""
    FIELDS = {"split_config": SplitConfig}


class CustomConfig(Message):
    """ExampleGen ``custom_config`` (accepted by no toolkit ExampleGen: recorded only)."""
    FIELDS = {"custom_config": {}}


class StaticRange(Message):
    """Spans ``[start_span_number, end_span_number]``."""
    FIELDS = {"start_span_number": 0, "end_span_number": 0}


class RollingRange(Message):
    """The latest ``num_spans`` spans (from ``start_span_number`` on)."""
    FIELDS = {"start_span_number": 0, "num_spans": 0}


class RangeConfig(Message):
    """A range of spans: ``static_range`` or ``rolling_range``."""
    FIELDS = {"static_range": StaticRange, "rolling_range": RollingRange}


# -- Transform ----------------------------------------------------------------------------
class SplitsConfig(Message):
    """Transform ``splits_config``: splits to ``analyze`` and to ``transform``."""
    FIELDS = {"analyze": [str], "transform": [str]}


# -- Pusher -------------------------------------------------------------------------------
class Versioning(enum.IntEnum):
    """How pushed versions are numbered (the Pusher always numbers them increasingly)."""
    AUTO = 0
    UNIX_TIMESTAMP = 1


class PushDestination(Message):
    """Pusher ``push_destination``:
    ``PushDestination(filesystem=PushDestination.Filesystem(base_directory=...))``."""

    class Filesystem(Message):
        FIELDS = {"base_directory": "", "versioning": Versioning}

    FIELDS = {"filesystem": Filesystem}


# -- InfraValidator -------------------------------------------------------------------------
class TensorFlowServing(Message):
    FIELDS = {"image_name": "", "tags": [str], "digests": [str]}


class LocalDockerConfig(Message):
    FIELDS = {"client_base_url": "", "client_api_version": "", "client_timeout_seconds": 0,
              "host_ip_address": ""}


class KubernetesConfig(Message):
    FIELDS = {"service_account_name": "", "active_deadline_seconds": 0}


class ServingSpec(Message):
    """InfraValidator ``serving_spec`` (recorded: the model is served by a local process)."""
    FIELDS = {"tensorflow_serving": TensorFlowServing, "local_docker": LocalDockerConfig,
              "kubernetes": KubernetesConfig, "model_name": ""}


class TensorFlowServingRequestSpec(Message):
    FIELDS = {"tag_set": [str], "signature_names": [str]}


class RequestSpec(Message):
    """InfraValidator ``request_spec``: requests built from ``split_name``'s examples."""
    FIELDS = {"tensorflow_serving": TensorFlowServingRequestSpec, "split_name": "",
              "num_examples": 0, "make_warmup": False}


class ValidationSpec(Message):
    """InfraValidator ``validation_spec``."""
    FIELDS = {"max_loading_time_seconds": 0, "num_tries": 0}


# -- BulkInferrer ---------------------------------------------------------------------------
class DataSpec(Message):
    """BulkInferrer ``data_spec``: ``example_splits`` to predict on."""
    FIELDS = {"example_splits": [str]}


class ModelSpec(Message):
    """BulkInferrer ``model_spec``: ``model_signature_name`` (the first is used), ``tag``."""
    FIELDS = {"model_signature_name": [str], "tag": [str]}


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    from toolkit.v1._names import missing

    missing(__name__, name, [n for n in __all__ if n != "to_dict"], NOT_PROVIDED.get(name))
