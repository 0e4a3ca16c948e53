"""``tfx.orchestration.metadata``: ML Metadata connection configs, for
``InteractiveContext(metadata_connection_config=...)``."""
from __future__ import annotations

import os
from typing import Any

from toolkit.metadata import sqlite_config
from toolkit.metadata_config import mysql_config

__all__ = ["mysql_metadata_connection_config", "sqlite_metadata_connection_config"]


def sqlite_metadata_connection_config(metadata_db_uri: str) -> Any:
    """A ``ConnectionConfig`` for the SQLite file ``metadata_db_uri`` (its folder is
    created)."""
    folder = os.path.dirname(os.fspath(metadata_db_uri))
    if folder:
        os.makedirs(folder, exist_ok=True)
    return sqlite_config(os.fspath(metadata_db_uri))


def mysql_metadata_connection_config(host: str, port: int, database: str, username: str,
                                     password: str) -> Any:
    """A ``ConnectionConfig`` for a MySQL or MariaDB database (TFX's argument names)."""
    return mysql_config(host, port=port, database=database, user=username, password=password)


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    from toolkit.v1._names import missing

    missing(__name__, name, __all__)
