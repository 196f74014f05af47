"""Against real MariaDB servers on loopback (skipped without mariadb-server)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import pytest
import trio
from mariadb_lab import REPL_PASSWORD, REPL_USER, MariaDB, caught_up
from pulse_mysql.agent import MySQLReplicaAgent
from pulse_mysql.check import ReplicationCheck
from pulse_mysql.client import PyMySQLServer
from pulse_mysql.replication import Policy
from pulse_mysql.settings import Connection, MySQLSettings, Rejoin

from pulse.config.model import ResourceGroup, ResourceSpec
from pulse.resources import ResourceError

pytestmark = pytest.mark.slow

T = TypeVar("T")
SPEC = ResourceSpec(raw="MySQLReplica", agent="MySQLReplica")


async def blocking(fn: Callable[..., T], *args: Any) -> T:
    return await trio.to_thread.run_sync(functools.partial(fn, *args))


def settings_for(server: MariaDB, **policy: Any) -> MySQLSettings:
    return MySQLSettings(
        connection=Connection(host="127.0.0.1", port=server.port, user="root", password=""),
        policy=Policy(**{"apply_timeout": 2.0, **policy}),
        poll_interval=0.2,
    )


def check_for(server: MariaDB, **policy: Any) -> ReplicationCheck:
    settings = settings_for(server, **policy)
    return ReplicationCheck(
        group="MySQLReplica", settings=settings, server=PyMySQLServer(settings.connection)
    )


GROUP = ResourceGroup(
    node="node01",
    resources=(SPEC, ResourceSpec(raw="198.51.100.100", agent="IPaddr", args=("198.51.100.100",))),
)


async def run_check(server: MariaDB, **policy: Any) -> str | None:
    check = check_for(server, **policy)
    assert check.applies_to(GROUP)
    with trio.fail_after(check.timeout):
        return await check.check(GROUP)


async def test_healthy_mariadb_replica_passes_the_takeover_check(
    mariadb_pair: tuple[MariaDB, MariaDB],
) -> None:
    primary, replica = mariadb_pair
    await blocking(primary.query, "INSERT INTO app.t VALUES (1, 'one')")
    await blocking(caught_up, replica, primary)
    assert await run_check(replica) is None


async def test_primary_that_is_not_a_replica_passes_the_takeover_check(
    mariadb_pair: tuple[MariaDB, MariaDB],
) -> None:
    primary, _ = mariadb_pair
    assert await run_check(primary) is None
    refusal = await run_check(primary, allow_not_replica=False)
    assert refusal is not None and "not configured as a replica" in refusal


async def test_replica_with_its_io_thread_stopped_is_refused(
    mariadb_pair: tuple[MariaDB, MariaDB],
) -> None:
    _, replica = mariadb_pair
    await blocking(replica.query, "STOP REPLICA IO_THREAD")
    await blocking(replica.wait_status, "Slave_IO_Running", "No")
    refusal = await run_check(replica)
    assert refusal is not None
    assert (
        f"replication from 127.0.0.1:{mariadb_pair[0].port} was stopped (IO thread not running"
        in refusal
    )


async def test_replica_with_a_sql_error_is_refused_with_the_error(
    mariadb_pair: tuple[MariaDB, MariaDB],
) -> None:
    primary, replica = mariadb_pair
    await blocking(caught_up, replica, primary)
    # A row written on the replica by hand: the same row from the primary then collides.
    await blocking(replica.query, "INSERT INTO app.t VALUES (7, 'replica')")
    await blocking(primary.query, "INSERT INTO app.t VALUES (7, 'primary')")
    await blocking(replica.wait_status, "Slave_SQL_Running", "No")
    refusal = await run_check(replica)
    assert refusal is not None and "is broken: SQL error 1062" in refusal
    assert "Duplicate entry '7'" in refusal


async def _delay_replication(replica: MariaDB, seconds: int) -> None:
    await blocking(replica.query, "STOP REPLICA")
    await blocking(replica.query, f"CHANGE MASTER TO MASTER_DELAY = {seconds}")
    await blocking(replica.query, "START REPLICA")
    await blocking(replica.wait_status, "Slave_SQL_Running", "Yes")


async def _wait_read_ahead(replica: MariaDB) -> None:
    """Until the IO thread has read more than the SQL thread applied (bounded)."""
    with trio.fail_after(20):
        while True:
            st = await blocking(replica.status)
            if st and int(st["Read_Master_Log_Pos"]) > int(st["Exec_Master_Log_Pos"]):
                return
            await trio.sleep(0.05)


async def test_replica_with_unapplied_relay_log_is_refused_after_apply_timeout(
    mariadb_pair: tuple[MariaDB, MariaDB],
) -> None:
    primary, replica = mariadb_pair
    await blocking(caught_up, replica, primary)
    await _delay_replication(replica, 3600)  # the SQL thread holds events back for an hour
    await blocking(primary.query, "INSERT INTO app.t VALUES (2, 'two')")
    await _wait_read_ahead(replica)
    start = trio.current_time()
    refusal = await run_check(replica, apply_timeout=1.0)
    assert trio.current_time() - start >= 1.0
    assert refusal is not None and "has not applied its relay log yet" in refusal
    assert refusal.endswith("still so after waiting 1s (apply_timeout)")


async def test_replica_with_its_sql_thread_stopped_behind_is_refused(
    mariadb_pair: tuple[MariaDB, MariaDB],
) -> None:
    primary, replica = mariadb_pair
    await blocking(caught_up, replica, primary)
    await blocking(replica.query, "STOP REPLICA SQL_THREAD")
    await blocking(replica.wait_status, "Slave_SQL_Running", "No")
    await blocking(primary.query, "INSERT INTO app.t VALUES (3, 'three')")
    await _wait_read_ahead(replica)
    refusal = await run_check(replica)
    assert refusal is not None and "SQL thread not running" in refusal
    refusal = await run_check(replica, allow_stopped=True)
    assert refusal is not None and "has relay log it will not apply" in refusal


async def test_takeover_waits_for_a_lagging_sql_thread_and_then_passes(
    mariadb_pair: tuple[MariaDB, MariaDB],
) -> None:
    primary, replica = mariadb_pair
    await blocking(caught_up, replica, primary)
    await _delay_replication(replica, 2)
    await blocking(primary.query, "INSERT INTO app.t VALUES (9, 'nine')")
    await _wait_read_ahead(replica)
    start = trio.current_time()
    assert await run_check(replica, apply_timeout=20.0) is None
    assert trio.current_time() - start > 0.2  # it did wait
    rows = await blocking(replica.query, "SELECT v FROM app.t WHERE id = 9")
    assert rows == [{"v": "nine"}]


async def test_promotion_makes_the_replica_writable_and_stops_replication(
    mariadb_pair: tuple[MariaDB, MariaDB],
) -> None:
    primary, replica = mariadb_pair
    await blocking(primary.query, "INSERT INTO app.t VALUES (4, 'four')")
    await blocking(caught_up, replica, primary)
    settings = settings_for(replica)
    agent = MySQLReplicaAgent(SPEC, settings=settings, server=PyMySQLServer(settings.connection))
    assert await agent.status() is False
    await agent.start()
    assert await agent.status() is True
    assert await blocking(replica.status) is None
    assert (await blocking(replica.query, "SELECT @@global.read_only AS r"))[0]["r"] == 0
    # Writes on the old primary no longer reach it.
    await blocking(primary.query, "INSERT INTO app.t VALUES (5, 'lost')")
    await trio.sleep(0.5)
    assert await blocking(replica.query, "SELECT id FROM app.t ORDER BY id") == [{"id": 4}]
    # Promoting again is harmless: not a replica any more, already writable.
    await agent.start()


async def test_promotion_of_a_broken_replica_fails_and_leaves_it_read_only(
    mariadb_pair: tuple[MariaDB, MariaDB],
) -> None:
    _, replica = mariadb_pair
    await blocking(replica.query, "STOP REPLICA IO_THREAD")
    await blocking(replica.wait_status, "Slave_IO_Running", "No")
    settings = settings_for(replica)
    agent = MySQLReplicaAgent(SPEC, settings=settings, server=PyMySQLServer(settings.connection))
    with pytest.raises(ResourceError, match="not promoting"):
        await agent.start()
    assert await agent.status() is False
    assert await blocking(replica.status) is not None


async def test_demotion_makes_the_server_read_only_and_rejoins_the_new_primary(
    mariadb_pair: tuple[MariaDB, MariaDB],
) -> None:
    primary, replica = mariadb_pair
    await blocking(primary.query, "INSERT INTO app.t VALUES (6, 'six')")
    await blocking(caught_up, replica, primary)
    # Switch-over: the old primary is demoted and follows the replica, which is promoted.
    await blocking(
        replica.query,
        f"CREATE USER IF NOT EXISTS '{REPL_USER}'@'127.0.0.1' IDENTIFIED BY '{REPL_PASSWORD}'",
    )
    await blocking(replica.query, f"GRANT REPLICATION SLAVE ON *.* TO '{REPL_USER}'@'127.0.0.1'")
    old = settings_for(primary)
    old_agent = MySQLReplicaAgent(
        SPEC,
        settings=MySQLSettings(
            connection=old.connection,
            policy=old.policy,
            rejoin=Rejoin(
                host="127.0.0.1", port=replica.port, user=REPL_USER, password=REPL_PASSWORD
            ),
        ),
        server=PyMySQLServer(old.connection),
    )
    new = settings_for(replica)
    new_agent = MySQLReplicaAgent(SPEC, settings=new, server=PyMySQLServer(new.connection))

    assert await old_agent.status() is True
    await old_agent.stop()
    assert await old_agent.status() is False
    await new_agent.start()
    await blocking(replica.query, "INSERT INTO app.t VALUES (8, 'from the new primary')")
    await blocking(primary.wait_status, "Slave_IO_Running", "Yes")
    await blocking(caught_up, primary, replica)
    rows = await blocking(primary.query, "SELECT v FROM app.t WHERE id = 8")
    assert rows == [{"v": "from the new primary"}]
    # The demoted server now passes the check itself: it is a healthy replica.
    assert await run_check(primary) is None
    # Stopping it again leaves its replication alone.
    await old_agent.stop()
    assert (await blocking(primary.status) or {}).get("Slave_IO_Running") == "Yes"


async def test_the_documented_mariadb_grants_are_enough_to_check_promote_and_demote(
    mariadb_pair: tuple[MariaDB, MariaDB],
) -> None:
    primary, replica = mariadb_pair
    await blocking(caught_up, replica, primary)
    for sql in (
        "CREATE USER 'pulse'@'127.0.0.1' IDENTIFIED BY 'pulse-pw'",
        "GRANT READ_ONLY ADMIN, REPLICATION SLAVE ADMIN, SLAVE MONITOR, BINLOG MONITOR, "
        "RELOAD ON *.* TO 'pulse'@'127.0.0.1'",
    ):
        await blocking(replica.query, sql)
    connection = Connection(host="127.0.0.1", port=replica.port, user="pulse", password="pulse-pw")
    settings = MySQLSettings(connection=connection, policy=Policy(apply_timeout=2.0))
    server = PyMySQLServer(connection)
    check = ReplicationCheck(group="MySQLReplica", settings=settings, server=server)
    assert await check.check(GROUP) is None
    agent = MySQLReplicaAgent(SPEC, settings=settings, server=server)
    await agent.start()
    assert await agent.status() is True
    await agent.stop()
    assert await agent.status() is False
