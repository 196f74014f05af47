"""Group acquire/release with fake agents (docs/heartbeat.md#acquire-and-release)."""

from __future__ import annotations

import logging

import pytest
import trio
import trio.lowlevel
import trio.testing

from pulse.config.model import ResourceSpec
from pulse.resources import (
    GroupResult,
    ResourceError,
    acquire_group,
    release_group,
    restart_in_place,
)

LOG = logging.getLogger("pulse.test.group")


class FakeAgent:
    """A resource that records every call (with its virtual time) into a shared journal."""

    def __init__(
        self,
        raw: str,
        journal: list[tuple[float, str, str]],
        *,
        running: bool = False,
        start_fails: bool = False,
        stop_failures: int = 0,
        stop_really_stops: bool = True,
        status_fails: bool = False,
    ) -> None:
        self.spec = ResourceSpec(raw=raw, agent=raw)
        self.journal = journal
        self.running = running
        self.start_fails = start_fails
        self.stop_failures = stop_failures
        self.stop_really_stops = stop_really_stops
        self.status_fails = status_fails

    def _note(self, op: str) -> None:
        self.journal.append((trio.current_time(), op, self.spec.raw))

    async def start(self) -> None:
        self._note("start")
        await trio.lowlevel.checkpoint()
        if self.start_fails:
            raise ResourceError(self.spec.raw, "Return code 1 from /etc/init.d/" + self.spec.raw)
        self.running = True

    async def stop(self) -> None:
        self._note("stop")
        await trio.lowlevel.checkpoint()
        if self.stop_failures:
            self.stop_failures -= 1
            if self.stop_really_stops:
                self.running = False
            raise ResourceError(self.spec.raw, "Return code 1 from /etc/init.d/" + self.spec.raw)
        self.running = False

    async def status(self) -> bool:
        self._note("status")
        await trio.lowlevel.checkpoint()
        if self.status_fails:
            raise ResourceError(self.spec.raw, "monitor failed: OCF_ERR_GENERIC")
        return self.running


def ops(journal: list[tuple[float, str, str]]) -> list[str]:
    return [f"{op} {raw}" for _, op, raw in journal]


# --------------------------------------------------------------------------- acquire


async def test_acquire_starts_left_to_right_checking_status_first() -> None:
    journal: list[tuple[float, str, str]] = []
    agents = [FakeAgent(n, journal) for n in ("ip", "fs", "db")]
    result = await acquire_group(agents, log=LOG)
    assert result == GroupResult(ok=True, started=("ip", "fs", "db"))
    assert ops(journal) == [
        "status ip", "start ip", "status fs", "start fs", "status db", "start db",
    ]  # fmt: skip


async def test_acquire_skips_resources_already_running() -> None:
    journal: list[tuple[float, str, str]] = []
    agents = [FakeAgent("ip", journal, running=True), FakeAgent("db", journal)]
    result = await acquire_group(agents, log=LOG)
    assert result.ok
    assert result.started == ("db",)
    assert "start ip" not in ops(journal)


async def test_failed_start_gives_the_whole_group_up_right_to_left(
    caplog: pytest.LogCaptureFixture,
) -> None:
    journal: list[tuple[float, str, str]] = []
    agents = [
        FakeAgent("ip", journal),
        FakeAgent("fs", journal, start_fails=True),
        FakeAgent("db", journal),
    ]
    with caplog.at_level(logging.INFO, logger=LOG.name):
        result = await acquire_group(agents, log=LOG, node="prime")
    assert not result.ok
    assert result.failed == "fs"
    assert result.reason == "start failed: Return code 1 from /etc/init.d/fs"
    assert result.started == ("ip",)
    assert result.stopped == ("db", "fs", "ip")
    # db was never started; the release still stops everything, right to left.
    assert ops(journal) == [
        "status ip", "start ip", "status fs", "start fs",
        "stop db", "stop fs", "stop ip",
    ]  # fmt: skip
    messages = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert ("INFO", "Acquiring resource group: prime ip fs db") in messages
    assert ("CRITICAL", "Giving up resources due to failure of fs") in messages
    assert ("INFO", "Releasing resource group: prime ip fs db") in messages


async def test_unreadable_status_is_treated_as_not_running_and_started() -> None:
    journal: list[tuple[float, str, str]] = []
    agents = [FakeAgent("ocf", journal, status_fails=True)]
    result = await acquire_group(agents, log=LOG)
    assert result.ok
    assert ops(journal) == ["status ocf", "start ocf"]


async def test_agent_crash_on_start_counts_as_a_failed_start() -> None:
    class Crashing(FakeAgent):
        async def start(self) -> None:
            raise RuntimeError("plugin bug")

    journal: list[tuple[float, str, str]] = []
    result = await acquire_group([Crashing("x", journal)], log=LOG)
    assert not result.ok
    assert result.failed == "x"
    assert "RuntimeError: plugin bug" in result.reason


# --------------------------------------------------------------------------- release


async def test_release_stops_right_to_left() -> None:
    journal: list[tuple[float, str, str]] = []
    agents = [FakeAgent(n, journal, running=True) for n in ("ip", "fs", "db")]
    result = await release_group(agents, log=LOG)
    assert result == GroupResult(ok=True, stopped=("db", "fs", "ip"))
    assert ops(journal) == ["stop db", "stop fs", "stop ip"]


async def test_failed_stop_is_retried_after_exact_delays(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    journal: list[tuple[float, str, str]] = []
    db = FakeAgent("db", journal, running=True, stop_failures=3)
    with caplog.at_level(logging.INFO, logger=LOG.name):
        result = await release_group([db], log=LOG, stop_retries=10, retry_delay=1.0)
    assert result.ok
    assert [t for t, op, _ in journal if op == "stop"] == [0.0, 1.0, 2.0, 3.0]
    assert trio.current_time() == 3.0
    retries = [r.getMessage() for r in caplog.records if "Retrying" in r.getMessage()]
    assert retries == ["Retrying failed stop operation [db]"] * 3


async def test_stop_still_failing_and_running_marks_the_group_failed_without_going_on(
    autojump_clock: trio.testing.MockClock,
) -> None:
    journal: list[tuple[float, str, str]] = []
    ip = FakeAgent("ip", journal, running=True)
    db = FakeAgent("db", journal, running=True, stop_failures=100, stop_really_stops=False)
    app = FakeAgent("app", journal, running=True)
    result = await release_group([ip, db, app], log=LOG, stop_retries=2, retry_delay=0.5)
    assert not result.ok
    assert result.failed == "db"
    assert result.stuck == ("db",)
    assert result.stopped == ("app",)
    assert result.reason.startswith("stop failed and db is still running: Return code 1")
    stops = [(t, raw) for t, op, raw in journal if op == "stop"]
    assert stops == [(0.0, "app"), (0.0, "db"), (0.5, "db"), (1.0, "db")]
    # The address stays with the database that still runs: no stop for ip.
    assert ip.running
    assert trio.current_time() == 1.0


async def test_stop_failing_but_not_running_is_only_a_warning(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    journal: list[tuple[float, str, str]] = []
    ip = FakeAgent("ip", journal, running=True)
    initd = FakeAgent("initd", journal, running=True, stop_failures=100)  # stops, but says 1
    with caplog.at_level(logging.INFO, logger=LOG.name):
        result = await release_group([ip, initd], log=LOG, stop_retries=1, retry_delay=1.0)
    assert result.ok
    assert result.stopped == ("ip",)
    assert not ip.running
    messages = [r.getMessage() for r in caplog.records]
    assert "Resource script for initd probably not LSB-compliant." in messages
    assert "it (initd) MUST succeed on a stop when already stopped" in messages


async def test_zero_stop_retries_means_a_single_attempt(
    autojump_clock: trio.testing.MockClock,
) -> None:
    journal: list[tuple[float, str, str]] = []
    db = FakeAgent("db", journal, running=True, stop_failures=5, stop_really_stops=False)
    result = await release_group([db], log=LOG, stop_retries=0)
    assert not result.ok
    assert ops(journal) == ["stop db", "status db"]
    assert trio.current_time() == 0.0


async def test_negative_stop_retries_retry_until_cancelled(
    autojump_clock: trio.testing.MockClock,
) -> None:
    journal: list[tuple[float, str, str]] = []
    db = FakeAgent("db", journal, running=True, stop_failures=10**6, stop_really_stops=False)
    with trio.move_on_after(30.5):
        await release_group([db], log=LOG, stop_retries=-1, retry_delay=1.0)
    assert len([op for _, op, _ in journal if op == "stop"]) == 31


async def test_unreadable_status_after_a_failed_stop_counts_as_still_running(
    autojump_clock: trio.testing.MockClock,
) -> None:
    journal: list[tuple[float, str, str]] = []
    db = FakeAgent(
        "db", journal, running=True, stop_failures=5, stop_really_stops=False, status_fails=True
    )
    result = await release_group([db], log=LOG, stop_retries=0)
    assert not result.ok
    assert result.stuck == ("db",)


async def test_failed_start_whose_give_up_is_stuck_reports_both(
    autojump_clock: trio.testing.MockClock,
) -> None:
    journal: list[tuple[float, str, str]] = []
    agents = [
        FakeAgent("ip", journal),
        FakeAgent("db", journal, running=True, stop_failures=99, stop_really_stops=False),
        FakeAgent("app", journal, start_fails=True),
    ]
    result = await acquire_group(agents, log=LOG, stop_retries=1, retry_delay=2.0)
    assert not result.ok
    assert result.failed == "app"
    assert result.stuck == ("db",)
    assert "giving the group up failed too" in result.reason
    assert trio.current_time() == 2.0


# --------------------------------------------------------------------------- restart in place


async def test_restart_in_place_stops_the_failed_resource_and_those_after_it_then_starts_them(
    autojump_clock: trio.testing.MockClock,
) -> None:
    journal: list[tuple[float, str, str]] = []
    agents = [FakeAgent(n, journal, running=True) for n in ("ip", "web", "mail")]
    agents[1].running = False  # the one that died
    result = await restart_in_place(agents, "web", log=LOG)
    assert result == GroupResult(ok=True, started=("web", "mail"), stopped=("mail", "web"))
    assert ops(journal) == [
        "stop mail",
        "stop web",
        "status web",
        "start web",
        "status mail",
        "start mail",
    ]


async def test_a_restart_whose_start_fails_gives_the_restarted_part_up_without_stuck(
    autojump_clock: trio.testing.MockClock,
) -> None:
    journal: list[tuple[float, str, str]] = []
    agents = [FakeAgent(n, journal, running=True) for n in ("ip", "web", "mail")]
    agents[1].start_fails = True
    result = await restart_in_place(agents, "web", log=LOG)
    assert (result.ok, result.failed, result.stuck) == (False, "web", ())
    assert result.reason.startswith("start failed: Return code 1")
    assert agents[0].running  # the address, before the failed resource, is untouched
    assert "ip" not in {raw for _, _, raw in journal}


async def test_a_restart_whose_stop_fails_stops_there_with_the_resource_stuck(
    autojump_clock: trio.testing.MockClock,
) -> None:
    journal: list[tuple[float, str, str]] = []
    agents = [FakeAgent(n, journal, running=True) for n in ("ip", "web")]
    agents[1].stop_failures = 99
    agents[1].stop_really_stops = False
    result = await restart_in_place(agents, "web", log=LOG, stop_retries=1, retry_delay=1.0)
    assert (result.ok, result.stuck) == (False, ("web",))
    assert "start web" not in ops(journal)


async def test_restarting_a_resource_outside_the_group_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="nginx is not one of ip"):
        await restart_in_place([FakeAgent("ip", [])], "nginx", log=LOG)
