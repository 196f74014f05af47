"""The ``MySQLReplica`` resource agent: start promotes, stop demotes, status = writable.

Place it before the floating IP in its group (``prime MySQLReplica 198.51.100.100``):
the server is writable before clients can reach it, and on release the address goes
first, then the server becomes read-only again.

* **start** (promote): the same rules as the takeover check (errors, lag, relay log
  applied, waiting up to ``apply_timeout``); ``STOP REPLICA``; if the SQL thread had
  not applied everything read, it is started alone until it has (bounded); ``RESET
  REPLICA ALL``; ``SET GLOBAL super_read_only = OFF`` (MySQL) and ``read_only = OFF``;
  the new binlog/GTID position is logged for the peers.
* **stop** (demote): ``SET GLOBAL read_only = ON`` (+ ``super_read_only`` on MySQL);
  with ``rejoin_host`` set, ``CHANGE MASTER TO`` / ``CHANGE REPLICATION SOURCE TO``
  that host and ``START REPLICA``. A server already read-only and replicating is left
  alone; a mysqld that is not running has nothing to demote.
* **status**: ``@@global.read_only`` is OFF. A mysqld that is not running is not held.
* **monitor** (pulse's optional agent method, docs/plugins/hooks.md): as status, and
  a writable server that still has a replication stream whose state the takeover
  check would refuse for an error (SQL or IO error, a stream stopped with relay log
  left unapplied) is a failure: the reason says which stream and which error.
"""

from __future__ import annotations

import dataclasses
import logging

import trio

from pulse.config.model import ResourceSpec
from pulse.resources import ResourceError
from pulse_mysql.check import wait_promotable
from pulse_mysql.client import (
    MySQLError,
    Server,
    demote_statements,
    promote_statements,
    rejoin_statements,
)
from pulse_mysql.replication import Verdict, assess, statements_for
from pulse_mysql.settings import MySQLSettings

log = logging.getLogger("pulse.plugin.host.mysql")


class MySQLReplicaAgent:
    """A :class:`pulse.resources.ResourceAgent` for one ``MySQLReplica`` word."""

    def __init__(self, spec: ResourceSpec, *, settings: MySQLSettings, server: Server) -> None:
        self._spec = spec
        self.settings = settings
        self.server = server

    @property
    def spec(self) -> ResourceSpec:
        return self._spec

    def __repr__(self) -> str:
        return f"MySQLReplicaAgent({self._spec.raw!r}, {self.server.where})"

    def _fail(self, reason: str) -> ResourceError:
        log.error("%s: %s", self._spec.raw, reason)
        return ResourceError(self._spec.raw, reason)

    # ------------------------------------------------------------------ start

    async def start(self) -> None:
        limit = self.settings.promote_timeout
        try:
            with trio.fail_after(limit):
                await self._promote()
        except trio.TooSlowError:
            raise self._fail(
                f"promotion of {self.server.where} timed out after {limit:g}s"
            ) from None
        except MySQLError as exc:
            raise self._fail(f"promotion failed: {exc}") from None

    async def _promote(self) -> None:
        where = self.server.where
        log.info("Running %s start (promoting %s)", self._spec.raw, where)
        flavor = await self.server.flavor()
        refusal = await wait_promotable(self.server, self.settings)
        if refusal is not None:
            raise self._fail(f"not promoting {where}: {refusal}")
        stmts = statements_for(flavor)
        replica = bool(await self.server.replica_status())
        if replica:
            await self.server.execute([(stmts.stop, ())])
            await self._apply_remaining()
        await self.server.execute(promote_statements(flavor, replica=replica))
        try:
            position = await self.server.binlog_position()
        except MySQLError as exc:
            position = f"unknown ({exc})"
        log.info(
            "%s: promoted %s (%s): %sread_only OFF; binlog at %s",
            self._spec.raw,
            where,
            flavor,
            "replication stopped and reset, " if replica else "",
            position,
        )

    async def _apply_remaining(self) -> None:
        """After STOP REPLICA: let the SQL thread alone apply what was read but not applied.

        Nothing is reset before the relay log is applied, since RESET REPLICA ALL
        deletes it; when it cannot be applied in time, replication is restarted as it
        was and the promotion fails.
        """
        stmts = statements_for(await self.server.flavor())
        deadline = trio.current_time() + self.settings.policy.apply_timeout
        started = False
        while True:
            statuses = await self.server.replica_status()
            pending = [s for s in statuses if s.unapplied]
            broken = [s for s in statuses if s.sql_errno]
            if broken:
                await self.server.execute([(stmts.start, ())])
                s = broken[0]
                raise self._fail(
                    f"not promoting {self.server.where}: SQL error {s.sql_errno} while "
                    f"applying the relay log: {s.sql_error}"
                )
            if not pending:
                if started:
                    await self.server.execute([(stmts.stop, ())])
                return
            if trio.current_time() >= deadline:
                await self.server.execute([(stmts.start, ())])
                raise self._fail(
                    f"not promoting {self.server.where}: relay log still not applied "
                    f"after {self.settings.policy.apply_timeout:g}s ({pending[0].positions}); "
                    "replication restarted"
                )
            if not started:
                log.info("%s: applying the rest of the relay log first", self.server.where)
                await self.server.execute([(stmts.start_sql, ())])
                started = True
            await trio.sleep(min(self.settings.poll_interval, deadline - trio.current_time()))

    # ------------------------------------------------------------------ stop

    async def stop(self) -> None:
        limit = self.settings.promote_timeout
        try:
            with trio.fail_after(limit):
                await self._demote()
        except trio.TooSlowError:
            raise self._fail(
                f"demotion of {self.server.where} timed out after {limit:g}s"
            ) from None
        except MySQLError as exc:
            if exc.down:
                log.warning(
                    "%s: mysqld is not running (%s): nothing to demote", self._spec.raw, exc
                )
                return
            raise self._fail(f"demotion failed: {exc}") from None

    async def _demote(self) -> None:
        where = self.server.where
        log.info("Running %s stop (demoting %s)", self._spec.raw, where)
        if await self.server.read_only() and await self.server.replica_status():
            log.info("%s: %s is already a read-only replica", self._spec.raw, where)
            return
        flavor = await self.server.flavor()
        await self.server.execute(demote_statements(flavor))
        rejoin = self.settings.rejoin
        if rejoin is None:
            log.info("%s: %s is read-only (no rejoin_host: not replicating)", self._spec.raw, where)
            return
        await self.server.execute(
            rejoin_statements(
                flavor,
                host=rejoin.host,
                port=rejoin.port,
                user=rejoin.user,
                password=rejoin.password,
                gtid=rejoin.gtid,
            )
        )
        log.info(
            "%s: %s is read-only and replicates from %s:%d",
            self._spec.raw,
            where,
            rejoin.host,
            rejoin.port,
        )

    # ------------------------------------------------------------------ status

    async def status(self) -> bool:
        try:
            return not await self.server.read_only()
        except MySQLError as exc:
            if exc.down:
                return False
            raise self._fail(
                f"cannot tell whether {self.server.where} is writable: {exc}"
            ) from None

    # ------------------------------------------------------------------ monitor

    async def monitor(self, timeout: float) -> bool:
        """Writable and no broken replication stream (see the module docstring).

        Lag and a stream stopped without error are not failures of a primary: only
        errors count. pulse cancels this call at ``timeout``.
        """
        if not await self.status():
            return False
        try:
            statuses = await self.server.replica_status()
        except MySQLError as exc:
            where = self.server.where
            raise self._fail(f"cannot read the replication status of {where}: {exc}") from None
        if not statuses:
            return True
        lenient = dataclasses.replace(
            self.settings.policy, max_lag=float("inf"), allow_stopped=True, allow_not_replica=True
        )
        verdict = assess(statuses, lenient)
        if verdict.verdict is Verdict.REFUSE:
            raise self._fail(verdict.reason)
        return True
