"""BulkInferrer: batch predictions written beside the input features.

The output is a table per split (``Split-<name>/data.parquet``): every input
column, then the predictions, so it can go straight to ``toolkit.evaluate`` or
pandas. The model is called on batches of ``BATCH_ROWS`` rows from the start of each
piece of the input (a Parquet row group, a TFRecord file), in process and on Beam alike. Rows go through the model's serving signature (raw serialized examples
for a model exported with its transform graph), as a server would see them.

With ``beam_pipeline_args`` (the context's, or ``context.run(..., beam_pipeline_args=...)``)
inference runs in Beam's workers: each loads the model once (``DoFn.setup``) and
predicts the pieces it is given, which it reads itself; each piece's rows and predictions
go to a part file named by the piece's place in the input, and the parts are renamed in
that order at the end, so the splits hold the in-process rows, predictions and order
(``Split-<name>/data-00000-of-0000N.parquet``).
"""
from __future__ import annotations

import json

from toolkit import storage
from toolkit.artifacts import Examples, InferenceResult, Model, ModelBlessing
from toolkit.base_component import (
    BaseComponent,
    ExecutionParameter,
    ExecutorContext,
    InputSpec,
)
from toolkit.components._io import (
    FORMAT_PARQUET,
    FORMAT_TF_EXAMPLE,
    PART_PREFIX,
    PartWriter,
    check_splits,
    decode_examples,
    payload_format,
    publish_parts,
    read_records,
    read_split,
    read_tfrecord_table,
    recorded_column_types,
    restore_column_types,
    scalar_columns,
    split_files,
    write_split,
)
from toolkit.components._model_io import (
    BATCH_ROWS,
    blessing_verdict,
    load_signature,
    predict,
)


class BulkInferrer(BaseComponent):
    """Runs a model over Examples and writes ``prediction`` (and ``scores``) columns.

    Args:
        examples: Examples to predict on (labelled or not).
        model: the Model.
        model_blessing: if given and the model is not blessed, nothing is inferred
            (as in TFX); in production mode the run stops (``gate``).
        data_spec: ``{"example_splits": ["eval"]}``; every split by default.
        model_spec: ``{"model_signature_name": ["serving_default"]}``.

    A model output of one value per example becomes the column ``prediction``;
    several values per example (class scores) become ``scores`` (the full list) and
    ``prediction`` (the index of the highest), which is then a class index, not a
    score to compute binary metrics on. Models with several outputs get
    ``prediction_<output>`` and ``scores_<output>`` columns instead.
    """

    INPUTS = {"examples": InputSpec(Examples), "model": InputSpec(Model),
              "model_blessing": InputSpec(ModelBlessing, optional=True)}
    OUTPUTS = {"inference_result": InferenceResult}
    PARAMETERS = {"data_spec": ExecutionParameter(dict), "model_spec": ExecutionParameter(dict)}

    def __init__(self, examples, model, model_blessing=None, data_spec: dict | None = None,
                 model_spec: dict | None = None):
        super().__init__(examples=examples, model=model, model_blessing=model_blessing,
                         data_spec=data_spec, model_spec=model_spec)

    def Do(self, input_dict, output_dict, exec_properties, ctx: ExecutorContext) -> None:
        examples: Examples = input_dict["examples"][0]
        model: Model = input_dict["model"][0]
        result: InferenceResult = output_dict["inference_result"][0]
        reason = blessing_verdict(model, {"model_blessing": input_dict.get("model_blessing")
                                          or []})
        if reason:
            result.split_names = []
            result.properties.update(inferred=0, reason=f"no inference: {reason}")
            ctx.log(f"no inference: {reason}")
            return
        splits = list((exec_properties.get("data_spec") or {}).get("example_splits")
                      or examples.split_names)
        check_splits(examples, splits, "data_spec names split")
        names = (exec_properties.get("model_spec") or {}).get("model_signature_name") or [
            "serving_default"]
        signature_name = names[0] if isinstance(names, (list, tuple)) else names
        if ctx.beam_pipeline_args:
            counts = _infer_on_beam(examples, model, result, splits, signature_name, ctx)
            result.split_names = splits
            result.properties.update(inferred=1, signature=signature_name,
                                     row_counts=json.dumps(counts))
            ctx.log("predicted " + ", ".join(f"{s}: {n:,} rows" for s, n in counts.items())
                    + f" with {signature_name} on Beam")
            return
        import pyarrow as pa

        work = _Infer.of(examples, model, signature_name, {})
        work.setup()
        counts = {}
        for split in splits:
            pieces = [t for piece in _pieces(examples, split, work.column_types)
                      for t in work.tables(piece)]
            table = pa.concat_tables(pieces) if pieces else read_split(examples, split)
            write_split(result, split, table)
            counts[split] = table.num_rows
        result.split_names = splits
        result.properties.update(inferred=1, signature=signature_name,
                                 row_counts=json.dumps(counts))
        ctx.log("predicted " + ", ".join(f"{s}: {n:,} rows" for s, n in counts.items())
                + f" with {signature_name}")

    def gate(self, outputs, exec_properties) -> str | None:
        result = outputs["inference_result"][0]
        if int(result.properties.get("inferred", 1) or 0) == 0:
            return result.properties.get("reason") or "no inference"
        return None


def _unique(name: str, existing: list[str]) -> str:
    candidate, index = name, 1
    while candidate in existing:
        candidate = f"{name}_{index}"
        index += 1
    return candidate


# -- pieces of the input ---------------------------------------------------------------------
# Both paths call the model on the same batches: BATCH_ROWS rows at a time from the start
# of each piece of the input (a Parquet row group, a TFRecord file), so that a model whose
# kernels depend on the batch size still gives the same floats in process and on Beam.

#: rows read at once (a multiple of the batch the model is called with)
_READ_ROWS = 8 * BATCH_ROWS


def _pieces(examples: Examples, split: str, column_types) -> list[tuple]:
    """``(split, file index, row group, path)`` of each piece of a split, in input order. A
    TFRecord payload without recorded column types is one piece (typed as a whole)."""
    import pyarrow.parquet as pq

    files = split_files(examples, split)
    if payload_format(examples) == FORMAT_TF_EXAMPLE:
        if column_types is None:
            return [(split, 0, -1, tuple(files))]
        return [(split, fi, 0, path) for fi, path in enumerate(files)]
    return [(split, fi, rg, path) for fi, path in enumerate(f for f in files
                                                             if f.endswith(".parquet"))
            for rg in range(pq.ParquetFile(storage.local_path(path)).metadata.num_row_groups)]


def _infer_on_beam(examples: Examples, model: Model, result: InferenceResult,
                   splits: list[str], signature_name: str, ctx: ExecutorContext
                   ) -> dict[str, int]:
    import apache_beam as beam
    import pyarrow.parquet as pq

    from toolkit.components._beam import beam_pipeline

    folders = {split: result.split_uri(split) for split in splits}
    work = _Infer.of(examples, model, signature_name, folders)
    pieces = [p for split in splits for p in _pieces(examples, split, work.column_types)]
    ctx.log(f"inferring {', '.join(splits)} on Beam ({' '.join(ctx.beam_pipeline_args)}) "
            f"with Model #{model.id}: {len(pieces)} piece{'s' if len(pieces) != 1 else ''}")
    with beam_pipeline(ctx.beam_pipeline_args,
                       f"{ctx.component_id} inferring with Model #{model.id}") as pipeline:
        _ = (pipeline
             | "Pieces" >> beam.Create(pieces)
             | "Spread" >> beam.Reshuffle()
             | "Infer" >> beam.ParDo(_dofn(work)))
    counts = {}
    for split in splits:
        schema = None
        folder = folders[split]
        if not (storage.is_dir(folder)
                and any(name.startswith(PART_PREFIX) for name in storage.listdir(folder))):
            schema = read_split(examples, split).schema  # no rows: the input's columns only
        files = publish_parts(result, split, schema)
        counts[split] = sum(pq.ParquetFile(storage.local_path(f)).metadata.num_rows for f in files)
    return counts


class _Infer:
    """The model loaded once by :meth:`setup` (in a Beam worker: once per worker), then
    each piece of the input read and predicted in batches."""

    def __init__(self, model: Model, signature_name: str, folders: dict[str, str],
                 column_types, tfrecord: bool):
        self.model, self.signature_name = model, signature_name
        self.folders, self.column_types, self.tfrecord = folders, column_types, tfrecord
        self._loaded = self._signature = None

    @classmethod
    def of(cls, examples: Examples, model: Model, signature_name: str,
           folders: dict[str, str]) -> _Infer:
        tfrecord = payload_format(examples) == FORMAT_TF_EXAMPLE
        return cls(model, signature_name, folders,
                   recorded_column_types(examples) if tfrecord else None, tfrecord)

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k not in ("_loaded", "_signature")}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._loaded = self._signature = None

    def setup(self) -> None:
        self._loaded, self._signature = load_signature(self.model, self.signature_name)

    def tables(self, piece):
        """The piece's rows with the prediction columns, a few batches at a time."""
        import tensorflow as tf

        if self._signature is None:
            self.setup()
        for table in _aligned(self._read(piece)):
            predictions = predict(tf, self._signature, table)
            for name, column in predictions.items():
                table = table.append_column(_unique(name, table.column_names), column)
            yield table

    def write(self, piece) -> tuple[str, int]:
        """Predict a piece into its part file; (split, rows)."""
        split, fi, rg, _ = piece
        writer = PartWriter(self.folders[split], f"{fi:06d}-{rg:06d}", FORMAT_PARQUET)
        for table in self.tables(piece):
            writer.write_table(table)
        return split, writer.close()

    def _read(self, piece):
        import pyarrow as pa

        _, _, row_group, path = piece
        if not self.tfrecord:
            import pyarrow.parquet as pq

            for batch in pq.ParquetFile(storage.local_path(path)).iter_batches(batch_size=_READ_ROWS,
                                                           row_groups=[row_group]):
                yield pa.Table.from_batches([batch])
            return
        if isinstance(path, tuple):  # unrecorded column types: the files typed as a whole
            yield read_tfrecord_table(list(path))
            return
        records: list[bytes] = []
        for record in read_records(path):
            records.append(record)
            if len(records) == _READ_ROWS:
                yield self._decode(records, path)
                records = []
        if records:
            yield self._decode(records, path)

    def _decode(self, records: list[bytes], path: str):
        import pyarrow as pa

        table = scalar_columns(pa.Table.from_batches([decode_examples(records, path)]))
        return restore_column_types(table, self.column_types)


def _aligned(tables):
    """The rows of ``tables`` again, in tables of a multiple of BATCH_ROWS rows (but the
    last), so the model's batches start every BATCH_ROWS rows from the piece's start."""
    import pyarrow as pa

    held = None
    for table in tables:
        held = table if held is None else pa.concat_tables([held, table])
        cut = held.num_rows - held.num_rows % BATCH_ROWS
        if cut:
            yield held.slice(0, cut)
            held = held.slice(cut)
    if held is not None and held.num_rows:
        yield held


def _dofn(work: _Infer):
    import apache_beam as beam

    class Infer(beam.DoFn):
        """The model loaded once per worker (``setup``), then called on each piece."""

        def __init__(self, infer: _Infer):
            self._infer = infer

        def setup(self):
            self._infer.setup()

        def process(self, piece):
            yield self._infer.write(piece)

    return Infer(work)
