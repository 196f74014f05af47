"""Pure replication logic: server flavours, statements, status rows, and the verdict.

Nothing here talks to a server. :func:`flavor_of` reads ``SELECT VERSION()``,
:class:`Statements` spells each operation for that server (MySQL 8.4 removed the
``SLAVE``/``MASTER`` forms, MariaDB keeps ``CHANGE MASTER`` and the ``Slave_*`` column
names), :meth:`ReplicaStatus.from_row` reads one ``SHOW REPLICA STATUS`` row by column
name in either spelling, and :func:`assess` decides whether a replica may be promoted.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

# Client/server error numbers that mean "the source cannot be reached", which is what a
# replica sees when the primary it would replace has died: not a reason to refuse.
CONNECTION_ERRNOS = frozenset(
    {
        1040,  # ER_CON_COUNT_ERROR: too many connections
        1158,  # ER_NET_READ_ERROR
        1159,  # ER_NET_READ_INTERRUPTED
        1160,  # ER_NET_ERROR_ON_WRITE
        1161,  # ER_NET_WRITE_INTERRUPTED
        2002,  # CR_CONNECTION_ERROR (socket)
        2003,  # CR_CONN_HOST_ERROR: can't connect
        2005,  # CR_UNKNOWN_HOST
        2006,  # CR_SERVER_GONE_ERROR
        2013,  # CR_SERVER_LOST
    }
)


# --------------------------------------------------------------------------- flavours


@dataclass(frozen=True, slots=True, kw_only=True)
class Flavor:
    """Which server we talk to: ``mariadb`` or ``mysql``, and its version."""

    product: str
    version: tuple[int, int, int]
    text: str = ""

    @property
    def mariadb(self) -> bool:
        return self.product == "mariadb"

    def __str__(self) -> str:
        return self.text or f"{self.product} {'.'.join(map(str, self.version))}"


_VERSION = re.compile(r"(\d+)\.(\d+)\.(\d+)")


def flavor_of(version: str) -> Flavor:
    """The flavour named by ``SELECT VERSION()`` (``10.11.6-MariaDB-0+deb12u1``, ``8.4.3``)."""
    text = version.strip()
    found = [(int(a), int(b), int(c)) for a, b, c in _VERSION.findall(text)]
    numbers = found[0] if found else (0, 0, 0)
    if "mariadb" in text.lower():
        # MariaDB 10.x announced itself as "5.5.5-10.x.y-MariaDB" to old clients.
        if text.startswith("5.5.5-") and len(found) > 1:
            numbers = found[1]
        return Flavor(product="mariadb", version=numbers, text=text)
    return Flavor(product="mysql", version=numbers, text=text)


@dataclass(frozen=True, slots=True, kw_only=True)
class Statements:
    """The SQL for each replication operation on one flavour."""

    show_status: tuple[str, ...]  # in order of preference; fall back on a syntax error
    stop: str
    start: str
    start_sql: str
    reset_all: str
    change_source: str  # prefix; options follow
    binlog_status: str
    source_words: tuple[str, str, str, str, str]  # HOST, PORT, USER, PASSWORD, GTID option


def statements_for(flavor: Flavor) -> Statements:
    v = flavor.version
    if flavor.mariadb:
        replica = v >= (10, 5, 1)
        word = "REPLICA" if replica else "SLAVE"
        return Statements(
            show_status=("SHOW REPLICA STATUS", "SHOW SLAVE STATUS")
            if replica
            else ("SHOW SLAVE STATUS",),
            stop=f"STOP {word}",
            start=f"START {word}",
            start_sql=f"START {word} SQL_THREAD",
            reset_all=f"RESET {word} ALL",
            change_source="CHANGE MASTER TO",
            binlog_status="SHOW MASTER STATUS",
            source_words=(
                "MASTER_HOST",
                "MASTER_PORT",
                "MASTER_USER",
                "MASTER_PASSWORD",
                "MASTER_USE_GTID",
            ),
        )
    replica = v >= (8, 0, 22)
    word = "REPLICA" if replica else "SLAVE"
    new_change = v >= (8, 0, 23)
    return Statements(
        show_status=("SHOW REPLICA STATUS", "SHOW SLAVE STATUS")
        if replica
        else ("SHOW SLAVE STATUS",),
        stop=f"STOP {word}",
        start=f"START {word}",
        start_sql=f"START {word} SQL_THREAD",
        reset_all=f"RESET {word} ALL",
        change_source="CHANGE REPLICATION SOURCE TO" if new_change else "CHANGE MASTER TO",
        binlog_status="SHOW BINARY LOG STATUS" if v >= (8, 2, 0) else "SHOW MASTER STATUS",
        source_words=(
            ("SOURCE_HOST", "SOURCE_PORT", "SOURCE_USER", "SOURCE_PASSWORD", "SOURCE_AUTO_POSITION")
            if new_change
            else (
                "MASTER_HOST",
                "MASTER_PORT",
                "MASTER_USER",
                "MASTER_PASSWORD",
                "MASTER_AUTO_POSITION",
            )
        ),
    )


def has_super_read_only(flavor: Flavor) -> bool:
    """MySQL 5.7.8 and later have ``super_read_only``; MariaDB does not."""
    return not flavor.mariadb and flavor.version >= (5, 7, 8)


# --------------------------------------------------------------------------- status rows


def _column(row: Mapping[str, object], *names: str) -> object:
    for name in names:
        if name in row:
            return row[name]
    lowered = {k.lower(): v for k, v in row.items()}
    for name in names:
        if name.lower() in lowered:
            return lowered[name.lower()]
    return None


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


def _int(value: object) -> int | None:
    text = _text(value).strip()
    if not text or text.upper() == "NULL":
        return None
    try:
        return int(text)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplicaStatus:
    """One row of ``SHOW REPLICA STATUS`` / ``SHOW SLAVE STATUS``, by meaning."""

    channel: str = ""
    source_host: str = ""
    source_port: int | None = None
    io_running: str = ""  # Yes | No | Connecting
    sql_running: str = ""  # Yes | No
    lag: int | None = None  # Seconds_Behind_Source; None is SQL NULL
    last_errno: int = 0
    last_error: str = ""
    io_errno: int = 0
    io_error: str = ""
    sql_errno: int = 0
    sql_error: str = ""
    read_file: str = ""  # the source's binlog the IO thread has read up to
    read_pos: int = 0
    exec_file: str = ""  # the source's binlog the SQL thread has applied up to
    exec_pos: int = 0
    relay_log_space: int = 0
    sql_state: str = ""
    retrieved_gtid: str = ""
    executed_gtid: str = ""
    using_gtid: str = ""  # MariaDB: No | Slave_Pos | Current_Pos
    gtid_io_pos: str = ""  # MariaDB

    @classmethod
    def from_row(cls, row: Mapping[str, object]) -> ReplicaStatus:
        return cls(
            channel=_text(_column(row, "Channel_Name", "Connection_name")),
            source_host=_text(_column(row, "Source_Host", "Master_Host")),
            source_port=_int(_column(row, "Source_Port", "Master_Port")),
            io_running=_text(_column(row, "Replica_IO_Running", "Slave_IO_Running")),
            sql_running=_text(_column(row, "Replica_SQL_Running", "Slave_SQL_Running")),
            lag=_int(_column(row, "Seconds_Behind_Source", "Seconds_Behind_Master")),
            last_errno=_int(_column(row, "Last_Errno")) or 0,
            last_error=_text(_column(row, "Last_Error")),
            io_errno=_int(_column(row, "Last_IO_Errno")) or 0,
            io_error=_text(_column(row, "Last_IO_Error")),
            sql_errno=_int(_column(row, "Last_SQL_Errno")) or 0,
            sql_error=_text(_column(row, "Last_SQL_Error")),
            read_file=_text(_column(row, "Source_Log_File", "Master_Log_File")),
            read_pos=_int(_column(row, "Read_Source_Log_Pos", "Read_Master_Log_Pos")) or 0,
            exec_file=_text(_column(row, "Relay_Source_Log_File", "Relay_Master_Log_File")),
            exec_pos=_int(_column(row, "Exec_Source_Log_Pos", "Exec_Master_Log_Pos")) or 0,
            relay_log_space=_int(_column(row, "Relay_Log_Space")) or 0,
            sql_state=_text(_column(row, "Replica_SQL_Running_State", "Slave_SQL_Running_State")),
            retrieved_gtid=_text(_column(row, "Retrieved_Gtid_Set")),
            executed_gtid=_text(_column(row, "Executed_Gtid_Set")),
            using_gtid=_text(_column(row, "Using_Gtid")),
            gtid_io_pos=_text(_column(row, "Gtid_IO_Pos")),
        )

    @property
    def name(self) -> str:
        """How messages name this replication stream."""
        where = self.source_host or "?"
        if self.source_port is not None:
            where = f"{where}:{self.source_port}"
        return f"channel {self.channel!r} from {where}" if self.channel else f"from {where}"

    @property
    def unapplied(self) -> bool:
        """True while the SQL thread has not applied everything the IO thread read."""
        if not self.read_file and not self.exec_file:
            return False
        return self.exec_file != self.read_file or self.exec_pos < self.read_pos

    @property
    def positions(self) -> str:
        return f"applied {self.exec_file}:{self.exec_pos}, read {self.read_file}:{self.read_pos}"


# --------------------------------------------------------------------------- the verdict


@dataclass(frozen=True, slots=True, kw_only=True)
class Policy:
    """When a replica may be promoted (see README "Takeover check")."""

    max_lag: float = 300.0
    apply_timeout: float = 30.0
    allow_not_replica: bool = True
    allow_stopped: bool = False
    ignore_errnos: frozenset[int] = frozenset()


class Verdict(enum.StrEnum):
    ALLOW = "allow"
    WAIT = "wait"
    REFUSE = "refuse"


@dataclass(frozen=True, slots=True, kw_only=True)
class Assessment:
    verdict: Verdict
    reason: str


def _running(value: str) -> bool:
    return value.strip().lower() == "yes"


def _one(status: ReplicaStatus, policy: Policy) -> Assessment:
    where = status.name
    if status.sql_errno and status.sql_errno not in policy.ignore_errnos:
        return Assessment(
            verdict=Verdict.REFUSE,
            reason=(
                f"replication {where} is broken: SQL error {status.sql_errno}: "
                f"{status.sql_error or '(no text)'}"
            ),
        )
    if (
        status.last_errno
        and status.last_errno not in policy.ignore_errnos
        and status.last_errno not in CONNECTION_ERRNOS
        and status.last_errno not in (status.io_errno, status.sql_errno)
    ):
        return Assessment(
            verdict=Verdict.REFUSE,
            reason=(
                f"replication {where} is broken: error {status.last_errno}: "
                f"{status.last_error or '(no text)'}"
            ),
        )
    io_running = status.io_running.strip().lower() in ("yes", "connecting")
    if (
        status.io_errno
        and status.io_errno not in CONNECTION_ERRNOS
        and status.io_errno not in policy.ignore_errnos
    ):
        return Assessment(
            verdict=Verdict.REFUSE,
            reason=(
                f"replication {where} is broken: IO error {status.io_errno}: "
                f"{status.io_error or '(no text)'}"
            ),
        )
    if not policy.allow_stopped:
        stopped = []
        if not io_running and not status.io_errno:
            stopped.append("IO")
        if not _running(status.sql_running):
            stopped.append("SQL")
        if stopped:
            threads = " and ".join(stopped)
            return Assessment(
                verdict=Verdict.REFUSE,
                reason=(
                    f"replication {where} was stopped ({threads} thread not running, "
                    "no error): this copy may be arbitrarily out of date; START REPLICA "
                    "to resume it, or RESET REPLICA ALL if it is meant to be promotable"
                ),
            )
    if status.lag is not None and status.lag > policy.max_lag:
        return Assessment(
            verdict=Verdict.REFUSE,
            reason=(
                f"replica {where} is {status.lag}s behind its source (max_lag {policy.max_lag:g}s)"
            ),
        )
    if status.unapplied:
        if not _running(status.sql_running):
            return Assessment(
                verdict=Verdict.REFUSE,
                reason=(
                    f"replica {where} has relay log it will not apply: the SQL thread "
                    f"is stopped ({status.positions})"
                ),
            )
        lag = "" if status.lag is None else f", {status.lag}s behind"
        return Assessment(
            verdict=Verdict.WAIT,
            reason=(
                f"replica {where} has not applied its relay log yet "
                f"({status.positions}, {status.relay_log_space} bytes of relay log{lag})"
            ),
        )
    return Assessment(verdict=Verdict.ALLOW, reason=f"replica {where} is up to date")


def assess(statuses: Sequence[ReplicaStatus], policy: Policy) -> Assessment:
    """May a server with these replication streams be promoted now?

    A refusal on any stream wins over waiting, waiting wins over allowing.
    """
    if not statuses:
        if policy.allow_not_replica:
            return Assessment(verdict=Verdict.ALLOW, reason="not a replica")
        return Assessment(
            verdict=Verdict.REFUSE,
            reason="not configured as a replica (allow_not_replica = false)",
        )
    results = [_one(s, policy) for s in statuses]
    for verdict in (Verdict.REFUSE, Verdict.WAIT):
        found = [r.reason for r in results if r.verdict is verdict]
        if found:
            return Assessment(verdict=verdict, reason="; ".join(found))
    return Assessment(verdict=Verdict.ALLOW, reason="; ".join(r.reason for r in results))
