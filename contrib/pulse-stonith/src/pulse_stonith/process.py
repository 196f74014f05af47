"""Running a fencing program: bounded in time, its whole process group cleaned up."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import trio

log = logging.getLogger("pulse.stonith")

OUTPUT_LIMIT = 64 * 1024
KILL_GRACE = 2.0


class FencingError(Exception):
    """Fencing did not happen; the message says why, in words for the log and status."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Completed:
    returncode: int
    stdout: str
    stderr: str


def _kill_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


async def run_program(
    argv: Sequence[str],
    *,
    timeout: float,
    stdin: bytes = b"",
    env: Mapping[str, str] | None = None,
    kill_grace: float = KILL_GRACE,
) -> Completed:
    """Run *argv* to completion within *timeout* seconds.

    Raises :class:`FencingError` when it cannot be started or overruns; then its
    process group has been sent SIGTERM and, after *kill_grace*, SIGKILL.
    """
    started: list[int] = []

    async def terminate(proc: trio.Process) -> None:
        started.append(proc.pid)
        _kill_group(proc.pid, signal.SIGTERM)
        await trio.sleep(kill_grace)
        _kill_group(proc.pid, signal.SIGKILL)

    try:
        with trio.move_on_after(timeout) as scope:
            try:
                done = await trio.run_process(
                    list(argv),
                    stdin=stdin,
                    capture_stdout=True,
                    capture_stderr=True,
                    env=None if env is None else dict(env),
                    start_new_session=True,
                    check=False,
                    deliver_cancel=terminate,
                )
            except OSError as exc:
                raise FencingError(f"cannot run {argv[0]}: {exc.strerror or exc}") from exc
    finally:
        for pgid in started:  # children that outlived their leader
            _kill_group(pgid, signal.SIGKILL)
    if scope.cancelled_caught:
        raise FencingError(f"{os.path.basename(argv[0])} did not finish within {timeout:g}s")
    return Completed(
        returncode=done.returncode,
        stdout=_text(done.stdout),
        stderr=_text(done.stderr),
    )


def _text(data: bytes | None) -> str:
    return (data or b"")[:OUTPUT_LIMIT].decode("utf-8", errors="replace")


def last_line(*texts: str) -> str:
    """The last non-empty line of the first text that has one (for a failure reason)."""
    for text in texts:
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        if lines:
            return lines[-1][:300]
    return ""
