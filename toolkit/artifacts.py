"""Artifact types, named and laid out on disk as TFX does so TFX/TFDV tools read them.

An artifact is a folder (``uri``) plus a few typed properties. Types and file
names follow TFX: ``Examples`` with ``Split-<name>/`` folders,
``ExampleStatistics`` with ``Split-<name>/FeatureStats.pb``, ``Schema`` with
``schema.pbtxt``, ``ExampleAnomalies`` with ``Split-<name>/SchemaDiff.pb``.
"""
from __future__ import annotations

import json
import os
from typing import Any, ClassVar

from toolkit import storage
from toolkit.errors import ToolkitError

STATS_FILE = "FeatureStats.pb"
ANOMALIES_FILE = "SchemaDiff.pb"
SCHEMA_FILE = "schema.pbtxt"
#: TFX's Tuner: the best trial's ``keras_tuner.HyperParameters.get_config()`` as JSON
BEST_HYPERPARAMETERS_FILE = "best_hyperparameters.txt"
#: TFX's Tuner: one record per completed trial, best first (``trial_id``, ``score``, values)
TUNER_RESULTS_FILE = "tuner_results.json"
#: the toolkit's Tuner beside TFX's file: every trial (failed ones too), with its status,
#: duration and worker, for the trials view
TUNER_TRIALS_FILE = "trials.json"


def read_proto(path: str, message: Any, noun: str, form: str, *, text: bool = False) -> Any:
    """Parse the file at ``path`` into ``message`` (binary, or text format) and return it.

    A file that cannot be read or parsed raises one ToolkitError naming it:
    "cannot read <noun> <path>: ..." or "<path> is not <form>: ...".
    """
    try:
        if text:
            from google.protobuf import text_format

            return text_format.Parse(storage.read_text(path), message)
        message.ParseFromString(storage.read_bytes(path))
        return message
    except OSError as exc:
        raise ToolkitError(f"cannot read {noun} {path!r}: {exc.strerror}") from exc
    except Exception as exc:  # protobuf's DecodeError / ParseError, undecodable text
        raise ToolkitError(f"{path!r} is not {form}: {exc}") from exc


def files_by_split(folder: str, name: str) -> dict[str, str]:
    """``Split-<split>/<name>`` files below an artifact folder, keyed by split, in name order."""
    try:
        splits = [n for n in storage.listdir(folder) if n.startswith("Split-")]
    except OSError:
        splits = []
    found = sorted(p for p in (storage.join(folder, n, name) for n in splits)
                   if storage.exists(p))
    return {os.path.basename(os.path.dirname(p))[len("Split-"):]: p for p in found}


def read_statistics(path: str):
    """A binary DatasetFeatureStatisticsList file (``FeatureStats.pb``)."""
    from tensorflow_metadata.proto.v0 import statistics_pb2

    return read_proto(path, statistics_pb2.DatasetFeatureStatisticsList(), "statistics file",
                      "a binary DatasetFeatureStatisticsList (FeatureStats.pb)")


def read_anomalies(path: str):
    """A binary Anomalies file (``SchemaDiff.pb``)."""
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    return read_proto(path, anomalies_pb2.Anomalies(), "anomalies",
                      "a binary Anomalies proto (SchemaDiff.pb)")


def read_schema(path: str):
    """A text-format Schema file (``schema.pbtxt``)."""
    from tensorflow_metadata.proto.v0 import schema_pb2

    return read_proto(path, schema_pb2.Schema(), "schema", "a text-format Schema", text=True)


class Artifact:
    """One output of one execution: a folder plus typed properties."""

    TYPE_NAME: ClassVar[str] = "Artifact"
    #: property name -> "string" | "int" | "double"
    PROPERTIES: ClassVar[dict[str, str]] = {}

    def __init__(self, uri: str = "", properties: dict[str, Any] | None = None,
                 id: int | None = None, producer: str | None = None):
        self.uri = uri
        self.id = id
        self.producer = producer
        self.properties: dict[str, Any] = dict(properties or {})

    # -- TFX-style accessors -------------------------------------------------
    @property
    def type_name(self) -> str:
        return self.TYPE_NAME

    @property
    def split_names(self) -> list[str]:
        raw = self.properties.get("split_names")
        if not raw:
            return []
        return list(json.loads(raw)) if isinstance(raw, str) else list(raw)

    @split_names.setter
    def split_names(self, names: list[str]) -> None:
        self.properties["split_names"] = json.dumps(list(names))

    def split_uri(self, split: str) -> str:
        return storage.join(self.uri, f"Split-{split}")

    def __repr__(self) -> str:
        return f"{self.TYPE_NAME}(id={self.id}, uri={self.uri!r})"


class Examples(Artifact):
    TYPE_NAME = "Examples"
    PROPERTIES = {"split_names": "string", "payload_format": "string", "span": "int",
                  "version": "int", "row_counts": "string"}

    @property
    def payload_format(self) -> str:
        return self.properties.get("payload_format", "FORMAT_PARQUET")

    def split_files(self, split: str) -> list[str]:
        folder = self.split_uri(split)
        return sorted(storage.join(folder, f) for f in storage.listdir(folder)
                      if not f.startswith("."))


class ExampleStatistics(Artifact):
    TYPE_NAME = "ExampleStatistics"
    PROPERTIES = {"split_names": "string", "span": "int"}

    def stats_path(self, split: str) -> str:
        return storage.join(self.split_uri(split), STATS_FILE)

    def load(self, split: str):
        """The split's DatasetFeatureStatisticsList proto."""
        return read_statistics(self.stats_path(split))


class Schema(Artifact):
    TYPE_NAME = "Schema"

    @property
    def schema_path(self) -> str:
        return storage.join(self.uri, SCHEMA_FILE)

    def load(self):
        """The Schema proto."""
        return read_schema(self.schema_path)


class ExampleAnomalies(Artifact):
    TYPE_NAME = "ExampleAnomalies"
    PROPERTIES = {"split_names": "string", "span": "int", "anomaly_count": "int"}

    def anomalies_path(self, split: str) -> str:
        return storage.join(self.split_uri(split), ANOMALIES_FILE)

    def load(self, split: str):
        """The split's Anomalies proto."""
        return read_anomalies(self.anomalies_path(split))


class TransformGraph(Artifact):
    TYPE_NAME = "TransformGraph"


class Model(Artifact):
    TYPE_NAME = "Model"


class ModelRun(Artifact):
    TYPE_NAME = "ModelRun"


class ModelEvaluation(Artifact):
    TYPE_NAME = "ModelEvaluation"

    def load(self):
        """The :class:`toolkit.evaluation.EvalResult` the Evaluator stored (``evaluation.json``).

        Needs no TensorFlow. A folder written by TFMA alone has no such result: read it
        with ``tfma.load_eval_result``. The evaluation library is imported here, not at
        module level, so that every component can import the artifact types cheaply.
        """
        from toolkit.evaluation.storage import load_result

        what = f"ModelEvaluation #{self.id} ({self.uri})" if self.id is not None else self.uri
        return load_result(self.uri, what=what)


class ModelBlessing(Artifact):
    TYPE_NAME = "ModelBlessing"
    PROPERTIES = {"blessed": "int", "current_model_id": "int", "baseline_model_id": "int"}


class InfraBlessing(Artifact):
    TYPE_NAME = "InfraBlessing"
    PROPERTIES = {"blessed": "int"}


class PushedModel(Artifact):
    TYPE_NAME = "PushedModel"
    PROPERTIES = {"pushed": "int", "pushed_version": "string", "pushed_destination": "string"}


class InferenceResult(Artifact):
    TYPE_NAME = "InferenceResult"
    PROPERTIES = {"split_names": "string"}


def _read_json(path: str, noun: str) -> Any:
    try:
        return json.loads(storage.read_text(path))
    except OSError as exc:
        raise ToolkitError(f"cannot read {noun} {path!r}: {exc.strerror}") from exc
    except ValueError as exc:
        raise ToolkitError(f"{path!r} is not JSON: {exc}") from exc


class HyperParameters(Artifact):
    """The Tuner's best hyperparameters: ``best_hyperparameters.txt``, the JSON of KerasTuner's
    ``HyperParameters.get_config()``, which ``Trainer(hyperparameters=...)`` hands to
    ``run_fn`` as ``fn_args.hyperparameters``."""
    TYPE_NAME = "HyperParameters"

    @property
    def path(self) -> str:
        """The config file: TFX's name, or (as TFX's Trainer reads it) the folder's only file."""
        path = storage.join(self.uri, BEST_HYPERPARAMETERS_FILE)
        if storage.exists(path):
            return path
        try:
            files = [f for f in storage.listdir(self.uri) if not f.startswith(".")]
        except OSError:
            files = []
        return storage.join(self.uri, files[0]) if len(files) == 1 else path

    def load(self) -> dict[str, Any]:
        """The config dict (``keras_tuner.HyperParameters.from_config(...)`` rebuilds it);
        its ``values`` are the chosen values. Needs neither KerasTuner nor TensorFlow."""
        config = _read_json(self.path, "hyperparameters")
        if not isinstance(config, dict):
            raise ToolkitError(f"{self.path!r} is not a KerasTuner HyperParameters config "
                               f"(a JSON object with 'space' and 'values')")
        return config


class TunerResults(Artifact):
    """Every trial of a Tuner's search: TFX's ``tuner_results.json`` (completed trials, best
    first) and the toolkit's ``trials.json`` (all trials, with status and duration)."""
    TYPE_NAME = "TunerResults"

    def load(self) -> list[dict[str, Any]]:
        """TFX's records: ``[{"trial_id", "score", <hyperparameter>: value, ...}]``, best first."""
        records = _read_json(storage.join(self.uri, TUNER_RESULTS_FILE), "tuner results")
        if not isinstance(records, list):
            raise ToolkitError(f"{storage.join(self.uri, TUNER_RESULTS_FILE)!r} is not a list "
                               f"of trial records")
        return records

    def trials(self) -> dict[str, Any]:
        """The toolkit's record of the search (``trials.json``): ``objective``,
        ``num_parallel_trials``, ``best_trial_id``, ``trials`` (each with ``trial_id``,
        ``status``, ``score``, ``values``, ``duration_s``, ``worker``, ``error``) and
        ``workers``. An artifact written by TFX has only TFX's file: its records are
        returned as completed trials without durations."""
        path = storage.join(self.uri, TUNER_TRIALS_FILE)
        if storage.exists(path):
            return _read_json(path, "tuner trials")
        trials = []
        for record in self.load():
            values = {k: v for k, v in record.items() if k not in ("trial_id", "score")}
            trials.append({"trial_id": str(record.get("trial_id")), "status": "COMPLETED",
                           "score": record.get("score"), "values": values,
                           "duration_s": None, "worker": None, "error": None})
        best = trials[0]["trial_id"] if trials else None
        return {"objective": None, "num_parallel_trials": None, "best_trial_id": best,
                "trials": sorted(trials, key=lambda t: _trial_order(t["trial_id"])),
                "workers": []}


def _trial_order(trial_id: Any) -> tuple[int, str]:
    text = str(trial_id)
    return (int(text), text) if text.isdigit() else (1 << 62, text)


ARTIFACT_TYPES: dict[str, type[Artifact]] = {
    cls.TYPE_NAME: cls for cls in (
        Examples, ExampleStatistics, Schema, ExampleAnomalies, TransformGraph, Model,
        ModelRun, ModelEvaluation, ModelBlessing, InfraBlessing, PushedModel,
        InferenceResult, HyperParameters, TunerResults)
}


def register_artifact_type(cls: type[Artifact]) -> type[Artifact]:
    """Make a custom artifact type known to the metadata store and to ``show``."""
    ARTIFACT_TYPES[cls.TYPE_NAME] = cls
    return cls
