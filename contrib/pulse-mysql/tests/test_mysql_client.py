"""The real client against a mysqld that is not there (no server needed)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from pulse_mysql.agent import MySQLReplicaAgent
from pulse_mysql.check import wait_promotable
from pulse_mysql.client import MySQLError, PyMySQLServer
from pulse_mysql.settings import Connection, MySQLSettings

from pulse.config.model import ResourceSpec
from pulse.resources import ResourceError

SPEC = ResourceSpec(raw="MySQLReplica", agent="MySQLReplica")


def _agent(connection: Connection) -> MySQLReplicaAgent:
    settings = MySQLSettings(connection=connection)
    return MySQLReplicaAgent(SPEC, settings=settings, server=PyMySQLServer(connection))


async def test_missing_unix_socket_means_mysqld_is_down(tmp_path: Path) -> None:
    connection = Connection(socket=str(tmp_path / "mysqld.sock"), connect_timeout=1)
    server = PyMySQLServer(connection)
    with pytest.raises(MySQLError) as info:
        await server.read_only()
    assert info.value.errno == 2002 and info.value.down
    assert "No such file or directory" in str(info.value)
    agent = _agent(connection)
    assert await agent.status() is False
    await agent.stop()  # nothing to demote


async def test_refused_tcp_connection_means_mysqld_is_down() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once closed
    connection = Connection(host="127.0.0.1", port=port, connect_timeout=1)
    assert await _agent(connection).status() is False
    refusal = await wait_promotable(PyMySQLServer(connection), MySQLSettings(connection=connection))
    assert refusal is not None and refusal.startswith("cannot read the replication status: ")
    assert f"root@127.0.0.1:{port}: error 2003" in refusal


async def test_promotion_without_a_server_fails_with_the_connection_error(tmp_path: Path) -> None:
    connection = Connection(socket=str(tmp_path / "mysqld.sock"), connect_timeout=1)
    with pytest.raises(ResourceError, match=r"promotion failed: .*error 2002: .*No such file"):
        await _agent(connection).start()


async def test_server_that_accepts_but_never_answers_times_out(tmp_path: Path) -> None:
    path = str(tmp_path / "silent.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(path)
        listener.listen(4)  # accepted by the kernel, never greeted
        connection = Connection(socket=path, connect_timeout=1, read_timeout=0.5)
        agent = _agent(connection)
        with pytest.raises(ResourceError, match=r"cannot tell whether .* is writable"):
            await agent.status()
