"""Script-based agents: Heartbeat resource scripts, LSB init scripts, OCF agents, systemd.

Every script runs through :func:`run_script`: an argv list (never a shell), stdin
from ``/dev/null``, stdout and stderr into anonymous temporary files (not pipes, so
a daemon that an init script starts and that keeps the descriptors open cannot
make pulse wait for it), its own session/process group, and a deadline. On the
deadline the whole process group gets SIGTERM, then SIGKILL after a grace period.

The decision rules are small pure functions so that they can be tested on their
own: :func:`heartbeat_status_running` (ResourceManager's ``we_own_resource``),
:func:`lsb_status_running`, :func:`ocf_monitor_running`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import IO

import trio

from pulse.config.model import Config, ResourceSpec
from pulse.resources.base import (
    AgentTimeouts,
    MonitorResult,
    MonitorState,
    ResourceError,
    TimedOut,
    monitor_result,
)

log = logging.getLogger("pulse.resources")

DEFAULT_RESOURCE_DIR = "/etc/ha.d/resource.d"
DEFAULT_INIT_DIR = "/etc/init.d"
DEFAULT_OCF_ROOT = "/usr/lib/ocf"

# OCF return codes (OCF resource agent API 1.0/1.1).
OCF_SUCCESS = 0
OCF_ERR_GENERIC = 1
OCF_ERR_ARGS = 2
OCF_ERR_UNIMPLEMENTED = 3
OCF_ERR_PERM = 4
OCF_ERR_INSTALLED = 5
OCF_ERR_CONFIGURED = 6
OCF_NOT_RUNNING = 7
OCF_RUNNING_PROMOTED = 8
OCF_FAILED_PROMOTED = 9

OCF_CODE_NAMES = {
    OCF_SUCCESS: "OCF_SUCCESS",
    OCF_ERR_GENERIC: "OCF_ERR_GENERIC",
    OCF_ERR_ARGS: "OCF_ERR_ARGS",
    OCF_ERR_UNIMPLEMENTED: "OCF_ERR_UNIMPLEMENTED",
    OCF_ERR_PERM: "OCF_ERR_PERM",
    OCF_ERR_INSTALLED: "OCF_ERR_INSTALLED",
    OCF_ERR_CONFIGURED: "OCF_ERR_CONFIGURED",
    OCF_NOT_RUNNING: "OCF_NOT_RUNNING",
    OCF_RUNNING_PROMOTED: "OCF_RUNNING_PROMOTED",
    OCF_FAILED_PROMOTED: "OCF_FAILED_PROMOTED",
}

# What each OCF code means, in the words status and logs use.
OCF_MEANINGS = {
    OCF_ERR_GENERIC: "generic error",
    OCF_ERR_ARGS: "invalid arguments",
    OCF_ERR_UNIMPLEMENTED: "action not implemented",
    OCF_ERR_PERM: "insufficient privileges",
    OCF_ERR_INSTALLED: "not installed",
    OCF_ERR_CONFIGURED: "not configured",
    OCF_FAILED_PROMOTED: "failed while promoted",
}

# LSB init script status codes.
LSB_RUNNING = 0
LSB_DEAD_PIDFILE = 1
LSB_DEAD_LOCKFILE = 2
LSB_STOPPED = 3
LSB_UNKNOWN = 4

LSB_MEANINGS = {
    LSB_DEAD_PIDFILE: "program is dead and its pid file exists",
    LSB_DEAD_LOCKFILE: "program is dead and its lock file exists",
    LSB_UNKNOWN: "program or service status is unknown",
}

# At most this much of a script's output is kept (and logged) per stream.
_OUTPUT_LIMIT = 64 * 1024


# --------------------------------------------------------------------------- pure rules

# ResourceManager's `case ... in *[Nn][Oo][Tt]\ *[Rr]unning*) ...; *[Rr]unning*|*OK*) ...`
# (shell `*` matches any text, newlines included).
_NOT_RUNNING = re.compile(r"[Nn][Oo][Tt] .*[Rr]unning", re.DOTALL)
_RUNNING = re.compile(r"[Rr]unning|OK")


def heartbeat_status_running(stdout: str) -> bool:
    """Heartbeat's verdict on a script's ``status`` output (docs/heartbeat.md#script-exit-codes).

    The exit code is ignored. "not running" (any case of "not", a space, then
    anything, then "running" or "Running") means not held; otherwise "running",
    "Running" or "OK" anywhere means held; anything else means not held.
    """
    if _NOT_RUNNING.search(stdout):
        return False
    return _RUNNING.search(stdout) is not None


def lsb_status_running(returncode: int, stdout: str) -> bool:
    """An init script's ``status`` verdict: LSB exit codes, Heartbeat's text rule as fallback.

    * 0 means running, unless the output says "not running" (a non-LSB script
      that always exits 0 but reports its state in words);
    * 1, 2 (dead, stale pid/lock file) and 3 (stopped) mean not running;
    * anything else (4 "unknown", or a script without a ``status`` action) is
      judged by Heartbeat's text rule, as Heartbeat itself would.
    """
    if returncode == LSB_RUNNING:
        return _NOT_RUNNING.search(stdout) is None
    if returncode in (LSB_DEAD_PIDFILE, LSB_DEAD_LOCKFILE, LSB_STOPPED):
        return False
    return heartbeat_status_running(stdout)


def ocf_code_name(code: int) -> str:
    return OCF_CODE_NAMES.get(code, f"rc={code}")


def ocf_monitor_running(returncode: int) -> bool | None:
    """OCF ``monitor`` verdict: True running, False not running, None an error."""
    if returncode in (OCF_SUCCESS, OCF_RUNNING_PROMOTED):
        return True
    if returncode == OCF_NOT_RUNNING:
        return False
    return None


def ocf_monitor_state(returncode: int) -> MonitorState:
    """OCF ``monitor``: 0 and 8 (running, promoted) run, 7 is stopped, the rest failed."""
    verdict = ocf_monitor_running(returncode)
    if verdict is None:
        return MonitorState.FAILED
    return MonitorState.RUNNING if verdict else MonitorState.NOT_RUNNING


def lsb_monitor_state(returncode: int) -> MonitorState:
    """An init script's ``status`` exit code read strictly as LSB defines it.

    0 running, 3 stopped; 1 and 2 (dead, but a pid or lock file is left), 4
    (unknown) and anything else are failures: the service is not cleanly
    stopped, or its state cannot be told.
    """
    if returncode == LSB_RUNNING:
        return MonitorState.RUNNING
    if returncode == LSB_STOPPED:
        return MonitorState.NOT_RUNNING
    return MonitorState.FAILED


def lsb_meaning(code: int) -> str:
    return LSB_MEANINGS.get(code, f"exit code {code} has no LSB status meaning")


def systemd_monitor_state(active: str) -> MonitorState:
    """``systemctl is-active``'s word: active (or reloading, activating) runs,
    inactive (or deactivating) is stopped, failed and anything else is a failure."""
    word = active.strip()
    if word in ("active", "reloading", "activating"):
        return MonitorState.RUNNING
    if word in ("inactive", "deactivating"):
        return MonitorState.NOT_RUNNING
    return MonitorState.FAILED


def ocf_stop_succeeded(returncode: int) -> bool:
    """An OCF ``stop`` that finds the resource not running has still succeeded."""
    return returncode in (OCF_SUCCESS, OCF_NOT_RUNNING)


def script_environment(
    config: Config,
    *,
    resource_dir: str,
    ocf_root: str,
    extra: Mapping[str, str] | None = None,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment Heartbeat gives scripts (docs/heartbeat.md#parameters-as-environment).

    ``base`` (default: pulse's own environment) is overlaid with every ha.cf
    directive as ``HA_<name>``, Heartbeat's fixed ``HA_*`` variables and
    ``OCF_ROOT``, and finally with ``extra`` (the caller's, e.g. ``HA_CURHOST``).
    """
    env = dict(os.environ if base is None else base)
    for name, value in config.parameters.items():
        env[f"HA_{name}"] = value
    ha_dir = os.path.dirname(resource_dir.rstrip("/")) or "/"
    env.setdefault("HA_DIR", ha_dir)
    env.setdefault("HA_FUNCS", os.path.join(ha_dir, "shellfuncs"))
    env["HA_RESOURCEDIR"] = resource_dir
    env.setdefault("HA_DATEFMT", "%Y/%m/%d_%T\t")
    if config.logging.logfile:
        env["HA_LOGFILE"] = config.logging.logfile
    if config.logging.debugfile:
        env["HA_DEBUGLOG"] = config.logging.debugfile
    if config.logging.logfacility:
        env["HA_LOGFACILITY"] = config.logging.logfacility
    if config.logging.debug > 0:
        env["HA_debug"] = str(config.logging.debug)
    env["OCF_ROOT"] = ocf_root
    if extra:
        env.update(extra)
    return env


# --------------------------------------------------------------------------- running scripts


@dataclass(frozen=True, slots=True, kw_only=True)
class ScriptResult:
    returncode: int
    stdout: str
    stderr: str


def _read_back(f: IO[bytes]) -> str:
    f.seek(0)
    data = f.read(_OUTPUT_LIMIT)
    return data.decode("utf-8", errors="replace")


def _kill_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


async def run_script(
    argv: Sequence[str],
    *,
    resource: str,
    env: Mapping[str, str],
    time_limit: float,
    kill_grace: float = 5.0,
) -> ScriptResult:
    """Run one script operation to completion or to its deadline.

    Raises :class:`ResourceError` when the program cannot be executed or does
    not finish within ``time_limit`` seconds; in the latter case its whole process
    group has been terminated (SIGTERM, then SIGKILL after ``kill_grace``) and
    reaped before this returns. A cancelled caller gets the same clean-up.
    """
    cancelled_pgid: int | None = None

    async def terminate_group(proc: trio.Process) -> None:
        # run_process calls this, shielded, once our deadline (or our caller) cancels it.
        nonlocal cancelled_pgid
        cancelled_pgid = proc.pid  # start_new_session: the group id is the leader's pid
        _kill_group(proc.pid, signal.SIGTERM)
        await trio.sleep(kill_grace)
        log.warning("%s did not exit on SIGTERM; sending SIGKILL", argv[0])
        _kill_group(proc.pid, signal.SIGKILL)

    files: list[IO[bytes]] = []
    try:
        # Inside the try: a caller cancelled between the two must not leak the first.
        files.append(await trio.to_thread.run_sync(tempfile.TemporaryFile))
        files.append(await trio.to_thread.run_sync(tempfile.TemporaryFile))
        out, err = files
        with trio.move_on_after(time_limit) as scope:
            try:
                done = await trio.run_process(
                    list(argv),
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    env=dict(env),
                    start_new_session=True,
                    check=False,
                    deliver_cancel=terminate_group,
                )
            except OSError as exc:
                raise ResourceError(resource, f"cannot run {argv[0]}: {exc.strerror}") from exc
        if scope.cancelled_caught:
            raise TimedOut(resource, f"{' '.join(argv)} timed out after {_seconds(time_limit)} s")
        stdout = await trio.to_thread.run_sync(_read_back, out)
        stderr = await trio.to_thread.run_sync(_read_back, err)
    finally:
        if cancelled_pgid is not None:
            # Children that outlived their leader's SIGTERM.
            _kill_group(cancelled_pgid, signal.SIGKILL)
        for f in files:
            f.close()
    for name, text in (("stdout", stdout), ("stderr", stderr)):
        for line in text.splitlines():
            log.debug("%s %s: %s", os.path.basename(argv[0]), name, line)
    return ScriptResult(returncode=done.returncode, stdout=stdout, stderr=stderr)


def _seconds(value: float) -> str:
    return f"{value:g}"


def failed_monitor(resource: str, exc: ResourceError, timeout: float) -> MonitorResult:
    """A monitor that could not run, or ran past ``timeout`` (its group killed): a failure."""
    if isinstance(exc, TimedOut):
        reason = f"monitor timed out after {_seconds(timeout)}s"
    else:
        reason = exc.reason
    return monitor_result(resource, MonitorState.FAILED, reason=reason)


def _is_executable_file(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def locate_script(name: str, dirs: Sequence[str]) -> str | None:
    """ResourceManager's ``scriptpath``: the first regular executable ``DIR/NAME``."""
    if not name or "/" in name or name in (".", ".."):
        return None
    for d in dirs:
        path = os.path.join(d, name)
        if _is_executable_file(path):
            return path
    return None


# --------------------------------------------------------------------------- agents


class ScriptAgent:
    """A haresources name found in ``resource.d`` (Heartbeat style) or ``/etc/init.d`` (LSB).

    The script is looked up at every operation, as ResourceManager does, so a
    package installed after pulse started is found. Invocation is
    ``SCRIPT ARGS... OP`` (arguments first, operation last).
    """

    def __init__(
        self,
        spec: ResourceSpec,
        *,
        resource_dir: str,
        init_dir: str,
        env: Mapping[str, str],
        timeouts: AgentTimeouts,
    ) -> None:
        self.spec = spec
        self.resource_dir = resource_dir
        self.init_dir = init_dir
        self.env = dict(env)
        self.timeouts = timeouts

    def __repr__(self) -> str:
        return f"ScriptAgent({self.spec.raw!r})"

    async def _locate(self) -> tuple[str, bool]:
        """(path, is_init_script) or ResourceError("Cannot locate resource script NAME")."""
        name = self.spec.agent
        path = await trio.to_thread.run_sync(locate_script, name, (self.resource_dir,))
        if path is not None:
            return path, False
        path = await trio.to_thread.run_sync(locate_script, name, (self.init_dir,))
        if path is not None:
            return path, True
        log.error("Cannot locate resource script %s", name)
        raise ResourceError(self.spec.raw, f"Cannot locate resource script {name}")

    async def _run(self, op: str, time_limit: float, *, announce: bool) -> tuple[str, ScriptResult]:
        path, _ = await self._locate()
        argv = [path, *self.spec.args, op]
        if announce:
            log.info("Running %s", " ".join(argv))
        result = await run_script(
            argv,
            resource=self.spec.raw,
            env=self.env,
            time_limit=time_limit,
            kill_grace=self.timeouts.kill_grace,
        )
        return path, result

    async def _start_or_stop(self, op: str, time_limit: float) -> None:
        path, result = await self._run(op, time_limit, announce=True)
        if result.returncode != 0:
            log.error("Return code %d from %s", result.returncode, path)
            raise ResourceError(self.spec.raw, f"Return code {result.returncode} from {path}")

    async def start(self) -> None:
        await self._start_or_stop("start", self.timeouts.start)

    async def stop(self) -> None:
        await self._start_or_stop("stop", self.timeouts.stop)

    async def status(self) -> bool:
        path, is_init = await self._locate()
        argv = [path, *self.spec.args, "status"]
        result = await run_script(
            argv,
            resource=self.spec.raw,
            env=self.env,
            time_limit=self.timeouts.status,
            kill_grace=self.timeouts.kill_grace,
        )
        if is_init:
            return lsb_status_running(result.returncode, result.stdout)
        return heartbeat_status_running(result.stdout)

    async def monitor(self, timeout: float) -> MonitorResult:
        """``status``, read by LSB exit codes for an init script and by Heartbeat's
        text rule (:func:`heartbeat_status_running`) for a ``resource.d`` script."""
        raw = self.spec.raw
        try:
            path, is_init = await self._locate()
            result = await run_script(
                [path, *self.spec.args, "status"],
                resource=raw,
                env=self.env,
                time_limit=timeout,
                kill_grace=self.timeouts.kill_grace,
            )
        except ResourceError as exc:
            return failed_monitor(raw, exc, timeout)
        code = result.returncode
        if is_init:
            state = lsb_monitor_state(code)
            reason = (
                ""
                if state is not MonitorState.FAILED
                else f"status: {lsb_meaning(code)} ({path} exit code {code})"
            )
        elif heartbeat_status_running(result.stdout):
            state, reason = MonitorState.RUNNING, ""
        else:
            state = MonitorState.NOT_RUNNING
            reason = f"{path} status did not say running or OK"
        if state is MonitorState.NOT_RUNNING and not reason:
            reason = f"{path} status: stopped"
        return monitor_result(raw, state, code=code, reason=reason, stderr=result.stderr)


class LsbAgent(ScriptAgent):
    """``lsb:NAME``: only ``/etc/init.d/NAME``, status judged by LSB exit codes."""

    async def _locate(self) -> tuple[str, bool]:
        name = self.spec.agent.removeprefix("lsb:")
        path = await trio.to_thread.run_sync(locate_script, name, (self.init_dir,))
        if path is None:
            log.error("Cannot locate resource script %s", name)
            raise ResourceError(self.spec.raw, f"Cannot locate resource script {name}")
        return path, True


def parse_ocf_name(agent: str) -> tuple[str, str] | None:
    """``ocf:PROVIDER:TYPE`` -> (PROVIDER, TYPE); None when malformed."""
    parts = agent.split(":")
    if len(parts) != 3 or parts[0] != "ocf" or not parts[1] or not parts[2]:
        return None
    if any("/" in p or p in (".", "..") for p in parts[1:]):
        return None
    return parts[1], parts[2]


def parse_ocf_params(args: Sequence[str]) -> dict[str, str]:
    """``k=v`` arguments -> {k: v}; raises ValueError naming the first bad one."""
    params: dict[str, str] = {}
    for arg in args:
        key, sep, value = arg.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise ValueError(f"OCF parameter {arg!r} is not NAME=VALUE")
        params[key] = value
    return params


def ocf_instance_name(rtype: str, params: Mapping[str, str]) -> str:
    """OCF_RESOURCE_INSTANCE: ``TYPE`` or ``TYPE_<first value>``, made file-name safe.

    Agents use it in state file names (Dummy: ``$HA_RSCTMP/Dummy-<instance>.state``),
    so it must be stable across restarts and contain no ``/``.
    """
    if not params:
        return rtype
    first = next(iter(params.values()))
    return f"{rtype}_{re.sub(r'[^A-Za-z0-9_.:-]', '_', first)}"


class OcfAgent:
    """``ocf:PROVIDER:TYPE[::k=v...]``: runs ``$OCF_ROOT/resource.d/PROVIDER/TYPE OP``."""

    def __init__(
        self,
        spec: ResourceSpec,
        *,
        provider: str,
        rtype: str,
        params: Mapping[str, str],
        ocf_root: str,
        env: Mapping[str, str],
        timeouts: AgentTimeouts,
    ) -> None:
        self.spec = spec
        self.provider = provider
        self.rtype = rtype
        self.params = dict(params)
        self.ocf_root = ocf_root
        self.timeouts = timeouts
        self.path = os.path.join(ocf_root, "resource.d", provider, rtype)
        base = dict(env)
        base.update(
            {
                "OCF_ROOT": ocf_root,
                "OCF_RA_VERSION_MAJOR": "1",
                "OCF_RA_VERSION_MINOR": "0",
                "OCF_RESOURCE_INSTANCE": ocf_instance_name(rtype, self.params),
                "OCF_RESOURCE_TYPE": rtype,
                "OCF_RESOURCE_PROVIDER": provider,
            }
        )
        for key, value in self.params.items():
            base[f"OCF_RESKEY_{key}"] = value
        self.env = base

    def __repr__(self) -> str:
        return f"OcfAgent({self.spec.raw!r})"

    async def _run(self, op: str, time_limit: float) -> ScriptResult:
        if not await trio.to_thread.run_sync(_is_executable_file, self.path):
            log.error("Cannot locate resource script %s", self.path)
            raise ResourceError(self.spec.raw, f"Cannot locate resource script {self.path}")
        env = dict(self.env)
        env["OCF_RESKEY_CRM_meta_timeout"] = str(int(time_limit * 1000))
        env["__OCF_ACTION"] = op
        return await run_script(
            [self.path, op],
            resource=self.spec.raw,
            env=env,
            time_limit=time_limit,
            kill_grace=self.timeouts.kill_grace,
        )

    def _announce(self, op: str) -> None:
        shown = " ".join(f"{k}={v}" for k, v in self.params.items())
        log.info("Running %s %s%s", self.path, f"{shown} " if shown else "", op)

    async def start(self) -> None:
        self._announce("start")
        result = await self._run("start", self.timeouts.start)
        if result.returncode != OCF_SUCCESS:
            name = ocf_code_name(result.returncode)
            log.error("Return code %d (%s) from %s", result.returncode, name, self.path)
            raise ResourceError(self.spec.raw, f"start failed: {name} from {self.path}")

    async def stop(self) -> None:
        self._announce("stop")
        result = await self._run("stop", self.timeouts.stop)
        if not ocf_stop_succeeded(result.returncode):
            name = ocf_code_name(result.returncode)
            log.error("Return code %d (%s) from %s", result.returncode, name, self.path)
            raise ResourceError(self.spec.raw, f"stop failed: {name} from {self.path}")

    async def status(self) -> bool:
        result = await self._run("monitor", self.timeouts.status)
        verdict = ocf_monitor_running(result.returncode)
        if verdict is None:
            name = ocf_code_name(result.returncode)
            raise ResourceError(self.spec.raw, f"monitor failed: {name} from {self.path}")
        return verdict

    async def monitor(self, timeout: float) -> MonitorResult:
        """OCF ``monitor`` with OCF's exit codes (:func:`ocf_monitor_state`)."""
        raw = self.spec.raw
        try:
            result = await self._run("monitor", timeout)
        except ResourceError as exc:
            return failed_monitor(raw, exc, timeout)
        code = result.returncode
        state = ocf_monitor_state(code)
        if state is MonitorState.FAILED:
            meaning = OCF_MEANINGS.get(code, "unknown exit code")
            reason = f"monitor: {ocf_code_name(code)} ({meaning}) from {self.path}"
        elif state is MonitorState.NOT_RUNNING:
            reason = f"monitor: OCF_NOT_RUNNING from {self.path}"
        else:
            reason = ""
        return monitor_result(raw, state, code=code, reason=reason, stderr=result.stderr)


class SystemdAgent:
    """``systemd:UNIT``: ``systemctl start|stop UNIT``, status from ``systemctl is-active``.

    The unit is never enabled: pulse, not systemd, decides where it runs.
    """

    # systemctl exit status for "unit not loaded / not found" on stop (LSB 5).
    _NOT_INSTALLED = 5

    def __init__(
        self,
        spec: ResourceSpec,
        *,
        unit: str,
        env: Mapping[str, str],
        timeouts: AgentTimeouts,
        systemctl: str = "systemctl",
    ) -> None:
        self.spec = spec
        self.unit = unit
        self.env = dict(env)
        self.timeouts = timeouts
        self.systemctl = systemctl

    def __repr__(self) -> str:
        return f"SystemdAgent({self.unit!r})"

    async def _run(self, args: Sequence[str], time_limit: float) -> ScriptResult:
        return await run_script(
            [self.systemctl, *args],
            resource=self.spec.raw,
            env=self.env,
            time_limit=time_limit,
            kill_grace=self.timeouts.kill_grace,
        )

    async def start(self) -> None:
        log.info("Running %s start %s", self.systemctl, self.unit)
        result = await self._run(["start", self.unit], self.timeouts.start)
        if result.returncode != 0:
            log.error(
                "Return code %d from %s start %s", result.returncode, self.systemctl, self.unit
            )
            raise ResourceError(
                self.spec.raw, f"Return code {result.returncode} from systemctl start {self.unit}"
            )

    async def stop(self) -> None:
        log.info("Running %s stop %s", self.systemctl, self.unit)
        result = await self._run(["stop", self.unit], self.timeouts.stop)
        if result.returncode == self._NOT_INSTALLED:
            log.warning("systemd unit %s is not loaded: nothing to stop", self.unit)
            return
        if result.returncode != 0:
            log.error(
                "Return code %d from %s stop %s", result.returncode, self.systemctl, self.unit
            )
            raise ResourceError(
                self.spec.raw, f"Return code {result.returncode} from systemctl stop {self.unit}"
            )

    async def status(self) -> bool:
        result = await self._run(["is-active", "--quiet", self.unit], self.timeouts.status)
        return result.returncode == 0

    async def monitor(self, timeout: float) -> MonitorResult:
        """The unit's active state from ``systemctl is-active UNIT`` (its first output line)."""
        raw = self.spec.raw
        try:
            result = await self._run(["is-active", self.unit], timeout)
        except ResourceError as exc:
            return failed_monitor(raw, exc, timeout)
        lines = result.stdout.split()
        word = lines[0] if lines else ""
        state = systemd_monitor_state(word)
        reason = ""
        if state is not MonitorState.RUNNING:
            reason = f"systemd unit {self.unit} is {word or '?'}"
        return monitor_result(
            raw, state, code=result.returncode, reason=reason, stderr=result.stderr
        )
