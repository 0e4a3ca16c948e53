"""Shared, session-scoped fixtures: one taxi pipeline run reused by many assertions."""
from __future__ import annotations

import os
import shutil
import types
from pathlib import Path

import pytest

from datapaths import FIXTURES, REPO, TAXI_CSV


@pytest.fixture(scope="session")
def taxi_dir(tmp_path_factory) -> str:
    """A private copy of the taxi data folder (tests may not touch notebooks/data)."""
    folder = tmp_path_factory.mktemp("taxi_data")
    shutil.copy(TAXI_CSV, folder / "data.csv")
    return str(folder)


@pytest.fixture
def pipeline_notebook(tmp_path) -> Path:
    """A private copy of the fixture notebook ``pipeline.ipynb`` (tests may edit it)."""
    target = tmp_path / "pipeline.ipynb"
    shutil.copy(FIXTURES / "pipeline.ipynb", target)
    return target


@pytest.fixture(scope="session")
def taxi_pipeline(tmp_path_factory, taxi_dir):
    """The four data components run once on the taxi data, plus an immediate cached re-run."""
    from toolkit import InteractiveContext
    from toolkit.components import CsvExampleGen, ExampleValidator, SchemaGen, StatisticsGen

    root = str(tmp_path_factory.mktemp("taxi_root"))
    context = InteractiveContext(pipeline_name="taxi", pipeline_root=root)
    example_gen = CsvExampleGen(input_base=taxi_dir)
    statistics_gen = StatisticsGen(examples=example_gen.outputs["examples"])
    schema_gen = SchemaGen(statistics=statistics_gen.outputs["statistics"])
    validator = ExampleValidator(statistics=statistics_gen.outputs["statistics"],
                                 schema=schema_gen.outputs["schema"])
    components = [example_gen, statistics_gen, schema_gen, validator]
    first = [context.run(c) for c in components]
    second = [context.run(c) for c in components]
    return types.SimpleNamespace(
        root=root, context=context, example_gen=example_gen, statistics_gen=statistics_gen,
        schema_gen=schema_gen, validator=validator, components=components,
        first=first, second=second, data_dir=taxi_dir)


def _execute_flagship(name: str, out_dir: Path, **parameters) -> types.SimpleNamespace:
    """Run ``notebooks/<name>.ipynb`` headless with papermill, its pipeline and pushes kept
    in ``out_dir`` (the push root while it runs)."""
    import nbformat
    import papermill

    executed = out_dir / f"{name}.ipynb"
    parameters = {"pipeline_root": str(out_dir / "pipeline"),
                  "serving_dir": str(out_dir / "serving"), **parameters}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TOOLKIT_PUSH_ROOT", str(out_dir))
        papermill.execute_notebook(
            os.path.join(REPO, "notebooks", f"{name}.ipynb"), str(executed),
            cwd=os.path.join(REPO, "notebooks"), kernel_name="python3", progress_bar=False,
            parameters=parameters)
    return types.SimpleNamespace(path=str(executed), root=parameters["pipeline_root"],
                                 serving=parameters["serving_dir"], parameters=parameters,
                                 notebook=nbformat.read(str(executed), as_version=4))


@pytest.fixture(scope="session")
def executed_taxi(tmp_path_factory):
    """The taxi flagship notebook executed headless once (papermill), shared by tests."""
    # non-default values, shared with the runs of the export that are compared with this one
    return _execute_flagship("taxi", tmp_path_factory.mktemp("taxi_notebook"),
                             pipeline_name="taxi_test", train_steps=600)


@pytest.fixture(scope="session")
def executed_credit(tmp_path_factory):
    """The German credit flagship notebook executed headless once (papermill), shared by tests."""
    return _execute_flagship("credit", tmp_path_factory.mktemp("credit_notebook"))


@pytest.fixture(scope="session")
def executed_penguins(tmp_path_factory):
    """The penguins flagship notebook (written through ``toolkit.v1``) executed headless once."""
    return _execute_flagship("penguins", tmp_path_factory.mktemp("penguins_notebook"))
