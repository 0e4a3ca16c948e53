"""Dataset-level anomalies (the number of examples of a whole split) on the taxi data:
ExampleValidator's gate stops on them unless allowed, and the anomalies view shows them."""
from __future__ import annotations

import json

import pytest


def _curated_schema(tmp_path, taxi_pipeline, edit) -> str:
    """The taxi schema with ``edit(schema)`` applied, written as a schema file."""
    import tensorflow_data_validation as tfdv

    schema = tfdv.load_schema_text(taxi_pipeline.schema_gen.outputs["schema"].get()[0].schema_path)
    edit(schema)
    path = tmp_path / "schema.pbtxt"
    tfdv.write_schema_text(schema, str(path))
    return str(path)


def _row_counts(taxi_pipeline) -> dict[str, int]:
    return json.loads(taxi_pipeline.example_gen.outputs["examples"].get()[0]
                      .properties["row_counts"])


@pytest.fixture
def too_few(tmp_path, taxi_pipeline):
    """A context, and the taxi schema requiring one example more than the eval split has."""
    from toolkit import InteractiveContext
    from toolkit.components import ImportSchemaGen

    counts = _row_counts(taxi_pipeline)
    assert counts["train"] > counts["eval"] + 1

    def require(schema):
        schema.dataset_constraints.min_examples_count = counts["eval"] + 1

    context = InteractiveContext(pipeline_name="p", pipeline_root=str(tmp_path / "root"))
    curated = ImportSchemaGen(schema_file=_curated_schema(tmp_path, taxi_pipeline, require))
    context.run(curated)
    return context, curated.outputs["schema"], counts


def _validator(taxi_pipeline, schema, **kwargs):
    from toolkit.components import ExampleValidator

    return ExampleValidator(statistics=taxi_pipeline.statistics_gen.outputs["statistics"],
                            schema=schema, **kwargs)


def test_min_examples_count_stops_the_gate_naming_the_split(too_few, taxi_pipeline):
    import toolkit
    from toolkit.errors import GateError

    context, schema, counts = too_few
    validator = _validator(taxi_pipeline, schema)
    interactive = context.run(validator)
    expected = (f"anomalies found: eval split (DATASET_LOW_NUM_EXAMPLES: The dataset has "
                f"{counts['eval']} examples, which is fewer than expected.)")
    assert interactive.gate_failure == expected
    anomalies = validator.outputs["anomalies"].get()[0]
    assert anomalies.properties["anomaly_count"] == 1
    assert not anomalies.load("train").HasField("dataset_anomaly_info")
    toolkit.set_mode("production")
    try:
        with pytest.raises(GateError) as info:
            context.run(validator)
        assert str(info.value) == f"{validator.id}: {expected}"
        other_type = _validator(taxi_pipeline, schema,
                                allowed_anomalies=["ENUM_TYPE_UNEXPECTED_STRING_VALUES"])
        with pytest.raises(GateError, match="eval split .DATASET_LOW_NUM_EXAMPLES"):
            context.run(other_type)
        allowed = _validator(taxi_pipeline, schema, allowed_anomalies=["DATASET_LOW_NUM_EXAMPLES"])
        assert context.run(allowed).gate_failure is None
    finally:
        toolkit.set_mode(None)


def test_number_of_examples_drift_against_the_baseline_stops_the_gate(tmp_path, taxi_pipeline):
    """Against statistics of the same examples as the baseline, each split has as many
    examples as before: a comparator demanding 1.5 times as many reports it for both."""
    from toolkit import InteractiveContext
    from toolkit.components import ImportSchemaGen, StatisticsGen

    def demand_growth(schema):
        schema.dataset_constraints.num_examples_drift_comparator.min_fraction_threshold = 1.5

    context = InteractiveContext(pipeline_name="p", pipeline_root=str(tmp_path / "root"))
    curated = ImportSchemaGen(schema_file=_curated_schema(tmp_path, taxi_pipeline,
                                                          demand_growth))
    context.run(curated)
    previous = StatisticsGen(examples=taxi_pipeline.example_gen.outputs["examples"]
                             ).with_id("PreviousStatisticsGen")
    context.run(previous)
    baseline = previous.outputs["statistics"]
    drift = _validator(taxi_pipeline, curated.outputs["schema"], baseline_statistics=baseline)
    failure = context.run(drift).gate_failure
    assert failure.startswith("anomalies found: train split (COMPARATOR_LOW_NUM_EXAMPLES: ")
    assert "; eval split (COMPARATOR_LOW_NUM_EXAMPLES: " in failure and "\n" not in failure
    allowed = _validator(taxi_pipeline, curated.outputs["schema"], baseline_statistics=baseline,
                         allowed_anomalies=["COMPARATOR_LOW_NUM_EXAMPLES"])
    assert context.run(allowed).gate_failure is None


def test_view_shows_the_dataset_anomaly_escaped_with_a_text_form(too_few, taxi_pipeline):
    from toolkit.visualize import anomalies_view

    context, schema, counts = too_few
    validator = _validator(taxi_pipeline, schema)
    context.run(validator)
    view = context.show(validator.outputs["anomalies"])
    description = f"The dataset has {counts['eval']} examples, which is fewer than expected."
    assert "Anomalies: 1 found" in view.text
    assert "[train] No anomalies found." in view.text
    assert ("[eval] 1 anomaly:\n  (dataset): ERROR Low num examples in dataset. - "
            f"{description} [DATASET_LOW_NUM_EXAMPLES]") in view.text
    assert "<b title=\"(dataset)\">(dataset)</b>" in view.html
    assert description in view.html and "DATASET_LOW_NUM_EXAMPLES" in view.html

    eval_anomalies = validator.outputs["anomalies"].get()[0].load("eval")
    planted = "<script>alert(1)</script>"
    eval_anomalies.dataset_anomaly_info.reason[0].short_description = planted
    eval_anomalies.dataset_anomaly_info.short_description = planted
    hostile = anomalies_view({"eval": eval_anomalies})
    assert planted not in hostile.html and "&lt;script&gt;alert(1)&lt;/script&gt;" in hostile.html
    assert f"(dataset): ERROR {planted} - {description}" in hostile.text
