"""Fixtures of the MySQL suite: one throwaway MariaDB server per session (see
``mariadb_server.py``) and a new, empty database for each test or shared pipeline.

Child processes (``tests/reliability/child_pipeline.py``) and the reliability helpers find
the database through ``TOOLKIT_MYSQL_HOST``/``_PORT``/``_DATABASE``/``_USER``/``_PASSWORD``,
which the ``mysql_store`` fixture sets for the duration of one test.

Without the server software the tests are skipped, unless ``TOOLKIT_REQUIRE_MYSQL=1``
(set by ``.ci/run``), which makes them fail.
"""
from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reliability"))

from mariadb_server import MariaDBServer, require_server  # noqa: E402

@pytest.fixture(scope="session")
def mysql_server() -> Iterator[MariaDBServer]:
    require_server()
    server = MariaDBServer().start()
    print(f"\nthrowaway MariaDB on 127.0.0.1:{server.port}, ready in "
          f"{server.startup_seconds:.1f} s", flush=True)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def new_database(mysql_server: MariaDBServer) -> Callable[[str], Any]:
    """``new_database(label)``: a ``ConnectionConfig`` of a new, empty database."""
    return mysql_server.new_database


@pytest.fixture
def mysql_store(new_database, request, monkeypatch) -> Any:
    """A new database for this test, also named in the ``TOOLKIT_MYSQL_*`` variables, so
    that child processes and the reliability helpers use it."""
    from toolkit.metadata_config import mysql_env

    config = new_database(request.node.name)
    for name, value in mysql_env(config).items():
        monkeypatch.setenv(name, value)
    return config


@pytest.fixture
def as_host(monkeypatch) -> Callable[..., Any]:
    """``with as_host(name, lease_seconds=None):`` processes started inside the block
    present ``name`` as their host identity (and record that lease)."""

    @contextlib.contextmanager
    def use(name: str, lease_seconds: float | None = None):
        with monkeypatch.context() as patch:
            patch.setenv("TOOLKIT_HOST_ID", name)
            if lease_seconds is not None:
                patch.setenv("TOOLKIT_LEASE_SECONDS", str(lease_seconds))
            yield
    return use
