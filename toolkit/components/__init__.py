"""Standard components, with TFX's names, arguments and output keys."""
from toolkit.components.example_gen import CsvExampleGen, ImportExampleGen
from toolkit.components.statistics_gen import StatisticsGen
from toolkit.components.schema_gen import ImportSchemaGen, SchemaGen
from toolkit.components.example_validator import ExampleValidator

__all__ = ["CsvExampleGen", "ImportExampleGen", "StatisticsGen", "SchemaGen",
           "ImportSchemaGen", "ExampleValidator"]
