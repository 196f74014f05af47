"""The respawn supervisor with real processes (real clock, short bounded waits)."""

from __future__ import annotations

import os
import pwd
import signal
import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio

from pulse.protocol.events import Output
from pulse.respawn import ClientSpec, RespawnSupervisor
from pulse_lab.procstat import running

WAIT = 10.0  # seconds: the bound of every wait below


def script(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


async def until(predicate: Callable[[], bool]) -> None:
    with trio.fail_after(WAIT):
        while not predicate():  # noqa: ASYNC110 - polls files and /proc, bounded
            await trio.sleep(0.02)


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


@asynccontextmanager
async def supervising(
    *specs: ClientSpec, stop_grace: float = 2.0
) -> AsyncIterator[RespawnSupervisor]:
    supervisor = RespawnSupervisor(specs, reboot=lambda why: None, stop_grace=stop_grace)
    async with trio.open_nursery() as nursery:
        tx, rx = trio.open_memory_channel[Output](1)
        async with tx:
            await nursery.start(supervisor.run, rx)
            supervisor.comms_up()
            try:
                yield supervisor
            finally:
                with trio.fail_after(WAIT):
                    await supervisor.stop()


def me() -> str:
    return pwd.getpwuid(os.geteuid()).pw_name


async def test_a_killed_program_is_restarted_with_a_new_pid_and_stop_ends_it(
    tmp_path: Path,
) -> None:
    out = tmp_path / "pids"
    prog = script(tmp_path, "agent", 'echo $$ >> "$1"\nexec sleep 60\n')
    spec = ClientSpec(argv=(str(prog), str(out)), user=me(), env={"PATH": os.environ["PATH"]})
    async with supervising(spec) as supervisor:
        await until(lambda: len(lines(out)) == 1)
        first = int(lines(out)[0])
        os.kill(first, signal.SIGKILL)
        await until(lambda: len(lines(out)) == 2)  # after the 1 s delay of a short run
        second = int(lines(out)[1])
        assert second != first
        # The child can write its PID before the supervisor's task, which started it,
        # runs again to record it (seen on a loaded machine).
        await until(lambda: supervisor.status()[0]["pid"] == second)
        [entry] = supervisor.status()
        assert entry["restarts"] == 1 and entry["pid"] == second
        assert entry["last_exit"] == {"code": None, "signal": signal.SIGKILL}
        await supervisor.stop()
        assert not running(second)
        assert supervisor.status()[0]["state"] == "stopped"


async def test_arguments_are_passed_as_argv_never_through_a_shell(tmp_path: Path) -> None:
    out = tmp_path / "argv"
    prog = script(tmp_path, "agent", 'for a in "$@"; do echo "$a"; done > "$1"\nexec sleep 60\n')
    spec = ClientSpec(
        argv=(str(prog), str(out), "$HOME", "a;b", "*"),
        user=me(),
        env={"PATH": os.environ["PATH"], "HA_COLOUR": "blue"},
    )
    async with supervising(spec):
        await until(lambda: len(lines(out)) == 4)
        assert lines(out) == [str(out), "$HOME", "a;b", "*"]


async def test_the_program_gets_the_environment_it_is_given(tmp_path: Path) -> None:
    out = tmp_path / "env"
    prog = script(tmp_path, "agent", 'echo "$HA_COLOUR $HA_CURHOST" > "$1"\nexec sleep 60\n')
    spec = ClientSpec(
        argv=(str(prog), str(out)),
        user=me(),
        env={"PATH": os.environ["PATH"], "HA_COLOUR": "blue", "HA_CURHOST": "prime"},
    )
    async with supervising(spec):
        await until(lambda: lines(out) == ["blue prime"])


async def test_a_program_ignoring_sigterm_and_its_own_children_are_killed_at_stop(
    tmp_path: Path,
) -> None:
    out = tmp_path / "pids"
    body = "trap '' TERM\nsleep 60 &\necho $$ $! > \"$1\"\nwait\nwait\n"
    prog = script(tmp_path, "stubborn", body)
    spec = ClientSpec(argv=(str(prog), str(out)), user=me(), env={"PATH": os.environ["PATH"]})
    async with supervising(spec, stop_grace=0.5) as supervisor:
        await until(lambda: len(lines(out)) == 1)
        pids = [int(p) for p in lines(out)[0].split()]
        with trio.fail_after(WAIT):
            await supervisor.stop()
        await until(lambda: not any(running(p) for p in pids))


@pytest.mark.skipif(os.geteuid() != 0, reason="running as another user needs root")
async def test_the_program_runs_as_the_configured_user() -> None:
    # pytest's tmp_path sits in a 0700 directory of root's: nobody could not reach it.
    with tempfile.TemporaryDirectory(prefix="pulse-respawn-") as name:
        shared = Path(name)
        shared.chmod(0o777)  # noqa: ASYNC240 - a test's set-up, before any task runs
        out = shared / "id"
        prog = script(shared, "agent", 'id -u > "$1"\nexec sleep 60\n')
        nobody = pwd.getpwnam("nobody")
        env = {"PATH": os.environ["PATH"]}
        spec = ClientSpec(argv=(str(prog), str(out)), user="nobody", env=env)
        async with supervising(spec):
            await until(lambda: lines(out) == [str(nobody.pw_uid)])


async def test_an_unknown_user_fails_the_program_without_retrying(tmp_path: Path) -> None:
    prog = script(tmp_path, "agent", "exec sleep 60\n")
    spec = ClientSpec(argv=(str(prog),), user="no-such-user-pulse", env={})
    async with supervising(spec) as supervisor:
        await until(lambda: supervisor.status()[0]["state"] == "failed")
