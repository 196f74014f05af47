"""The operator's commands to the policy: maintenance mode, cleanup, and a takeover
check's release and readmission (pulse-etcd's ``GroupControl``).

``pulsectl maintenance on|off`` and ``pulsectl cleanup [GROUP]`` act on the whole
cluster: the node where they are typed sends pulse's own ``pulse_maintenance`` or
``pulse_cleanup`` message (a Heartbeat peer ignores message types it does not know) and
applies the command; every other node applies it when the message comes. A node that
starts while the cluster is in maintenance mode adopts it from its peers' reports
(``pulse_maintenance`` in :mod:`pulse.failover.report`); docs/resources.md#maintenance.

:meth:`OperatorCommands.command` names the policy's method for each pulsectl command
the resource manager passes on (:meth:`pulse.failover.manager.ResourceManager.command`).
An object the policy owns (:class:`pulse.failover.policy.Scheduler`), which plans after
each command. Pure: no I/O, no clock.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pulse.failover.actions import (
    Action,
    Cleanup,
    Decision,
    GroupState,
    Maintenance,
    Peer,
    Release,
    Send,
)
from pulse.wire.message import Message

if TYPE_CHECKING:
    from pulse.failover.policy import Scheduler

MAINTENANCE_MESSAGE = "pulse_maintenance"
CLEANUP_MESSAGE = "pulse_cleanup"


class OperatorCommands:
    """Maintenance mode, cleanup, and a takeover check's give-up and readmission."""

    def __init__(self, policy: Scheduler) -> None:
        self._policy = policy
        # pulsectl maintenance on (cluster-wide): nothing is started or stopped, node
        # deaths are logged only; monitors and recovery stop (docs/resources.md#maintenance).
        self.maintenance = False

    def command(self, verb: str, what: str, now: float) -> list[Action]:
        """A pulsectl command to the resource manager (``standby``, ``takeover``,
        ``shutdown``, ``cleanup``, ``maintenance``). Raises ValueError or
        StandbyRefused, with the text to answer, when it is refused."""
        p = self._policy
        if verb == "standby":
            return p.set_standby(what, now)
        if verb == "takeover":
            return p.takeover(what, now)
        if verb == "shutdown":
            return p.shutdown(now)
        if verb == "cleanup":
            return self.cleanup(what, now)
        if verb == "maintenance":
            if what not in ("on", "off"):
                raise ValueError(f"maintenance takes on or off, not {what!r}")
            return self.set_maintenance(what == "on", now)
        raise ValueError(f"unknown command {verb}")

    def message(self, src: str, msg: Message, now: float) -> list[Action] | None:
        """A peer's ``pulse_maintenance`` or ``pulse_cleanup``; None for any other type."""
        if msg.type == MAINTENANCE_MESSAGE:
            return self._maintenance(msg.get("on") == "1", now, by=src)
        if msg.type == CLEANUP_MESSAGE:
            what = msg.get("group") or "all"
            if what == "all" or what in self._policy.groups:
                return self._cleanup(what, now, by=src)
            return []
        return None

    def reported(self, src: str, peer: Peer, now: float) -> list[Action]:
        """*src*'s report came (the policy plans next)."""
        if peer.maintenance and not self.maintenance and not self._policy.stable:
            # We are starting and the cluster is in maintenance mode (switched on
            # before we came): adopt it. A stable node only follows the
            # pulse_maintenance messages, so a stale report never switches it back on.
            return self._maintenance(True, now, by=src)
        return []

    def set_maintenance(self, on: bool, now: float) -> list[Action]:
        """``pulsectl maintenance on|off`` here: told to every node, then applied."""
        msg = Message.of(("t", MAINTENANCE_MESSAGE), ("on", "1" if on else "0"))
        return [Send(msg), *self._maintenance(on, now, by=self._policy.local)]

    def _maintenance(self, on: bool, now: float, *, by: str) -> list[Action]:
        if on == self.maintenance:
            return []
        p = self._policy
        self.maintenance = on
        if on:
            text = (
                f"maintenance mode on ({by}): nothing is started, stopped or monitored; "
                "node deaths are logged only"
            )
            return [p.decide(text), Maintenance(True)]
        out: list[Action] = [p.decide(f"maintenance mode off ({by})"), Maintenance(False)]
        out += p.plan(now, cause="maintenance mode ended")
        return out

    def cleanup(self, what: str, now: float) -> list[Action]:
        """``pulsectl cleanup [GROUP]``: told to every node, then applied."""
        groups = self._policy.groups
        if what != "all" and what not in groups:
            raise ValueError(f"unknown group {what!r}; use one of {', '.join(groups)}")
        msg = Message.of(("t", CLEANUP_MESSAGE), ("group", what))
        return [Send(msg), *self._cleanup(what, now, by=self._policy.local)]

    def _cleanup(self, what: str, now: float, *, by: str) -> list[Action]:
        """Forget failed starts, monitor moves and FAILED marks of a group (or all).

        A FAILED group is stopped again first (it may still run partly here); the
        plan then decides where it runs.
        """
        p = self._policy
        keys = list(p.groups) if what == "all" else [what]
        p.failed_here -= set(keys)
        for peer in p.peers.values():
            peer.failed = peer.failed - set(keys)
        out: list[Action] = [
            Cleanup(tuple(keys)),
            p.decide(f"cleanup of {what} ({by}): fail counts and refusals forgotten"),
        ]
        for key in keys:
            mine = p.mine[key]
            if mine.state is GroupState.FAILED and not self.maintenance:
                reason = f"cleanup: stopping whatever still runs of {key} here"
                mine.state, mine.since, mine.reason = GroupState.STOPPING, now, reason
                out.append(Release(key, reason))
        out += p.plan(now, cause=f"cleanup of {what}")
        return out

    def give_up(self, group: str, reason: str, now: float) -> list[Action]:
        """A takeover check's ``control.release`` (pulse.plugin.api.GroupControl): release
        *group* here as after a failed start, and refuse it until :meth:`readmit`."""
        p = self._policy
        if group not in p.groups or group in p.failed_here:
            return []
        p.failed_here.add(group)
        return [p.decide(reason), *p.plan(now, cause=reason)]

    def readmit(self, group: str, now: float) -> list[Action]:
        """``control.readmit``: *group* may run here again (undoes :meth:`give_up` or a
        refused start)."""
        p = self._policy
        if group not in p.failed_here:
            return []
        p.failed_here.discard(group)
        return [Decision(f"{group} may run here again", group), *p.plan(now, cause="")]
