from __future__ import annotations

import trio
import trio.testing
from mysql_fakes import FakeServer, mariadb_row
from pulse_mysql.check import ReplicationCheck, wait_promotable
from pulse_mysql.client import MySQLError
from pulse_mysql.replication import Policy
from pulse_mysql.settings import MySQLSettings

from pulse.config.model import ResourceGroup, ResourceSpec
from pulse.plugin.bus import PluginStats, run_checks

SETTINGS = MySQLSettings(policy=Policy(apply_timeout=10.0), poll_interval=1.0)
BEHIND = mariadb_row(Read_Master_Log_Pos=5000, Seconds_Behind_Master=3)
CAUGHT_UP = mariadb_row(Read_Master_Log_Pos=5000, Exec_Master_Log_Pos=5000)


def _group(*words: str) -> ResourceGroup:
    return ResourceGroup(
        node="node01",
        resources=tuple(ResourceSpec(raw=w, agent=w.split("::")[0]) for w in words),
    )


async def test_caught_up_replica_is_allowed_at_once() -> None:
    server = FakeServer([[CAUGHT_UP]])
    assert await wait_promotable(server, SETTINGS) is None
    assert server.status_reads == 1


async def test_takeover_waits_for_the_sql_thread_to_apply_the_relay_log(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = FakeServer([[BEHIND], [BEHIND], [BEHIND], [CAUGHT_UP]])
    start = trio.current_time()
    assert await wait_promotable(server, SETTINGS) is None
    assert trio.current_time() - start == 3.0  # three polls, one second apart


async def test_relay_log_still_unapplied_after_apply_timeout_refuses_then(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = FakeServer([[BEHIND]])
    start = trio.current_time()
    refusal = await wait_promotable(server, SETTINGS)
    assert trio.current_time() - start == 10.0
    assert refusal is not None
    assert "has not applied its relay log yet" in refusal
    assert refusal.endswith("still so after waiting 10s (apply_timeout)")
    assert server.status_reads == 11


async def test_zero_apply_timeout_decides_on_the_first_look(
    autojump_clock: trio.testing.MockClock,
) -> None:
    settings = MySQLSettings(policy=Policy(apply_timeout=0.0))
    server = FakeServer([[BEHIND]])
    start = trio.current_time()
    assert await wait_promotable(server, settings) is not None
    assert trio.current_time() == start and server.status_reads == 1


async def test_error_appearing_while_waiting_refuses_without_waiting_longer(
    autojump_clock: trio.testing.MockClock,
) -> None:
    broken = mariadb_row(Slave_SQL_Running="No", Last_SQL_Errno=1146, Last_SQL_Error="no table")
    server = FakeServer([[BEHIND], [broken]])
    start = trio.current_time()
    refusal = await wait_promotable(server, SETTINGS)
    assert refusal is not None and "SQL error 1146: no table" in refusal
    assert trio.current_time() - start == 1.0


async def test_unreachable_server_refuses_with_the_connection_error() -> None:
    error = MySQLError(
        "root@/run/mysqld/mysqld.sock", 2003, "Can't connect ([Errno 2] No such file or directory)"
    )
    refusal = await wait_promotable(FakeServer(error=error), SETTINGS)
    assert refusal is not None and refusal.startswith("cannot read the replication status: ")
    assert "error 2003" in refusal


def test_check_applies_only_to_its_own_group() -> None:
    check = ReplicationCheck(group="MySQLReplica", settings=SETTINGS, server=FakeServer())
    assert check.applies_to(_group("MySQLReplica", "198.51.100.100"))
    assert not check.applies_to(_group("198.51.100.101", "apache2"))


def test_check_timeout_covers_the_apply_wait_and_the_connections() -> None:
    check = ReplicationCheck(group="g", settings=SETTINGS, server=FakeServer())
    c = SETTINGS.connection
    assert (
        check.timeout == 10.0 + 2 * (c.connect_timeout + 2 * c.read_timeout + c.write_timeout) + 1
    )


async def test_core_reports_the_refusal_with_the_check_name_and_the_server() -> None:
    broken = mariadb_row(Slave_IO_Running="No")
    check = ReplicationCheck(group="MySQLReplica", settings=SETTINGS, server=FakeServer([[broken]]))
    stats: dict[str, PluginStats] = {}
    refusal = await run_checks([check], _group("MySQLReplica", "198.51.100.100"), stats)
    assert refusal is not None
    assert refusal.startswith(
        "mysql: root@/run/mysqld/mysqld.sock: replication from 127.0.0.1:33061 was stopped"
    )
    assert stats["mysql"].failures == 1
