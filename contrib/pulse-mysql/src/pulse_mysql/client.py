"""Talking to mysqld: PyMySQL in worker threads, every call under a timeout.

PyMySQL blocks, so each conversation (connect, a few statements, close) runs as one
function in ``trio.to_thread.run_sync``. The connection never leaves its thread: when
the caller is cancelled the thread is abandoned and still closes its own connection,
bounded by PyMySQL's connect/read/write timeouts. :class:`Server` is the seam the
check and the agent use, so they are tested with a fake server.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import socket
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

import pymysql
import pymysql.cursors
import trio

from pulse_mysql.replication import (
    Flavor,
    ReplicaStatus,
    Statements,
    flavor_of,
    has_super_read_only,
    statements_for,
)
from pulse_mysql.settings import DEFAULT_SOCKET, Connection

log = logging.getLogger("pulse.plugin.host.mysql")

T = TypeVar("T")
Statement = tuple[str, tuple[object, ...]]

ER_PARSE_ERROR = 1064
_DOWN_WORDS = ("Connection refused", "No such file or directory", "[Errno 111]", "[Errno 2]")


class MySQLError(Exception):
    """A failed conversation with mysqld; ``errno`` is the server/client error number."""

    def __init__(self, where: str, errno: int, text: str) -> None:
        self.where = where
        self.errno = errno
        self.text = text
        super().__init__(f"{where}: error {errno}: {text}" if errno else f"{where}: {text}")

    @property
    def down(self) -> bool:
        """True when mysqld is certainly not running (refused / no socket), not a timeout."""
        return self.errno in (2002, 2003) and any(w in self.text for w in _DOWN_WORDS)


class Server(Protocol):
    """What the takeover check and the agent need from a mysqld."""

    @property
    def where(self) -> str: ...

    async def flavor(self) -> Flavor: ...

    async def replica_status(self) -> list[ReplicaStatus]: ...

    async def read_only(self) -> bool: ...

    async def execute(self, statements: Sequence[Statement]) -> None: ...

    async def binlog_position(self) -> str: ...


class PyMySQLServer:
    """A :class:`Server` reached with PyMySQL, one connection per conversation."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self._flavor: Flavor | None = None

    @property
    def where(self) -> str:
        return self.connection.where

    def __repr__(self) -> str:
        return f"PyMySQLServer({self.where})"

    # ------------------------------------------------------------------ plumbing

    def _connect(self) -> pymysql.connections.Connection[Any]:
        c = self.connection
        kwargs: dict[str, Any] = {
            "user": c.user,
            "password": c.password or "",
            "connect_timeout": c.connect_timeout,
            "read_timeout": c.read_timeout,
            "write_timeout": c.write_timeout,
            "autocommit": True,
            "cursorclass": pymysql.cursors.DictCursor,
            "charset": "utf8mb4",
        }
        if c.host:
            return pymysql.connect(host=c.host, port=c.port, **kwargs)
        # PyMySQL leaks the socket when connecting to a unix socket fails (mysqld down),
        # so the socket is connected here and handed over.
        path = c.socket or DEFAULT_SOCKET
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(c.connect_timeout)
            sock.connect(path)
        except OSError as exc:
            sock.close()
            raise MySQLError(
                self.where, 2002, f"Can't connect to local server through socket {path!r} ({exc})"
            ) from None
        conn = pymysql.connect(unix_socket=path, defer_connect=True, **kwargs)
        conn.connect(sock)  # closes the socket itself if the handshake fails
        return conn

    def _conversation(self, work: Callable[[pymysql.connections.Connection[Any]], T]) -> T:
        try:
            conn = self._connect()
        except pymysql.MySQLError as exc:
            raise _error(self.where, exc) from None
        except OSError as exc:
            raise MySQLError(self.where, 2003, str(exc)) from None
        try:
            return work(conn)
        except pymysql.MySQLError as exc:
            raise _error(self.where, exc) from None
        except OSError as exc:
            raise MySQLError(self.where, 2013, str(exc)) from None
        finally:
            with contextlib.suppress(Exception):  # closing a broken connection
                conn.close()

    async def _call(self, work: Callable[[pymysql.connections.Connection[Any]], T]) -> T:
        limit = self.connection.call_timeout + 1.0
        try:
            with trio.fail_after(limit):
                return await trio.to_thread.run_sync(
                    functools.partial(self._conversation, work), abandon_on_cancel=True
                )
        except trio.TooSlowError:
            raise MySQLError(self.where, 0, f"no answer within {limit:g}s") from None

    def _flavor_in(self, conn: pymysql.connections.Connection[Any]) -> Flavor:
        if self._flavor is None:
            rows = _query(conn, "SELECT VERSION() AS version")
            self._flavor = flavor_of(str(rows[0]["version"]) if rows else "")
        return self._flavor

    def _statements_in(self, conn: pymysql.connections.Connection[Any]) -> Statements:
        return statements_for(self._flavor_in(conn))

    # ------------------------------------------------------------------ Server

    async def flavor(self) -> Flavor:
        return await self._call(self._flavor_in)

    async def replica_status(self) -> list[ReplicaStatus]:
        def work(conn: pymysql.connections.Connection[Any]) -> list[ReplicaStatus]:
            stmts = self._statements_in(conn)
            last: pymysql.MySQLError | None = None
            for sql in stmts.show_status:
                try:
                    return [ReplicaStatus.from_row(row) for row in _query(conn, sql)]
                except pymysql.err.ProgrammingError as exc:
                    if exc.args and exc.args[0] == ER_PARSE_ERROR:
                        last = exc  # an older server: try the next spelling
                        continue
                    raise
            assert last is not None
            raise last

        return await self._call(work)

    async def read_only(self) -> bool:
        def work(conn: pymysql.connections.Connection[Any]) -> bool:
            rows = _query(conn, "SELECT @@global.read_only AS read_only")
            return bool(rows and int(str(rows[0]["read_only"])) != 0)

        return await self._call(work)

    async def execute(self, statements: Sequence[Statement]) -> None:
        def work(conn: pymysql.connections.Connection[Any]) -> None:
            with conn.cursor() as cur:
                for sql, args in statements:
                    cur.execute(sql, args or None)

        await self._call(work)

    async def binlog_position(self) -> str:
        def work(conn: pymysql.connections.Connection[Any]) -> str:
            stmts = self._statements_in(conn)
            rows = _query(conn, stmts.binlog_status)
            flavor = self._flavor_in(conn)
            gtid_sql = (
                "SELECT @@global.gtid_binlog_pos AS gtid"
                if flavor.mariadb
                else "SELECT @@global.gtid_executed AS gtid"
            )
            try:
                gtid = _query(conn, gtid_sql)
            except pymysql.MySQLError:
                gtid = []
            parts = []
            if rows:
                parts.append(f"{rows[0].get('File', '?')}:{rows[0].get('Position', '?')}")
            else:
                parts.append("binary log off")
            if gtid and gtid[0].get("gtid"):
                parts.append(f"gtid {gtid[0]['gtid']}")
            return ", ".join(parts)

        return await self._call(work)


def _query(conn: pymysql.connections.Connection[Any], sql: str) -> list[dict[str, Any]]:
    with conn.cursor() as cur:
        cur.execute(sql)
        return list(cur.fetchall())


def _error(where: str, exc: pymysql.MySQLError) -> MySQLError:
    args = exc.args
    if len(args) >= 2 and isinstance(args[0], int):
        return MySQLError(where, args[0], str(args[1]))
    return MySQLError(where, 0, str(exc) or type(exc).__name__)


# --------------------------------------------------------------------------- statements


def promote_statements(flavor: Flavor, *, replica: bool) -> list[Statement]:
    """Forget the (already stopped) replication when a replica, then allow writes."""
    stmts = statements_for(flavor)
    out: list[Statement] = []
    if replica:
        out.append((stmts.reset_all, ()))
    if has_super_read_only(flavor):
        out.append(("SET GLOBAL super_read_only = OFF", ()))
    out.append(("SET GLOBAL read_only = OFF", ()))
    return out


def demote_statements(flavor: Flavor) -> list[Statement]:
    """Make the server read-only (``super_read_only`` too on MySQL)."""
    out: list[Statement] = [("SET GLOBAL read_only = ON", ())]
    if has_super_read_only(flavor):
        out.append(("SET GLOBAL super_read_only = ON", ()))
    return out


def rejoin_statements(
    flavor: Flavor, *, host: str, port: int, user: str, password: str, gtid: str
) -> list[Statement]:
    """Point replication at *host* and start it (after a demotion)."""
    stmts = statements_for(flavor)
    w_host, w_port, w_user, w_password, w_gtid = stmts.source_words
    options = f"{w_host} = %s, {w_port} = %s, {w_user} = %s, {w_password} = %s"
    args: tuple[object, ...] = (host, port, user, password)
    if gtid != "off":
        if flavor.mariadb:
            mode = "slave_pos" if gtid == "slave_pos" else "current_pos"
            options += f", {w_gtid} = {mode}"
        else:
            options += f", {w_gtid} = 1"
    return [(stmts.stop, ()), (f"{stmts.change_source} {options}", args), (stmts.start, ())]
