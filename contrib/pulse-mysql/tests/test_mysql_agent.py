from __future__ import annotations

import pytest
import trio
import trio.testing
from mysql_fakes import MYSQL_VERSION, FakeServer, mariadb_row, mysql84_row
from pulse_mysql.agent import MySQLReplicaAgent
from pulse_mysql.client import MySQLError
from pulse_mysql.replication import Policy
from pulse_mysql.settings import MySQLSettings, Rejoin

from pulse.config.model import ResourceSpec
from pulse.resources import ResourceError

SPEC = ResourceSpec(raw="MySQLReplica", agent="MySQLReplica")
SETTINGS = MySQLSettings(policy=Policy(apply_timeout=5.0))
REFUSED = MySQLError(
    "root@/run/mysqld/mysqld.sock", 2003, "Can't connect ([Errno 111] Connection refused)"
)


def _agent(server: FakeServer, settings: MySQLSettings = SETTINGS) -> MySQLReplicaAgent:
    return MySQLReplicaAgent(SPEC, settings=settings, server=server)


async def test_promoting_a_mariadb_replica_stops_and_resets_replication_then_allows_writes() -> (
    None
):
    server = FakeServer([[mariadb_row()]], read_only=True)
    await _agent(server).start()
    assert server.executed == ["STOP REPLICA", "RESET REPLICA ALL", "SET GLOBAL read_only = OFF"]
    assert await _agent(server).status() is True


async def test_promoting_a_mysql84_replica_also_clears_super_read_only() -> None:
    server = FakeServer([[mysql84_row()]], version=MYSQL_VERSION)
    await _agent(server).start()
    assert server.executed == [
        "STOP REPLICA",
        "RESET REPLICA ALL",
        "SET GLOBAL super_read_only = OFF",
        "SET GLOBAL read_only = OFF",
    ]


async def test_promoting_a_server_that_is_not_a_replica_only_clears_read_only() -> None:
    server = FakeServer([[]])
    await _agent(server).start()
    assert server.executed == ["SET GLOBAL read_only = OFF"]


async def test_promotion_of_a_broken_replica_fails_and_changes_nothing() -> None:
    broken = mariadb_row(
        Slave_SQL_Running="No", Last_SQL_Errno=1062, Last_SQL_Error="Duplicate entry"
    )
    server = FakeServer([[broken]])
    with pytest.raises(ResourceError, match=r"not promoting .*SQL error 1062: Duplicate entry"):
        await _agent(server).start()
    assert server.executed == []


async def test_relay_log_left_after_stop_is_applied_by_the_sql_thread_before_reset(
    autojump_clock: trio.testing.MockClock,
) -> None:
    caught_up = mariadb_row()
    pending = mariadb_row(Read_Master_Log_Pos=2048, Slave_IO_Running="No", Slave_SQL_Running="No")
    applied = mariadb_row(Read_Master_Log_Pos=2048, Exec_Master_Log_Pos=2048)
    # check, "is it a replica", after STOP (pending), then applied
    server = FakeServer([[caught_up], [caught_up], [pending], [pending], [applied]])
    await _agent(server).start()
    assert server.executed == [
        "STOP REPLICA",
        "START REPLICA SQL_THREAD",
        "STOP REPLICA",
        "RESET REPLICA ALL",
        "SET GLOBAL read_only = OFF",
    ]


async def test_relay_log_that_cannot_be_applied_in_time_restarts_replication_and_fails(
    autojump_clock: trio.testing.MockClock,
) -> None:
    caught_up = mariadb_row()
    pending = mariadb_row(Read_Master_Log_Pos=2048, Slave_IO_Running="No")
    server = FakeServer([[caught_up], [caught_up], [pending]])
    start = trio.current_time()
    with pytest.raises(ResourceError, match="relay log still not applied after 5s"):
        await _agent(server).start()
    assert trio.current_time() - start == 5.0
    assert server.executed == ["STOP REPLICA", "START REPLICA SQL_THREAD", "START REPLICA"]


async def test_demotion_makes_the_server_read_only() -> None:
    server = FakeServer([[]], read_only=False)
    await _agent(server).stop()
    assert server.executed == ["SET GLOBAL read_only = ON"]
    assert await _agent(server).status() is False


async def test_demotion_on_mysql_sets_super_read_only_too() -> None:
    server = FakeServer([[]], read_only=False, version=MYSQL_VERSION)
    await _agent(server).stop()
    assert server.executed == ["SET GLOBAL read_only = ON", "SET GLOBAL super_read_only = ON"]


async def test_demotion_with_rejoin_host_replicates_from_it() -> None:
    rejoin = Rejoin(host="198.51.100.100", port=3306, user="repl", password="pw")
    settings = MySQLSettings(rejoin=rejoin)
    server = FakeServer([[]], read_only=False)
    await _agent(server, settings).stop()
    assert server.executed[0] == "SET GLOBAL read_only = ON"
    assert server.executed[1:3] == ["STOP REPLICA", server.executed[2]]
    assert server.executed[2].startswith("CHANGE MASTER TO MASTER_HOST = %s")
    assert server.args[2] == ("198.51.100.100", 3306, "repl", "pw")
    assert server.executed[3] == "START REPLICA"


async def test_stopping_a_read_only_replica_leaves_its_replication_alone() -> None:
    rejoin = Rejoin(host="198.51.100.100", user="repl")
    server = FakeServer([[mariadb_row()]], read_only=True)
    await _agent(server, MySQLSettings(rejoin=rejoin)).stop()
    assert server.executed == []


async def test_stopping_when_mysqld_is_not_running_succeeds() -> None:
    server = FakeServer(error=REFUSED)
    await _agent(server).stop()
    assert await _agent(server).status() is False


async def test_status_that_cannot_be_read_for_another_reason_is_an_error() -> None:
    server = FakeServer(error=MySQLError("x", 2013, "Lost connection to MySQL server during query"))
    with pytest.raises(ResourceError, match=r"cannot tell whether .* is writable"):
        await _agent(server).status()


async def test_a_server_error_during_promotion_becomes_a_resource_error() -> None:
    server = FakeServer(error=MySQLError("x", 1045, "Access denied for user 'root'@'localhost'"))
    with pytest.raises(ResourceError, match="Access denied"):
        await _agent(server).start()


# --------------------------------------------------------------------------- monitor


async def test_monitor_of_a_writable_server_without_replication_is_running() -> None:
    assert await _agent(FakeServer([[]], read_only=False)).monitor(20) is True


async def test_monitor_of_a_read_only_or_stopped_server_is_not_running() -> None:
    assert await _agent(FakeServer([[]], read_only=True)).monitor(20) is False
    assert await _agent(FakeServer(error=REFUSED)).monitor(20) is False


async def test_monitor_reports_a_broken_replication_stream_as_a_failure() -> None:
    broken = mariadb_row(
        Slave_SQL_Running="No", Last_SQL_Errno=1062, Last_SQL_Error="Duplicate entry"
    )
    server = FakeServer([[broken]], read_only=False)
    with pytest.raises(ResourceError, match=r"replication .* is broken: SQL error 1062"):
        await _agent(server).monitor(20)


async def test_monitor_does_not_count_lag_or_a_stream_stopped_without_error() -> None:
    lagging = mariadb_row(Seconds_Behind_Master=9999)
    stopped = mariadb_row(Slave_IO_Running="No", Slave_SQL_Running="No")
    assert await _agent(FakeServer([[lagging]], read_only=False)).monitor(20) is True
    assert await _agent(FakeServer([[stopped]], read_only=False)).monitor(20) is True
