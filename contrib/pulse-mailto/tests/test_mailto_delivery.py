"""Retries with backoff in exact virtual time, and the background outbox."""

from __future__ import annotations

import pytest
import trio
import trio.testing
from pulse_mailto.compose import Mail
from pulse_mailto.delivery import MailStats, Outbox, deliver
from pulse_mailto.settings import RetryPolicy
from pulse_mailto.transport import MailError


def mail(subject: str = "hello") -> Mail:
    return Mail(
        sender="root@prime",
        recipients=("ops@example.com",),
        subject=subject,
        body="body\n",
        when=0.0,
        host="prime",
        kind="takeover",
    )


class FakeTransport:
    """Fails the first ``failures`` attempts, records the virtual time of each."""

    name = "fake"

    def __init__(self, failures: int = 0, *, permanent: bool = False, hang: float = 0.0) -> None:
        self.failures = failures
        self.permanent = permanent
        self.hang = hang
        self.attempts: list[float] = []
        self.sent: list[str] = []

    async def send(self, m: Mail) -> None:
        self.attempts.append(trio.current_time())
        if self.hang:
            await trio.sleep(self.hang)
        if len(self.attempts) <= self.failures:
            raise MailError("421 try again later", permanent=self.permanent)
        self.sent.append(m.subject)


async def test_failed_mail_is_retried_with_doubling_delays_then_given_up(
    autojump_clock: trio.testing.MockClock,
) -> None:
    t = FakeTransport(failures=99)
    stats = MailStats()
    policy = RetryPolicy(attempts=4, first_delay=2.0, max_delay=60.0, give_up_after=300.0)
    start = trio.current_time()
    with pytest.raises(MailError, match="after 4 attempt"):
        await deliver(t, mail(), policy=policy, stats=stats)
    assert [a - start for a in t.attempts] == [0.0, 2.0, 6.0, 14.0]
    assert (stats.sent, stats.retries, stats.failed) == (0, 3, 1)
    assert stats.last_error == "421 try again later"


async def test_no_attempt_starts_after_give_up_after(
    autojump_clock: trio.testing.MockClock,
) -> None:
    t = FakeTransport(failures=99)
    policy = RetryPolicy(attempts=10, first_delay=10.0, max_delay=60.0, give_up_after=25.0)
    start = trio.current_time()
    with pytest.raises(MailError):
        await deliver(t, mail(), policy=policy, stats=MailStats())
    # 0, 10, then the next would start at 30 > 25: given up at 10.
    assert [a - start for a in t.attempts] == [0.0, 10.0]


async def test_permanent_failure_is_not_retried(autojump_clock: trio.testing.MockClock) -> None:
    t = FakeTransport(failures=1, permanent=True)
    stats = MailStats()
    with pytest.raises(MailError, match="permanent"):
        await deliver(t, mail(), policy=RetryPolicy(), stats=stats)
    assert len(t.attempts) == 1
    assert (stats.retries, stats.failed) == (0, 1)


async def test_mail_sent_at_the_third_attempt_counts_as_sent(
    autojump_clock: trio.testing.MockClock,
) -> None:
    t = FakeTransport(failures=2)
    stats = MailStats()
    await deliver(t, mail(), policy=RetryPolicy(), stats=stats)
    assert t.sent == ["hello"]
    assert (stats.sent, stats.retries, stats.failed) == (1, 2, 0)


async def test_outbox_submit_returns_at_once_and_sends_in_order_in_the_background(
    autojump_clock: trio.testing.MockClock,
) -> None:
    t = FakeTransport(failures=1, hang=3.0)
    stats = MailStats()
    box = Outbox(t, policy=RetryPolicy(first_delay=1.0), stats=stats)
    start = trio.current_time()
    assert box.submit(mail("takeover"))
    assert box.submit(mail("release"))
    assert trio.current_time() == start
    assert box.pending == 2
    await box.wait_idle()
    # takeover: attempt at 0 fails after 3 s, retry at 4 ends at 7; release: 7 to 10.
    assert [a - start for a in t.attempts] == [0.0, 4.0, 7.0]
    assert trio.current_time() - start == 10.0
    assert t.sent == ["takeover", "release"]
    assert (stats.queued, stats.sent, stats.retries) == (2, 2, 1)


async def test_outbox_drops_and_counts_mail_when_full(
    autojump_clock: trio.testing.MockClock,
) -> None:
    t = FakeTransport(hang=1.0)
    stats = MailStats()
    box = Outbox(t, policy=RetryPolicy(), stats=stats, size=2)
    assert box.submit(mail("1")) and box.submit(mail("2"))
    assert not box.submit(mail("3"))
    assert stats.dropped == 1
    assert stats.last_error is not None and "outbox full" in stats.last_error
    await box.wait_idle()
    assert t.sent == ["1", "2"]


async def test_outbox_survives_a_transport_that_raises_something_unexpected(
    autojump_clock: trio.testing.MockClock,
) -> None:
    class Buggy(FakeTransport):
        async def send(self, m: Mail) -> None:
            await super().send(m)
            if m.subject == "bug":
                raise KeyError("oops")

    t = Buggy()
    stats = MailStats()
    box = Outbox(t, policy=RetryPolicy(), stats=stats)
    box.submit(mail("bug"))
    box.submit(mail("fine"))
    await box.wait_idle()
    assert stats.failed == 1
    assert t.sent == ["bug", "fine"]


def test_mail_still_queued_when_the_run_ends_gets_one_last_attempt() -> None:
    # The first attempt hangs; the daemon stops meanwhile (its trio run ends): the
    # shielded flush tries again before the run returns, as for a graceful stop.
    t = FakeTransport(hang=0.0)
    first = trio.Event()

    class SlowFirst(FakeTransport):
        async def send(self, m: Mail) -> None:
            if not first.is_set():
                first.set()
                await trio.sleep_forever()
            await t.send(m)

    stats = MailStats()
    box = Outbox(SlowFirst(), policy=RetryPolicy(), stats=stats, flush_timeout=5.0)

    async def main() -> None:
        box.submit(mail("release"))
        await first.wait()

    trio.run(main)
    assert t.sent == ["release"]
    assert stats.sent == 1
    assert box.pending == 0


def test_flush_is_bounded_by_its_timeout() -> None:
    class Hanging(FakeTransport):
        async def send(self, m: Mail) -> None:
            await trio.sleep_forever()

    stats = MailStats()
    box = Outbox(Hanging(), policy=RetryPolicy(), stats=stats, flush_timeout=2.0)
    clock = trio.testing.MockClock(autojump_threshold=0)

    async def main() -> None:
        box.submit(mail("a"))
        box.submit(mail("b"))
        await trio.sleep(1)

    trio.run(main, clock=clock)
    assert clock.current_time() == 3.0  # 1 s of main, then the 2 s flush budget
    assert stats.failed == 2
