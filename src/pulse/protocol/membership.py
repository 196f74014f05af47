"""Pure liveness bookkeeping for the peers of one node: statuses, links, deadlines.

This is the part of Heartbeat's ``check_for_timeouts`` / ``HBDoMsg_T_STATUS`` /
``change_link_status`` that decides *when* a node or a link is dead (docs/heartbeat.md#liveness),
kept free of messages, sequence numbers and I/O so it can be reasoned about (and
tested) on its own. :class:`pulse.protocol.engine.Engine` feeds it and turns what it
returns into log lines and transmissions.

Rules implemented here:

* A peer is declared dead when its last **status** message is ``dead time`` old
  (at ``last_status + dead_time`` exactly, not on a 250 ms poll). A node never
  heard from counts from :meth:`Membership.restart_clock` (the engine's start).
  Other authenticated packets from it (:meth:`Membership.heard_life`: its ACKs,
  retransmission requests, new sequenced messages) push that back by up to one
  more dead time: under heavy loss a status may be lost where they are not.
* The dead time is ``initdead`` for everyone until communications are up; after
  that the ``dt`` the node advertised, or our ``deadtime`` (``deadping`` for ping
  nodes) until it has advertised one.
* A link (node x medium) goes up on any packet accepted through it and dead one
  dead time after the last one. Links never heard from are reported ``dead``
  without an event (Heartbeat logs ``Link X:IF up.`` on the first packet).
* A status received more than warntime after the previous one is *late*; more
  than the dead time is *overdue*: the node is declared dead and alive again at
  once (this only happens when :meth:`Membership.expire` was not called in time).
* After the local node was stalled (:meth:`Membership.grant_grace`), no node or
  link is declared dead, and no status overdue, until the grace ends.
* A reload that shortens a node's dead time (:meth:`Membership.retime`) gives that
  node one whole new dead time from the reload: the silence it had when the
  configuration changed was measured against the old one.

The local node is not tracked here: the engine knows its own status.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from pulse.config.model import Timing
from pulse.protocol.events import LinkStatus, LinkStatusChanged, NodeStatus, NodeStatusChanged

#: Statuses in which a node counts as alive (it is sending status messages).
ALIVE = frozenset({NodeStatus.UP, NodeStatus.ACTIVE, NodeStatus.PING})


@dataclass(slots=True)
class LinkRecord:
    """One (node, medium) pair. ``last_heard`` is engine time, None until a packet."""

    status: LinkStatus = LinkStatus.DEAD
    last_heard: float | None = None


@dataclass(slots=True)
class NodeRecord:
    """What we know about one peer's liveness (mutable, owned by :class:`Membership`)."""

    name: str
    ping: bool
    status: NodeStatus = NodeStatus.INIT
    last_status: float | None = None  # engine time of the last accepted status
    # engine time of the last other packet that shows it alive (see heard_life)
    last_life: float | None = None
    advertised_dt_ms: int | None = None
    # Any packet received, or declared dead (Heartbeat's ``anypacketsyet``).
    heard: bool = False
    links: dict[str, LinkRecord] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusReport:
    """What one accepted status message did to a node.

    ``interval_ms`` is the time since the previous status (None for the first one
    and for a node coming back from ``dead``). ``late`` means it exceeded warntime,
    ``overdue`` that it exceeded the dead time while the node was not yet declared
    dead; ``changes`` lists the status transitions in order (an overdue status gives
    ``X -> dead`` then ``dead -> X``).
    """

    interval_ms: int | None
    late: bool
    overdue: bool
    changes: tuple[NodeStatusChanged, ...]


def status_reason(node: str, status: NodeStatus) -> str:
    return f"Status update for node {node}: status {status}"


def death_reason(node: str) -> str:
    return f"node {node}: is dead"


class Membership:
    """Liveness of every peer (normal and ping nodes) of the local node.

    :param peers: normal nodes other than the local one, in configuration order.
    :param ping_nodes: ping / ping_group pseudo-node names.
    :param links: medium names linking us to normal peers (``eth0``, ``/dev/ttyS0``);
        a ping node's only link is named after the node itself.
    :param timing: the configured timers (milliseconds).
    :param start: engine time from which never-heard nodes are counted.
    """

    def __init__(
        self,
        *,
        peers: Sequence[str],
        ping_nodes: Sequence[str] = (),
        links: Sequence[str] = (),
        timing: Timing,
        start: float,
    ) -> None:
        self._timing = timing
        self._start = start
        self._comms_up = False
        # After this node itself was stalled, nobody is declared dead before this
        # engine time (see grant_grace).
        self._grace_until = -1.0
        # After a reload that shortened their dead time, these nodes are not declared
        # dead before this engine time (see retime).
        self._retimed_until: dict[str, float] = {}
        self._nodes: dict[str, NodeRecord] = {}
        for name in peers:
            self._nodes[name] = NodeRecord(
                name=name, ping=False, links={link: LinkRecord() for link in links}
            )
        for name in ping_nodes:
            self._nodes[name] = NodeRecord(name=name, ping=True, links={name: LinkRecord()})

    # ----------------------------------------------------------------- queries

    @property
    def comms_up(self) -> bool:
        return self._comms_up

    @property
    def start(self) -> float:
        return self._start

    def __contains__(self, name: object) -> bool:
        return name in self._nodes

    def __iter__(self) -> Iterator[NodeRecord]:
        """Every peer, normal nodes first, each in configuration order."""
        return iter(self._nodes.values())

    def node(self, name: str) -> NodeRecord:
        return self._nodes[name]

    def is_alive(self, name: str) -> bool:
        return self._nodes[name].status in ALIVE

    def dead_time_ms(self, name: str) -> int:
        """The silence after which *name* (and each of its links) is declared dead."""
        if not self._comms_up:
            return self._timing.initdead
        rec = self._nodes[name]
        if rec.advertised_dt_ms is not None:
            return rec.advertised_dt_ms
        return self._timing.deadping if rec.ping else self._timing.deadtime

    def node_deadline(self, name: str) -> float | None:
        """When *name* will be declared dead without a new status; None if dead."""
        rec = self._nodes[name]
        if rec.status is NodeStatus.DEAD:
            return None
        since = self._start if rec.last_status is None else rec.last_status
        dead_time = self.dead_time_ms(name) / 1000
        deadline = since + dead_time
        if rec.last_life is not None and rec.last_life > since:
            # Other packets prove it alive, for at most one more dead time without a
            # status (a replayed ACK must not keep a dead node alive for ever).
            deadline = max(deadline, min(rec.last_life + dead_time, since + 2 * dead_time))
        return max(deadline, self._grace_until, self._retimed_until.get(name, -1.0))

    def link_deadline(self, name: str, link: str) -> float | None:
        """When the link will be declared dead without a packet; None if not up."""
        lrec = self._nodes[name].links.get(link)
        if lrec is None or lrec.status is not LinkStatus.UP or lrec.last_heard is None:
            return None
        return max(
            lrec.last_heard + self.dead_time_ms(name) / 1000,
            self._grace_until,
            self._retimed_until.get(name, -1.0),
        )

    def next_deadline(self) -> float | None:
        """The earliest node or link deadline, or None when nothing can expire."""
        best: float | None = None
        for rec in self._nodes.values():
            candidates = [self.node_deadline(rec.name)]
            candidates.extend(self.link_deadline(rec.name, link) for link in rec.links)
            for when in candidates:
                if when is not None and (best is None or when < best):
                    best = when
        return best

    def all_heard_or_dead(self) -> bool:
        """True when every peer sent a packet or was declared dead.

        This is the condition to start the node-list exchange (Heartbeat's
        ``anypacketsyet`` for every node).
        """
        return all(rec.heard for rec in self._nodes.values())

    # ----------------------------------------------------------------- updates

    def restart_clock(self, now: float) -> None:
        """Count never-heard nodes from *now* (called when the engine starts)."""
        self._start = now

    def retime(self, timing: Timing, now: float) -> None:
        """New timers (a reload); every deadline is computed with them from now on.

        A node whose dead time gets shorter has until one new dead time after *now*:
        cutting ``deadping`` from 10 s to 1 s four seconds after the last echo must
        not declare the ping node dead at once (it answers at the next echo).
        """
        before = {rec.name: self.dead_time_ms(rec.name) for rec in self._nodes.values()}
        self._timing = timing
        for name, old in before.items():
            new = self.dead_time_ms(name)
            if new < old:
                self._retimed_until[name] = now + new / 1000

    def grant_grace(self, until: float) -> None:
        """Declare no node or link dead before *until*, nor a status overdue.

        For after this node itself did not run (stopped, paused, starved): the
        silence it measured is its own, and the packets its peers sent meanwhile are
        still waiting in its sockets.
        """
        self._grace_until = max(self._grace_until, until)

    def declare_comms_up(self) -> None:
        """Switch from ``initdead`` to per-node dead times."""
        self._comms_up = True

    def heard_packet(self, name: str, link: str, now: float) -> LinkStatusChanged | None:
        """A packet from *name* was accepted via *link*; returns the link-up event if any."""
        rec = self._nodes[name]
        rec.heard = True
        lrec = rec.links.get(link)
        if lrec is None:
            lrec = rec.links[link] = LinkRecord()
        lrec.last_heard = now
        if lrec.status is LinkStatus.UP:
            return None
        lrec.status = LinkStatus.UP
        return LinkStatusChanged(node=name, link=link, status=LinkStatus.UP, at=now)

    def heard_life(self, name: str, now: float) -> None:
        """A packet other than a status proved *name* alive (see :meth:`node_deadline`).

        The engine calls this for authenticated packets of the peer's current
        generation that cannot be replays: sequenced ones that were new, and
        acknowledgements and retransmission requests addressed to us. A node already
        declared dead needs a status to come back.
        """
        rec = self._nodes[name]
        if rec.status is not NodeStatus.DEAD:
            rec.last_life = now

    def heard_status(
        self, name: str, now: float, status: NodeStatus | None, dt_ms: int | None = None
    ) -> StatusReport:
        """A status message from *name* was accepted.

        *status* is what it announced (None for a value we do not know, which keeps
        the current status, or ``up`` for a node that was ``init``/``dead``); *dt_ms*
        its advertised dead time, if any.
        """
        rec = self._nodes[name]
        old = rec.status
        changes: list[NodeStatusChanged] = []
        interval_ms: int | None = None
        late = overdue = False
        if rec.last_status is not None and old not in (NodeStatus.DEAD, NodeStatus.INIT):
            interval_ms = round((now - rec.last_status) * 1000)
            late = interval_ms > self._timing.warntime
            deadline = self.node_deadline(name)
            if deadline is not None and now > deadline:
                overdue = True
                reason = f"Late heartbeat: Node {name}: interval {interval_ms} ms"
                changes.append(
                    NodeStatusChanged(
                        node=name, old=old, new=NodeStatus.DEAD, at=now, reason=reason
                    )
                )
                old = NodeStatus.DEAD
        if status is None or status is NodeStatus.DEAD:
            status = NodeStatus.UP if old in (NodeStatus.INIT, NodeStatus.DEAD) else old
        if dt_ms is not None and dt_ms > 0:
            rec.advertised_dt_ms = dt_ms
        rec.last_status = now
        rec.status = status
        rec.heard = True
        if status is not old:
            if old is NodeStatus.DEAD:
                reason = f"node {name} returned: status {status}"
            else:
                reason = status_reason(name, status)
            changes.append(NodeStatusChanged(node=name, old=old, new=status, at=now, reason=reason))
        return StatusReport(
            interval_ms=interval_ms, late=late, overdue=overdue, changes=tuple(changes)
        )

    def mark_dead(
        self, name: str, now: float, reason: str | None = None
    ) -> NodeStatusChanged | None:
        """Declare *name* dead now (timeout or explicit); None if it already was."""
        rec = self._nodes[name]
        if rec.status is NodeStatus.DEAD:
            return None
        old = rec.status
        rec.status = NodeStatus.DEAD
        rec.heard = True
        return NodeStatusChanged(
            node=name,
            old=old,
            new=NodeStatus.DEAD,
            at=now,
            reason=death_reason(name) if reason is None else reason,
        )

    def expire(self, now: float) -> list[NodeStatusChanged | LinkStatusChanged]:
        """Declare dead every node and link whose deadline is at or before *now*.

        Events come per node in configuration order: the node first, then its links.
        Each event carries the exact deadline as ``at``.
        """
        events: list[NodeStatusChanged | LinkStatusChanged] = []
        for rec in self._nodes.values():
            deadline = self.node_deadline(rec.name)
            if deadline is not None and deadline <= now:
                change = self.mark_dead(rec.name, deadline)
                if change is not None:
                    events.append(change)
            for link, lrec in rec.links.items():
                ldeadline = self.link_deadline(rec.name, link)
                if ldeadline is not None and ldeadline <= now:
                    lrec.status = LinkStatus.DEAD
                    events.append(
                        LinkStatusChanged(
                            node=rec.name, link=link, status=LinkStatus.DEAD, at=ldeadline
                        )
                    )
        return events
