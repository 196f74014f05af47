"""Real MariaDB servers for the integration tests: own datadirs, loopback ports, reaped.

:class:`MariaDB` is one ``mariadbd`` started as the test's own process with
``--no-defaults`` (the machine's my.cnf plays no part), a datadir copied from a
template made once by ``mariadb-install-db``, a port on 127.0.0.1 and its socket in a
short temporary directory. :func:`replicate` makes one server a GTID replica of
another. Every wait is bounded; :meth:`MariaDB.stop` always ends the process.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pymysql
import pymysql.cursors

MARIADBD = shutil.which("mariadbd") or (
    "/usr/sbin/mariadbd" if os.path.exists("/usr/sbin/mariadbd") else None
)
INSTALL_DB = shutil.which("mariadb-install-db")
REPL_USER = "repl"
REPL_PASSWORD = "repl-pw"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0


def unavailable() -> str | None:
    if MARIADBD is None or INSTALL_DB is None:
        return "mariadb-server is not installed (apt-get install mariadb-server)"
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _user_args() -> list[str]:
    return ["--user=root"] if os.geteuid() == 0 else []


def make_template(path: Path) -> Path:
    """A freshly initialised datadir (root without password, no test database)."""
    assert INSTALL_DB is not None
    path.mkdir(parents=True)
    subprocess.run(
        [
            INSTALL_DB,
            "--no-defaults",
            f"--datadir={path}",
            *_user_args(),
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
        ],
        check=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        timeout=120,
    )
    return path


Launcher = Callable[[list[str]], "subprocess.Popen[bytes]"]


def _popen(argv: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


class MariaDB:
    """One mariadbd. The tests reach it through its unix socket, which works from any
    network namespace; ``launch`` starts it elsewhere (e.g. inside a lab namespace)."""

    def __init__(
        self,
        *,
        name: str,
        template: Path,
        base: Path,
        sockdir: Path,
        server_id: int,
        bind: str = "127.0.0.1",
        port: int | None = None,
        launch: Launcher = _popen,
    ) -> None:
        self.name = name
        self.datadir = base / name
        shutil.copytree(template, self.datadir)
        self.socket = sockdir / f"{name}.sock"
        self.bind = bind
        self.port = port if port is not None else free_port()
        self.server_id = server_id
        self.launch = launch
        self.log = base / f"{name}.err"
        self.proc: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        return f"MariaDB({self.name}, {self.bind}:{self.port})"

    def start(self) -> None:
        assert MARIADBD is not None
        self.proc = self.launch(
            [
                MARIADBD,
                "--no-defaults",
                f"--datadir={self.datadir}",
                *_user_args(),
                f"--port={self.port}",
                f"--bind-address={self.bind}",
                f"--socket={self.socket}",
                f"--pid-file={self.datadir / 'mariadbd.pid'}",
                f"--log-error={self.log}",
                f"--server-id={self.server_id}",
                "--log-bin=mariadb-bin",
                "--log-slave-updates",
                "--skip-name-resolve",
                "--innodb-buffer-pool-size=16M",
                "--innodb-log-file-size=8M",
            ]
        )
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self} exited at start-up; its log:\n{self.error_log()}")
            try:
                self.query("SELECT 1")
                return
            except pymysql.MySQLError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self} did not answer within {START_TIMEOUT:g}s") from None
                time.sleep(0.1)

    def error_log(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-2000:]
        except OSError:
            return "(no error log)"

    def stop(self, signum: signal.Signals = signal.SIGTERM) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signum)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=STOP_TIMEOUT)

    def connect(self) -> pymysql.connections.Connection[Any]:
        # Connected by hand: PyMySQL leaks the socket when a unix connect fails.
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(2)
            sock.connect(str(self.socket))
        except OSError as exc:
            sock.close()
            raise pymysql.err.OperationalError(2002, str(exc)) from None
        conn = pymysql.connect(
            unix_socket=str(self.socket),
            user="root",
            password="",
            read_timeout=10,
            write_timeout=10,
            autocommit=True,
            cursorclass=pymysql.cursors.DictCursor,
            defer_connect=True,
        )
        conn.connect(sock)
        return conn

    def query(self, sql: str, args: Sequence[object] = ()) -> list[dict[str, Any]]:
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute(sql, tuple(args) or None)
                return list(cur.fetchall())
        finally:
            conn.close()

    def status(self) -> dict[str, Any] | None:
        rows = self.query("SHOW REPLICA STATUS")
        return rows[0] if rows else None

    def wait(self, predicate_sql: str, timeout: float = 20.0) -> None:
        """Until *predicate_sql* returns a truthy first column (bounded)."""
        deadline = time.monotonic() + timeout
        while True:
            rows = self.query(predicate_sql)
            if rows and next(iter(rows[0].values())):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{self}: {predicate_sql!r} still false after {timeout:g}s")
            time.sleep(0.1)

    def wait_status(self, key: str, value: object, timeout: float = 20.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            st = self.status()
            if st is not None and st.get(key) == value:
                return st
            if time.monotonic() > deadline:
                raise AssertionError(f"{self}: {key} is {st and st.get(key)!r}, not {value!r}")
            time.sleep(0.1)


def prepare_primary(primary: MariaDB, client_host: str = "127.0.0.1") -> None:
    account = f"'{REPL_USER}'@'{client_host}'"
    primary.query(f"CREATE USER {account} IDENTIFIED BY '{REPL_PASSWORD}'")
    primary.query(f"GRANT REPLICATION SLAVE ON *.* TO {account}")
    primary.query("CREATE DATABASE app")
    primary.query("CREATE TABLE app.t (id INT PRIMARY KEY, v VARCHAR(32))")


def replicate(replica: MariaDB, source: MariaDB) -> None:
    """Make *replica* a read-only GTID replica of *source* and wait until it runs."""
    replica.query("SET GLOBAL read_only = ON")
    replica.query(
        "CHANGE MASTER TO MASTER_HOST = %s, MASTER_PORT = %s, MASTER_USER = %s, "
        "MASTER_PASSWORD = %s, MASTER_USE_GTID = slave_pos, MASTER_CONNECT_RETRY = 1",
        (source.bind, source.port, REPL_USER, REPL_PASSWORD),
    )
    replica.query("START REPLICA")
    replica.wait_status("Slave_IO_Running", "Yes")
    replica.wait_status("Slave_SQL_Running", "Yes")


def caught_up(replica: MariaDB, source: MariaDB, timeout: float = 20.0) -> None:
    pos = source.query("SELECT @@global.gtid_binlog_pos AS p")[0]["p"]
    replica.wait(f"SELECT MASTER_GTID_WAIT('{pos}', {timeout}) = 0", timeout=timeout + 5)
