"""ipfail, built in: resources go to the node that can reach more ping nodes.

Heartbeat users enable this with ``respawn hacluster /usr/lib/heartbeat/ipfail`` next to
``ping``/``ping_group`` lines; pulse recognises that line and runs the same policy
itself (TOML: ``[cluster] ipfail = true``). Each node counts the ping nodes it can
reach (status ``ping``) and tells the others with ipfail's own message,
``t=num_ping_nodes num_ping=N``, whenever the count changes, when it starts, and when a
peer (re)appears. A node that sees fewer ping nodes than a live peer gives its groups
up to it, after a delay of twice the keepalive: when a ping node dies for everybody,
the nodes notice it up to a keepalive apart, and the delay keeps that race from moving
the resources. When the counts are level again the give-up ends and ``auto_failback``
decides, as it does after ``hb_standby``: ``on`` brings the groups home, ``off`` leaves
them where they are.

The give-up is a soft refusal, like ``pulsectl standby``: if no better-connected node
can run a group, this node keeps it. A ping node therefore never takes a service down.

Pure: no I/O and no clock. :class:`pulse.failover.policy.Scheduler` owns one and turns its
answers into messages and plans.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

GIVEUP_KEEPALIVES = 2  # ipfail's delay_giveup(-1): twice the keepalive
IPFAIL_CLIENT = "ipfail"  # Heartbeat's API client id, in from_id/to_id of its messages


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectivityView:
    """What ``pulsectl status`` shows of the policy."""

    ping_nodes: tuple[str, ...]
    reachable: tuple[str, ...]
    peers: dict[str, int]  # live peers' last reported counts
    giveup_at: float | None  # engine time of a pending give-up
    giving_up: bool  # this node's groups are offered to a better-connected peer


class Connectivity:
    """Ping-node counts of this node and its peers, and the give-up timer."""

    def __init__(self, ping_nodes: Iterable[str], *, delay: float) -> None:
        self.ping_nodes = tuple(ping_nodes)
        self.delay = delay
        self._up: set[str] = set()
        self._peers: dict[str, int] = {}
        self.giveup_at: float | None = None
        self.giving_up = False

    @property
    def count(self) -> int:
        return len(self._up)

    def ping(self, node: str, up: bool) -> bool:
        """A ping node's status changed; True when our count changed."""
        if node not in self.ping_nodes:
            return False
        before = self.count
        if up:
            self._up.add(node)
        else:
            self._up.discard(node)
        return self.count != before

    def peer_count(self, peer: str, count: int) -> None:
        self._peers[peer] = count

    def peer_sees_more(self, peer: str) -> None:
        """*peer* says it reaches more ping nodes than we do, without a number (Heartbeat
        ipfail's ``you_are_dead``): at least one more than our count."""
        self._peers[peer] = max(self._peers.get(peer, 0), self.count + 1)

    def peer_gone(self, peer: str) -> None:
        self._peers.pop(peer, None)

    def better_peer(self) -> tuple[str, int] | None:
        """The live peer reaching the most ping nodes, if it reaches more than we do."""
        if not self._peers:
            return None
        name, count = max(self._peers.items(), key=lambda item: (item[1], item[0]))
        return (name, count) if count > self.count else None

    def next_deadline(self) -> float:
        return self.giveup_at if self.giveup_at is not None else float("inf")

    def view(self) -> ConnectivityView:
        return ConnectivityView(
            ping_nodes=self.ping_nodes,
            reachable=tuple(n for n in self.ping_nodes if n in self._up),
            peers=dict(sorted(self._peers.items())),
            giveup_at=self.giveup_at,
            giving_up=self.giving_up,
        )


def num_ping_nodes_fields(count: int) -> tuple[tuple[str, str], ...]:
    """ipfail's message: ``t=num_ping_nodes num_ping=N``."""
    return (("t", "num_ping_nodes"), ("num_ping", str(count)))


def ipfail_reply_fields(kind: str, peer: str) -> tuple[tuple[str, str], ...]:
    """A reply to a Heartbeat node's ipfail (``you_are_dead``, ``abort_giveup``): sent to
    that node only, for its API client ``ipfail``."""
    return (("t", kind), ("dest", peer), ("to_id", IPFAIL_CLIENT))


def parse_num_ping(text: str | None) -> int | None:
    if text is None or not text.isdigit() or len(text) > 4:
        return None
    return int(text)


__all__ = ["GIVEUP_KEEPALIVES", "Connectivity", "ConnectivityView"]
