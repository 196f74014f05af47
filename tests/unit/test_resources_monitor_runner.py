"""The monitor runner under trio's MockClock: intervals, timeouts, pauses, maintenance.

Every test names ``autojump_clock`` itself: pytest-trio runs a test under the clock
only when the test (not one of its fixtures) asks for it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import trio
import trio.testing
from agent_support import spec

from pulse.resources import MonitorRunner, MonitorState, Observation, Watch


class Clocked:
    """A plugin-style agent whose monitor records the (virtual) times it is called."""

    def __init__(self, word: str, *, answers: list[object] | None = None, hang: float = 0) -> None:
        self.spec = spec(word)
        self.calls: list[float] = []
        self.answers = answers or []
        self.hang = hang
        self.finished = 0

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def status(self) -> bool:
        return True

    async def monitor(self, timeout: float) -> bool:
        self.calls.append(trio.current_time())
        answer = self.answers.pop(0) if self.answers else True
        if self.hang:
            await trio.sleep(self.hang)
        self.finished += 1
        return bool(answer)


@pytest.fixture
async def runner() -> AsyncIterator[tuple[MonitorRunner, trio.MemoryReceiveChannel[Observation]]]:
    send, receive = trio.open_memory_channel[Observation](100)
    monitors = MonitorRunner(send)
    async with trio.open_nursery() as nursery:
        await nursery.start(monitors.run)
        yield monitors, receive
        nursery.cancel_scope.cancel()


def drain(receive: trio.MemoryReceiveChannel[Observation]) -> list[Observation]:
    out: list[Observation] = []
    while True:
        try:
            out.append(receive.receive_nowait())
        except trio.WouldBlock:
            return out


async def test_each_resource_is_checked_on_its_own_interval_first_after_one_interval(
    runner: tuple[MonitorRunner, trio.MemoryReceiveChannel[Observation]],
    autojump_clock: trio.testing.MockClock,
) -> None:
    monitors, receive = runner
    vip, web = Clocked("vip"), Clocked("web")
    t0 = trio.current_time()
    monitors.watch(
        "vip", [Watch(agent=vip, interval=5, timeout=20), Watch(agent=web, interval=2, timeout=20)]
    )
    await trio.sleep(10.5)
    assert [c - t0 for c in vip.calls] == [5, 10]
    assert [c - t0 for c in web.calls] == [2, 4, 6, 8, 10]
    seen = drain(receive)
    assert len(seen) == 7
    assert {o.group for o in seen} == {"vip"}
    assert all(o.result.state is MonitorState.RUNNING for o in seen)


async def test_failures_reach_the_channel_with_their_group(
    runner: tuple[MonitorRunner, trio.MemoryReceiveChannel[Observation]],
    autojump_clock: trio.testing.MockClock,
) -> None:
    monitors, receive = runner
    web = Clocked("web", answers=[True, False])
    monitors.watch("web-group", [Watch(agent=web, interval=1, timeout=5)])
    first = await receive.receive()
    second = await receive.receive()
    assert first.result.state is MonitorState.RUNNING
    assert (second.group, second.result.resource, second.result.state) == (
        "web-group",
        "web",
        MonitorState.NOT_RUNNING,
    )


async def test_a_hung_monitor_is_a_failure_at_its_timeout_and_the_next_check_follows(
    runner: tuple[MonitorRunner, trio.MemoryReceiveChannel[Observation]],
    autojump_clock: trio.testing.MockClock,
) -> None:
    monitors, receive = runner
    stuck = Clocked("stuck", hang=1000)
    t0 = trio.current_time()
    monitors.watch("g", [Watch(agent=stuck, interval=5, timeout=20)])
    first = await receive.receive()
    assert trio.current_time() - t0 == pytest.approx(25)
    assert (first.result.state, first.result.reason) == (
        MonitorState.FAILED,
        "monitor timed out after 20s",
    )
    await receive.receive()
    assert [c - t0 for c in stuck.calls] == [5, 30]


async def test_a_paused_group_is_not_checked_and_its_check_in_flight_is_dropped(
    runner: tuple[MonitorRunner, trio.MemoryReceiveChannel[Observation]],
    autojump_clock: trio.testing.MockClock,
) -> None:
    monitors, receive = runner
    slow = Clocked("web", hang=2)
    t0 = trio.current_time()
    monitors.watch("g", [Watch(agent=slow, interval=5, timeout=20)])
    await trio.sleep(6)  # the first check started at 5 and is in flight
    with monitors.paused("g"):
        assert monitors.watching() == {}
        await trio.sleep(30)  # restarting the group: nothing checked
        assert [c - t0 for c in slow.calls] == [5]
    assert slow.finished == 0
    assert drain(receive) == []
    await trio.sleep(5.5)  # resumed at 36: the next check one interval later
    assert [c - t0 for c in slow.calls] == [5, 41]
    assert monitors.watching() == {"g": ("web",)}


async def test_nested_pauses_resume_only_when_the_last_one_ends(
    runner: tuple[MonitorRunner, trio.MemoryReceiveChannel[Observation]],
    autojump_clock: trio.testing.MockClock,
) -> None:
    monitors, _ = runner
    web = Clocked("web")
    monitors.watch("g", [Watch(agent=web, interval=1, timeout=1)])
    with monitors.paused("g"):
        with monitors.paused("g"):
            await trio.sleep(3)
        await trio.sleep(3)
        assert web.calls == []
    await trio.sleep(1.5)
    assert len(web.calls) == 1


async def test_a_group_paused_before_it_is_watched_starts_only_after_the_pause(
    runner: tuple[MonitorRunner, trio.MemoryReceiveChannel[Observation]],
    autojump_clock: trio.testing.MockClock,
) -> None:
    monitors, _ = runner
    web = Clocked("web")
    with monitors.paused("g"):  # acquiring: the group is watched once it is up
        monitors.watch("g", [Watch(agent=web, interval=1, timeout=1)])
        await trio.sleep(5)
        assert web.calls == []
    await trio.sleep(1.5)
    assert len(web.calls) == 1


async def test_unwatch_stops_the_checks_of_a_released_group_only(
    runner: tuple[MonitorRunner, trio.MemoryReceiveChannel[Observation]],
    autojump_clock: trio.testing.MockClock,
) -> None:
    monitors, _ = runner
    a, b = Clocked("a"), Clocked("b")
    monitors.watch("ga", [Watch(agent=a, interval=1, timeout=1)])
    monitors.watch("gb", [Watch(agent=b, interval=1, timeout=1)])
    await trio.sleep(2.5)
    monitors.unwatch("ga")
    await trio.sleep(3)
    assert (len(a.calls), len(b.calls)) == (2, 5)
    assert monitors.watching() == {"gb": ("b",)}


async def test_maintenance_mode_stops_every_check_until_it_is_left(
    runner: tuple[MonitorRunner, trio.MemoryReceiveChannel[Observation]],
    autojump_clock: trio.testing.MockClock,
) -> None:
    monitors, _ = runner
    a, b = Clocked("a"), Clocked("b")
    monitors.watch("ga", [Watch(agent=a, interval=1, timeout=1)])
    monitors.set_maintenance(True)
    monitors.watch("gb", [Watch(agent=b, interval=1, timeout=1)])
    await trio.sleep(10)
    assert (a.calls, b.calls, monitors.maintenance) == ([], [], True)
    monitors.set_maintenance(False)
    await trio.sleep(1.5)
    assert (len(a.calls), len(b.calls)) == (1, 1)


async def test_groups_watched_before_the_runner_runs_start_with_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    send, receive = trio.open_memory_channel[Observation](10)
    monitors = MonitorRunner(send)
    web = Clocked("web")
    monitors.watch("g", [Watch(agent=web, interval=1, timeout=1)])
    async with trio.open_nursery() as nursery:
        await nursery.start(monitors.run)
        observed = await receive.receive()
        nursery.cancel_scope.cancel()
    assert observed.result.resource == "web"


def test_a_watch_needs_a_positive_interval_and_timeout() -> None:
    with pytest.raises(ValueError, match="above 0"):
        Watch(agent=Clocked("web"), interval=0, timeout=1)
    with pytest.raises(ValueError, match="above 0"):
        Watch(agent=Clocked("web"), interval=1, timeout=0)
