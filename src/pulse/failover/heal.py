"""A group claimed by two nodes at once (a healed partition): who keeps it, and when the
other lets go.

After a partition heals, both sides may run the same group. Every node names the same
keeper (:meth:`pulse.failover.policy.Scheduler.holder`: the first claimant in the group's
node order). The keeper announces the group again first (a :class:`Refresh`: gratuitous
ARP), then lists it in ``pulse_keep``; the other node releases only then, or after one
keepalive if the keeper stays silent (a Heartbeat keeper never says so). Releasing
earlier would stop the service while the LAN's ARP caches still point at the releaser
(docs/failover.md, "A healed partition"). Pure: no I/O, no clock.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from pulse.failover.actions import CLAIMED, Action, GroupState, Refresh

if TYPE_CHECKING:
    from pulse.failover.policy import Scheduler


class DoubleClaims:
    """The keeper's and the releaser's bookkeeping for doubly claimed groups."""

    def __init__(self, policy: Scheduler, *, keep_wait_limit: float) -> None:
        self._policy = policy
        self.refreshing: set[str] = set()  # Refresh issued, not finished
        self.keeping: set[str] = set()  # re-announced: listed in pulse_keep
        self.keep_wait: dict[str, float] = {}  # releaser: release anyway at this time
        self.keep_wait_limit = keep_wait_limit

    def settle(self, key: str, owner: str | None, rivals: list[str]) -> list[Action]:
        """The keeper's side, for every group on every plan: announce it again.

        When nobody else claims the group (any more), the bookkeeping is dropped.
        """
        p = self._policy
        mine = p.mine[key]
        if not rivals or mine.state not in CLAIMED:
            self.keeping.discard(key)
            self.keep_wait.pop(key, None)
            return []
        if (
            mine.state is GroupState.RUNNING
            and owner == p.local
            and key not in self.keeping
            and key not in self.refreshing
        ):
            self.refreshing.add(key)
            who = ", ".join(rivals)
            return [Refresh(key, f"{key} also runs on {who}: announcing it here again first")]
        return []

    def refreshed(self, group: str) -> bool:
        """The Refresh of *group* went out; True when the policy should plan again."""
        if group not in self.refreshing:
            return False
        self.refreshing.discard(group)
        p = self._policy
        rivals = any(peer.alive and group in peer.hold for peer in p.peers.values())
        if rivals and p.mine[group].state is GroupState.RUNNING:
            self.keeping.add(group)
        return True

    def await_keeper(
        self, out: list[Action], key: str, owner: str | None, rivals: list[str], now: float
    ) -> bool:
        """The releaser's side: whether to keep running *key* until its keeper
        re-announced it (or a keepalive passed)."""
        p = self._policy
        if owner is None or owner not in rivals or p.leaving:
            return False
        peer = p.peers[owner]
        if not peer.pulse or key in peer.keeping:
            return False
        deadline = self.keep_wait.setdefault(key, now + self.keep_wait_limit)
        if now >= deadline:
            return False
        p.note(out, key, f"{key} also runs on {owner}: releasing it once {owner} announced it")
        return True

    def released(self, key: str) -> None:
        self.keep_wait.pop(key, None)

    def lapse(self, now: float) -> bool:
        """Keep-waits that ran out; True when the policy should plan again."""
        lapsed = [k for k, t in self.keep_wait.items() if now >= t > -math.inf]
        # Lapsed for good: the next plan releases without waiting (-inf), and the
        # deadline is gone, even if some other rule keeps the group a while longer.
        for key in lapsed:
            self.keep_wait[key] = -math.inf
        return bool(lapsed)

    def next_deadline(self) -> float:
        return min((t for t in self.keep_wait.values() if t > -math.inf), default=math.inf)


__all__ = ["DoubleClaims"]
