"""A throwaway MariaDB (or MySQL) server for tests: its own data directory, socket and
port, started from the installed binaries and removed afterwards. No system service, no
configuration file and no existing database is touched.

Debian's ``mariadb-server`` package provides the binaries (``apt-get install -y
mariadb-server``). Without them :func:`require_server` skips the calling test, or fails
it when ``TOOLKIT_REQUIRE_MYSQL=1`` (CI sets it).

Typical use::

    server = MariaDBServer().start()
    config = server.new_database("toolkit_case")   # an ml_metadata ConnectionConfig
    ...
    server.stop()
"""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

#: where Debian and other distributions put the server binaries (often not on a user's PATH)
_SEARCH = ["/usr/sbin", "/usr/libexec", "/usr/local/sbin", "/usr/local/bin", "/usr/bin"]
_BINARIES = {"install": ("mariadb-install-db", "mysql_install_db"),
             "server": ("mariadbd", "mysqld"),
             "client": ("mariadb", "mysql")}
PACKAGE_HINT = "apt-get install -y mariadb-server"
USER = "toolkit"


def find_binary(role: str) -> str | None:
    path = os.pathsep.join([os.environ.get("PATH", "")] + _SEARCH)
    for name in _BINARIES[role]:
        found = shutil.which(name, path=path)
        if found:
            return found
    return None


def server_problem() -> str | None:
    """Why no throwaway server can be started here, or None."""
    missing = [" or ".join(_BINARIES[role]) for role in _BINARIES if find_binary(role) is None]
    if missing:
        return f"MariaDB/MySQL server software not found ({', '.join(missing)} missing)"
    return None


def require_server() -> None:
    """Return when the server software is installed; else skip the test, or fail it when
    ``TOOLKIT_REQUIRE_MYSQL=1``."""
    import pytest

    problem = server_problem()
    if problem is None:
        return
    if os.environ.get("TOOLKIT_REQUIRE_MYSQL", "").strip() not in ("", "0", "false"):
        pytest.fail(f"{problem} (TOOLKIT_REQUIRE_MYSQL=1 makes this a failure); install it "
                    f"with `{PACKAGE_HINT}`", pytrace=False)
    pytest.skip(f"{problem}; install it with `{PACKAGE_HINT}` or set TOOLKIT_REQUIRE_MYSQL=1 "
                "to fail instead of skipping")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class MariaDBServer:
    """One server process on 127.0.0.1 and a free port, with a data directory of its own.

    ``start()`` initialises the data directory, starts the server, waits until it answers
    and creates a user (``toolkit`` with a random password) allowed to use every database
    whose name starts with ``toolkit_``. ``new_database()`` creates one such database and
    returns its ``ConnectionConfig``; ``stop()`` ends the server and deletes its files.
    """

    def __init__(self, base_dir: str | None = None, start_timeout: float = 120.0):
        self.base_dir = base_dir
        self.start_timeout = start_timeout
        self.datadir: Path | None = None
        self.socket_path: Path | None = None
        self.port: int | None = None
        self.password = secrets.token_hex(12)
        self.process: subprocess.Popen | None = None
        self.startup_seconds: float | None = None
        self._created = 0

    # -- life cycle ---------------------------------------------------------------------
    def start(self) -> "MariaDBServer":
        begun = time.monotonic()
        # a short path: a Unix socket path may not exceed about 100 bytes
        self.datadir = Path(tempfile.mkdtemp(prefix="toolkit-mariadb-", dir=self.base_dir))
        self.socket_path = self.datadir / "sock"
        try:
            self._install()
            for attempt in range(3):  # the chosen port may be taken before the server binds it
                self.port = free_port()
                if self._launch():
                    break
                if attempt == 2:
                    raise RuntimeError(f"the MariaDB server did not start:\n{self.log_tail()}")
            self.admin_sql(
                f"CREATE USER '{USER}'@'127.0.0.1' IDENTIFIED BY '{self.password}';"
                f"GRANT ALL PRIVILEGES ON `{USER}\\_%`.* TO '{USER}'@'127.0.0.1';")
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - begun
        return self

    def _install(self) -> None:
        user = "root" if os.geteuid() == 0 else _login_name()
        data = self.datadir / "data"
        command = [find_binary("install"), "--no-defaults", f"--user={user}",
                   f"--datadir={data}", "--auth-root-authentication-method=normal",
                   "--skip-test-db"]
        done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, timeout=self.start_timeout)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n"
                               + "\n".join(done.stdout.splitlines()[-30:]))

    def _launch(self) -> bool:
        """Start the server on ``self.port``; True once it answers, False when it exited
        because the port was taken."""
        log = self.datadir / "server.log"
        if self.socket_path.exists():
            self.socket_path.unlink()
        user = "root" if os.geteuid() == 0 else _login_name()
        command = [find_binary("server"), "--no-defaults", f"--user={user}",
                   f"--datadir={self.datadir / 'data'}", f"--socket={self.socket_path}",
                   f"--port={self.port}", "--bind-address=127.0.0.1",
                   f"--pid-file={self.datadir / 'server.pid'}", f"--log-error={log}",
                   f"--tmpdir={self.datadir}", "--skip-name-resolve", "--skip-log-bin",
                   "--innodb-buffer-pool-size=64M", "--max-connections=200"]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, preexec_fn=_detach)
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                text = self.log_tail()
                self.process = None
                if "Address already in use" in text or "Bind on TCP/IP port" in text:
                    return False
                raise RuntimeError(f"the MariaDB server exited at start:\n{text}")
            if self.socket_path.exists() and self._answers():
                return True
            time.sleep(0.1)
        raise RuntimeError(f"the MariaDB server did not answer within {self.start_timeout:.0f} s"
                           f":\n{self.log_tail()}")

    def _answers(self) -> bool:
        try:
            self.admin_sql("SELECT 1;", timeout=10)
        except (RuntimeError, subprocess.TimeoutExpired):
            return False
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.settimeout(5)
            return probe.connect_ex(("127.0.0.1", self.port)) == 0

    def stop(self) -> None:
        """Stop the server (SIGTERM, SIGKILL if it lingers) and delete its data directory."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if self.datadir is not None:
            shutil.rmtree(self.datadir, ignore_errors=True)
            self.datadir = None

    # -- using it -----------------------------------------------------------------------
    def admin_sql(self, sql: str, timeout: float = 60) -> str:
        """Run SQL as the server's root user through the socket; returns the output."""
        command = [find_binary("client"), "--no-defaults", f"--socket={self.socket_path}",
                   "--user=root", "--batch", "--skip-column-names", "-e", sql]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"SQL failed: {sql}\n{done.stderr.strip()}")
        return done.stdout

    def new_database(self, label: str = "case"):
        """Create an empty database (named ``toolkit_<label>_<n>``) and return the
        ``ml_metadata`` ``ConnectionConfig`` that reaches it over TCP as the test user."""
        from toolkit.metadata_config import mysql_config

        self._created += 1
        safe = "".join(c if c.isalnum() else "_" for c in label.lower())[:40]
        name = f"{USER}_{safe}_{self._created}"
        self.admin_sql(f"CREATE DATABASE `{name}`;")
        return mysql_config(host="127.0.0.1", port=self.port, database=name, user=USER,
                            password=self.password)

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = (self.datadir / "server.log").read_text(errors="replace")
        except (OSError, TypeError):
            return "(no server log)"
        return "\n".join(text.splitlines()[-lines:])


def _detach() -> None:
    """In the server process before it starts: a session of its own (no terminal signals),
    and SIGTERM when the test process dies without stopping it (Linux)."""
    os.setsid()
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _login_name() -> str:
    import getpass

    return getpass.getuser()
