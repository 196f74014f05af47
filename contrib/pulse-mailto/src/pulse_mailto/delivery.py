"""Retrying a mail with backoff, and the outbox that sends MailTo's mails in the background.

:func:`deliver` tries one mail until it is sent, the policy's attempts or total time
run out, or the failure is permanent; every failure is logged and counted in a
:class:`MailStats`. :class:`Outbox` queues mails without ever waiting, so a resource
start or stop returns at once whatever the mail server does.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import trio

from pulse_mailto.compose import Mail
from pulse_mailto.settings import RetryPolicy
from pulse_mailto.transport import MailError, Transport

log = logging.getLogger("pulse.plugin.host.mailto")

# At exit, mails still queued get one last attempt, all together within this many seconds.
FLUSH_TIMEOUT = 5.0


@dataclass(slots=True)
class MailStats:
    """Counters shown by ``pulsectl plugins``."""

    queued: int = 0  # handed to the outbox (MailTo mails)
    sent: int = 0
    retries: int = 0  # failed attempts that were tried again
    failed: int = 0  # mails given up
    dropped: int = 0  # not queued: the outbox was full
    last_error: str | None = None

    def as_json(self) -> dict[str, object]:
        return {
            "mail_queued": self.queued,
            "mail_sent": self.sent,
            "mail_retries": self.retries,
            "mail_failed": self.failed,
            "mail_dropped": self.dropped,
            "mail_last_error": self.last_error,
        }


async def deliver(
    transport: Transport, mail: Mail, *, policy: RetryPolicy, stats: MailStats
) -> None:
    """Send *mail*, retrying with backoff; raises :class:`MailError` when giving up."""
    started = trio.current_time()
    deadline = started + policy.give_up_after
    attempt = 1
    while True:
        try:
            await transport.send(mail)
        except MailError as exc:
            error = exc
        else:
            stats.sent += 1
            if attempt > 1:
                log.info("mailto: sent %s at attempt %d", mail.describe(), attempt)
            else:
                log.debug("mailto: sent %s", mail.describe())
            return
        stats.last_error = error.reason
        delay = policy.delay_before(attempt + 1)
        if error.permanent or attempt >= policy.attempts or trio.current_time() + delay > deadline:
            stats.failed += 1
            if error.permanent:
                why = "a permanent failure"
            else:
                spent = trio.current_time() - started
                why = f"{attempt} attempt(s) in {spent:.0f}s"
            log.error("mailto: giving up on %s after %s: %s", mail.describe(), why, error.reason)
            raise MailError(
                f"gave up on {mail.describe()} after {why}: {error.reason}", permanent=True
            )
        stats.retries += 1
        log.warning(
            "mailto: %s failed (attempt %d of %d): %s; retrying in %gs",
            mail.describe(),
            attempt,
            policy.attempts,
            error.reason,
            delay,
        )
        await trio.sleep(delay)
        attempt += 1


class Outbox:
    """A bounded queue of mails and the background task that delivers them in order.

    :meth:`submit` never waits and never raises: a full queue drops the mail (logged,
    counted). The sender is a trio system task, started on the first mail of each trio
    run; when the run ends, whatever is still queued gets one last attempt within
    ``flush_timeout`` seconds (the release mail of a graceful stop goes out).
    """

    def __init__(
        self,
        transport: Transport,
        *,
        policy: RetryPolicy,
        stats: MailStats,
        size: int = 100,
        flush_timeout: float = FLUSH_TIMEOUT,
    ) -> None:
        self.transport = transport
        self.policy = policy
        self.stats = stats
        self.size = size
        self.flush_timeout = flush_timeout
        self._token: trio.lowlevel.TrioToken | None = None
        self._tx: trio.MemorySendChannel[Mail] | None = None
        self._pending = 0  # queued and not yet sent or given up
        self._idle = trio.Event()

    def submit(self, mail: Mail) -> bool:
        """Queue *mail*; False when it had to be dropped. Call from a trio task."""
        token = trio.lowlevel.current_trio_token()
        if self._tx is None or self._token is not token:
            self._tx, rx = trio.open_memory_channel[Mail](self.size)
            self._token = token
            self._pending = 0
            trio.lowlevel.spawn_system_task(self._serve, rx, name="pulse-mailto outbox")
        try:
            self._tx.send_nowait(mail)
        except trio.WouldBlock:
            self.stats.dropped += 1
            self.stats.last_error = f"outbox full ({self.size} mails): dropped {mail.describe()}"
            log.error("mailto: %s", self.stats.last_error)
            return False
        self.stats.queued += 1
        if self._pending == 0:
            self._idle = trio.Event()
        self._pending += 1
        return True

    @property
    def pending(self) -> int:
        return self._pending

    async def wait_idle(self) -> None:
        """Until every queued mail has been sent or given up."""
        if self._pending:
            await self._idle.wait()

    def _done(self, count: int = 1) -> None:
        self._pending = max(0, self._pending - count)
        if self._pending == 0:
            self._idle.set()

    async def _serve(self, rx: trio.MemoryReceiveChannel[Mail]) -> None:
        current: Mail | None = None
        with rx:
            try:
                while True:
                    current = await rx.receive()
                    await self._deliver(current)
                    current = None
                    self._done()
            finally:
                await self._flush(current, rx)

    async def _deliver(self, mail: Mail) -> None:
        try:
            await deliver(self.transport, mail, policy=self.policy, stats=self.stats)
        except MailError:
            pass  # logged and counted by deliver
        except Exception as exc:  # a transport bug must not kill the trio run
            self.stats.failed += 1
            self.stats.last_error = f"{type(exc).__name__}: {exc}"
            log.exception("mailto: internal error sending %s", mail.describe())

    async def _flush(self, current: Mail | None, rx: trio.MemoryReceiveChannel[Mail]) -> None:
        leftovers = [current] if current is not None else []
        while True:
            try:
                leftovers.append(rx.receive_nowait())
            except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                break
        if not leftovers:
            return
        log.info("mailto: stopping; %d mail(s) still to send, trying once more", len(leftovers))
        with trio.CancelScope(shield=True) as scope:
            scope.deadline = trio.current_time() + self.flush_timeout
            while leftovers:
                mail = leftovers[0]
                try:
                    await self.transport.send(mail)
                except MailError as exc:
                    self.stats.failed += 1
                    self.stats.last_error = exc.reason
                    log.error("mailto: not sent: %s: %s", mail.describe(), exc.reason)
                except Exception as exc:
                    self.stats.failed += 1
                    self.stats.last_error = f"{type(exc).__name__}: {exc}"
                    log.exception("mailto: internal error sending %s", mail.describe())
                else:
                    self.stats.sent += 1
                leftovers.pop(0)
                self._done()
        for mail in leftovers:
            self.stats.failed += 1
            log.error("mailto: not sent (pulse stopped): %s", mail.describe())
        self._done(len(leftovers))
