from __future__ import annotations

import pytest
from mysql_fakes import mariadb_row, mysql84_row
from pulse_mysql.client import demote_statements, promote_statements, rejoin_statements
from pulse_mysql.replication import (
    Policy,
    ReplicaStatus,
    Verdict,
    assess,
    flavor_of,
    statements_for,
)


def _assess(*rows: dict[str, object], policy: Policy | None = None) -> tuple[Verdict, str]:
    result = assess([ReplicaStatus.from_row(r) for r in rows], policy or Policy())
    return result.verdict, result.reason


# --------------------------------------------------------------------------- reading rows


def test_mysql84_row_is_read_by_its_replica_and_source_column_names() -> None:
    s = ReplicaStatus.from_row(mysql84_row(Seconds_Behind_Source=7, Read_Source_Log_Pos=2000))
    assert (s.io_running, s.sql_running, s.lag) == ("Yes", "Yes", 7)
    assert (s.read_file, s.read_pos) == ("binlog.000007", 2000)
    assert (s.exec_file, s.exec_pos) == ("binlog.000007", 1577)
    assert s.source_host == "198.51.100.1" and s.source_port == 3306
    assert s.unapplied and s.relay_log_space == 2171


def test_mariadb_row_is_read_by_its_slave_and_master_column_names() -> None:
    s = ReplicaStatus.from_row(mariadb_row(Seconds_Behind_Master=None, Last_SQL_Errno=1062))
    assert (s.io_running, s.sql_running, s.lag, s.sql_errno) == ("Yes", "Yes", None, 1062)
    assert (s.read_file, s.read_pos, s.exec_pos) == ("mariadb-bin.000002", 1024, 1024)
    assert s.using_gtid == "Slave_Pos" and s.gtid_io_pos == "0-1-12"
    assert not s.unapplied


def test_bytes_and_lower_case_column_names_are_read_too() -> None:
    s = ReplicaStatus.from_row({"slave_io_running": b"Connecting", "SECONDS_BEHIND_MASTER": b"12"})
    assert s.io_running == "Connecting" and s.lag == 12


def test_relay_log_in_an_older_binlog_file_is_unapplied_whatever_the_positions() -> None:
    s = ReplicaStatus.from_row(
        mariadb_row(Relay_Master_Log_File="mariadb-bin.000001", Exec_Master_Log_Pos=9999)
    )
    assert s.unapplied


# --------------------------------------------------------------------------- flavours


@pytest.mark.parametrize(
    ("version", "product", "numbers"),
    [
        ("10.11.6-MariaDB-0+deb12u1-log", "mariadb", (10, 11, 6)),
        ("5.5.5-10.3.39-MariaDB-0+deb10u1", "mariadb", (10, 3, 39)),
        ("8.4.3", "mysql", (8, 4, 3)),
        ("8.0.21-0ubuntu0.20.04.4", "mysql", (8, 0, 21)),
    ],
)
def test_flavor_is_read_from_select_version(
    version: str, product: str, numbers: tuple[int, int, int]
) -> None:
    f = flavor_of(version)
    assert (f.product, f.version) == (product, numbers)


def test_mysql84_uses_replica_statements_and_change_replication_source() -> None:
    s = statements_for(flavor_of("8.4.3"))
    assert s.show_status == ("SHOW REPLICA STATUS", "SHOW SLAVE STATUS")
    assert (s.stop, s.reset_all) == ("STOP REPLICA", "RESET REPLICA ALL")
    assert s.change_source == "CHANGE REPLICATION SOURCE TO"
    assert s.binlog_status == "SHOW BINARY LOG STATUS"


def test_old_mysql_only_knows_the_slave_statements() -> None:
    s = statements_for(flavor_of("8.0.21"))
    assert s.show_status == ("SHOW SLAVE STATUS",)
    assert (s.stop, s.reset_all, s.change_source) == (
        "STOP SLAVE",
        "RESET SLAVE ALL",
        "CHANGE MASTER TO",
    )


def test_mariadb_10_5_and_later_say_replica_but_keep_change_master() -> None:
    s = statements_for(flavor_of("10.11.6-MariaDB"))
    assert s.show_status[0] == "SHOW REPLICA STATUS" and s.stop == "STOP REPLICA"
    assert s.change_source == "CHANGE MASTER TO" and s.binlog_status == "SHOW MASTER STATUS"
    assert statements_for(flavor_of("10.4.30-MariaDB")).stop == "STOP SLAVE"


def test_promotion_on_mysql_clears_super_read_only_before_read_only() -> None:
    sql = [s for s, _ in promote_statements(flavor_of("8.4.3"), replica=True)]
    assert sql == [
        "RESET REPLICA ALL",
        "SET GLOBAL super_read_only = OFF",
        "SET GLOBAL read_only = OFF",
    ]


def test_promotion_of_a_mariadb_primary_only_clears_read_only() -> None:
    sql = [s for s, _ in promote_statements(flavor_of("10.11.6-MariaDB"), replica=False)]
    assert sql == ["SET GLOBAL read_only = OFF"]


def test_demotion_sets_read_only_then_super_read_only_on_mysql() -> None:
    assert [s for s, _ in demote_statements(flavor_of("8.4.3"))] == [
        "SET GLOBAL read_only = ON",
        "SET GLOBAL super_read_only = ON",
    ]
    assert [s for s, _ in demote_statements(flavor_of("10.11.6-MariaDB"))] == [
        "SET GLOBAL read_only = ON"
    ]


def test_rejoin_passes_credentials_as_parameters_never_in_the_sql_text() -> None:
    stmts = rejoin_statements(
        flavor_of("10.11.6-MariaDB"),
        host="198.51.100.100",
        port=3306,
        user="repl",
        password="s3cr'et",
        gtid="current_pos",
    )
    change_sql, change_args = stmts[1]
    assert stmts[0][0] == "STOP REPLICA" and stmts[2][0] == "START REPLICA"
    assert change_sql == (
        "CHANGE MASTER TO MASTER_HOST = %s, MASTER_PORT = %s, MASTER_USER = %s, "
        "MASTER_PASSWORD = %s, MASTER_USE_GTID = current_pos"
    )
    assert "s3cr" not in change_sql and change_args == ("198.51.100.100", 3306, "repl", "s3cr'et")


def test_rejoin_on_mysql84_uses_source_auto_position() -> None:
    stmts = rejoin_statements(
        flavor_of("8.4.3"), host="h", port=3306, user="u", password="p", gtid="auto_position"
    )
    assert stmts[1][0].startswith("CHANGE REPLICATION SOURCE TO SOURCE_HOST = %s")
    assert stmts[1][0].endswith("SOURCE_AUTO_POSITION = 1")


# --------------------------------------------------------------------------- the verdict


@pytest.mark.parametrize("row", [mysql84_row, mariadb_row])
def test_healthy_caught_up_replica_may_be_promoted(row: object) -> None:
    assert callable(row)
    assert _assess(row())[0] is Verdict.ALLOW


def test_server_that_is_not_a_replica_is_allowed_by_default() -> None:
    assert assess([], Policy()).verdict is Verdict.ALLOW


def test_server_that_is_not_a_replica_is_refused_when_configured() -> None:
    result = assess([], Policy(allow_not_replica=False))
    assert result.verdict is Verdict.REFUSE and "not configured as a replica" in result.reason


def test_sql_error_refuses_with_the_error_text() -> None:
    verdict, reason = _assess(
        mariadb_row(
            Slave_SQL_Running="No",
            Last_Errno=1062,
            Last_Error="Duplicate entry '1' for key 'PRIMARY'",
            Last_SQL_Errno=1062,
            Last_SQL_Error="Duplicate entry '1' for key 'PRIMARY'",
        )
    )
    assert verdict is Verdict.REFUSE
    assert reason == (
        "replication from 127.0.0.1:33061 is broken: SQL error 1062: "
        "Duplicate entry '1' for key 'PRIMARY'"
    )


def test_ignored_sql_errno_does_not_refuse() -> None:
    row = mysql84_row(Last_SQL_Errno=1062, Last_Errno=1062, Last_SQL_Error="dup")
    assert _assess(row, policy=Policy(ignore_errnos=frozenset({1062})))[0] is Verdict.ALLOW


def test_io_thread_reconnecting_to_a_dead_source_is_the_normal_takeover_case() -> None:
    row = mariadb_row(
        Slave_IO_Running="Connecting",
        Last_IO_Errno=2003,
        Last_IO_Error="error reconnecting to master 'repl@127.0.0.1:33061' - retry-time: 60",
        Seconds_Behind_Master=None,
    )
    assert _assess(row)[0] is Verdict.ALLOW


def test_io_error_other_than_unreachable_source_refuses() -> None:
    verdict, reason = _assess(
        mysql84_row(
            Replica_IO_Running="No",
            Last_IO_Errno=13114,
            Last_IO_Error="Got fatal error 1236 from source when reading data from binary log",
        )
    )
    assert verdict is Verdict.REFUSE and "IO error 13114" in reason


def test_io_thread_stopped_by_hand_refuses_because_the_copy_may_be_old() -> None:
    verdict, reason = _assess(mariadb_row(Slave_IO_Running="No", Seconds_Behind_Master=None))
    assert verdict is Verdict.REFUSE
    assert "IO thread not running, no error" in reason and "START REPLICA" in reason


def test_stopped_replication_is_allowed_when_configured() -> None:
    row = mariadb_row(Slave_IO_Running="No", Slave_SQL_Running="No")
    assert _assess(row, policy=Policy(allow_stopped=True))[0] is Verdict.ALLOW


def test_lag_past_max_lag_refuses_at_once() -> None:
    row = mysql84_row(Seconds_Behind_Source=400, Read_Source_Log_Pos=9000)
    verdict, reason = _assess(row, policy=Policy(max_lag=300))
    assert verdict is Verdict.REFUSE
    assert reason == "replica from 198.51.100.1:3306 is 400s behind its source (max_lag 300s)"


def test_lag_exactly_at_max_lag_is_not_refused() -> None:
    assert _assess(mysql84_row(Seconds_Behind_Source=300), policy=Policy(max_lag=300))[0] is (
        Verdict.ALLOW
    )


def test_unapplied_relay_log_with_the_sql_thread_running_means_wait() -> None:
    verdict, reason = _assess(mariadb_row(Read_Master_Log_Pos=5000, Seconds_Behind_Master=4))
    assert verdict is Verdict.WAIT
    assert "applied mariadb-bin.000002:1024, read mariadb-bin.000002:5000" in reason
    assert "4s behind" in reason


def test_unapplied_relay_log_with_the_sql_thread_stopped_refuses() -> None:
    row = mariadb_row(Read_Master_Log_Pos=5000, Slave_SQL_Running="No")
    verdict, reason = _assess(row, policy=Policy(allow_stopped=True))
    assert verdict is Verdict.REFUSE and "will not apply" in reason


def test_any_refusing_channel_wins_over_waiting_and_allowing() -> None:
    ok = mysql84_row(Channel_Name="a")
    waiting = mysql84_row(Channel_Name="b", Read_Source_Log_Pos=9000)
    broken = mysql84_row(Channel_Name="c", Last_SQL_Errno=1146, Last_SQL_Error="no table")
    assert _assess(ok, waiting)[0] is Verdict.WAIT
    verdict, reason = _assess(ok, waiting, broken)
    assert verdict is Verdict.REFUSE and "channel 'c'" in reason
