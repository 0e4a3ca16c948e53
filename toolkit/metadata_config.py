"""Connection settings for a metadata store shared by many machines: MySQL or MariaDB.

By default an ``InteractiveContext`` keeps its ML Metadata records in
``<pipeline_root>/metadata.sqlite``, which only processes on one machine can share.
A team that runs notebooks, exported pipelines and cluster jobs against one store
points every context at one MySQL (or MariaDB) database instead::

    import os
    from toolkit import InteractiveContext
    from toolkit.metadata_config import mysql_config

    context = InteractiveContext(
        pipeline_name="taxi", pipeline_root="/shared/runs/taxi",
        metadata_connection_config=mysql_config(
            host="db.example.org", port=3306, database="toolkit",
            user="alice", password=os.environ["DB_PASSWORD"]))

The artifact folders under ``pipeline_root`` must be readable at the same path on every
machine (a shared file system), since the store records artifacts by path.

Settings may also come from the environment, so that a notebook or an exported pipeline
needs no change to use the shared store::

    TOOLKIT_MYSQL_HOST      server name or IP address (unset: use the SQLite file)
    TOOLKIT_MYSQL_PORT      TCP port, 3306 when unset
    TOOLKIT_MYSQL_DATABASE  database name (required with TOOLKIT_MYSQL_HOST)
    TOOLKIT_MYSQL_USER      user name (required with TOOLKIT_MYSQL_HOST)
    TOOLKIT_MYSQL_PASSWORD  password, empty when unset

and ``InteractiveContext(..., metadata_connection_config=mysql_config_from_env())``
uses them (``None``, meaning the default SQLite file, when ``TOOLKIT_MYSQL_HOST`` is unset).

ML Metadata creates the database and its tables on first use when the user may create
them. The MySQL client library treats the host name ``localhost`` as "connect through the
default Unix socket", not over TCP: give ``127.0.0.1`` for a server on the same machine.
"""
from __future__ import annotations

import os
from typing import Any, Mapping

from toolkit import _env
from toolkit.errors import ToolkitError

DEFAULT_PORT = 3306


def mysql_config(host: str, port: int, database: str, user: str, password: str = "") -> Any:
    """An ``ml_metadata`` ``ConnectionConfig`` for a MySQL or MariaDB database over TCP.

    Pass the result as ``InteractiveContext(metadata_connection_config=...)``.
    """
    from ml_metadata.proto import metadata_store_pb2

    if not host:
        raise ToolkitError("mysql_config: give the host name or IP address of the server")
    if not database:
        raise ToolkitError("mysql_config: give the name of the database that holds the store")
    if not user:
        raise ToolkitError("mysql_config: give the user name to connect as")
    port = _port(port, "port")
    config = metadata_store_pb2.ConnectionConfig()
    config.mysql.host = host
    config.mysql.port = port
    config.mysql.database = database
    config.mysql.user = user
    config.mysql.password = password or ""
    return config


def mysql_config_from_env(environ: Mapping[str, str] | None = None) -> Any:
    """The ``ConnectionConfig`` named by the ``TOOLKIT_MYSQL_*`` variables, or ``None``
    (the default SQLite file) when ``TOOLKIT_MYSQL_HOST`` is unset or empty."""
    env = os.environ if environ is None else environ
    host = env.get(_env.MYSQL_HOST, "").strip()
    if not host:
        return None
    missing = [name for name in (_env.MYSQL_DATABASE, _env.MYSQL_USER)
               if not env.get(name, "").strip()]
    if missing:
        raise ToolkitError(f"{_env.MYSQL_HOST} is set, but {' and '.join(missing)} "
                           f"{'is' if len(missing) == 1 else 'are'} not: set "
                           f"{'it' if len(missing) == 1 else 'them'}, or unset "
                           f"{_env.MYSQL_HOST} to use the SQLite file under pipeline_root")
    port = _port(env.get(_env.MYSQL_PORT, "").strip() or DEFAULT_PORT, _env.MYSQL_PORT)
    return mysql_config(host, port, env[_env.MYSQL_DATABASE].strip(),
                        env[_env.MYSQL_USER].strip(), env.get(_env.MYSQL_PASSWORD, ""))


def mysql_env(config: Any) -> dict[str, str]:
    """The ``TOOLKIT_MYSQL_*`` variables that name the MySQL database of ``config``: the
    inverse of :func:`mysql_config_from_env`, for handing a store to a child process."""
    if config is None or not config.HasField("mysql"):
        raise ToolkitError("mysql_env: the connection config is not a MySQL one")
    mysql = config.mysql
    return {_env.MYSQL_HOST: mysql.host, _env.MYSQL_PORT: str(mysql.port or DEFAULT_PORT),
            _env.MYSQL_DATABASE: mysql.database, _env.MYSQL_USER: mysql.user,
            _env.MYSQL_PASSWORD: mysql.password}


def _port(value: Any, name: str) -> int:
    try:
        port = int(value)
    except (TypeError, ValueError):
        raise ToolkitError(f"{name} must be a TCP port number, got {value!r}") from None
    if not 0 < port < 65536:
        raise ToolkitError(f"{name} must be between 1 and 65535, got {port}")
    return port
