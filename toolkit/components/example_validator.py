"""ExampleValidator: TFDV anomalies per split, with drift and skew when baselines are given."""
from __future__ import annotations

from toolkit import storage
from toolkit._text import shorten, squeeze
from toolkit.artifacts import ExampleAnomalies, ExampleStatistics, Schema
from toolkit.base_component import BaseComponent, InputSpec, ExecutionParameter


class ExampleValidator(BaseComponent):
    """Validates each split's statistics against the schema.

    Drift and skew comparators declared in the schema are honoured when a
    ``baseline_statistics`` (drift: the previous span) or ``serving_statistics``
    (skew: serving data) channel is given; each split is compared with the
    baseline's split of the same name, or its first split.

    In production mode anomalies stop the pipeline unless their type is listed in
    ``allowed_anomalies`` (anomaly type names such as ``"ENUM_TYPE_UNEXPECTED_STRING_VALUES"``,
    or ``"*"`` for all). That includes the dataset-level anomalies of a whole split,
    such as ``DATASET_LOW_NUM_EXAMPLES`` (fewer examples than the schema's
    ``dataset_constraints.min_examples_count``) and ``COMPARATOR_LOW_NUM_EXAMPLES`` /
    ``COMPARATOR_HIGH_NUM_EXAMPLES`` (its ``num_examples_drift_comparator`` against
    ``baseline_statistics``).
    """

    INPUTS = {"statistics": InputSpec(ExampleStatistics), "schema": InputSpec(Schema),
              "baseline_statistics": InputSpec(ExampleStatistics, optional=True),
              "serving_statistics": InputSpec(ExampleStatistics, optional=True)}
    OUTPUTS = {"anomalies": ExampleAnomalies}
    PARAMETERS = {"exclude_splits": ExecutionParameter(list, default=[]),
                  "allowed_anomalies": ExecutionParameter(list, default=[])}

    def __init__(self, statistics, schema, baseline_statistics=None, serving_statistics=None,
                 exclude_splits: list[str] | None = None,
                 allowed_anomalies: list[str] | None = None):
        super().__init__(statistics=statistics, schema=schema,
                         baseline_statistics=baseline_statistics,
                         serving_statistics=serving_statistics,
                         exclude_splits=list(exclude_splits or []),
                         allowed_anomalies=list(allowed_anomalies or []))

    def Do(self, input_dict, output_dict, exec_properties, ctx):
        import tensorflow_data_validation as tfdv

        statistics: ExampleStatistics = input_dict["statistics"][0]
        schema = input_dict["schema"][0].load()
        anomalies: ExampleAnomalies = output_dict["anomalies"][0]
        baseline = (input_dict.get("baseline_statistics") or [None])[0]
        serving = (input_dict.get("serving_statistics") or [None])[0]
        splits = [s for s in statistics.split_names if s not in exec_properties["exclude_splits"]]
        total = 0
        for split in splits:
            result = tfdv.validate_statistics(
                statistics.load(split), schema,
                previous_statistics=_matching(baseline, split),
                serving_statistics=_matching(serving, split))
            storage.makedirs(anomalies.split_uri(split))
            storage.write_bytes(anomalies.anomalies_path(split), result.SerializeToString())
            count = len(result.anomaly_info) + (1 if result.HasField("dataset_anomaly_info") else 0)
            total += count
            ctx.log(f"split {split}: {count} anomal{'y' if count == 1 else 'ies'}")
        anomalies.split_names = splits
        anomalies.properties["anomaly_count"] = total

    def gate(self, outputs, exec_properties) -> str | None:
        """A one-line reason to stop a production run, or None.

        Dataset-level anomalies (too few examples for the schema's
        ``dataset_constraints``, or a change in the number of examples against the
        baseline) stop the run like a feature's do: a split that lost most of its rows
        is as wrong as a column with a new value, and ``allowed_anomalies`` waives
        either by its type name.
        """
        allowed = set(exec_properties.get("allowed_anomalies") or [])
        if "*" in allowed:
            return None
        found = []
        artifact: ExampleAnomalies = outputs["anomalies"][0]
        for split in artifact.split_names:
            result = artifact.load(split)
            for feature, info in result.anomaly_info.items():
                kinds = _type_names(info)
                if not set(kinds) <= allowed:
                    found.append(f"{split}/{feature} ({', '.join(kinds)})")
            if result.HasField("dataset_anomaly_info"):
                info = result.dataset_anomaly_info
                kinds = _type_names(info)
                if not set(kinds) <= allowed:
                    found.append(f"{split} split ({', '.join(kinds)}: "
                                 f"{shorten(squeeze(info.description), 200)})")
        if not found:
            return None
        more = f" and {len(found) - 5} more" if len(found) > 5 else ""
        return f"anomalies found: {'; '.join(found[:5])}{more}"


def _type_names(info) -> list[str]:
    """The TFDV anomaly type names of an AnomalyInfo's reasons, as ``allowed_anomalies``
    lists them."""
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    return [anomalies_pb2.AnomalyInfo.Type.Name(r.type) for r in info.reason]

def _matching(artifact: ExampleStatistics | None, split: str):
    if artifact is None:
        return None
    names = artifact.split_names
    return artifact.load(split if split in names else names[0])
