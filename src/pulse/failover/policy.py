"""Which node runs which resource group: pure decision logic, no I/O, no clock.

Every node runs the same rules over the same facts, so they agree without a vote:

* the nodes that are alive (from membership) and which of them have finished
  starting up ("stable", announced with ``isstable=1``);
* what each node holds, announced in Heartbeat's ``resource`` message with pulse's
  own fields next to Heartbeat's (``pulse_hold`` lists the exact group keys, so three
  or more nodes work; Heartbeat ignores fields it does not know);
* what each node refuses (standby, or a start that failed there);
* takeover requests (``hb_takeover``), and the ``auto_failback`` policy.

From these, :meth:`Scheduler.owner` names the node that should run a group:

1. nodes that are dead, leaving, or refuse the group are out;
2. a node that asked to take the group over (``pulsectl takeover``) gets it;
3. with ``auto_failback off`` the node holding it keeps it;
4. otherwise the first candidate in ha.cf's node order starting at the group's
   preferred node: prime → calc → (third) and back, as Heartbeat users expect.

A node acquires a group when it is the owner and nobody else claims it; it releases
a group when it holds one that is no longer its own.

A Heartbeat peer (its ``resource`` messages carry no ``pulse_hold``) neither releases
nor takes a group on a ``resource`` message: groups move between it and us through
Heartbeat's three-phase standby exchange, ``ask_resources rsc_hold=<class>`` with
``info=me`` (the giver asks), ``info=other`` (the taker agrees), ``info=done`` (sent by
the giver once released, then by the taker once acquired). This node answers a
Heartbeat peer's ``me`` (its auto-failback or hb_standby) and starts the exchange itself
when it should hand a group to a Heartbeat peer (auto-failback, ``pulsectl standby``,
``hb_takeover``). Between pulse nodes the exchange is never used. A group being started, running
or stopped stays claimed until its release finished, so a group never runs twice;
a group whose stop failed stays claimed as FAILED and is reported, never taken
over silently.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable
from dataclasses import dataclass

from pulse.config.model import AutoFailback, Config, ResourceGroup
from pulse.failover.ipfail import (
    GIVEUP_KEEPALIVES,
    IPFAIL_CLIENT,
    Connectivity,
    ConnectivityView,
    ipfail_reply_fields,
    num_ping_nodes_fields,
    parse_num_ping,
)
from pulse.wire.message import Message

RQSTDELAY = 10.0  # Heartbeat's dead-lock breaker: become stable without all replies
STANDBY_REPLY_TIMEOUT = 10.0  # Heartbeat gives up a standby request after this
STANDBY_TAKE_TIMEOUT = 3600.0  # how long the taker (and the giver, for the end) waits
STANDBY_RETRY = 1.0  # Heartbeat's auto-failback retry interval
# Sent last by a node that has released everything on a graceful stop.
SHUTDONE = Message.of(("t", "shutdone"), ("st", "dead"))


class GroupState(enum.StrEnum):
    STOPPED = "stopped"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    FAILED = "failed"


# What this node last told the others (claimed, refused, failed, keeping, asked for,
# stable, leaving): a report is sent again only when it changes.
_AnnounceKey = tuple[
    frozenset[str], frozenset[str], frozenset[str], frozenset[str], frozenset[str], bool, bool
]

CLAIMED = (GroupState.STARTING, GroupState.RUNNING, GroupState.STOPPING, GroupState.FAILED)
CLASSES = ("all", "foreign", "local", "failback")


# ----------------------------------------------------------------------------- actions


@dataclass(frozen=True, slots=True)
class Acquire:
    group: str
    reason: str


@dataclass(frozen=True, slots=True)
class Release:
    group: str
    reason: str


@dataclass(frozen=True, slots=True)
class Refresh:
    """Re-announce a group this node kept (its addresses may be cached elsewhere)."""

    group: str
    reason: str


@dataclass(frozen=True, slots=True)
class Send:
    message: Message


@dataclass(frozen=True, slots=True)
class Decision:
    """A change in what this node decided, in words (logged, shown in status)."""

    text: str
    group: str | None = None


Action = Acquire | Release | Refresh | Send | Decision


# ----------------------------------------------------------------------------- peers


@dataclass(slots=True)
class Peer:
    alive: bool = False
    stable: bool = False
    leaving: bool = False
    hold: frozenset[str] = frozenset()
    standby: frozenset[str] = frozenset()  # refused unless nobody else can run them
    failed: frozenset[str] = frozenset()  # a start failed there: refused outright
    pulse: bool = False  # speaks pulse's fields (else: a Heartbeat peer, classes only)
    reported: bool = False  # has told us what it holds at least once
    dead_since: float | None = None
    # Groups it keeps after seeing another node claim them too, announced again on
    # the LAN (gratuitous ARP) before it said so (``pulse_keep``): the others release.
    keeping: frozenset[str] = frozenset()
    # The groups both of us claimed when we last answered its report (see message()).
    answered_conflict: frozenset[str] = frozenset()
    # (generation, seq) of the newest report applied: a retransmitted older one, arriving
    # after it (a gap filled late), must not undo what the newer one said.
    report_order: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupView:
    key: str
    preferred: str
    holder: str | None
    state: str
    since: float | None
    owner: str | None
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SchedulerView:
    stable: bool
    leaving: bool
    standby: tuple[str, ...]
    decision: str
    groups: tuple[GroupView, ...]
    connectivity: ConnectivityView | None = None  # the built-in ipfail, when enabled
    cut_off: bool = False  # every link of ours fails to send: nothing is taken over


@dataclass(slots=True)
class _Mine:
    state: GroupState = GroupState.STOPPED
    since: float | None = None
    reason: str = ""


@dataclass(slots=True)
class _Clock:
    stable_deadline: float | None = None


class Role(enum.StrEnum):
    GIVER = "giver"  # we sent info=me: we release, the peer takes
    TAKER = "taker"  # we answered info=other: the peer releases, we take


class Phase(enum.StrEnum):
    ASKED = "asked"  # giver: info=me sent, waiting for info=other
    RELEASING = "releasing"  # giver: releasing the groups
    RELEASED = "released"  # giver: info=done sent, waiting for the taker's done
    OFFERED = "offered"  # taker: info=other sent, waiting for the giver's done
    TAKING = "taking"  # taker: acquiring the groups


@dataclass(slots=True, kw_only=True)
class _Exchange:
    """One Heartbeat standby exchange (``ask_resources``) with a Heartbeat peer."""

    peer: str
    role: Role
    cls: str  # rsc_hold as on the wire: relative to the giver
    keys: frozenset[str]
    phase: Phase
    deadline: float


def ask_resources(cls: str, info: str) -> Message:
    return Message.of(("t", "ask_resources"), ("rsc_hold", cls), ("info", info))


class StandbyRefused(Exception):
    """``pulsectl standby`` cannot be honoured (nobody could take the groups)."""


class Scheduler:
    """The failover policy of one node. Feed it facts, act on the returned actions."""

    def __init__(self, *, config: Config, local: str, now: float) -> None:
        self.config = config
        self.local = local
        self.nodes = config.nodes
        self.groups: dict[str, ResourceGroup] = {g.key: g for g in config.groups}
        self.policy = config.auto_failback
        self.peers: dict[str, Peer] = {n: Peer() for n in self.nodes if n != local}
        self.mine: dict[str, _Mine] = {k: _Mine() for k in self.groups}
        self.standby: set[str] = set()  # groups this node refuses (pulsectl standby)
        # ipfail: groups offered to a better-connected peer (soft, like standby).
        self.uplink_refused: frozenset[str] = frozenset()
        self.connectivity: Connectivity | None = None
        if config.ipfail:
            self.connectivity = Connectivity(
                config.ping_nodes, delay=GIVEUP_KEEPALIVES * config.timing.keepalive / 1000
            )
        self.failed_here: set[str] = set()  # groups whose start failed here
        self.takeover_pref: dict[str, str] = {}  # group -> node that asked to take it
        self.comms: bool = False
        # Every link of ours fails to send (our own interfaces are down): we keep what
        # we run and take nothing over (docs/failover.md, "Cut off").
        self.cut_off = False
        self.stable = False
        self.leaving = False
        self.awaiting: set[str] = set()
        self.decision = "waiting for communications"
        self._clock = _Clock()
        self.exchange: _Exchange | None = None  # a standby exchange with a Heartbeat peer
        self._ask_after: float = 0.0  # no new standby request before this
        self._last_reason: dict[str, str] = {}
        self._last_announce: _AnnounceKey | None = None
        # A group claimed here and by another node (a healed partition): the keeper
        # announces it again first (Refresh), then says so (``pulse_keep``); the other
        # releases only then, so the LAN's ARP caches already point here when its copy
        # stops (docs/failover.md, "A healed partition").
        self.refreshing: set[str] = set()  # Refresh issued, not finished
        self.keeping: set[str] = set()  # re-announced: listed in pulse_keep
        self._keep_wait: dict[str, float] = {}  # releaser: release anyway at this time
        self.keep_wait_limit = config.timing.keepalive / 1000

    # ------------------------------------------------------------------ facts

    def comms_up(self, now: float, peers: Iterable[str] = ()) -> list[Action]:
        """Our communications are up: ask the live peers what they hold.

        *peers* are nodes heard from (maybe not by a status heartbeat yet): alive.
        """
        self.comms = True
        out: list[Action] = []
        for name in peers:
            if name in self.peers and not self.peers[name].alive:
                self.peers[name].alive = True
                self.peers[name].dead_since = None
        self.awaiting = {n for n, p in self.peers.items() if p.alive}
        out += self._tell_ping_count()
        if not self.awaiting:
            return out + self._become_stable(now, "no other node is alive")
        self._clock.stable_deadline = now + RQSTDELAY
        out.append(Send(Message.of(("t", "starting"))))
        out.append(self._decide("waiting for the other nodes to report what they hold"))
        return out

    def node_status(
        self, node: str, alive: bool, now: float, *, when: str | None = None
    ) -> list[Action]:
        """A peer came alive or died. *when* is the wall-clock time for reasons."""
        peer = self.peers.get(node)
        if peer is None:
            return []
        if alive == peer.alive:
            return []
        peer.alive = alive
        if alive:
            # Back from the dead (a healed partition, or a restart): tell it what we
            # hold, so that a group held on both sides is resolved at once.
            peer.dead_since = None
            if not self.comms:
                return []
            self._last_announce = self._announce_key()
            # It may never have seen us die (a one-way or short blip): it then has no
            # reason to announce what it holds, and would stay "not stable" here. Ask.
            back: list[Action] = [
                Send(self._resource_message(request=True)),
                *self._tell_ping_count(),
            ]
            # Its report of what it holds may have reached us before its first
            # heartbeat did (a healed partition): settle a doubly held group now.
            return back + self._plan(now, cause=f"{node} is back")
        # Dead: it holds nothing any more (fencing, when configured, happens before
        # the daemon reports the death to us), and it is no longer starting up.
        peer.dead_since = now
        peer.stable = False
        peer.leaving = False
        peer.hold = frozenset()
        peer.standby = frozenset()
        peer.failed = frozenset()
        peer.keeping = frozenset()
        peer.answered_conflict = frozenset()
        self.awaiting.discard(node)
        out: list[Action] = []
        if self.connectivity is not None:
            self.connectivity.peer_gone(node)
            out += self._check_connectivity(now, plan=False)  # planned below
        if self.exchange is not None and self.exchange.peer == node:
            out += self._end_exchange(f"standby exchange with {node} cancelled: {node} died")
        for key, who in list(self.takeover_pref.items()):
            if who == node:
                del self.takeover_pref[key]
        if self.comms and not self.stable and not self.awaiting:
            out += self._become_stable(now, f"{node} died while we were starting")
        out += self._plan(now, cause=f"{node} dead at {when or _hms(now)}")
        return out

    def set_cut_off(self, cut_off: bool, now: float, *, detail: str = "") -> list[Action]:
        """Our own links all fail (or one works again): see :attr:`cut_off`."""
        if cut_off == self.cut_off:
            return []
        self.cut_off = cut_off
        if cut_off:
            text = "this node is cut off (every link fails to send"
            text += f": {detail})" if detail else ")"
            text += "; keeping what runs here, taking nothing over"
        else:
            text = "this node is no longer cut off"
        return [self._decide(text), *self._plan(now, cause="")]

    def may_hold(self, node: str) -> bool:
        """Whether *node* might run resources: it claims some, or never said (fencing rule:
        Heartbeat fences a dead node unless its last report was that it held none)."""
        peer = self.peers.get(node)
        if peer is None:
            return False
        return bool(peer.hold) or not peer.reported

    def message(self, msg: Message, now: float) -> list[Action]:
        src = msg.get("src")
        kind = msg.type
        if src is None or src == self.local or src not in self.peers:
            return []
        peer = self.peers[src]
        out: list[Action] = []
        if not peer.alive:
            # A node that talks is alive, even if its first status heartbeat has not
            # arrived yet (its resource report can overtake it). Without this, a node
            # starting next to a running peer could take the peer's groups.
            out += self.node_status(src, True, now)
        if kind == "starting":
            # A peer (re)starting: it holds nothing yet and is not stable.
            peer.stable = False
            peer.hold = frozenset()
            if not peer.pulse:
                peer.standby = frozenset()  # a restarted Heartbeat node is not in standby
            if self.exchange is not None and self.exchange.peer == src:
                out += self._end_exchange(f"standby exchange with {src} cancelled: it restarted")
            if self.comms:
                out.append(Send(self._resource_message()))
                out += self._tell_ping_count()
            out += self._plan(now, cause=f"{src} is starting")
        elif kind == "resource":
            order = _message_order(msg)
            if order is not None and peer.report_order is not None and order < peer.report_order:
                return out  # older than what it already told us
            if order is not None:
                peer.report_order = order
            before = peer.hold
            self._learn(src, peer, msg)
            for key in sorted(before - peer.hold):
                if self.mine[key].state is GroupState.RUNNING:
                    # Both ran it (a healed partition); the other gave it up to us.
                    out.append(Refresh(key, f"{src} released {key}, which runs here"))
            conflict = peer.hold & self._claimed()
            if self.comms and (
                msg.get("pulse_rq") == "1" or (conflict and conflict != peer.answered_conflict)
            ):
                # It asked (it saw us come back from "dead"), or it claims a group we
                # claim and may not know that we do (it never saw us die): tell it
                # what we hold. Once per question and per conflict, so two nodes
                # never answer each other for ever.
                out.append(Send(self._resource_message()))
            peer.answered_conflict = conflict
            if src in self.awaiting:
                self.awaiting.discard(src)
                if self.comms and not self.stable and not self.awaiting:
                    out += self._become_stable(now, "every live node reported its resources")
            out += self._plan(now, cause=f"{src} reported its resources")
        elif kind == "shutdone":
            peer.leaving = True
            peer.stable = False
            peer.hold = frozenset()
            out.append(Decision(f"Received shutdown notice from '{src}'."))
            out += self._plan(now, cause=f"{src} shut down at {_hms(now)}")
        elif kind == "hb_takeover":
            what = msg.get("rsc_hold") or "all"
            keys = self._class_keys(what, node=src)  # the class is relative to the asker
            for key in keys:
                self.takeover_pref[key] = src
            if not peer.pulse:
                peer.standby = peer.standby - set(keys)
            out.append(Decision(f"{src} asked to take over {what} resources"))
            out += self._plan(now, cause=f"{src} asked for them (takeover)")
        elif kind == "ask_resources":
            out += self._ask_resources(src, peer, msg, now)
        elif kind == "num_ping_nodes" and self.connectivity is not None:
            count = parse_num_ping(msg.get("num_ping"))
            if count is not None:
                self.connectivity.peer_count(src, count)
                if msg.get("from_id") == IPFAIL_CLIENT:
                    out += self._answer_ipfail(src, peer, count, now)
                out += self._check_connectivity(now)
        elif kind == "you_are_dead" and self.connectivity is not None:
            # A Heartbeat node's ipfail answered our count: it reaches more ping nodes.
            self.connectivity.peer_sees_more(src)
            out += self._check_connectivity(now)
        elif kind == "abort_giveup" and self.connectivity is not None:
            # ... or as many as we do.
            self.connectivity.peer_count(src, self.connectivity.count)
            out += self._check_connectivity(now)
        return out

    def _answer_ipfail(self, src: str, peer: Peer, count: int, now: float) -> list[Action]:
        """Answer a Heartbeat node's ipfail as its peer ipfail would (ipfail.c,
        msg_ping_nodes): it only gives its groups up when told that we see more."""
        assert self.connectivity is not None
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
            out += self._plan(now, cause=f"{src}'s ping node count is balanced")
        return out

    def ping_status(self, node: str, up: bool, now: float) -> list[Action]:
        """A ping node became reachable (status ``ping``) or dead."""
        c = self.connectivity
        if c is None or not c.ping(node, up):
            return []
        out: list[Action] = []
        if self.comms:
            out += self._tell_ping_count()
        return out + self._check_connectivity(now)

    def _tell_ping_count(self) -> list[Action]:
        if self.connectivity is None:
            return []
        return [Send(Message.of(*num_ping_nodes_fields(self.connectivity.count)))]

    def _check_connectivity(self, now: float, *, plan: bool = True) -> list[Action]:
        """Start, keep or end a give-up to a better-connected peer."""
        c = self.connectivity
        if c is None:
            return []
        better = c.better_peer()
        if better is None:
            c.giveup_at = None
            if not c.giving_up:
                return []
            c.giving_up = False
            self.uplink_refused = frozenset()
            out: list[Action] = [
                self._decide(f"ping node count is balanced ({c.count}): giveup ended")
            ]
            return out + self._plan(now, cause="ping node count is balanced") if plan else out
        if c.giving_up or c.giveup_at is not None:
            return []
        c.giveup_at = now + c.delay
        name, count = better
        return [
            self._decide(
                f"{name} sees {count} ping node(s), this node {c.count}:"
                f" delayed giveup in {c.delay:g}s"
            )
        ]

    def _connectivity_tick(self, now: float) -> list[Action]:
        c = self.connectivity
        if c is None or c.giveup_at is None or now < c.giveup_at:
            return []
        c.giveup_at = None
        better = c.better_peer()
        if better is None:
            return []
        name, count = better
        c.giving_up = True
        self.uplink_refused = frozenset(self.groups)
        out: list[Action] = [
            self._decide(
                f"Giving up because we have less visible ping nodes ({c.count}; {name}: {count})"
            )
        ]
        return out + self._plan(now, cause=f"{name} sees more ping nodes")

    def done(
        self, group: str, now: float, *, ok: bool, clean: bool = True, detail: str = ""
    ) -> list[Action]:
        """The executor finished the last Acquire/Release of *group*.

        ``clean`` is False when a failure may have left something running here (a
        failed start whose release also failed, or a failed stop).
        """
        mine = self.mine[group]
        out: list[Action] = []
        if mine.state is GroupState.STARTING:
            if ok:
                mine.state, mine.since = GroupState.RUNNING, now
                out.append(Decision(f"holding {group}: {mine.reason}", group))
            else:
                if not clean:
                    mine.state, mine.since = GroupState.FAILED, now
                    out.append(
                        Decision(
                            f"{group} FAILED here: start failed ({detail}) "
                            "and its release failed; it needs an administrator",
                            group,
                        )
                    )
                else:
                    mine.state, mine.since = GroupState.STOPPED, now
                    self.failed_here.add(group)
                    out.append(
                        Decision(
                            f"start of {group} failed ({detail}); offering it to the other nodes",
                            group,
                        )
                    )
        elif mine.state is GroupState.STOPPING:
            if ok:
                mine.state, mine.since = GroupState.STOPPED, now
                out.append(Decision(f"released {group}: {mine.reason}", group))
            else:
                mine.state, mine.since = GroupState.FAILED, now
                out.append(
                    Decision(
                        f"{group} FAILED here: stop failed ({detail}); "
                        "it stays claimed until an administrator clears it",
                        group,
                    )
                )
        out += self._plan(now, cause="")
        return out

    def set_standby(self, what: str, now: float) -> list[Action]:
        """``pulsectl standby [all|foreign|local|failback]`` (hb_standby)."""
        if what not in CLASSES:
            raise ValueError(f"unknown resource class {what!r}; use one of {', '.join(CLASSES)}")
        cls = "foreign" if what == "failback" else what
        keys = self._class_keys(cls, node=self.local)
        takers = [n for n, p in self.peers.items() if p.alive and p.stable and not p.leaving]
        if keys and not takers:
            raise StandbyRefused("no other active node could take the resources over")
        self.standby |= set(keys)
        for key in keys:
            if self.takeover_pref.get(key) == self.local:
                del self.takeover_pref[key]
        out: list[Action] = [Decision(f"standby: giving up {what} resources")]
        out += self._plan(now, cause=f"standby {what} requested")
        return out

    def takeover(self, what: str, now: float) -> list[Action]:
        """``pulsectl takeover [all|foreign|local|failback]`` (hb_takeover)."""
        if what not in CLASSES:
            raise ValueError(f"unknown resource class {what!r}; use one of {', '.join(CLASSES)}")
        cls = "local" if what == "failback" else what
        keys = self._class_keys(cls, node=self.local)
        self.standby -= set(keys)
        self.failed_here -= set(keys)
        for key in keys:
            self.takeover_pref[key] = self.local
        out: list[Action] = [
            Send(Message.of(("t", "hb_takeover"), ("rsc_hold", cls))),
            Decision(f"takeover: asking for {what} resources"),
        ]
        out += self._plan(now, cause=f"takeover {what} requested")
        return out

    def shutdown(self, now: float) -> list[Action]:
        """Graceful stop: release everything (haresources order); ``is_done`` tells when."""
        self.leaving = True
        out: list[Action] = [Decision("Giving up all HA resources.")]
        out += self._plan(now, cause="shutting down")
        return out

    def is_released(self) -> bool:
        return all(m.state in (GroupState.STOPPED, GroupState.FAILED) for m in self.mine.values())

    def tick(self, now: float) -> list[Action]:
        out = self._connectivity_tick(now)
        return out + self._tick(now)

    def _tick(self, now: float) -> list[Action]:
        deadline = self._clock.stable_deadline
        if deadline is not None and now >= deadline and not self.stable:
            missing = ", ".join(sorted(self.awaiting)) or "nobody"
            return self._become_stable(now, f"no resource report from {missing} in {RQSTDELAY:g}s")
        ex = self.exchange
        if ex is not None and now >= ex.deadline:
            if ex.phase is Phase.ASKED:
                text = "No reply to standby request. Standby request cancelled."
            else:
                text = f"standby exchange with {ex.peer} timed out in phase {ex.phase}"
            self._ask_after = now + STANDBY_RETRY
            return self._end_exchange(text) + self._plan(now, cause="")
        if self.stable and self._ask_after and now >= self._ask_after:
            self._ask_after = 0.0
            return self._plan(now, cause="")
        lapsed = [k for k, t in self._keep_wait.items() if now >= t > -math.inf]
        if lapsed:
            # Lapsed for good: the next plan releases without waiting (-inf), and the
            # deadline is gone, even if some other rule keeps the group a while longer.
            for key in lapsed:
                self._keep_wait[key] = -math.inf
            return self._plan(now, cause="")
        return []

    def next_deadline(self) -> float:
        d = self._clock.stable_deadline
        deadlines = [d if d is not None and not self.stable else float("inf")]
        if self.exchange is not None:
            deadlines.append(self.exchange.deadline)
        if self._ask_after:
            deadlines.append(self._ask_after)
        if self.connectivity is not None:
            deadlines.append(self.connectivity.next_deadline())
        deadlines.extend(t for t in self._keep_wait.values() if t > -math.inf)
        return min(deadlines)

    # ------------------------------------------------------------------ policy

    def owner(self, key: str) -> str | None:
        """The node that should run group *key* now (None: nobody can)."""
        group = self.groups[key]
        order = _rotation(self.nodes, group.node)
        eligible = [n for n in order if self._eligible(n, key, strict=True)]
        if not eligible:
            # Standby gives groups away; it does not take them down when nobody else
            # can run them (as hb_standby: the other node leaving brings them back).
            eligible = [n for n in order if self._eligible(n, key, strict=False)]
        if not eligible:
            return None
        pref = self.takeover_pref.get(key)
        if pref in eligible:
            return pref
        if self.policy is AutoFailback.OFF:
            holder = self.holder(key)
            if holder in eligible:
                return holder
        return eligible[0]

    def holder(self, key: str) -> str | None:
        """The node claiming group *key* (starting, running, stopping or failed there).

        After a healed partition two nodes may claim the same group; every node then
        names the same one (the first claimant in the group's node order), so the other
        releases it.
        """
        claimants = self.claimants(key)
        if not claimants:
            return None
        order = _rotation(self.nodes, self.groups[key].node)
        return min(claimants, key=order.index)

    def claimants(self, key: str) -> list[str]:
        out = [self.local] if self.mine[key].state in CLAIMED else []
        out += [n for n, p in self.peers.items() if p.alive and key in p.hold]
        return out

    def _eligible(self, node: str, key: str, *, strict: bool) -> bool:
        if node == self.local:
            return (
                not self.leaving
                and not (self.cut_off and self.mine[key].state not in CLAIMED)
                and not (strict and key in self.refused)
                and key not in self.failed_here
                and self.mine[key].state is not GroupState.FAILED
            )
        peer = self.peers[node]
        # A live peer that is still starting keeps its place: its own groups wait for it
        # (as Heartbeat's nodes only take their local groups at start-up).
        return (
            peer.alive
            and not peer.leaving
            and not (strict and key in peer.standby)
            and key not in peer.failed
        )

    def _plan(self, now: float, *, cause: str) -> list[Action]:
        if not self.stable:
            return []
        out: list[Action] = []
        ask: dict[str, list[str]] = {}  # Heartbeat peer -> groups to hand it
        for key in self.groups:  # haresources order
            mine = self.mine[key]
            owner = self.owner(key)
            ex = self.exchange
            rivals = [n for n, p in self.peers.items() if p.alive and key in p.hold]
            out += self._settle_double_claim(key, owner, rivals)
            if (
                mine.state is GroupState.RUNNING
                and owner is not None
                and owner != self.local
                and self._via_standby_exchange(key, owner)
                and not (
                    ex is not None
                    and ex.role is Role.GIVER
                    and key in ex.keys
                    and ex.phase is not Phase.ASKED
                )
            ):
                # A Heartbeat node only takes a group through its standby exchange.
                if ex is not None and ex.role is Role.GIVER and key in ex.keys:
                    self._note(out, key, f"asked {owner} to take {key} (standby exchange)")
                else:
                    ask.setdefault(owner, []).append(key)
            elif (
                mine.state is GroupState.RUNNING
                and owner in self.peers
                and not self.peers[owner].stable
                and not self.leaving
                and key not in self.refused
            ):
                # Hand a group over only to a node that has finished starting (as
                # Heartbeat's auto-failback waits for the returning node to be stable).
                self._note(out, key, f"keeping {key} until {owner} has finished starting")
            elif mine.state is GroupState.RUNNING and owner != self.local:
                if self._await_keeper(out, key, owner, rivals, now):
                    continue
                self._keep_wait.pop(key, None)
                reason = self._release_reason(key, owner, cause)
                mine.state, mine.since, mine.reason = GroupState.STOPPING, now, reason
                out.append(Release(key, reason))
            elif mine.state is GroupState.STOPPED and owner == self.local:
                others = [n for n, p in self.peers.items() if p.alive and key in p.hold]
                if (
                    ex is not None
                    and ex.role is Role.TAKER
                    and ex.phase is Phase.OFFERED
                    and key in ex.keys
                ):
                    # Its "resource ... info=standby" comes before it has released.
                    self._note(out, key, f"waiting for {ex.peer} to release {key} (standby)")
                    continue
                if others:
                    self._note(out, key, f"waiting for {others[0]} to release {key}")
                    continue
                if self.groups[key].node == self.local:
                    reason = f"acquiring {key}: this is its preferred node"
                else:
                    reason = f"took over {key}: {cause}" if cause else f"took over {key}"
                mine.state, mine.since, mine.reason = GroupState.STARTING, now, reason
                out.append(Acquire(key, reason))
            elif mine.state is GroupState.STOPPED and owner is None:
                self._note(out, key, f"{key} cannot run anywhere: no eligible node")
            elif (
                mine.state is GroupState.RUNNING
                and owner == self.local
                and self.policy is AutoFailback.OFF
                and self.groups[key].node != self.local
            ):
                pref = self.groups[key].node
                if pref in self.peers and self.peers[pref].alive:
                    self._note(out, key, f"not failing back {key} to {pref}: auto_failback off")
        if ask and self.exchange is None and now >= self._ask_after:
            taker = sorted(ask, key=self.nodes.index)[0]
            out += self._start_exchange(taker, frozenset(ask[taker]), now)
        out += self._exchange_progress(now)
        if self.exchange is not None:
            return out  # what we hold is announced when the exchange is over
        announce = self._maybe_announce()
        if announce is not None:
            out.append(announce)
        return out

    # ------------------------------------------------------------------ double claims

    def _settle_double_claim(self, key: str, owner: str | None, rivals: list[str]) -> list[Action]:
        """The keeper's side of a group claimed here and elsewhere: announce it again.

        Called for every group on every plan. When nobody else claims the group (any
        more), the bookkeeping is dropped.
        """
        mine = self.mine[key]
        if not rivals or mine.state not in CLAIMED:
            self.keeping.discard(key)
            self._keep_wait.pop(key, None)
            return []
        if (
            mine.state is GroupState.RUNNING
            and owner == self.local
            and key not in self.keeping
            and key not in self.refreshing
        ):
            self.refreshing.add(key)
            who = ", ".join(rivals)
            return [
                Refresh(key, f"{key} also runs on {who}: announcing it here again first"),
            ]
        return []

    def refreshed(self, group: str, now: float) -> list[Action]:
        """The Refresh of *group* went out: tell the other claimants they may release."""
        if group not in self.refreshing:
            return []
        self.refreshing.discard(group)
        rivals = any(p.alive and group in p.hold for p in self.peers.values())
        if rivals and self.mine[group].state is GroupState.RUNNING:
            self.keeping.add(group)
        return self._plan(now, cause="")

    def _await_keeper(
        self, out: list[Action], key: str, owner: str | None, rivals: list[str], now: float
    ) -> bool:
        """Whether to keep running *key* a little longer, until its keeper re-announced it.

        The node that keeps a doubly claimed group announces it again (gratuitous ARP)
        and then lists it in ``pulse_keep``; releasing before that would stop the
        service while the LAN still sends to us. A Heartbeat keeper never says so, and
        a keeper that stays silent for a keepalive is not waited for any longer.
        """
        if owner is None or owner not in rivals or self.leaving:
            return False
        peer = self.peers[owner]
        if not peer.pulse or key in peer.keeping:
            return False
        deadline = self._keep_wait.setdefault(key, now + self.keep_wait_limit)
        if now >= deadline:
            return False
        self._note(out, key, f"{key} also runs on {owner}: releasing it once {owner} announced it")
        return True

    # ------------------------------------------------------------------ standby exchange

    def _via_standby_exchange(self, key: str, owner: str) -> bool:
        """Whether group *key* goes to *owner* through Heartbeat's standby exchange."""
        peer = self.peers.get(owner)
        return (
            peer is not None
            and peer.reported
            and not peer.pulse
            and peer.alive
            and peer.stable
            and not peer.leaving
            and not self.leaving
            and key not in peer.hold
        )

    def _class_of(self, keys: frozenset[str]) -> str:
        """The smallest Heartbeat class (relative to this node) covering *keys*."""
        local = {k for k in keys if self.groups[k].node == self.local}
        if local == keys:
            return "local"
        if not local:
            return "foreign"
        return "all"

    def _in_flux(self) -> bool:
        return any(
            m.state in (GroupState.STARTING, GroupState.STOPPING) for m in self.mine.values()
        )

    def _start_exchange(self, taker: str, keys: frozenset[str], now: float) -> list[Action]:
        cls = self._class_of(keys)
        self.exchange = _Exchange(
            peer=taker,
            role=Role.GIVER,
            cls=cls,
            keys=keys,
            phase=Phase.ASKED,
            deadline=now + STANDBY_REPLY_TIMEOUT,
        )
        return [
            Send(ask_resources(cls, "me")),
            self._decide(f"asking {taker} to take {cls} resources ({', '.join(sorted(keys))})"),
        ]

    def _end_exchange(self, text: str) -> list[Action]:
        ex = self.exchange
        self.exchange = None
        if ex is not None and not (ex.role is Role.GIVER and ex.phase is Phase.ASKED):
            # Heartbeat ends every exchange that moved something with a resource
            # report (isstable=1): the peer saw our isstable=0, or our takeover.
            self._last_announce = None
        return [self._decide(text)]

    def _exchange_progress(self, now: float) -> list[Action]:
        ex = self.exchange
        if ex is None:
            return []
        if self.leaving:
            return self._end_exchange(f"standby exchange with {ex.peer} cancelled: shutting down")
        states = {self.mine[k].state for k in ex.keys}
        busy = GroupState.STARTING in states or GroupState.STOPPING in states
        if ex.phase is Phase.RELEASING and not busy:
            failed = sorted(k for k in ex.keys if self.mine[k].state is GroupState.FAILED)
            if failed:
                return self._end_exchange(
                    f"standby exchange with {ex.peer} abandoned: "
                    f"{', '.join(failed)} could not be released"
                )
            ex.phase, ex.deadline = Phase.RELEASED, now + STANDBY_TAKE_TIMEOUT
            return [Send(ask_resources(ex.cls, "done"))]
        if ex.phase is Phase.TAKING and not busy:
            out: list[Action] = [Send(ask_resources(ex.cls, "done"))]
            return out + self._end_exchange(
                f"standby takeover of {ex.cls} resources from {ex.peer} completed"
            )
        return []

    def _ask_resources(self, src: str, peer: Peer, msg: Message, now: float) -> list[Action]:
        """The standby exchange, as giver or taker (docs/heartbeat.md#standby-and-takeover)."""
        info = msg.get("info")
        cls = msg.get("rsc_hold") or "all"
        if cls == "failback":
            cls = "foreign"
        ex = self.exchange
        if info == "me":
            if ex is not None:
                return [Decision(f"Standby in progress- new request from {src} ignored")]
            if not self.stable or not peer.stable or self._in_flux():
                return [Decision(f"standby request from {src} ignored: resources in flux")]
            keys = frozenset(self._class_keys(cls, node=src))
            self.exchange = _Exchange(
                peer=src,
                role=Role.TAKER,
                cls=cls,
                keys=keys,
                phase=Phase.OFFERED,
                deadline=now + STANDBY_TAKE_TIMEOUT,
            )
            return [
                Send(ask_resources(cls, "other")),
                self._decide(f"{src} offers its {cls} resources; waiting for it to release them"),
            ]
        if ex is None or ex.peer != src:
            return []
        if info == "other" and ex.role is Role.GIVER and ex.phase is Phase.ASKED:
            ex.phase, ex.deadline = Phase.RELEASING, now + STANDBY_TAKE_TIMEOUT
            out: list[Action] = [
                Send(self._resource_message(without=ex.keys, stable=False, info="standby")),
                self._decide(f"giving {ex.cls} resources to {src} (standby exchange)"),
            ]
            return out + self._plan(now, cause=f"{src} agreed to take them")
        if info == "done" and ex.role is Role.GIVER and ex.phase is Phase.RELEASED:
            peer.hold = peer.hold | ex.keys  # it took them; its report will confirm
            out = self._end_exchange(
                f"Other node completed standby takeover of {ex.cls} resources."
            )
            return out + self._plan(now, cause="")
        if info == "done" and ex.role is Role.TAKER and ex.phase is Phase.OFFERED:
            ex.phase, ex.deadline = Phase.TAKING, now + STANDBY_TAKE_TIMEOUT
            peer.hold = peer.hold - ex.keys
            for key in ex.keys:
                if self.owner(key) != self.local:
                    peer.standby = peer.standby | {key}  # it gave them up: it refuses them
            out = [self._decide(f"{src} released its {ex.cls} resources; taking them")]
            return out + self._plan(now, cause=f"{src} gave them up (standby)")
        return []

    def _release_reason(self, key: str, owner: str | None, cause: str) -> str:
        if self.leaving:
            return f"releasing {key}: shutting down"
        if key in self.standby:
            return f"releasing {key}: standby"
        if key in self.uplink_refused:
            return f"releasing {key}: a peer sees more ping nodes (ipfail)"
        if owner is not None and self.takeover_pref.get(key) == owner:
            return f"releasing {key}: {owner} took it over"
        if owner is not None and owner == self.groups[key].node:
            return f"failing {key} back to {owner}: auto_failback {self.policy}"
        return f"releasing {key} to {owner}" + (f": {cause}" if cause else "")

    def _note(self, out: list[Action], key: str, text: str) -> None:
        if self._last_reason.get(key) != text:
            self._last_reason[key] = text
            out.append(Decision(text, key))

    def _decide(self, text: str) -> Decision:
        self.decision = text
        return Decision(text)

    def _become_stable(self, now: float, why: str) -> list[Action]:
        self.stable = True
        self._clock.stable_deadline = None
        self.awaiting.clear()
        out: list[Action] = [self._decide(f"local resource transition completed ({why})")]
        self._last_announce = None  # _plan always announces once we are stable
        out += self._plan(now, cause="")
        return out

    # ------------------------------------------------------------------ messages

    def _learn(self, src: str, peer: Peer, msg: Message) -> None:
        peer.reported = True
        hold = msg.get("pulse_hold")
        if hold is not None:
            peer.pulse = True
            peer.hold = frozenset(k for k in hold.split() if k in self.groups)
            peer.standby = self._keys(msg.get("pulse_standby"))
            peer.failed = self._keys(msg.get("pulse_failed"))
            peer.leaving = msg.get("pulse_leaving") == "1"
            peer.keeping = self._keys(msg.get("pulse_keep"))
            if "pulse_takeover" in msg:
                self._learn_takeovers(src, self._keys(msg.get("pulse_takeover")))
        else:  # a Heartbeat peer: classes relative to it (2-node assumption)
            cls = msg.get("rsc_hold") or "none"
            keys = set(self._class_keys(cls, node=src)) if cls != "none" else set()
            if msg.get("rtype") == "full" or cls == "none":
                peer.hold = frozenset(keys)
            else:
                peer.hold = peer.hold | keys
            peer.leaving = msg.get("info") == "shutdown"
        if msg.get("isstable") == "1" or (hold is None and msg.get("info") == "mach_down"):
            peer.stable = True

    def _learn_takeovers(self, src: str, asked: frozenset[str]) -> None:
        """A pulse peer's report lists the groups it asked to take over (``pulse_takeover``):
        every node then knows every request, also one made while it was away or down.

        When two nodes asked for the same group, the first in the group's node order
        wins, on every node alike.
        """
        for key, who in list(self.takeover_pref.items()):
            if who == src and key not in asked:
                del self.takeover_pref[key]  # withdrawn (standby), or never made
        for key in asked:
            current = self.takeover_pref.get(key)
            if current is not None and current != src:
                order = _rotation(self.nodes, self.groups[key].node)
                if order.index(current) < order.index(src):
                    continue
            self.takeover_pref[key] = src

    def _own_takeovers(self) -> frozenset[str]:
        return frozenset(k for k, who in self.takeover_pref.items() if who == self.local)

    def _keys(self, text: str | None) -> frozenset[str]:
        return frozenset(k for k in (text or "").split() if k in self.groups)

    @property
    def refused(self) -> frozenset[str]:
        """Groups this node offers to any other node: standby, plus an ipfail giveup."""
        return frozenset(self.standby) | self.uplink_refused

    def _claimed(self) -> frozenset[str]:
        return frozenset(k for k, m in self.mine.items() if m.state in CLAIMED)

    def _announce_key(self) -> _AnnounceKey:
        return (
            self._claimed(),
            self.refused,
            frozenset(self.failed_here),
            frozenset(self.keeping),
            self._own_takeovers(),
            self.stable,
            self.leaving,
        )

    def _maybe_announce(self) -> Send | None:
        key = self._announce_key()
        if key == self._last_announce:
            return None
        self._last_announce = key
        return Send(self._resource_message())

    def _resource_message(
        self,
        *,
        without: frozenset[str] = frozenset(),
        stable: bool | None = None,
        info: str | None = None,
        request: bool = False,
    ) -> Message:
        claimed = self._claimed() - without
        if stable is None:
            stable = self.stable and not self.leaving
        local = {k for k in claimed if self.groups[k].node == self.local}
        foreign = claimed - local
        rsc = "all" if local and foreign else "local" if local else "foreign" if foreign else "none"
        fields: list[tuple[str, str]] = [
            ("t", "resource"),
            ("rsc_hold", rsc),
            ("rtype", "full"),
            ("isstable", "1" if stable else "0"),
        ]
        if self.leaving:
            fields.append(("info", "shutdown"))
        elif info is not None:
            fields.append(("info", info))
        fields += [
            ("pulse_hold", " ".join(sorted(claimed)) or " "),
            ("pulse_standby", " ".join(sorted(self.refused)) or " "),
            ("pulse_failed", " ".join(sorted(self.failed_here)) or " "),
            ("pulse_leaving", "1" if self.leaving else "0"),
            ("pulse_takeover", " ".join(sorted(self._own_takeovers())) or " "),
        ]
        if self.keeping:
            fields.append(("pulse_keep", " ".join(sorted(self.keeping & claimed))))
        if request:
            fields.append(("pulse_rq", "1"))  # "tell me what you hold", once
        return Message.of(*fields)

    def shutdone_message(self) -> Message:
        return SHUTDONE

    # ------------------------------------------------------------------ classes

    def _class_keys(self, cls: str, *, node: str) -> list[str]:
        """Group keys of a Heartbeat class relative to *node*."""
        if cls == "all":
            return list(self.groups)
        if cls == "local":
            return [k for k, g in self.groups.items() if g.node == node]
        if cls == "foreign":
            return [k for k, g in self.groups.items() if g.node != node]
        return []

    # ------------------------------------------------------------------ status

    def view(self) -> SchedulerView:
        groups = []
        for key, g in self.groups.items():
            mine = self.mine[key]
            holder = self.holder(key)
            if holder == self.local:
                state, since = str(mine.state), mine.since
            elif holder is not None:
                state, since = "running", None
            else:
                state, since = "stopped", mine.since
            groups.append(
                GroupView(
                    key=key,
                    preferred=g.node,
                    holder=holder,
                    state=state,
                    since=since,
                    owner=self.owner(key),
                    reason=mine.reason or self._last_reason.get(key, ""),
                )
            )
        return SchedulerView(
            stable=self.stable,
            leaving=self.leaving,
            standby=tuple(sorted(self.standby)),
            decision=self.decision,
            groups=tuple(groups),
            connectivity=self.connectivity.view() if self.connectivity is not None else None,
            cut_off=self.cut_off,
        )


def _rotation(nodes: tuple[str, ...], start: str) -> list[str]:
    if start not in nodes:
        return list(nodes)
    i = nodes.index(start)
    return list(nodes[i:] + nodes[:i])


def _message_order(msg: Message) -> tuple[int, int] | None:
    """(generation, sequence number) of a sequenced message, None if it has none."""
    try:
        return int(msg.get("hg") or "", 16), int(msg.get("seq") or "", 16)
    except ValueError:
        return None


def _hms(now: float) -> str:
    return f"t={now:.3f}"


__all__ = [
    "Acquire",
    "Action",
    "Decision",
    "GroupState",
    "GroupView",
    "Refresh",
    "Release",
    "Scheduler",
    "SchedulerView",
    "Send",
    "StandbyRefused",
]
