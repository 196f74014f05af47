"""The fencing devices pulse's resource manager calls (``pulse.plugin.api.FencingDevice``).

* :class:`ClusterGlueDevice` runs cluster-glue's ``stonith -t TYPE -F FILE -T reset
  NODE``, as Heartbeat's own STONITH code did through the same library. The parameters
  go through a private (0600) file, never the command line where ``ps`` shows them.
* :class:`FenceAgentDevice` runs a fence-agents program (``fence_ipmilan``…) with its
  options as ``key=value`` lines on stdin, the way Pacemaker's fencer calls them.
* :class:`RequireFencing` is the ``require_fencing = true`` policy: it claims every
  node no real device can fence, and always fails, so the core never takes over from
  a node nobody fenced.

``can_fence`` is synchronous and never blocks: a device that asks the hardware which
hosts it controls (``stonith -l``) does so in :meth:`ClusterGlueDevice.run`, which the
resource manager starts, and keeps the answer for ``host_list_ttl`` seconds.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import trio

from pulse_stonith.process import Completed, FencingError, last_line, run_program
from pulse_stonith.settings import AgentDeviceSpec, GlueDeviceSpec

log = logging.getLogger("pulse.stonith")

STONITH_PROGRAM = "/usr/sbin/stonith"
AGENT_DIRS = ("/usr/sbin", "/sbin", "/usr/local/sbin")
# Cluster-glue's return codes (include/stonith/stonith.h), as the stonith tool exits.
GLUE_EXIT_REASONS: Mapping[int, str] = {
    1: "bad configuration (check the parameters against `stonith -t {type} -n`)",
    2: "cannot access the device (address, login or password?)",
    3: "invalid argument",
    4: "the device does not know host {node}",
    5: "the reset failed",
    6: "timed out talking to the device",
    7: "cannot reboot: the outlet is off",
    8: "something strange happened (unknown device type {type}?)",
    255: "the device could not list its hosts",
}
GLUE_OPERATIONS = {"reboot": "reset", "off": "off"}


def glue_reason(code: int, *, type: str, node: str = "") -> str:
    """Cluster-glue exit code *code* in words."""
    text = GLUE_EXIT_REASONS.get(code)
    if text is None:
        return f"stonith exited with status {code}"
    return text.format(type=type, node=node)


class ClusterGlueDevice:
    """A cluster-glue STONITH device (``stonith -t TYPE``)."""

    def __init__(
        self,
        spec: GlueDeviceSpec,
        *,
        local: str,
        host_list_ttl: float,
        program: str = STONITH_PROGRAM,
    ) -> None:
        self.spec = spec
        self.name = spec.name
        self.timeout = spec.timeout
        self.local = local.lower()
        self.host_list_ttl = host_list_ttl
        self.program = program
        self.hosts: frozenset[str] | None = None  # what the device said it controls
        self.hosts_at: float | None = None  # trio time of that answer
        self.last_problem: str | None = None

    def __repr__(self) -> str:
        return f"<ClusterGlueDevice {self.name} {self.spec.type} ({self.spec.where})>"

    # ------------------------------------------------------------------ the protocol

    def can_fence(self, node: str) -> bool:
        node = node.lower()
        if node == self.local:
            return False
        if self.spec.hosts is not None:
            return node in self.spec.hosts
        if self.hosts is None:
            # Not known yet (or the device never answered): try it, as Heartbeat
            # does with its one device; fence() then says what the device answers.
            return True
        return node in self.hosts

    async def fence(self, node: str) -> None:
        node = node.lower()
        if self.spec.hosts is None and self._stale():
            with trio.move_on_after(max(1.0, self.timeout / 4)):
                await self.refresh()
        if self.spec.hosts is None and self.hosts is not None and node not in self.hosts:
            raise FencingError(
                f"the device does not control {node} (it lists: {', '.join(sorted(self.hosts))})"
            )
        operation = GLUE_OPERATIONS[self.spec.action]
        done, logged = await self._stonith(["-T", operation, node])
        if done.returncode != 0:
            detail = last_line(logged, done.stderr, done.stdout)
            reason = glue_reason(done.returncode, type=self.spec.type, node=node)
            raise FencingError(f"{reason}{': ' + detail if detail else ''}")
        log.info("STONITH %s of %s by %s succeeded", operation, node, self.name)

    # ------------------------------------------------------------------ host list

    async def run(self) -> None:
        """Keep the host list fresh and report an unhealthy device (hourly by default)."""
        while True:
            with trio.move_on_after(self.timeout):
                await self.refresh()
            await trio.sleep(self.host_list_ttl)

    async def refresh(self) -> None:
        """Ask the device which hosts it controls; keep the last good answer on failure."""
        try:
            self.hosts = await self.list_hosts()
        except FencingError as exc:
            self.last_problem = str(exc)
            log.error("STONITH device %s not operational! %s", self.name, exc)
            return
        self.hosts_at = trio.current_time()
        self.last_problem = None
        log.info("STONITH device %s controls: %s", self.name, " ".join(sorted(self.hosts)))

    async def list_hosts(self) -> frozenset[str]:
        done, logged = await self._stonith(["-l"])
        if done.returncode != 0:
            detail = last_line(logged, done.stderr)
            reason = glue_reason(done.returncode, type=self.spec.type)
            raise FencingError(f"{reason}{': ' + detail if detail else ''}")
        return frozenset(line.strip().lower() for line in done.stdout.splitlines() if line.strip())

    def _stale(self) -> bool:
        return self.hosts_at is None or trio.current_time() - self.hosts_at > self.host_list_ttl

    async def _stonith(self, args: Sequence[str]) -> tuple[Completed, str]:
        """Run ``stonith -t TYPE -F PRIVATE-FILE ARGS``; returns its result and its log."""
        workdir = await trio.to_thread.run_sync(lambda: tempfile.mkdtemp(prefix="pulse-stonith-"))
        try:
            params = Path(workdir, "params")
            logfile = Path(workdir, "log")
            await trio.to_thread.run_sync(_write_private, params, self.spec.params + "\n")
            env = {
                **os.environ,
                # cluster-glue logs through cl_log when stdin is not a terminal; keep
                # its words for our own log and failure reasons instead of syslog.
                "HA_logfile": str(logfile),
                "HA_debugfile": str(logfile),
                "HA_logfacility": "none",
            }
            argv = [self.program, "-t", self.spec.type, "-F", str(params), *args]
            done = await run_program(argv, timeout=self.timeout, env=env)
            logged = await trio.to_thread.run_sync(_read_text, logfile)
        finally:
            await trio.to_thread.run_sync(lambda: shutil.rmtree(workdir, ignore_errors=True))
        for line in logged.splitlines():
            log.debug("stonith %s: %s", self.spec.type, line)
        return done, logged


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)


def _read_text(path: Path) -> str:
    try:
        return path.read_bytes()[-16384:].decode("utf-8", errors="replace")
    except OSError:
        return ""


# --------------------------------------------------------------------------- fence-agents


def locate_agent(agent: str) -> str | None:
    """The executable for *agent*: a path as given, else found in PATH or the sbin dirs."""
    if "/" in agent:
        return agent if os.path.isfile(agent) and os.access(agent, os.X_OK) else None
    path = os.pathsep.join([os.environ.get("PATH", ""), *AGENT_DIRS])
    return shutil.which(agent, path=path)


def agent_input(spec: AgentDeviceSpec, node: str) -> bytes:
    """The ``key=value`` lines a fence agent reads on stdin to fence *node*."""
    lines = [f"{key}={value}" for key, value in spec.options]
    lines.append(f"action={spec.action}")
    lines.append(f"{spec.plug_option}={spec.plug_for(node)}")
    lines.append(f"nodename={node}")
    return ("\n".join(lines) + "\n").encode()


class FenceAgentDevice:
    """A fence-agents device (``fence_*`` with ``key=value`` options on stdin)."""

    def __init__(self, spec: AgentDeviceSpec, *, local: str, nodes: Sequence[str]) -> None:
        self.spec = spec
        self.name = spec.name
        self.timeout = spec.timeout
        self.local = local.lower()
        self.nodes = frozenset(n.lower() for n in nodes)

    def __repr__(self) -> str:
        return f"<FenceAgentDevice {self.name} {self.spec.agent} ({self.spec.where})>"

    def can_fence(self, node: str) -> bool:
        node = node.lower()
        if node == self.local:
            return False
        return node in (self.spec.hosts if self.spec.hosts is not None else self.nodes)

    async def fence(self, node: str) -> None:
        node = node.lower()
        program = await trio.to_thread.run_sync(locate_agent, self.spec.agent)
        if program is None:
            raise FencingError(f"fence agent {self.spec.agent} not found or not executable")
        done = await run_program(
            [program], timeout=self.timeout, stdin=agent_input(self.spec, node)
        )
        for line in (done.stdout + done.stderr).splitlines():
            log.debug("%s: %s", os.path.basename(program), line)
        if done.returncode != 0:
            detail = last_line(done.stderr, done.stdout)
            raise FencingError(
                f"{os.path.basename(program)} action={self.spec.action} for {node} failed "
                f"(exit {done.returncode}){': ' + detail if detail else ''}"
            )
        log.info("%s %s of %s succeeded", os.path.basename(program), self.spec.action, node)


# --------------------------------------------------------------------------- policy


class RequireFencing:
    """``require_fencing = true``: never take over from a node no device can fence."""

    name = "require_fencing"
    timeout = 5.0

    def __init__(
        self, devices: Sequence[ClusterGlueDevice | FenceAgentDevice], *, local: str
    ) -> None:
        self.devices = list(devices)
        self.local = local.lower()

    def can_fence(self, node: str) -> bool:
        node = node.lower()
        return node != self.local and not any(d.can_fence(node) for d in self.devices)

    async def fence(self, node: str) -> None:
        raise FencingError(
            f"no fencing device can fence {node} and require_fencing is set: its resources "
            "stay down until it comes back or a device that can fence it is configured"
        )
