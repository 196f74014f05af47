"""The respawn supervisor with fake programs, in virtual time: when programs start,
restart, give up, reboot and stop. Times asserted are exact (MockClock)."""

from __future__ import annotations

import logging
import random
import signal
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio
import trio.testing

from pulse.cli.ctl import format_status
from pulse.config import Loaded
from pulse.config.model import (
    AuthKey,
    AuthKeys,
    AuthMethod,
    BcastMedium,
    Config,
    RespawnDirective,
    Timing,
)
from pulse.daemon import Daemon, DaemonOptions, _watch_signals, serve
from pulse.protocol.events import Output
from pulse.respawn import ClientSpec, RespawnSupervisor
from pulse.testing import FakeNetwork
from pulse.testing.processes import FakeSpawner, Plan, run_forever

SIGTERM = int(signal.SIGTERM)
SIGKILL = int(signal.SIGKILL)


def spec(command: str, *, failfast: bool = False) -> ClientSpec:
    return ClientSpec(argv=tuple(command.split()), user="root", failfast=failfast, env={})


class Harness:
    def __init__(self, supervisor: RespawnSupervisor, spawner: FakeSpawner) -> None:
        self.supervisor = supervisor
        self.spawner = spawner
        self.reboots: list[str] = []

    def state(self, command: str) -> dict[str, object]:
        [entry] = [c for c in self.supervisor.status() if c["command"] == command]
        return entry

    def start_times(self, command: str) -> list[float]:
        return [p.started_at for p in self.spawner.of(command)]


@asynccontextmanager
async def supervising(
    specs: Sequence[ClientSpec],
    plan: Plan = run_forever,
    *,
    ignore_sigterm: bool = False,
    stop_grace: float = 5.0,
) -> AsyncIterator[Harness]:
    async with trio.open_nursery() as nursery:
        spawner = FakeSpawner(nursery, plan, ignore_sigterm=ignore_sigterm)
        reboots: list[str] = []
        supervisor = RespawnSupervisor(
            specs, reboot=reboots.append, spawn=spawner, stop_grace=stop_grace
        )
        harness = Harness(supervisor, spawner)
        harness.reboots = reboots
        tx, rx = trio.open_memory_channel[Output](1)
        async with tx:
            await nursery.start(supervisor.run, rx)
            supervisor.comms_up()
            yield harness
            nursery.cancel_scope.cancel()


def dies(after: float, returncode: int, *, times: int = 1_000_000) -> Plan:
    """Every start of every program ends after ``after`` s, the first ``times`` starts."""
    return lambda command, starts: (after, returncode) if starts < times else None


async def test_a_program_that_dies_after_a_long_run_is_restarted_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with supervising([spec("/bin/agent -v")], dies(60, 1, times=1)) as h:
        await trio.sleep(100)
        assert h.start_times("/bin/agent -v") == [0.0, 60.0]
        st = h.state("/bin/agent -v")
        assert st["state"] == "running" and st["restarts"] == 1
        assert st["last_exit"] == {"code": 1, "signal": None}
        assert st["pid"] == h.spawner.started[-1].pid


async def test_a_program_that_dies_young_is_restarted_one_second_later(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with supervising([spec("/bin/agent")], dies(5, 0, times=2)) as h:
        await trio.sleep(100)
        assert h.start_times("/bin/agent") == [0.0, 6.0, 12.0]


async def test_exit_status_100_leaves_the_program_dead(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with supervising([spec("/bin/agent")], dies(40, 100)) as h:
        await trio.sleep(200)
        assert h.start_times("/bin/agent") == [0.0]
        assert h.state("/bin/agent")["state"] == "exited"


async def test_the_eleventh_short_run_in_a_row_stops_the_respawning(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="pulse"):
        async with supervising([spec("/bin/crashy")], dies(1, 1)) as h:
            await trio.sleep(600)
            # Runs of 1 s, each restart 1 s later: 11 starts, the 11th death gives up.
            assert h.start_times("/bin/crashy") == [float(2 * i) for i in range(11)]
            st = h.state("/bin/crashy")
            assert st["state"] == "too-fast" and st["restarts"] == 10
    messages = [r.getMessage() for r in caplog.records]
    assert messages.count('Respawning client "/bin/crashy":') == 10
    assert 'Client /bin/crashy "respawning too fast"' in messages
    assert "Client /bin/crashy exited with return code 1." in messages


async def test_one_long_run_resets_the_count_of_short_runs(
    autojump_clock: trio.testing.MockClock,
) -> None:
    def plan(command: str, starts: int) -> tuple[float, int] | None:
        return (40.0 if starts == 8 else 1.0), 1  # 8 short runs, a long one, short again

    async with supervising([spec("/bin/flaky")], plan) as h:
        await trio.sleep(600)
        assert len(h.start_times("/bin/flaky")) == 8 + 1 + 11
        assert h.state("/bin/flaky")["state"] == "too-fast"


async def test_a_failfast_program_that_fails_calls_the_reboot_and_is_not_restarted(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with supervising([spec("/sbin/guard", failfast=True)], dies(50, 3)) as h:
        await trio.sleep(200)
        assert h.reboots == ["failfast client /sbin/guard died (exit status 3)"]
        assert h.start_times("/sbin/guard") == [0.0]
        assert h.state("/sbin/guard")["state"] == "rebooting"


async def test_a_failfast_program_killed_by_a_signal_calls_the_reboot(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with supervising([spec("/sbin/guard", failfast=True)], dies(50, -SIGKILL)) as h:
        await trio.sleep(60)
        assert h.reboots == ["failfast client /sbin/guard died (killed by signal 9)"]


async def test_a_failfast_program_exiting_0_is_restarted_without_a_reboot(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with supervising([spec("/sbin/guard", failfast=True)], dies(50, 0, times=1)) as h:
        await trio.sleep(60)
        assert h.reboots == []
        assert h.start_times("/sbin/guard") == [0.0, 50.0]


async def test_stop_terminates_the_programs_in_reverse_order_and_nothing_restarts(
    autojump_clock: trio.testing.MockClock,
) -> None:
    names = ["/bin/first", "/bin/second", "/bin/third"]
    async with supervising([spec(n, failfast=True) for n in names]) as h:
        await trio.sleep(10)
        await h.supervisor.stop()
        assert h.spawner.signalled == [(n, SIGTERM) for n in reversed(names)]
        await trio.sleep(100)
        assert len(h.spawner.started) == 3
        assert h.reboots == []  # killed by our own SIGTERM at shutdown
        assert {c["state"] for c in h.supervisor.status()} == {"stopped"}


async def test_a_program_that_ignores_sigterm_is_killed_after_the_grace(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with supervising([spec("/bin/stubborn")], ignore_sigterm=True, stop_grace=3) as h:
        await trio.sleep(1)
        await h.supervisor.stop()
        assert trio.current_time() == 4.0
        [process] = h.spawner.started
        assert process.signals == [SIGTERM, SIGKILL]
        assert process.returncode == -SIGKILL


async def test_no_restart_once_shutdown_begins_even_during_the_restart_delay(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with supervising([spec("/bin/agent")], dies(5, 1)) as h:
        await trio.sleep(5.5)  # died at 5, restart due at 6
        h.supervisor.shutdown_begins()
        await trio.sleep(10)
        assert h.start_times("/bin/agent") == [0.0]
        assert h.state("/bin/agent")["state"] == "stopped"


async def test_a_cancelled_supervisor_kills_what_still_runs(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with trio.open_nursery() as outer:
        spawner = FakeSpawner(outer)
        supervisor = RespawnSupervisor(
            [spec("/bin/a"), spec("/bin/b")], reboot=lambda why: None, spawn=spawner
        )
        with trio.CancelScope() as scope:
            tx, rx = trio.open_memory_channel[Output](1)
            async with tx, trio.open_nursery() as nursery:
                await nursery.start(supervisor.run, rx)
                supervisor.comms_up()
                await trio.sleep(1)
                scope.cancel()
        assert sorted(spawner.signalled) == [("/bin/a", SIGKILL), ("/bin/b", SIGKILL)]
        assert spawner.running() == []
        outer.cancel_scope.cancel()


async def test_a_program_that_cannot_be_executed_is_not_retried(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    async with trio.open_nursery() as nursery:
        spawner = FakeSpawner(nursery)
        spawner.refuse.add("/bin/missing")
        supervisor = RespawnSupervisor(
            [spec("/bin/missing"), spec("/bin/ok")], reboot=lambda why: None, spawn=spawner
        )
        tx, rx = trio.open_memory_channel[Output](1)
        async with tx:
            with caplog.at_level(logging.ERROR, logger="pulse"):
                await nursery.start(supervisor.run, rx)
                supervisor.comms_up()
                await trio.sleep(100)
            states = {c["command"]: c["state"] for c in supervisor.status()}
            assert states == {"/bin/missing": "failed", "/bin/ok": "running"}
            assert "Cannot exec /bin/missing" in caplog.text
            nursery.cancel_scope.cancel()


# --------------------------------------------------------------------------- whole daemon

SHA1 = AuthKeys(outbound=1, keys=(AuthKey(index=1, method=AuthMethod.SHA1, key=b"k"),))
TIMING = Timing(keepalive=1000, deadtime=3000, warntime=2000, initdead=12000, deadping=3000)


def respawn_config(*directives: RespawnDirective) -> Config:
    return Config(
        nodes=("prime", "calc"),
        media=(BcastMedium(interface="eth0"),),
        auth=SHA1,
        timing=TIMING,
        respawn=directives,
        env=(("COLOUR", "blue"),),
    )


@asynccontextmanager
async def daemon_with(
    config: Config, spawner: FakeSpawner, reboots: list[str], tmp_path: Path
) -> AsyncIterator[tuple[Daemon, trio.CancelScope]]:
    options = DaemonOptions(
        state_dir=tmp_path,
        handle_signals=False,
        wallclock=lambda: 1_700_000_000.0 + trio.current_time(),
        rng=random.Random(1),
        generation=1,
        uuid=bytes(16),
        loadavg=lambda: "n/a",
        reboot=reboots.append,
        spawn=spawner,
    )
    scope = trio.CancelScope()

    async def node(task_status: trio.TaskStatus[Daemon]) -> None:
        with scope:
            await serve(
                Loaded(config=config, node="prime", warnings=()),
                options,
                links=[FakeNetwork().link("prime")],
                task_status=task_status,
            )

    async with trio.open_nursery() as nursery:
        daemon: Daemon = await nursery.start(node)
        yield daemon, scope
        scope.cancel()


async def test_the_daemon_starts_its_programs_when_communications_come_up(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    config = respawn_config(
        RespawnDirective(user="nobody", command=("/usr/bin/agent", "--flag", "$HOME")),
        RespawnDirective(user="hacluster", command=("/usr/lib/heartbeat/ipfail",)),
    )
    reboots: list[str] = []
    async with trio.open_nursery() as nursery:
        spawner = FakeSpawner(nursery)
        async with daemon_with(config, spawner, reboots, tmp_path) as (daemon, scope):
            await trio.sleep(11)
            assert not daemon.engine.view().comms_up and spawner.started == []
            await trio.sleep(5)  # calc never answers: comms up once initdead is over
            assert daemon.engine.view().comms_up
            [process] = spawner.started  # ipfail is not started: pulse does its job
            assert process.spec.argv == ("/usr/bin/agent", "--flag", "$HOME")
            assert process.spec.user == "nobody"
            assert process.spec.env["HA_COLOUR"] == "blue"
            assert process.spec.env["HA_CURHOST"] == "prime"
            status = daemon.status()["respawn"]
            assert [(c["command"], c["state"], c["pid"]) for c in status] == [
                ("/usr/bin/agent --flag $HOME", "running", process.pid),
                ("/usr/lib/heartbeat/ipfail", "skipped", None),
            ]
            shown = format_status(daemon.status()).splitlines()
            row = ["/usr/bin/agent", "--flag", "$HOME", "running", str(process.pid), "0"]
            assert row in [line.split() for line in shown]
            scope.cancel()
        assert process.signals == [SIGKILL]  # cancelled: nothing left behind
        nursery.cancel_scope.cancel()


async def test_sigterm_stops_the_programs_last_first_after_shutdone(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    config = respawn_config(
        RespawnDirective(user="root", command=("/usr/bin/first",)),
        RespawnDirective(user="root", command=("/usr/bin/second",), failfast=True),
    )
    reboots: list[str] = []
    signals_tx, signals = trio.open_memory_channel[int](1)
    signals_tx.send_nowait(signal.SIGTERM)

    async with trio.open_nursery() as nursery:
        spawner = FakeSpawner(nursery)
        async with daemon_with(config, spawner, reboots, tmp_path) as (daemon, scope):
            await trio.sleep(20)
            assert len(spawner.running()) == 2
            await _watch_signals(daemon, signals, scope, 0.2)
            assert spawner.signalled == [("/usr/bin/second", SIGTERM), ("/usr/bin/first", SIGTERM)]
            assert [c["state"] for c in daemon.status()["respawn"]] == ["stopped", "stopped"]
            assert reboots == []
        nursery.cancel_scope.cancel()
