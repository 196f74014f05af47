"""``[[notify]]``: run a program when something happens in the cluster.

The administrator's equivalent of keepalived's ``notify_master`` / ``notify_backup``
and of Pacemaker's alert agents, without writing a Python plugin. Each ``[[notify]]``
table becomes one event listener on the daemon's event bus
(:class:`pulse.plugin.bus.EventBus`): it has its own task and bounded queue, so a slow
script never delays a heartbeat or a failover; events it cannot keep up with are
dropped and counted (``pulsectl plugins``).

The program is run with its argv as written (never through a shell), in its own
process group, with the event in its environment:

``PULSE_EVENT``
    the kind: node-dead, node-up, acquired, released, acquire-failed,
    release-failed, fenced, fence-failed, shutdown (and etcd-lost, etcd-regained
    from pulse-etcd)
``PULSE_NODE``
    the node it is about; ``PULSE_LOCAL`` the node running the script
``PULSE_GROUP`` / ``PULSE_RESOURCES``
    the resource group's key and its haresources words (empty for node events)
``PULSE_REASON``
    why, in words
``PULSE_TIME``
    when, ISO 8601 with the time zone; ``PULSE_TIMESTAMP`` the same in Unix seconds

A program that runs longer than its ``timeout`` is killed (SIGTERM to its group,
SIGKILL 5 s later); a failure is logged with its exit code and counted.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence

from pulse.config.model import NotifyScript
from pulse.plugin.api import ClusterEvent
from pulse.resources.scripts import run_script

log = logging.getLogger("pulse")


def event_environment(event: ClusterEvent) -> dict[str, str]:
    import datetime  # here, not at the top: 0.4 MiB a daemon without notify scripts saves

    when = datetime.datetime.fromtimestamp(event.when).astimezone()
    return {
        "PULSE_EVENT": event.kind,
        "PULSE_NODE": event.node,
        "PULSE_LOCAL": event.local,
        "PULSE_GROUP": event.group or "",
        "PULSE_RESOURCES": " ".join(event.resources),
        "PULSE_REASON": event.reason,
        "PULSE_TIME": when.isoformat(timespec="milliseconds"),
        "PULSE_TIMESTAMP": f"{event.when:.3f}",
    }


class NotifyScriptListener:
    """One ``[[notify]]`` table as an event listener (the plugin listener contract)."""

    def __init__(self, script: NotifyScript, *, base_env: Mapping[str, str] | None = None):
        self.script = script
        self.name = f"notify {os.path.basename(script.command[0])}"
        # The bus's own limit is a little longer than ours: the script's group is
        # killed and reaped by run_script first.
        self.timeout = script.timeout / 1000 + 10.0
        self._env = dict(os.environ if base_env is None else base_env)
        self.runs = 0

    async def handle(self, event: ClusterEvent) -> None:
        if event.kind not in self.script.events:
            return
        self.runs += 1
        env = {**self._env, **event_environment(event)}
        result = await run_script(
            self.script.command,
            resource=self.name,
            env=env,
            time_limit=self.script.timeout / 1000,
        )
        if result.returncode != 0:
            tail = result.stderr.strip().splitlines()[-1:] or [""]
            raise RuntimeError(
                f"{self.script.command[0]} exited {result.returncode} on {event.kind}"
                + (f": {tail[0]}" if tail[0] else "")
            )


def notify_listeners(scripts: Sequence[NotifyScript]) -> list[NotifyScriptListener]:
    return [NotifyScriptListener(s) for s in scripts]
