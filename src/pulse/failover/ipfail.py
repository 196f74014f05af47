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

:class:`Connectivity` keeps the counts and the give-up timer; :class:`Ipfail` speaks
ipfail's messages (also to a Heartbeat node's own ipfail, as ipfail.c's
``msg_ping_nodes`` does) and tells the failover policy, which owns it, when to plan
again. Pure: no I/O and no clock.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pulse.failover.actions import Action, Decision, Peer, Send
from pulse.wire.message import Message, ascii_int

if TYPE_CHECKING:
    from pulse.failover.policy import Scheduler

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
    """The ``num_ping`` field of a peer's count: 1 to 4 ASCII digits, else None."""
    return ascii_int(text, 4)


class Ipfail:
    """The built-in ipfail of one node, owned by its failover policy."""

    def __init__(self, policy: Scheduler, ping_nodes: Iterable[str], *, delay: float) -> None:
        self._policy = policy
        self.connectivity = Connectivity(ping_nodes, delay=delay)
        # Groups offered to a better-connected peer (a soft refusal, like standby).
        self.refused: frozenset[str] = frozenset()

    def message(self, src: str, peer: Peer, msg: Message, now: float) -> list[Action]:
        """ipfail's messages from *src*: its count, or a Heartbeat ipfail's answer to ours."""
        c = self.connectivity
        kind = msg.type
        if kind == "num_ping_nodes":
            count = parse_num_ping(msg.get("num_ping"))
            if count is None:
                return []
            c.peer_count(src, count)
            out = self._answer(src, peer, count, now) if msg.get("from_id") == IPFAIL_CLIENT else []
            return out + self.check(now)
        if kind == "you_are_dead":
            # A Heartbeat node's ipfail answered our count: it reaches more ping nodes.
            c.peer_sees_more(src)
            return self.check(now)
        if kind == "abort_giveup":
            # ... or as many as we do.
            c.peer_count(src, c.count)
            return self.check(now)
        return []

    def _answer(self, src: str, peer: Peer, count: int, now: float) -> list[Action]:
        """Answer a Heartbeat node's ipfail as its peer ipfail would (ipfail.c,
        msg_ping_nodes): it only gives its groups up when told that we see more."""
        mine = self.connectivity.count
        if mine > count:
            return [
                Send(Message.of(*ipfail_reply_fields("you_are_dead", src))),
                Decision(f"{src} sees {count} ping node(s), this node {mine}: told it to give up"),
            ]
        if mine < count:
            return []  # our own delayed give-up
        out: list[Action] = [Send(Message.of(*ipfail_reply_fields("abort_giveup", src)))]
        if not peer.pulse and peer.standby:
            # Its ipfail gave its groups up; level again, ipfail hands foreign groups back
            # under auto_failback on: the peer no longer refuses them, the policy decides.
            peer.standby = frozenset()
            out.append(Decision(f"ping node count of {src} is balanced ({count}): giveup ended"))
            out += self._policy.plan(now, cause=f"{src}'s ping node count is balanced")
        return out

    def ping_status(self, node: str, up: bool, now: float, *, comms: bool) -> list[Action]:
        """A ping node became reachable (status ``ping``) or dead."""
        if not self.connectivity.ping(node, up):
            return []
        out = self.tell_count() if comms else []
        return out + self.check(now)

    def tell_count(self) -> list[Action]:
        return [Send(Message.of(*num_ping_nodes_fields(self.connectivity.count)))]

    def peer_gone(self, node: str, now: float) -> list[Action]:
        """*node* died: its count no longer matters (the caller plans)."""
        self.connectivity.peer_gone(node)
        return self.check(now, plan=False)

    def check(self, now: float, *, plan: bool = True) -> list[Action]:
        """Start, keep or end a give-up to a better-connected peer."""
        c = self.connectivity
        p = self._policy
        better = c.better_peer()
        if better is None:
            c.giveup_at = None
            if not c.giving_up:
                return []
            c.giving_up = False
            self.refused = frozenset()
            out: list[Action] = [p.decide(f"ping node count is balanced ({c.count}): giveup ended")]
            return out + p.plan(now, cause="ping node count is balanced") if plan else out
        if c.giving_up or c.giveup_at is not None:
            return []
        c.giveup_at = now + c.delay
        name, count = better
        return [
            p.decide(
                f"{name} sees {count} ping node(s), this node {c.count}:"
                f" delayed giveup in {c.delay:g}s"
            )
        ]

    def tick(self, now: float) -> list[Action]:
        c = self.connectivity
        if c.giveup_at is None or now < c.giveup_at:
            return []
        c.giveup_at = None
        better = c.better_peer()
        if better is None:
            return []
        name, count = better
        c.giving_up = True
        p = self._policy
        self.refused = frozenset(p.groups)
        out: list[Action] = [
            p.decide(
                f"Giving up because we have less visible ping nodes ({c.count}; {name}: {count})"
            )
        ]
        return out + p.plan(now, cause=f"{name} sees more ping nodes")

    def next_deadline(self) -> float:
        return self.connectivity.next_deadline()

    def view(self) -> ConnectivityView:
        return self.connectivity.view()


__all__ = ["GIVEUP_KEEPALIVES", "Connectivity", "ConnectivityView", "Ipfail"]
