"""Helpers for testing pulse and pulse plugins without sockets.

:class:`FakeNetwork` connects in-memory links between nodes, so whole daemons run
under trio's ``MockClock`` with exact virtual times. Links can be cut per node
and per medium, like pulling a cable; one direction between two nodes can be cut
(``a`` hears ``b`` but ``b`` does not hear ``a``); packets can be lost at a rate, drawn
from the network's own seeded ``random.Random`` so that a run can be replayed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import trio

from pulse.transport import Datagram


@dataclass(slots=True)
class FakeLinkStatistics:
    packets_sent: int = 0
    packets_received: int = 0
    packets_dropped: int = 0


@dataclass(eq=False)
class FakeLink:
    """One node's end of a shared in-memory medium called ``name``."""

    network: FakeNetwork
    node: str
    name: str
    classic_only: bool = False
    stats: FakeLinkStatistics = field(default_factory=FakeLinkStatistics)
    _inbound: trio.MemorySendChannel[Datagram] | None = None

    async def run(
        self,
        inbound: trio.MemorySendChannel[Datagram],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        self._inbound = inbound
        try:
            async with inbound:
                task_status.started()
                await trio.sleep_forever()
        finally:
            self._inbound = None

    async def send(self, data: bytes) -> None:
        await trio.lowlevel.checkpoint()
        self.stats.packets_sent += 1
        if self.network.is_cut(self.node, self.name):
            return
        for peer in self.network.members(self.name):
            if peer is self or peer._inbound is None:
                continue
            if self.network.is_cut(peer.node, self.name):
                continue
            if self.network.drops(self.node, peer.node, self.name):
                peer.stats.packets_dropped += 1
                continue
            try:
                peer._inbound.send_nowait(Datagram(self.name, data, self.node))
                peer.stats.packets_received += 1
                self.network.delivered.append((trio.current_time(), self.node, self.name))
            except (trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
                peer.stats.packets_dropped += 1

    def try_send_nowait(self, data: bytes) -> bool:
        return False  # always through send(), which checkpoints like a real link

    def statistics(self) -> FakeLinkStatistics:
        return self.stats


class FakeNetwork:
    """Media shared by fake links; ``cut(node, medium)`` isolates one node's port."""

    def __init__(self, *, seed: int | str = 0) -> None:
        self._links: dict[str, list[FakeLink]] = {}
        self._cut: set[tuple[str, str]] = set()
        self._one_way: set[tuple[str, str, str | None]] = set()  # (src, dst, medium)
        self._loss: dict[tuple[str | None, str | None], float] = {}  # (src, dst) -> rate
        self.rng = random.Random(seed)
        #: (time, sending node, medium) of every packet that reached a peer
        self.delivered: list[tuple[float, str, str]] = []

    def link(self, node: str, name: str = "eth0", *, classic_only: bool = False) -> FakeLink:
        link = FakeLink(self, node, name, classic_only)
        self._links.setdefault(name, []).append(link)
        return link

    def members(self, name: str) -> list[FakeLink]:
        return list(self._links.get(name, ()))

    def cut(self, node: str, name: str) -> None:
        self._cut.add((node, name))

    def restore(self, node: str, name: str) -> None:
        self._cut.discard((node, name))

    def is_cut(self, node: str, name: str) -> bool:
        return (node, name) in self._cut

    def last_delivery(self, node: str, name: str) -> float:
        """When the last packet from ``node`` on medium ``name`` reached a peer."""
        return max(t for t, n, m in self.delivered if n == node and m == name)

    def cut_one_way(self, src: str, dst: str, name: str | None = None) -> None:
        """``dst`` stops hearing ``src`` (on medium ``name``, or on every medium);
        ``src`` still hears ``dst``."""
        self._one_way.add((src, dst, name))

    def restore_one_way(self, src: str, dst: str, name: str | None = None) -> None:
        self._one_way.discard((src, dst, name))

    def set_loss(self, rate: float, *, src: str | None = None, dst: str | None = None) -> None:
        """Lose packets from ``src`` to ``dst`` (None: any node) with probability ``rate``
        (0 ends it). Where several rates apply, the highest wins."""
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"a loss rate is between 0 and 1, not {rate}")
        if rate:
            self._loss[(src, dst)] = rate
        else:
            self._loss.pop((src, dst), None)

    def heal(self) -> None:
        """End every cut (both kinds) and every loss."""
        self._cut.clear()
        self._one_way.clear()
        self._loss.clear()

    def drops(self, src: str, dst: str, name: str) -> bool:
        """Whether a packet from ``src`` to ``dst`` on ``name`` is lost (one-way cut, or
        the loss rate; draws from :attr:`rng` only when a rate applies)."""
        if (src, dst, name) in self._one_way or (src, dst, None) in self._one_way:
            return True
        rate = max(
            (r for (s, d), r in self._loss.items() if s in (None, src) and d in (None, dst)),
            default=0.0,
        )
        return rate > 0 and self.rng.random() < rate
