"""The ``AsteriskBindaddr`` resource agent.

``start``: rewrite the bind addresses to the floating IP (in a worker thread), reload
Asterisk with the configured command, then poll the check command (if any) until its
output shows the address. ``stop``: restore the files, then reload (a failed reload
on stop is only a warning: a stop must not fail because Asterisk, stopped earlier in
the group, cannot be reached). ``status``: every target carries the floating IP.

Commands run as argv lists (never a shell) through pulse's :func:`run_script`: own
process group, stdin from /dev/null, each under ``timeout`` seconds.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

import trio

from pulse.config.model import ResourceSpec
from pulse.resources.base import ResourceError
from pulse.resources.scripts import ScriptResult, run_script
from pulse_asterisk.rebind import (
    Outcome,
    RebindError,
    files_carry,
    restore_files,
    rewrite_files,
)
from pulse_asterisk.settings import AsteriskSettings

log = logging.getLogger("pulse.asterisk")

# What `asterisk -rx` prints (with exit status 1, or 0 on some versions) when no
# Asterisk is running to talk to.
_NOT_CONNECTED = ("Unable to connect to remote asterisk", "does /var/run/asterisk")


def _tail(result: ScriptResult) -> str:
    text = (result.stderr.strip() or result.stdout.strip()).splitlines()
    return text[-1][:200] if text else "no output"


def reload_problem(result: ScriptResult) -> str | None:
    """Why a reload command's result is a failure, or None when it succeeded."""
    output = result.stdout + result.stderr
    if any(marker in output for marker in _NOT_CONNECTED):
        return f"Asterisk is not running ({_tail(result)})"
    if result.returncode != 0:
        return f"exit status {result.returncode} ({_tail(result)})"
    return None


class AsteriskBindaddr:
    """Binds Asterisk to ``vip`` while the group runs here (see the module docstring)."""

    def __init__(
        self,
        spec: ResourceSpec,
        *,
        vip: str,
        settings: AsteriskSettings,
        env: Mapping[str, str] | None = None,
        kill_grace: float = 5.0,
    ) -> None:
        self.spec = spec
        self.vip = vip
        self.settings = settings
        self.env = dict(env) if env is not None else None
        self.kill_grace = kill_grace

    def __repr__(self) -> str:
        return f"AsteriskBindaddr({self.vip!r}, confdir={self.settings.confdir!r})"

    # ------------------------------------------------------------------ operations

    async def start(self) -> None:
        log.info("Running %s start: binding Asterisk to %s", self.spec.raw, self.vip)
        try:
            outcome = await trio.to_thread.run_sync(rewrite_files, self.settings, self.vip)
        except RebindError as exc:
            log.error("%s: %s", self.spec.raw, exc)
            raise ResourceError(self.spec.raw, str(exc)) from exc
        self._report(outcome, "bind address set to " + self.vip)
        problem = await self._reload()
        if problem is None:
            problem = await self._check()
        if problem is None:
            return
        if self.settings.reload_required:
            log.error("%s: %s", self.spec.raw, problem)
            raise ResourceError(self.spec.raw, problem)
        log.warning("%s: %s (reload_required is off: going on)", self.spec.raw, problem)

    async def stop(self) -> None:
        log.info("Running %s stop: restoring Asterisk's bind addresses", self.spec.raw)
        try:
            outcome = await trio.to_thread.run_sync(restore_files, self.settings, self.vip)
        except RebindError as exc:
            log.error("%s: %s", self.spec.raw, exc)
            raise ResourceError(self.spec.raw, str(exc)) from exc
        self._report(outcome, "original bind address restored")
        if not outcome.changed:
            return
        problem = await self._reload()
        if problem is not None:
            log.warning(
                "%s: %s (Asterisk reads the restored files when it starts)", self.spec.raw, problem
            )

    async def status(self) -> bool:
        try:
            return await trio.to_thread.run_sync(files_carry, self.settings, self.vip)
        except RebindError as exc:
            raise ResourceError(self.spec.raw, str(exc)) from exc

    # ------------------------------------------------------------------ helpers

    def _report(self, outcome: Outcome, what: str) -> None:
        for path in outcome.changed:
            log.info("%s: %s: %s", self.spec.raw, path, what)
        for reason in outcome.skipped:
            log.debug("%s: skipped %s", self.spec.raw, reason)
        for warning in outcome.warnings:
            log.warning("%s: %s", self.spec.raw, warning)

    def _environment(self) -> dict[str, str]:
        return dict(self.env) if self.env is not None else dict(os.environ)

    async def _run(self, argv: tuple[str, ...]) -> ScriptResult:
        return await run_script(
            argv,
            resource=self.spec.raw,
            env=self._environment(),
            time_limit=self.settings.timeout,
            kill_grace=self.kill_grace,
        )

    async def _reload(self) -> str | None:
        argv = self.settings.reload_command
        try:
            result = await self._run(argv)
        except ResourceError as exc:
            hint = ""
            if exc.reason.startswith("cannot run"):
                hint = " (is Asterisk installed here? reload_command sets the command)"
            return f"reload failed: {exc.reason}{hint}"
        problem = reload_problem(result)
        if problem is not None:
            return f"reload ({' '.join(argv)}) failed: {problem}"
        log.info("%s: Asterisk reloaded (%s)", self.spec.raw, " ".join(argv))
        return None

    async def _check(self) -> str | None:
        argv = self.settings.check_command
        if not argv:
            return None
        expect = self.settings.check_expect or self.vip
        last = "not run"
        with trio.move_on_after(self.settings.check_timeout):
            while True:
                try:
                    result = await self._run(argv)
                except ResourceError as exc:
                    last = exc.reason
                else:
                    problem = reload_problem(result)
                    if problem is None and expect in result.stdout:
                        log.info("%s: %s shows %s", self.spec.raw, " ".join(argv), expect)
                        return None
                    last = problem or f"its output does not show {expect}"
                await trio.sleep(self.settings.check_interval)
        return (
            f"check ({' '.join(argv)}) did not confirm {expect} within "
            f"{self.settings.check_timeout:g} s: {last}"
        )
