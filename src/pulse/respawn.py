"""Programs pulse keeps running: Heartbeat's ``respawn`` and ``failfast`` directives.

::

    CommsUp (engine event) ──▶ RespawnSupervisor.run: one task per program
        spawn (argv, as USER, own process group) ─▶ wait ─▶ judge() ─▶ restart / stop / reboot
    _watch_signals ──▶ shutdown_begins() (no more restarts) … stop(): SIGTERM in reverse
        order, SIGKILL after a bounded grace

Heartbeat 3.0.6 (``heartbeat.c`` ``start_a_child_client``, ``ManagedChildDied``):

* programs start when communications come up, as USER, in a process group of
  their own, with stdin/stdout/stderr on ``/dev/null``, in Heartbeat's environment
  (``HA_<directive>``, ``HA_CURHOST``..., and ``HA_NAME`` for every ``env NAME=value``);
* a program that dies is restarted, unless it exited with status **100** or
  shutdown is in progress; a run shorter than 30 s counts as short, a longer one
  resets the count; after the 11th short run in a row it is left dead
  (``Client CMD "respawning too fast"``); after a short run the restart waits 1 s;
* ``failfast``: a program that dies by a signal or exits non-zero reboots the machine;
* at shutdown the programs get SIGTERM (their process group) in reverse order, one
  after the other.

Where pulse differs, on purpose:

* Heartbeat runs ``/bin/sh -c "exec LINE"``; pulse splits the line on blanks (as
  the config stores it) and executes the argv directly, never through a shell: no
  quoting, globbing, ``$VAR`` expansion or redirections.
* Heartbeat's ``failfast`` also reboots when the program dies of the SIGTERM that
  Heartbeat itself sends at shutdown; pulse never reboots during shutdown.
* Heartbeat sends SIGTERM once and waits; pulse escalates to SIGKILL after
  ``stop_grace`` seconds, and kills whatever is left when it is cancelled.
* ``respawn`` of Heartbeat's own API clients (``ccm``, ``crmd``, ``dopd``...) cannot
  work (pulse has no client API): they are not started (a config warning says so).
  ``ipfail`` is not started either: pulse implements its policy itself.

The decision after a death (:func:`judge`) is a pure function, and processes are
behind :data:`Spawn`, so the policy runs in virtual time in the tests.
"""

from __future__ import annotations

import contextlib
import ctypes
import enum
import logging
import os
import pwd
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import trio

from pulse.config.model import Config, RespawnDirective, heartbeat_client
from pulse.logsetup import LOGGER_NAME
from pulse.protocol.events import CommsUp, Output
from pulse.resources.environment import ChildEnvironment

log = logging.getLogger(LOGGER_NAME)

SHORT_RUN = 30.0  # seconds: a run shorter than this counts as short
MAX_SHORT_RUNS = 10  # more short runs in a row than this: "respawning too fast"
NO_RESTART_EXIT = 100  # a program exiting with this status asks not to be restarted
SHORT_RUN_DELAY = 1.0  # seconds before restarting after a short run (Heartbeat's sleep(1))
STOP_GRACE = 5.0  # seconds between SIGTERM and SIGKILL at shutdown
REAP_GRACE = 2.0  # seconds to wait for a process after SIGKILL

# Set in the environment of test runs and lab daemons: system_reboot() then only logs.
NEVER_REBOOT_ENV = "PULSE_NEVER_REBOOT"
RB_AUTOBOOT = 0x01234567  # reboot(2): LINUX_REBOOT_CMD_RESTART


class ClientState(enum.StrEnum):
    WAITING = "waiting"  # communications not up yet
    RUNNING = "running"
    RESTARTING = "restarting"  # died, restart pending (short-run delay)
    EXITED = "exited"  # died and not restarted (exit status 100)
    FAILED = "failed"  # could not be started (exec failed, unknown user)
    TOO_FAST = "too-fast"  # respawning too fast: left dead
    REBOOTING = "rebooting"  # failfast program died: reboot requested
    STOPPED = "stopped"  # stopped by pulse's shutdown
    SKIPPED = "skipped"  # a Heartbeat API client pulse does not start


@dataclass(frozen=True, slots=True)
class Exit:
    """How a process ended: an exit status or the signal that killed it."""

    code: int | None = None
    signal: int | None = None

    @classmethod
    def from_returncode(cls, returncode: int) -> Exit:
        """From a ``Popen.returncode`` (negative: killed by that signal)."""
        return cls(signal=-returncode) if returncode < 0 else cls(code=returncode)

    @property
    def clean(self) -> bool:
        return self.signal is None and self.code == 0

    def as_json(self) -> dict[str, int | None]:
        return {"code": self.code, "signal": self.signal}


@dataclass(frozen=True, slots=True, kw_only=True)
class Verdict:
    """What to do after a death (see :func:`judge`)."""

    restart: bool = False
    reboot: bool = False
    too_fast: bool = False
    short_runs: int = 0  # the program's count of short runs in a row, from now on
    delay: float = 0.0  # seconds to wait before the restart


def judge(
    *, failfast: bool, exit: Exit, ran_for: float, short_runs: int, shutting_down: bool
) -> Verdict:
    """Heartbeat's ``ManagedChildDied`` policy, without processes or clocks.

    ``ran_for``: seconds from start to death; ``short_runs``: the program's count of
    short runs in a row before this one.
    """
    if failfast and not shutting_down and not exit.clean:
        return Verdict(reboot=True, short_runs=short_runs)
    if shutting_down or exit.code == NO_RESTART_EXIT:
        return Verdict(short_runs=short_runs)
    short = short_runs + 1 if ran_for < SHORT_RUN else 0
    if short > MAX_SHORT_RUNS:
        return Verdict(too_fast=True)
    return Verdict(restart=True, short_runs=short, delay=SHORT_RUN_DELAY if short else 0.0)


# --------------------------------------------------------------------------- processes


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientSpec:
    """One program to keep running, ready to execute."""

    argv: tuple[str, ...]
    user: str
    failfast: bool = False
    env: Mapping[str, str]
    source: str = ""  # "ha.cf:12", for log lines and status

    @property
    def command(self) -> str:
        return " ".join(self.argv)


class ClientProcess(Protocol):
    """A started program: trio.Process in production, a fake in virtual-time tests."""

    @property
    def pid(self) -> int: ...

    async def wait(self) -> int:
        """Wait for the end; the return code as ``Popen.returncode`` (several waiters ok)."""
        ...

    def signal_group(self, signum: int) -> None:
        """Send ``signum`` to the program's process group (nothing if it is gone)."""
        ...


Spawn = Callable[[ClientSpec], Awaitable[ClientProcess]]
Reboot = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class _OsProcess:
    process: trio.Process

    @property
    def pid(self) -> int:
        return self.process.pid

    async def wait(self) -> int:
        return await self.process.wait()

    def signal_group(self, signum: int) -> None:
        # The group id is the leader's pid; Linux does not reuse it while any member of
        # the group lives, so this also reaches what the leader left behind.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signum)


def _credentials(user: str) -> dict[str, Any]:
    """Popen keywords that make the child run as ``user`` (none if we already are it)."""
    pw = pwd.getpwnam(user)  # KeyError: no such user
    if pw.pw_uid == os.geteuid() and pw.pw_gid == os.getegid():
        return {}
    return {
        "user": pw.pw_uid,
        "group": pw.pw_gid,
        "extra_groups": os.getgrouplist(pw.pw_name, pw.pw_gid),
    }


async def spawn_process(spec: ClientSpec) -> ClientProcess:
    """Start ``spec.argv`` (no shell) as its user, in a new process group, I/O on /dev/null."""
    creds = await trio.to_thread.run_sync(_credentials, spec.user)
    process = await trio.lowlevel.open_process(
        list(spec.argv),
        env=dict(spec.env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        close_fds=True,
        process_group=0,
        **creds,
    )
    return _OsProcess(process)


# --------------------------------------------------------------------------- reboot


def system_reboot(reason: str) -> None:
    """``failfast``'s action: ``sync(2)``, then ``reboot(2)`` (``RB_AUTOBOOT``), as
    Heartbeat's ``cl_reboot`` does. Needs CAP_SYS_BOOT; never returns when it works.

    Refuses (logs only) when ``PULSE_NEVER_REBOOT`` is set or pytest is loaded: the
    test suite and the lab set it, and tests inject their own reboot anyway.
    """
    log.critical("Rebooting system.  Reason: %s", reason)
    if os.environ.get(NEVER_REBOOT_ENV) or "pytest" in sys.modules:
        log.critical("reboot refused: %s is set or this is a test run", NEVER_REBOOT_ENV)
        return
    os.sync()
    _reboot_syscall()


def _reboot_syscall() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.reboot(RB_AUTOBOOT) != 0:
        log.error("reboot(2) failed: %s", os.strerror(ctypes.get_errno()))


# --------------------------------------------------------------------------- config


def _where(directive: RespawnDirective) -> str:
    src = directive.source
    return f"{src.file}:{src.line}" if src is not None else ""


# --------------------------------------------------------------------------- supervisor


@dataclass(slots=True)
class _Client:
    spec: ClientSpec
    state: ClientState = ClientState.WAITING
    process: ClientProcess | None = None
    restarts: int = 0
    short_runs: int = 0
    started_at: float = 0.0
    last_exit: Exit | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "command": self.spec.command,
            "user": self.spec.user,
            "failfast": self.spec.failfast,
            "source": self.spec.source,
            "state": str(self.state),
            "pid": self.process.pid if self.process is not None else None,
            "restarts": self.restarts,
            "last_exit": self.last_exit.as_json() if self.last_exit is not None else None,
        }


class RespawnSupervisor:
    """Starts the programs at communications up, restarts them, stops them at shutdown."""

    def __init__(
        self,
        clients: Sequence[ClientSpec],
        *,
        reboot: Reboot,
        spawn: Spawn | None = None,
        stop_grace: float = STOP_GRACE,
        skipped: Sequence[ClientSpec] = (),
    ) -> None:
        self._clients = [_Client(spec) for spec in clients]
        self._skipped = [_Client(spec, state=ClientState.SKIPPED) for spec in skipped]
        self._reboot = reboot
        self._spawn = spawn or spawn_process
        self._stop_grace = stop_grace
        self._comms_up = trio.Event()
        self._shutting_down = False
        self._scope: trio.CancelScope | None = None

    @classmethod
    def from_config(
        cls,
        config: Config,
        env: ChildEnvironment,
        *,
        reboot: Reboot,
        spawn: Spawn | None = None,
        stop_grace: float = STOP_GRACE,
    ) -> RespawnSupervisor:
        """The ``respawn``/``failfast`` lines of ``config``, minus Heartbeat's API clients."""
        environment = dict(env.variables)
        run: list[ClientSpec] = []
        skipped: list[ClientSpec] = []
        for r in config.respawn:
            spec = ClientSpec(
                argv=r.command, user=r.user, failfast=r.failfast, env=environment, source=_where(r)
            )
            client = heartbeat_client(r)
            if client == "ipfail":
                log.info("%s: not starting %s: ipfail is built into pulse", spec.source, r.program)
            elif client is not None:
                log.warning(
                    "%s: not starting %s: Heartbeat's %s needs Heartbeat's client API, "
                    "which pulse does not have",
                    spec.source,
                    r.program,
                    client,
                )
            else:
                run.append(spec)
                continue
            skipped.append(spec)
        return cls(run, reboot=reboot, spawn=spawn, stop_grace=stop_grace, skipped=skipped)

    @property
    def has_clients(self) -> bool:
        return bool(self._clients)

    def status(self) -> list[dict[str, Any]]:
        return [c.as_json() for c in [*self._clients, *self._skipped]]

    # ------------------------------------------------------------------ lifecycle

    async def run(
        self,
        events: trio.MemoryReceiveChannel[Output],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Start every program when ``events`` brings :class:`CommsUp`; keep them running.

        Whatever still runs when this task ends (cancelled, or after :meth:`stop`)
        is killed (SIGKILL to its process group) and reaped, within a bounded time.
        """
        try:
            with trio.CancelScope() as scope:
                self._scope = scope
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._wait_comms_up, events)
                    task_status.started()
                    await self._comms_up.wait()
                    if self._shutting_down:
                        return
                    for client in self._clients:
                        nursery.start_soon(self._keep_running, client)
        finally:
            self._scope = None
            await self._kill_leftovers()

    def comms_up(self) -> None:
        self._comms_up.set()

    def shutdown_begins(self) -> None:
        """From now on a program that dies is not restarted (Heartbeat's shutdown_in_progress)."""
        self._shutting_down = True

    async def stop(self) -> None:
        """Stop the programs, last one first: SIGTERM, SIGKILL after the grace. Bounded."""
        self.shutdown_begins()
        for client in reversed(self._clients):
            process = client.process
            if process is not None:
                await self._stop_one(client, process)
        if self._scope is not None:
            self._scope.cancel()

    # ------------------------------------------------------------------ internals

    async def _wait_comms_up(self, events: trio.MemoryReceiveChannel[Output]) -> None:
        async with events:  # closed once up: the daemon then stops publishing to it
            async for event in events:
                if isinstance(event, CommsUp):
                    self.comms_up()
                    return

    async def _keep_running(self, client: _Client) -> None:
        while not self._shutting_down:
            process = await self._start(client)
            if process is None:
                return
            returncode = await process.wait()
            client.process = None
            ran_for = trio.current_time() - client.started_at
            exit = Exit.from_returncode(returncode)
            client.last_exit = exit
            self._log_death(client, process.pid, exit)
            verdict = judge(
                failfast=client.spec.failfast,
                exit=exit,
                ran_for=ran_for,
                short_runs=client.short_runs,
                shutting_down=self._shutting_down,
            )
            client.short_runs = verdict.short_runs
            if verdict.reboot:
                client.state = ClientState.REBOOTING
                self._reboot(f"failfast client {client.spec.command} died ({_describe(exit)})")
                return
            if verdict.too_fast:
                client.state = ClientState.TOO_FAST
                log.error('Client %s "respawning too fast"', client.spec.command)
                return
            if not verdict.restart:
                client.state = ClientState.STOPPED if self._shutting_down else ClientState.EXITED
                return
            log.error('Respawning client "%s":', client.spec.command)
            client.state = ClientState.RESTARTING
            client.restarts += 1
            await trio.sleep(verdict.delay)
        client.state = ClientState.STOPPED

    async def _start(self, client: _Client) -> ClientProcess | None:
        spec = client.spec
        log.info('Starting child client "%s" (user %s)', spec.command, spec.user)
        try:
            process = await self._spawn(spec)
        except (OSError, KeyError, ValueError, subprocess.SubprocessError) as exc:
            client.state = ClientState.FAILED
            log.error("Cannot exec %s: %s", spec.command, exc)
            return None
        client.process = process
        client.state = ClientState.RUNNING
        client.started_at = trio.current_time()
        log.info('Starting "%s" as user %s (pid %d)', spec.command, spec.user, process.pid)
        if self._shutting_down:  # shutdown began while it was being started
            await self._stop_one(client, process)
        return process

    async def _stop_one(self, client: _Client, process: ClientProcess) -> None:
        command = client.spec.command
        log.info("killing %s process group %d with signal %d", command, process.pid, signal.SIGTERM)
        process.signal_group(signal.SIGTERM)
        with trio.move_on_after(self._stop_grace) as scope:
            await process.wait()
        if scope.cancelled_caught:
            log.warning(
                "client %s (pid %d) still running %gs after SIGTERM: SIGKILL",
                command,
                process.pid,
                self._stop_grace,
            )
        # Also what the program left behind in its group (a no-op if it is empty).
        process.signal_group(signal.SIGKILL)
        with trio.move_on_after(REAP_GRACE):
            await process.wait()

    async def _kill_leftovers(self) -> None:
        left = [c.process for c in self._clients if c.process is not None]
        for process in left:
            process.signal_group(signal.SIGKILL)
        with trio.CancelScope(shield=True, deadline=trio.current_time() + REAP_GRACE):
            for process in left:
                await process.wait()

    def _log_death(self, client: _Client, pid: int, exit: Exit) -> None:
        level = logging.DEBUG if self._shutting_down else logging.ERROR
        command = client.spec.command
        if exit.signal is not None:
            log.log(level, "Client %s (pid=%d) killed by signal %d.", command, pid, exit.signal)
        elif exit.code:
            log.log(level, "Client %s exited with return code %d.", command, exit.code)


def _describe(exit: Exit) -> str:
    if exit.signal is not None:
        return f"killed by signal {exit.signal}"
    return f"exit status {exit.code}"
