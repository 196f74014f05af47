"""The kernel timer the daemon sleeps on between heartbeats (real clock only)."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
import trio

from pulse.timerfd import KernelTimer


@pytest.fixture
def timer() -> Iterator[KernelTimer]:
    opened = KernelTimer.open()
    assert opened is not None
    yield opened
    opened.close()


async def test_a_kernel_timer_never_fires_before_its_delay(timer: KernelTimer) -> None:
    with trio.fail_after(5):
        for delay in (0.0, 0.001, 0.02):
            start = trio.current_time()
            timer.arm(delay)
            await timer.wait()
            assert trio.current_time() - start >= delay


async def test_rearming_moves_the_expiry_later_and_earlier(timer: KernelTimer) -> None:
    with trio.fail_after(5):
        start = trio.current_time()
        timer.arm(0.01)
        timer.arm(0.05)  # later: the first expiry is gone
        await timer.wait()
        assert trio.current_time() - start >= 0.05
        timer.arm(10.0)
        timer.arm(0.0)  # earlier: due at once
        await timer.wait()
        assert trio.current_time() - start < 5


async def test_an_infinite_delay_arms_it_an_hour_ahead_instead_of_disarming(
    timer: KernelTimer,
) -> None:
    timer.arm(math.inf)
    with trio.move_on_after(0.05) as scope:
        await timer.wait()
    assert scope.cancelled_caught
