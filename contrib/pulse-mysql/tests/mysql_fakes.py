"""Canned status rows and an in-memory :class:`pulse_mysql.Server` for unit tests."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pulse_mysql.client import MySQLError, Statement
from pulse_mysql.replication import Flavor, ReplicaStatus, flavor_of

MARIADB_VERSION = "10.11.6-MariaDB-0+deb12u1-log"
MYSQL_VERSION = "8.4.3"


def mysql84_row(**overrides: Any) -> dict[str, Any]:
    """A healthy ``SHOW REPLICA STATUS`` row of MySQL 8.4 (its column names)."""
    row: dict[str, Any] = {
        "Replica_IO_State": "Waiting for source to send event",
        "Source_Host": "198.51.100.1",
        "Source_User": "repl",
        "Source_Port": 3306,
        "Connect_Retry": 60,
        "Source_Log_File": "binlog.000007",
        "Read_Source_Log_Pos": 1577,
        "Relay_Log_File": "relay.000003",
        "Relay_Log_Pos": 1793,
        "Relay_Source_Log_File": "binlog.000007",
        "Replica_IO_Running": "Yes",
        "Replica_SQL_Running": "Yes",
        "Last_Errno": 0,
        "Last_Error": "",
        "Skip_Counter": 0,
        "Exec_Source_Log_Pos": 1577,
        "Relay_Log_Space": 2171,
        "Seconds_Behind_Source": 0,
        "Last_IO_Errno": 0,
        "Last_IO_Error": "",
        "Last_SQL_Errno": 0,
        "Last_SQL_Error": "",
        "Replica_SQL_Running_State": "Replica has read all relay log; waiting for more updates",
        "Retrieved_Gtid_Set": "3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5",
        "Executed_Gtid_Set": "3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5",
        "Auto_Position": 1,
        "Channel_Name": "",
    }
    row.update(overrides)
    return row


def mariadb_row(**overrides: Any) -> dict[str, Any]:
    """A healthy ``SHOW REPLICA STATUS`` row of MariaDB 10.11 (``Slave_``/``Master_``)."""
    row: dict[str, Any] = {
        "Slave_IO_State": "Waiting for master to send event",
        "Master_Host": "127.0.0.1",
        "Master_User": "repl",
        "Master_Port": 33061,
        "Connect_Retry": 60,
        "Master_Log_File": "mariadb-bin.000002",
        "Read_Master_Log_Pos": 1024,
        "Relay_Log_File": "relay-bin.000004",
        "Relay_Log_Pos": 1325,
        "Relay_Master_Log_File": "mariadb-bin.000002",
        "Slave_IO_Running": "Yes",
        "Slave_SQL_Running": "Yes",
        "Last_Errno": 0,
        "Last_Error": "",
        "Skip_Counter": 0,
        "Exec_Master_Log_Pos": 1024,
        "Relay_Log_Space": 1935,
        "Seconds_Behind_Master": 0,
        "Last_IO_Errno": 0,
        "Last_IO_Error": "",
        "Last_SQL_Errno": 0,
        "Last_SQL_Error": "",
        "Using_Gtid": "Slave_Pos",
        "Gtid_IO_Pos": "0-1-12",
        "Slave_SQL_Running_State": "Slave has read all relay log; waiting for more updates",
        "Connection_name": "",
    }
    row.update(overrides)
    return row


class FakeServer:
    """Answers replica_status from a script of row lists (the last one repeats)."""

    def __init__(
        self,
        statuses: Sequence[Sequence[dict[str, Any]]] = ((),),
        *,
        version: str = MARIADB_VERSION,
        read_only: bool = True,
        error: MySQLError | None = None,
    ) -> None:
        self.script = [list(rows) for rows in statuses]
        self.version = version
        self.read_only_value = read_only
        self.error = error
        self.executed: list[str] = []
        self.args: list[tuple[object, ...]] = []
        self.status_reads = 0

    @property
    def where(self) -> str:
        return "root@/run/mysqld/mysqld.sock"

    def _raise(self) -> None:
        if self.error is not None:
            raise self.error

    async def flavor(self) -> Flavor:
        self._raise()
        return flavor_of(self.version)

    async def replica_status(self) -> list[ReplicaStatus]:
        self._raise()
        index = min(self.status_reads, len(self.script) - 1)
        self.status_reads += 1
        return [ReplicaStatus.from_row(row) for row in self.script[index]]

    async def read_only(self) -> bool:
        self._raise()
        return self.read_only_value

    async def execute(self, statements: Sequence[Statement]) -> None:
        self._raise()
        for sql, args in statements:
            self.executed.append(sql)
            self.args.append(args)
            if sql.startswith("RESET"):
                self.script = [[]]
                self.status_reads = 0
            if sql == "SET GLOBAL read_only = OFF":
                self.read_only_value = False
            if sql == "SET GLOBAL read_only = ON":
                self.read_only_value = True

    async def binlog_position(self) -> str:
        return "mariadb-bin.000003:342, gtid 0-2-14"
