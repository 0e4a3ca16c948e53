"""SchemaGen infers a schema from statistics; ImportSchemaGen brings in a curated one."""
from __future__ import annotations

import os

from toolkit import storage
from toolkit.artifacts import ExampleStatistics, Schema
from toolkit.base_component import BaseComponent, InputSpec, ExecutionParameter
from toolkit.errors import InputDataError


class SchemaGen(BaseComponent):
    """Infers ``schema.pbtxt`` with TFDV from every split's statistics (all splits merged).

    Args:
        statistics: an ExampleStatistics channel.
        infer_feature_shape: record fixed shapes for features present in every example.
        exclude_splits: split names not to learn from.
    """

    INPUTS = {"statistics": InputSpec(ExampleStatistics)}
    OUTPUTS = {"schema": Schema}
    PARAMETERS = {"infer_feature_shape": ExecutionParameter(bool, default=True),
                  "exclude_splits": ExecutionParameter(list, default=[])}

    def __init__(self, statistics, infer_feature_shape: bool = True,
                 exclude_splits: list[str] | None = None):
        super().__init__(statistics=statistics, infer_feature_shape=infer_feature_shape,
                         exclude_splits=list(exclude_splits or []))

    def Do(self, input_dict, output_dict, exec_properties, ctx):
        import tensorflow_data_validation as tfdv

        statistics: ExampleStatistics = input_dict["statistics"][0]
        splits = [s for s in statistics.split_names if s not in exec_properties["exclude_splits"]]
        if not splits:
            raise InputDataError("no statistics splits left to infer a schema from")
        schema = None
        for split in splits:
            stats = statistics.load(split)
            if schema is None:
                schema = tfdv.infer_schema(stats, infer_feature_shape=exec_properties[
                    "infer_feature_shape"])
            else:
                schema = tfdv.update_schema(schema, stats)
        tfdv.write_schema_text(schema, storage.local_path(output_dict["schema"][0].schema_path))
        ctx.log(f"inferred {len(schema.feature)} features from {', '.join(splits)}")


class ImportSchemaGen(BaseComponent):
    """Imports a curated ``schema.pbtxt`` (a text Schema proto) as a Schema artifact."""

    OUTPUTS = {"schema": Schema}
    PARAMETERS = {"schema_file": ExecutionParameter(str, required=True, fingerprint="file")}

    def __init__(self, schema_file: str):
        super().__init__(schema_file=os.fspath(schema_file))

    def Do(self, input_dict, output_dict, exec_properties, ctx):
        from google.protobuf import text_format
        from tensorflow_metadata.proto.v0 import schema_pb2

        path = exec_properties["schema_file"]
        if not storage.is_file(path):
            raise InputDataError(f"schema_file {path} does not exist")
        try:
            text_format.Parse(storage.read_text(path), schema_pb2.Schema())
        except (text_format.ParseError, UnicodeDecodeError) as exc:
            raise InputDataError(f"{path}: not a text Schema proto: {exc}") from None
        storage.copy(path, output_dict["schema"][0].schema_path)
