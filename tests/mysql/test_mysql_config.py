"""``toolkit.metadata_config``: MySQL connection settings from arguments or the
environment, and what a user sees when they are wrong."""
from __future__ import annotations

import pytest

from toolkit.errors import ToolkitError
from toolkit.metadata_config import mysql_config, mysql_config_from_env, mysql_env


def test_settings_from_the_environment_round_trip():
    env = {"TOOLKIT_MYSQL_HOST": "db.example.org", "TOOLKIT_MYSQL_PORT": "3307",
           "TOOLKIT_MYSQL_DATABASE": "team", "TOOLKIT_MYSQL_USER": "alice",
           "TOOLKIT_MYSQL_PASSWORD": "s3cret"}
    config = mysql_config_from_env(env)
    assert (config.mysql.host, config.mysql.port, config.mysql.database, config.mysql.user,
            config.mysql.password) == ("db.example.org", 3307, "team", "alice", "s3cret")
    assert mysql_env(config) == env
    assert config == mysql_config("db.example.org", 3307, "team", "alice", "s3cret")


def test_defaults_and_the_sqlite_fallback():
    assert mysql_config_from_env({}) is None
    assert mysql_config_from_env({"TOOLKIT_MYSQL_HOST": " "}) is None
    config = mysql_config_from_env({"TOOLKIT_MYSQL_HOST": "10.0.0.5",
                                    "TOOLKIT_MYSQL_DATABASE": "team",
                                    "TOOLKIT_MYSQL_USER": "bob"})
    assert config.mysql.port == 3306 and config.mysql.password == ""


@pytest.mark.parametrize("env, words", [
    ({"TOOLKIT_MYSQL_HOST": "h"}, "TOOLKIT_MYSQL_DATABASE and TOOLKIT_MYSQL_USER are not"),
    ({"TOOLKIT_MYSQL_HOST": "h", "TOOLKIT_MYSQL_DATABASE": "d"}, "TOOLKIT_MYSQL_USER is not"),
    ({"TOOLKIT_MYSQL_HOST": "h", "TOOLKIT_MYSQL_DATABASE": "d", "TOOLKIT_MYSQL_USER": "u",
      "TOOLKIT_MYSQL_PORT": "mysql"}, "TOOLKIT_MYSQL_PORT must be a TCP port number"),
    ({"TOOLKIT_MYSQL_HOST": "h", "TOOLKIT_MYSQL_DATABASE": "d", "TOOLKIT_MYSQL_USER": "u",
      "TOOLKIT_MYSQL_PORT": "70000"}, "between 1 and 65535"),
])
def test_incomplete_settings_name_the_variable(env, words):
    with pytest.raises(ToolkitError, match=words):
        mysql_config_from_env(env)


def test_wrong_password_and_forbidden_database_fail_with_one_line(mysql_server, tmp_path):
    from toolkit import InteractiveContext

    good = mysql_server.new_database("credentials")
    wrong = mysql_config("127.0.0.1", good.mysql.port, good.mysql.database, good.mysql.user,
                         good.mysql.password + "x")
    forbidden = mysql_config("127.0.0.1", good.mysql.port, "not_granted", good.mysql.user,
                             good.mysql.password)
    for config, detail in ((wrong, "mysql_real_connect failed"),
                           (forbidden, "Access denied")):
        context = InteractiveContext("p", str(tmp_path), metadata_connection_config=config)
        with pytest.raises(ToolkitError) as raised:
            context.store
        message = str(raised.value)
        assert message.startswith("cannot open the metadata store (MySQL 127.0.0.1:"
                                  f"{good.mysql.port}/{config.mysql.database}): ")
        assert detail in message and "\n" not in message
    assert InteractiveContext("p", str(tmp_path),
                              metadata_connection_config=good).executions() == []
