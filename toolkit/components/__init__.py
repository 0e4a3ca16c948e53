"""Standard components, with TFX's names, arguments and output keys."""
from toolkit.components.bulk_inferrer import BulkInferrer
from toolkit.components.evaluator import Evaluator
from toolkit.components.example_gen import CsvExampleGen, ImportExampleGen
from toolkit.components.example_validator import ExampleValidator
from toolkit.components.fn_args import DataAccessor, FnArgs
from toolkit.components.infra_validator import InfraValidator
from toolkit.components.pusher import Pusher
from toolkit.components.resolver import Importer, Resolver, latest_blessed_model
from toolkit.components.schema_gen import ImportSchemaGen, SchemaGen
from toolkit.components.statistics_gen import StatisticsGen
from toolkit.components.trainer import Trainer
from toolkit.components.transform import Transform
from toolkit.components.tuner import Tuner, TunerFnResult

__all__ = ["CsvExampleGen", "ImportExampleGen", "StatisticsGen", "SchemaGen", "ImportSchemaGen",
           "ExampleValidator", "Transform", "Tuner", "TunerFnResult", "Trainer", "FnArgs",
           "DataAccessor",
           "latest_blessed_model", "Resolver", "Importer", "Evaluator", "InfraValidator", "Pusher",
           "BulkInferrer"]
