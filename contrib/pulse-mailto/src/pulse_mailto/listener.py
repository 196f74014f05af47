"""The event listener: alert mail for the cluster events ``[plugins.mailto]`` selects."""

from __future__ import annotations

from pulse.plugin.api import ClusterEvent
from pulse_mailto.compose import event_mail
from pulse_mailto.delivery import MailStats, Outbox, deliver
from pulse_mailto.settings import NAME, MailSettings
from pulse_mailto.transport import Transport

# Seconds on top of the longest delivery before the event bus gives up on handle().
_BUS_GRACE = 10.0


class MailListener:
    """Mails ``settings.to`` about each event whose kind is in ``settings.events``.

    ``handle`` sends the mail itself (retrying with backoff): the event bus runs each
    listener in its own task with its own queue, so this never delays the cluster, and
    a mail given up raises, which the bus counts as this listener's failure. Its
    :meth:`statistics` add the MailTo agents' mail counters, for ``pulsectl plugins``.
    """

    def __init__(
        self,
        settings: MailSettings,
        transport: Transport,
        stats: MailStats,
        outbox: Outbox | None = None,
    ) -> None:
        self.name = NAME
        self.settings = settings
        self.transport = transport
        self.stats = stats
        self.outbox = outbox
        self.timeout = settings.budget + _BUS_GRACE

    def reconfigure(self, settings: MailSettings, transport: Transport) -> None:
        """A reload's new settings, from the next event on."""
        self.settings, self.transport = settings, transport
        self.timeout = settings.budget + _BUS_GRACE

    def wants(self, event: ClusterEvent) -> bool:
        return bool(self.settings.to) and event.kind in self.settings.events

    async def handle(self, event: ClusterEvent) -> None:
        if not self.wants(event):
            return
        mail = event_mail(event, self.settings)
        await deliver(self.transport, mail, policy=self.settings.retry, stats=self.stats)

    def statistics(self) -> dict[str, object]:
        out = self.stats.as_json()
        out["mail_pending"] = self.outbox.pending if self.outbox is not None else 0
        out["transport"] = self.transport.name
        return out
