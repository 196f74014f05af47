"""The ``MailTo`` resource agent: mail on takeover and release, never a failed operation.

Like Heartbeat's MailTo it is a pseudo-resource: ``start`` and ``stop`` send a mail
and record whether this node holds it, ``status`` reports that record. The mail is
handed to the :class:`~pulse_mailto.delivery.Outbox` and the operation returns at
once: a mail server that is down or slow must never fail (or delay) a takeover.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
from collections.abc import Callable
from pathlib import Path

import trio

from pulse.config.model import ResourceSpec
from pulse_mailto.compose import agent_mail
from pulse_mailto.delivery import Outbox
from pulse_mailto.settings import AGENT, MailToTarget

log = logging.getLogger("pulse.plugin.host.mailto")


def state_file_name(node: str, spec: ResourceSpec) -> str:
    """``MailTo_<node>_<args>_<hash>``: one file per node and word, safe as a file name.

    The node is part of the name so that two nodes sharing a /run (test namespaces)
    never read each other's state.
    """
    readable = re.sub(r"[^A-Za-z0-9@.,_-]+", "_", "_".join(spec.args))[:64]
    digest = hashlib.sha256(spec.raw.encode()).hexdigest()[:10]
    return f"{AGENT}_{node}_{readable}_{digest}"


class PseudoState:
    """Whether this node holds the resource: in memory, mirrored in a state file.

    The file (under ``$HA_RSCTMP``, a tmpfs, as the OCF agent's) lets a restarted
    daemon see that it still holds the resource, so it does not mail a takeover that
    did not happen. Failing to write it is a warning: memory is authoritative.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._held: bool | None = None  # None: not known yet, look at the file

    async def held(self) -> bool:
        if self._held is None:
            self._held = await trio.to_thread.run_sync(self.path.exists)
        return self._held

    async def set(self, held: bool) -> None:
        self._held = held
        try:
            await trio.to_thread.run_sync(self._write if held else self._remove)
        except OSError as exc:
            log.warning("%s: cannot update state file %s: %s", AGENT, self.path, exc.strerror)

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.touch()

    def _remove(self) -> None:
        self.path.unlink(missing_ok=True)


class MailToAgent:
    """One ``MailTo::ADDRS[::SUBJECT]`` word on this node."""

    def __init__(
        self,
        spec: ResourceSpec,
        *,
        target: MailToTarget,
        node: str,
        sender: str,
        outbox: Outbox,
        state: PseudoState,
        script: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.spec = spec
        self.target = target
        self.node = node
        self.sender = sender
        self.outbox = outbox
        self.state = state
        self.script = script  # the resource.d path Heartbeat would have run, for the logs
        self.clock = clock

    def __repr__(self) -> str:
        return f"MailToAgent({self.spec.raw!r})"

    def command_line(self, operation: str) -> str:
        return " ".join((self.script, *self.spec.args, operation))

    async def start(self) -> None:
        await self._mail("start")
        await self.state.set(True)

    async def stop(self) -> None:
        await self._mail("stop")
        await self.state.set(False)

    async def status(self) -> bool:
        return await self.state.held()

    async def _mail(self, operation: str) -> None:
        command = self.command_line(operation)
        log.info("Running %s", command)
        mail = agent_mail(
            self.target,
            operation=operation,
            host=self.node,
            sender=self.sender,
            command_line=command,
            when=self.clock(),
        )
        if not self.outbox.submit(mail):
            log.warning("%s: %s not queued; %s continues", AGENT, mail.describe(), operation)


def script_path(resource_dir: str | None) -> str:
    return os.path.join(resource_dir or "/etc/ha.d/resource.d", AGENT)
