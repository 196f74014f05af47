"""The kernel timer the daemon sleeps on between heartbeats (real clock only)."""

from __future__ import annotations

import math

import trio

from pulse.timerfd import KernelTimer


async def test_a_kernel_timer_never_fires_before_its_delay() -> None:
    timer = KernelTimer.open()
    assert timer is not None
    try:
        with trio.fail_after(5):
            for delay in (0.0, 0.001, 0.02):
                start = trio.current_time()
                timer.arm(delay)
                await timer.wait()
                assert trio.current_time() - start >= delay
    finally:
        timer.close()


async def test_rearming_moves_the_expiry_later_and_earlier() -> None:
    timer = KernelTimer.open()
    assert timer is not None
    try:
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
    finally:
        timer.close()


async def test_an_infinite_delay_arms_it_an_hour_ahead_instead_of_disarming() -> None:
    timer = KernelTimer.open()
    assert timer is not None
    try:
        timer.arm(math.inf)
        with trio.move_on_after(0.05) as scope:
            await timer.wait()
        assert scope.cancelled_caught
    finally:
        timer.close()
