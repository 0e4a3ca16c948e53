"""The taxi data pipeline with its metadata on a real MariaDB server: it runs, a second
run is fully cached, and executions, events and lineage are recorded on the server."""
from __future__ import annotations

import json
import types

import pytest

from child_pipeline import data_components
from datapaths import TAXI_CSV, taxi_split_counts

COMPONENTS = ["CsvExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator"]


@pytest.fixture(scope="module")
def mysql_taxi(tmp_path_factory, taxi_dir, new_database):
    """The four data components on the taxi data, run twice, recorded in one new database."""
    from toolkit import InteractiveContext

    config = new_database("taxi")
    root = tmp_path_factory.mktemp("mysql_taxi_root")
    context = InteractiveContext(pipeline_name="taxi", pipeline_root=str(root),
                                 metadata_connection_config=config)
    components = data_components(taxi_dir)
    first = [context.run(c) for c in components]
    second = [context.run(c) for c in components]
    return types.SimpleNamespace(config=config, root=root, context=context,
                                 components=components, first=first, second=second,
                                 data_dir=taxi_dir)


def test_records_live_on_the_server_not_in_a_sqlite_file(mysql_taxi, mysql_server):
    mysql = mysql_taxi.config.mysql
    assert mysql_taxi.context.store.location == \
        f"MySQL 127.0.0.1:{mysql_server.port}/{mysql.database}"
    assert not (mysql_taxi.root / "metadata.sqlite").exists()
    # read back by the server's own client, not through ML Metadata
    ids = [r.execution_id for r in mysql_taxi.first + mysql_taxi.second]
    out = mysql_server.admin_sql(
        f"SELECT id, last_known_state FROM `{mysql.database}`.`Execution` "
        f"WHERE id IN ({', '.join(map(str, ids))}) ORDER BY id;")
    states = {int(i): int(s) for i, s in (line.split("\t") for line in out.splitlines())}
    assert [states[i] for i in ids] == [3] * 4 + [5] * 4  # COMPLETE, then CACHED
    names = mysql_server.admin_sql(f"SELECT name FROM `{mysql.database}`.`Context`;").split()
    assert "taxi" in names


def test_first_run_executes_and_second_is_fully_cached(mysql_taxi):
    assert [r.component_id for r in mysql_taxi.first] == COMPONENTS
    assert [r.cached for r in mysql_taxi.first] == [False] * 4
    assert [r.cached for r in mysql_taxi.second] == [True] * 4
    rows = {r["id"]: r for r in mysql_taxi.context.executions()}
    assert [rows[r.execution_id]["state"] for r in mysql_taxi.first] == ["COMPLETE"] * 4
    assert [rows[r.execution_id]["state"] for r in mysql_taxi.second] == ["CACHED"] * 4
    assert [rows[r.execution_id]["cached_from"] for r in mysql_taxi.second] == \
        [r.execution_id for r in mysql_taxi.first]
    for ran, cached in zip(mysql_taxi.first, mysql_taxi.second):
        assert {k: [a.id for a in v] for k, v in ran.outputs.items()} == \
               {k: [a.id for a in v] for k, v in cached.outputs.items()}


def test_results_are_those_of_the_taxi_data(mysql_taxi):
    import pandas as pd
    import tensorflow_data_validation as tfdv

    example_gen, statistics_gen, schema_gen, validator = mysql_taxi.components
    examples = example_gen.outputs["examples"].get()[0]
    counts = json.loads(examples.properties["row_counts"])
    assert counts == taxi_split_counts()
    assert counts["train"] + counts["eval"] == len(pd.read_csv(TAXI_CSV))
    stats = tfdv.load_stats_binary(statistics_gen.outputs["statistics"].get()[0]
                                   .stats_path("train"))
    assert stats.datasets[0].num_examples == counts["train"]
    schema = tfdv.load_schema_text(schema_gen.outputs["schema"].get()[0].schema_path)
    assert "Credit Card" in tfdv.get_domain(schema, "payment_type").value
    anomalies = validator.outputs["anomalies"].get()[0]
    assert anomalies.TYPE_NAME == "ExampleAnomalies" and anomalies.id is not None


def test_events_and_lineage_are_recorded(mysql_taxi):
    from ml_metadata.proto import metadata_store_pb2 as pb

    mlmd = mysql_taxi.context.store.mlmd
    stats_execution = mysql_taxi.first[1].execution_id
    events = mlmd.get_events_by_execution_ids([stats_execution])
    assert sorted((e.type, e.path.steps[0].key) for e in events) == \
        [(pb.Event.INPUT, "examples"), (pb.Event.OUTPUT, "statistics")]
    [examples_event] = [e for e in events if e.type == pb.Event.INPUT]
    assert examples_event.artifact_id == mysql_taxi.first[0].outputs["examples"][0].id

    validator = mysql_taxi.components[3]
    lineage = mysql_taxi.context.lineage(validator.outputs["anomalies"])
    assert [e["component_id"] for e in lineage.executions] == \
        ["ExampleValidator", "StatisticsGen", "CsvExampleGen", "SchemaGen"]
    assert [e["id"] for e in lineage.executions] == \
        [mysql_taxi.first[i].execution_id for i in (3, 1, 0, 2)]


def test_a_new_context_on_the_same_database_continues(mysql_taxi):
    """As a new kernel would: a new context on the same database and root sees every
    earlier execution and reuses all four from cache."""
    from toolkit import InteractiveContext

    context = InteractiveContext(pipeline_name="taxi", pipeline_root=str(mysql_taxi.root),
                                 metadata_connection_config=mysql_taxi.config)
    earlier = {r["id"] for r in context.executions()}
    assert {r.execution_id for r in mysql_taxi.first + mysql_taxi.second} <= earlier
    results = [context.run(c) for c in data_components(mysql_taxi.data_dir)]
    assert [r.cached for r in results] == [True] * 4
    assert [r.outputs for r in results][0]["examples"][0].uri == \
        mysql_taxi.first[0].outputs["examples"][0].uri


def test_pipelines_in_one_database_keep_their_own_records(mysql_taxi, tmp_path):
    from toolkit import InteractiveContext

    other = InteractiveContext(pipeline_name="taxi_other", pipeline_root=str(tmp_path),
                               metadata_connection_config=mysql_taxi.config)
    result = other.run(data_components(mysql_taxi.data_dir)[0])
    assert not result.cached  # the cache is per pipeline
    assert [r["id"] for r in other.executions()] == [result.execution_id]
    assert result.execution_id not in {r["id"] for r in mysql_taxi.context.executions()}
