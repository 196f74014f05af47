"""The takeover check: may this node's mysqld be promoted for a group right now?

:func:`wait_promotable` reads the replication status, and while the only objection is
relay log the SQL thread has not applied yet, polls again until ``apply_timeout``
(measured on trio's clock) before deciding. The agent uses it too, so a promotion by
hand (``python -m pulse.resources start``) follows the same rules.
"""

from __future__ import annotations

import logging

import trio

from pulse.config.model import ResourceGroup
from pulse_mysql.client import MySQLError, Server
from pulse_mysql.replication import Verdict, assess
from pulse_mysql.settings import MySQLSettings

log = logging.getLogger("pulse.plugin.host.mysql")


async def wait_promotable(server: Server, settings: MySQLSettings) -> str | None:
    """None when the server may be promoted, else the reason it may not."""
    policy = settings.policy
    deadline = trio.current_time() + policy.apply_timeout
    waited = False
    while True:
        try:
            statuses = await server.replica_status()
        except MySQLError as exc:
            return f"cannot read the replication status: {exc}"
        result = assess(statuses, policy)
        if result.verdict is Verdict.ALLOW:
            if waited:
                log.info("%s: %s", server.where, result.reason)
            return None
        if result.verdict is Verdict.REFUSE:
            return result.reason
        now = trio.current_time()
        if now >= deadline:
            return (
                f"{result.reason}; still so after waiting {policy.apply_timeout:g}s (apply_timeout)"
            )
        if not waited:
            log.info(
                "%s: %s; waiting up to %gs for the SQL thread",
                server.where,
                result.reason,
                policy.apply_timeout,
            )
            waited = True
        await trio.sleep(min(settings.poll_interval, deadline - now))


class ReplicationCheck:
    """A :class:`pulse.plugin.api.TakeoverCheck` for one resource group."""

    name = "mysql"

    def __init__(self, *, group: str, settings: MySQLSettings, server: Server) -> None:
        self.group = group
        self.settings = settings
        self.server = server
        self.timeout = settings.check_timeout

    def __repr__(self) -> str:
        return f"ReplicationCheck({self.group!r}, {self.server.where})"

    def applies_to(self, group: ResourceGroup) -> bool:
        return group.key == self.group

    async def check(self, group: ResourceGroup) -> str | None:
        refusal = await wait_promotable(self.server, self.settings)
        if refusal is None:
            log.info("%s: replication allows taking over %s", self.server.where, group.key)
            return None
        log.warning("%s: not promoting for %s: %s", self.server.where, group.key, refusal)
        return f"{self.server.where}: {refusal}"
