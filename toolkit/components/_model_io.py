"""Shared by the model components: Arrow to tf.Example, SavedModel locations, blessings,
and batch inference through a serving signature (BulkInferrer and Evaluator both predict)."""
from __future__ import annotations

from typing import Any, Iterable

from toolkit import storage
from toolkit.artifacts import Artifact, InfraBlessing, Model, ModelBlessing
from toolkit.errors import InputDataError, ToolkitError

#: TFX's folder for the serving SavedModel inside a Model artifact
SERVING_DIR = "Format-Serving"
#: rows per call of a serving signature: large enough to amortise the call, small enough
#: that one batch of serialized examples stays a few megabytes
BATCH_ROWS = 2048


def serving_model_path(model: Model) -> str:
    """The SavedModel folder of a Model artifact (TFX's ``Format-Serving`` layout)."""
    path = storage.join(model.uri, SERVING_DIR)
    if storage.is_dir(path):
        return path
    if storage.is_file(storage.join(model.uri, "saved_model.pb")):
        return model.uri
    raise ToolkitError(f"Model #{model.id} at {model.uri} holds no SavedModel "
                       f"(expected {SERVING_DIR}/saved_model.pb)")


def load_saved_model(model: Model):
    """The serving SavedModel of a Model artifact, loaded (keep it while calling its
    signatures: it owns the variables)."""
    import tensorflow as tf

    from toolkit._quiet import quiet_tensorflow

    quiet_tensorflow()
    return tf.saved_model.load(storage.local_path(serving_model_path(model)))


def signature_of(model: Model, loaded, name: str, what: str | None = None):
    """Signature ``name`` of a loaded SavedModel; a missing one raises one line,
    "Model #id has no <what> (it has a, b)", ``what`` being ``signature 'name'`` unless
    given."""
    if name not in loaded.signatures:
        raise ToolkitError(f"Model #{model.id} has no {what or f'signature {name!r}'} "
                           f"(it has {', '.join(loaded.signatures) or 'no signatures'})")
    return loaded.signatures[name]


def load_signature(model: Model, name: str, what: str | None = None):
    """``(loaded SavedModel, its signature name)`` of a Model artifact; keep the loaded
    object while calling the signature (it owns the variables).

    A missing signature raises "Model #id has no <what> (it has ...)", ``what`` being
    ``signature 'name'`` unless given.
    """
    loaded = load_saved_model(model)
    return loaded, signature_of(model, loaded, name, what)


def serialized_input(tf, specs, columns) -> str | None:
    """The input name when a signature takes serialized tf.Examples (its one input is a
    string that is not a feature column); None when it takes one tensor per feature."""
    if len(specs) != 1:
        return None
    ((key, spec),) = specs.items()
    return key if spec.dtype == tf.string and key not in columns else None


def has_saved_model(path: str) -> bool:
    return any(storage.is_file(storage.join(path, name))
               for name in ("saved_model.pb", "saved_model.pbtxt"))


def arrow_types(schema) -> dict[str, Any]:
    """Feature name -> the Arrow value type tf.Example parsing yields for it."""
    import pyarrow as pa
    from tensorflow_metadata.proto.v0 import schema_pb2

    kinds = {schema_pb2.INT: pa.int64(), schema_pb2.FLOAT: pa.float32(),
             schema_pb2.BYTES: pa.large_binary()}
    return {f.name: kinds[f.type] for f in schema.feature if f.type in kinds}


def to_list_batch(data, types: dict[str, Any] | None = None, columns: Iterable[str] | None = None):
    """A RecordBatch of list columns, the form TFXIO and tf.Example use.

    ``data`` is an Arrow Table or RecordBatch with scalar (or list) columns; a null
    becomes an empty list (a missing feature). ``types`` (from :func:`arrow_types`)
    casts values to what serving will parse — FLOAT as float32, strings as bytes —
    so a transform computed here sees exactly what the serving signature sees.
    """
    import numpy as np
    import pyarrow as pa

    names = list(columns) if columns is not None else list(data.schema.names)
    arrays = []
    for name in names:
        column = data.column(name)
        if isinstance(column, pa.ChunkedArray):
            column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
        if _is_list(column.type):
            values = column.flatten()
            offsets = np.asarray(column.value_lengths().fill_null(0), dtype=np.int64)
            offsets = np.concatenate([[0], np.cumsum(offsets)])
        else:
            valid = np.asarray(column.is_valid())
            values = column.filter(pa.array(valid)) if not valid.all() else column
            offsets = np.concatenate([[0], np.cumsum(valid.astype(np.int64))])
        values = _cast_values(values, (types or {}).get(name), name)
        arrays.append(pa.LargeListArray.from_arrays(pa.array(offsets, pa.int64()), values))
    return pa.RecordBatch.from_arrays(arrays, names)


def _is_list(arrow_type) -> bool:
    import pyarrow as pa

    return pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type)


def _cast_values(values, target, name: str):
    import pyarrow as pa

    if target is None:
        if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
            return values.cast(pa.large_binary())
        if pa.types.is_floating(values.type):
            return values.cast(pa.float32())
        if pa.types.is_integer(values.type) or pa.types.is_boolean(values.type):
            return values.cast(pa.int64())
        return values
    if values.type == target:
        return values
    try:
        if pa.types.is_large_binary(target) and not (
                pa.types.is_string(values.type) or pa.types.is_large_string(values.type)
                or pa.types.is_binary(values.type)):
            values = values.cast(pa.string())
        return values.cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise ToolkitError(f"column '{name}' holds {values.type} values that do not convert "
                           f"to the schema's type ({target}): {str(exc).splitlines()[0]}") from None


def serialize_examples(data, schema=None, exclude: Iterable[str] = ()) -> list[bytes]:
    """Rows of an Arrow table as serialized ``tf.Example`` protos (missing values omitted)."""
    from tfx_bsl.coders import example_coder

    skip = set(exclude)
    columns = [n for n in data.schema.names if n not in skip]
    types = arrow_types(schema) if schema is not None else None
    batch = to_list_batch(data, types, columns)
    return example_coder.RecordBatchToExamplesEncoder().encode(batch)


def blessing_verdict(model: Model, blessings: dict[str, list[Artifact]]) -> str | None:
    """None when every blessing given blesses ``model``; otherwise the reason, one line."""
    for key, arts in blessings.items():
        for blessing in arts:
            name = "model_blessing" if isinstance(blessing, ModelBlessing) else (
                "infra_blessing" if isinstance(blessing, InfraBlessing) else key)
            if int(blessing.properties.get("blessed", 0) or 0) != 1:
                reason = blessing.properties.get("reason")
                return (f"{name} #{blessing.id} from {blessing.producer or 'an import'} does not "
                        f"bless the model" + (f": {reason}" if reason else ""))
            current = blessing.properties.get("current_model_id")
            if current not in (None, "", 0) and model.id is not None and int(current) != model.id:
                return (f"{name} #{blessing.id} blesses Model #{current}, not this Model "
                        f"#{model.id}")
    return None


def feature_tensor(tf, spec, values: list):
    """One raw feature as the tensor a signature's ``spec`` takes; missing values become
    empty strings, NaN or 0 (what a serving client sends for an absent value)."""
    if spec.dtype == tf.string:
        values = [b"" if v is None else str(v).encode() for v in values]
    elif spec.dtype.is_floating:
        values = [float("nan") if v is None else v for v in values]
    else:
        values = [0 if v is None else v for v in values]
    tensor = tf.constant(values, dtype=spec.dtype)
    return tf.reshape(tensor, [-1, 1]) if spec.shape.rank == 2 else tensor


def predict(tf, signature, table) -> dict[str, Any]:
    """Prediction columns (Arrow arrays) for every row of ``table``.

    A model output of one value per example becomes ``prediction``; several values
    per example become ``scores`` (the full list) and ``prediction`` (the index of the
    highest); several outputs get ``prediction_<output>``/``scores_<output>``.
    """
    return _columns(predict_outputs(tf, signature, table))


def predict_outputs(tf, signature, table) -> dict[str, Any]:
    """Each output of ``signature`` on every row of ``table``, as a numpy array with one
    row per example, its shape as the model returned it."""
    import numpy as np

    specs = signature.structured_input_signature[1]
    key = serialized_input(tf, specs, table.column_names)
    parts: dict[str, list] = {}
    for start in range(0, table.num_rows, BATCH_ROWS):
        rows = table.slice(start, BATCH_ROWS)
        if key is not None:
            inputs = {key: tf.constant(serialize_examples(rows))}
        else:
            inputs = _feature_inputs(tf, specs, rows)
        for name, value in signature(**inputs).items():
            parts.setdefault(name, []).append(np.asarray(value))
    return {k: np.concatenate(v) for k, v in parts.items()}


def output_shape(signature, name: str, value) -> str:
    """The shape of output ``name`` as the signature declares it (``[None, 3]``), or as
    returned when it declares none."""
    spec = (signature.structured_outputs or {}).get(name)
    dims = spec.shape.as_list() if spec is not None and spec.shape.rank is not None else None
    return "[" + ", ".join(str(d) for d in (dims or value.shape)) + "]"


def _feature_inputs(tf, specs, rows) -> dict[str, Any]:
    inputs = {}
    for key, spec in specs.items():
        if key not in rows.column_names:
            raise InputDataError(f"the model's signature takes {key!r}, which the examples lack")
        inputs[key] = feature_tensor(tf, spec, rows.column(key).to_pylist())
    return inputs


def _columns(arrays: dict[str, Any]) -> dict[str, Any]:
    import numpy as np
    import pyarrow as pa

    single = len(arrays) == 1
    out = {}
    for name, value in arrays.items():
        prefix = "prediction" if single else f"prediction_{name}"
        flat = value.reshape(value.shape[0], -1) if value.ndim > 1 else value.reshape(-1, 1)
        if flat.shape[1] == 1:
            out[prefix] = pa.array(flat[:, 0])
        else:
            out["scores" if single else f"scores_{name}"] = pa.array(list(flat))
            out[prefix] = pa.array(np.argmax(flat, axis=1))
    return out
