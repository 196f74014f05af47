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

A Heartbeat peer neither releases nor takes a group on a ``resource`` message: groups
move between it and us through Heartbeat's standby exchange
(:mod:`pulse.failover.exchange`). A group being started, running or stopped stays
claimed until its release finished, so a group never runs twice; a group whose stop
failed stays claimed as FAILED and is reported, never taken over silently.

The policy owns the protocols it speaks, each in its own module: the ``resource``
report (:mod:`~pulse.failover.report`), the standby exchange
(:mod:`~pulse.failover.exchange`), ipfail (:mod:`~pulse.failover.ipfail`) and the
settling of doubly claimed groups (:mod:`~pulse.failover.heal`); the operator's
commands (maintenance, cleanup, a takeover check's give-up and readmission) are
:mod:`~pulse.failover.operator`. Their shared vocabulary is in
:mod:`~pulse.failover.actions`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from pulse.config.model import AutoFailback, Config, ResourceGroup
from pulse.failover.actions import (
    CLAIMED,
    CLASSES,
    Acquire,
    Action,
    Cleanup,
    Decision,
    GroupState,
    Maintenance,
    Peer,
    Refresh,
    Release,
    Send,
    StandbyRefused,
)
from pulse.failover.exchange import Exchange, StandbyExchange
from pulse.failover.heal import DoubleClaims
from pulse.failover.ipfail import GIVEUP_KEEPALIVES, ConnectivityView, Ipfail
from pulse.failover.operator import OperatorCommands
from pulse.failover.report import SHUTDONE, Report, class_keys, learn, message_order
from pulse.wire.message import Message

RQSTDELAY = 10.0  # Heartbeat's dead-lock breaker: become stable without all replies


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
    maintenance: bool = False  # pulsectl maintenance on: nothing is started or stopped


@dataclass(slots=True)
class _Mine:
    state: GroupState = GroupState.STOPPED
    since: float | None = None
    reason: str = ""


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
        self.ipfail: Ipfail | None = None
        if config.ipfail:
            delay = GIVEUP_KEEPALIVES * config.timing.keepalive / 1000
            self.ipfail = Ipfail(self, config.ping_nodes, delay=delay)
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
        self._stable_deadline: float | None = None
        self._last_reason: dict[str, str] = {}
        self._last_announce: Report | None = None
        # Groups a reload added, and the live peers whose report we wait for before
        # starting one here (a peer may have reloaded first and run it already).
        self._added: set[str] = set()
        self._added_awaiting: set[str] = set()
        self._added_deadline: float | None = None
        self.standby_exchange = StandbyExchange(self)  # with a Heartbeat peer
        self.heal = DoubleClaims(self, keep_wait_limit=config.timing.keepalive / 1000)
        # maintenance, cleanup, a takeover check's give-up and readmission
        self.operator = OperatorCommands(self)
        # The start-up probe (docs/resources.md#start-up-probe): while the manager asks
        # every resource whether it already runs here, nothing is taken or given up.
        self.probing = False
        self.found_here: set[str] = set()  # groups the probe found running here
        self._strays: dict[str, str] = {}  # group -> who runs it, while we stop our copy
        # This node's fail counts above zero (the resource manager's, set_fail_counts),
        # sent in our reports so that every node's status shows them.
        self.fail_counts: tuple[tuple[str, int], ...] = ()

    @property
    def exchange(self) -> Exchange | None:
        """The standby exchange in progress with a Heartbeat peer, if any."""
        return self.standby_exchange.current

    @property
    def maintenance(self) -> bool:
        """pulsectl maintenance on (cluster-wide): see :mod:`pulse.failover.operator`."""
        return self.operator.maintenance

    @property
    def keeping(self) -> set[str]:
        """Doubly claimed groups this node keeps and has announced again."""
        return self.heal.keeping

    def reconfigure(self, config: Config) -> None:
        """A reload changed the timing (docs/operations.md#reload)."""
        self.heal.keep_wait_limit = config.timing.keepalive / 1000

    def add_groups(self, groups: Iterable[ResourceGroup], now: float) -> list[Action]:
        """A reload added *groups* (appended to haresources or ``[[groups]]``).

        Every live peer is asked what it holds first: one that reloaded before us may
        already run a new group. A new group this node should run starts once they all
        answered, or after RQSTDELAY.
        """
        added = [g for g in groups if g.key not in self.groups]
        if not added:
            return []
        for group in added:
            self.groups[group.key] = group
            self.mine[group.key] = _Mine()
            self._added.add(group.key)
        self._added_awaiting = {n for n, p in self.peers.items() if p.alive}
        self._added_deadline = now + RQSTDELAY if self._added_awaiting else None
        if not self._added_awaiting:
            self._added.clear()
        names = ", ".join(g.key for g in added)
        out: list[Action] = [self.decide(f"configuration reloaded: new group(s) {names}")]
        if self.comms and self._added_awaiting:
            out.append(Send(self._resource_message(request=True)))
        return out + self.plan(now, cause="")

    def retune(self, groups: Iterable[ResourceGroup]) -> None:
        """A reload changed these groups' monitoring settings (the same keys, nodes and
        resources: pulse.reload refuses anything else)."""
        for group in groups:
            if group.key in self.groups:
                self.groups[group.key] = group

    def _added_settled(self, src: str | None) -> bool:
        """*src* reported or died (None: the wait ran out); True when the new groups
        may now start (the caller plans)."""
        if not self._added:
            return False
        if src is not None:
            self._added_awaiting.discard(src)
            if self._added_awaiting:
                return False
        self._added.clear()
        self._added_awaiting.clear()
        self._added_deadline = None
        return True

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
        self._stable_deadline = now + RQSTDELAY
        out.append(Send(Message.of(("t", "starting"))))
        out.append(self.decide("waiting for the other nodes to report what they hold"))
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
            self._last_announce = self.report()
            # It may never have seen us die (a one-way or short blip): it then has no
            # reason to announce what it holds, and would stay "not stable" here. Ask.
            back: list[Action] = [
                Send(self._resource_message(request=True)),
                *self._tell_ping_count(),
            ]
            # Its report of what it holds may have reached us before its first
            # heartbeat did (a healed partition): settle a doubly held group now.
            return back + self.plan(now, cause=f"{node} is back")
        # Dead: it holds nothing any more (fencing, when configured, happens before
        # the daemon reports the death to us), and it is no longer starting up.
        peer.dead_since = now
        peer.forget_holdings()
        self.awaiting.discard(node)
        self._added_settled(node)  # planned below
        out: list[Action] = []
        if self.ipfail is not None:
            out += self.ipfail.peer_gone(node, now)  # planned below
        out += self.standby_exchange.cancel_with(node, f"{node} died")
        for key, who in list(self.takeover_pref.items()):
            if who == node:
                del self.takeover_pref[key]
        if self.comms and not self.stable and not self.awaiting:
            out += self._become_stable(now, f"{node} died while we were starting")
        out += self.plan(now, cause=f"{node} dead at {when or _hms(now)}")
        return out

    def probe_pending(self) -> None:
        """The manager probes this node's resources at start-up: plan nothing until
        :meth:`probed` tells what it found."""
        self.probing = True

    def probed(self, running: Iterable[str], now: float) -> list[Action]:
        """The start-up probe is over: *running* are the groups of which a resource
        already runs here. One this node should run is acquired (acquire starts only
        what is not running); one another node holds or should run is stopped here."""
        self.probing = False
        self.found_here = {key for key in running if key in self.groups}
        out: list[Action] = []
        if self.found_here:
            names = ", ".join(sorted(self.found_here))
            out.append(self.decide(f"start-up probe: found {names} running here"))
        return out + self.plan(now, cause="")

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
        return [self.decide(text), *self.plan(now, cause="")]

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
            peer.fail_counts = {}  # a new process: it counts from zero
            if not peer.pulse:
                peer.standby = frozenset()  # a restarted Heartbeat node is not in standby
            out += self.standby_exchange.cancel_with(src, "it restarted")
            if self.comms:
                out.append(Send(self._resource_message()))
                out += self._tell_ping_count()
            out += self.plan(now, cause=f"{src} is starting")
        elif kind == "resource":
            order = message_order(msg)
            if order is not None and peer.report_order is not None and order < peer.report_order:
                return out  # older than what it already told us
            if order is not None:
                peer.report_order = order
            before = peer.hold
            takeovers = learn(peer, msg, self.groups, src=src)
            if takeovers is not None:
                self._learn_takeovers(src, takeovers)
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
            self._added_settled(src)  # planned below
            out += self.operator.reported(src, peer, now)
            if src in self.awaiting:
                self.awaiting.discard(src)
                if self.comms and not self.stable and not self.awaiting:
                    out += self._become_stable(now, "every live node reported its resources")
            out += self.plan(now, cause=f"{src} reported its resources")
        elif kind == "shutdone":
            peer.leaving = True
            peer.stable = False
            # What it released is free; a group FAILED there (a stop failed) may still
            # run partly: it stays held by it until it is declared dead, so the fencing
            # gate (ResourceManager._node_changed, may_hold) applies before a takeover.
            peer.hold = peer.stuck & peer.hold
            out.append(Decision(f"Received shutdown notice from '{src}'."))
            out += self.plan(now, cause=f"{src} shut down at {_hms(now)}")
        elif kind == "hb_takeover":
            what = msg.get("rsc_hold") or "all"
            keys = class_keys(self.groups, what, node=src)  # relative to the asker
            for key in keys:
                self.takeover_pref[key] = src
            if not peer.pulse:
                peer.standby = peer.standby - set(keys)
            out.append(Decision(f"{src} asked to take over {what} resources"))
            out += self.plan(now, cause=f"{src} asked for them (takeover)")
        elif kind == "ask_resources":
            out += self.standby_exchange.receive(src, peer, msg, now)
        elif (command := self.operator.message(src, msg, now)) is not None:
            out += command
        elif self.ipfail is not None:
            out += self.ipfail.message(src, peer, msg, now)
        return out

    def ping_status(self, node: str, up: bool, now: float) -> list[Action]:
        """A ping node became reachable (status ``ping``) or dead."""
        if self.ipfail is None:
            return []
        return self.ipfail.ping_status(node, up, now, comms=self.comms)

    def _tell_ping_count(self) -> list[Action]:
        return self.ipfail.tell_count() if self.ipfail is not None else []

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
            stray = self._strays.pop(group, None)
            if ok and stray is not None:
                mine.state, mine.since = GroupState.STOPPED, now
                mine.reason = f"found {group} running here while {stray}: stopped the local copy"
                out.append(Decision(mine.reason, group))
            elif ok:
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
        out += self.plan(now, cause="")
        return out

    def set_standby(self, what: str, now: float) -> list[Action]:
        """``pulsectl standby [all|foreign|local|failback]`` (hb_standby)."""
        if what not in CLASSES:
            raise ValueError(f"unknown resource class {what!r}; use one of {', '.join(CLASSES)}")
        cls = "foreign" if what == "failback" else what
        keys = class_keys(self.groups, cls, node=self.local)
        takers = [n for n, p in self.peers.items() if p.alive and p.stable and not p.leaving]
        if keys and not takers:
            raise StandbyRefused("no other active node could take the resources over")
        self.standby |= set(keys)
        for key in keys:
            if self.takeover_pref.get(key) == self.local:
                del self.takeover_pref[key]
        out: list[Action] = [Decision(f"standby: giving up {what} resources")]
        out += self.plan(now, cause=f"standby {what} requested")
        return out

    def takeover(self, what: str, now: float) -> list[Action]:
        """``pulsectl takeover [all|foreign|local|failback]`` (hb_takeover)."""
        if what not in CLASSES:
            raise ValueError(f"unknown resource class {what!r}; use one of {', '.join(CLASSES)}")
        cls = "local" if what == "failback" else what
        keys = class_keys(self.groups, cls, node=self.local)
        self.standby -= set(keys)
        self.failed_here -= set(keys)
        for key in keys:
            self.takeover_pref[key] = self.local
        out: list[Action] = [
            Send(Message.of(("t", "hb_takeover"), ("rsc_hold", cls))),
            Decision(f"takeover: asking for {what} resources"),
        ]
        out += self.plan(now, cause=f"takeover {what} requested")
        return out

    def set_maintenance(self, on: bool, now: float) -> list[Action]:
        """``pulsectl maintenance on|off`` (:meth:`OperatorCommands.set_maintenance`)."""
        return self.operator.set_maintenance(on, now)

    def cleanup(self, what: str, now: float) -> list[Action]:
        """``pulsectl cleanup [GROUP]`` (:meth:`OperatorCommands.cleanup`)."""
        return self.operator.cleanup(what, now)

    def monitor_failed(self, group: str, now: float, reason: str) -> list[Action]:
        """The recovery policy moves *group* away: this node refuses it, as after a
        failed start, and releases it so that the next node takes it."""
        if self.mine[group].state is not GroupState.RUNNING:
            return []
        self.failed_here.add(group)
        out: list[Action] = [Decision(f"{reason}; offering it to the other nodes", group)]
        out += self.plan(now, cause=reason)
        return out

    def restart_failed(self, group: str, now: float, reason: str) -> list[Action]:
        """A restart in place could not stop a resource: the group is FAILED here."""
        mine = self.mine[group]
        mine.state, mine.since = GroupState.FAILED, now
        text = f"{group} FAILED here: {reason}; it needs an administrator (pulsectl cleanup)"
        out: list[Action] = [Decision(text, group)]
        out += self.plan(now, cause="")
        return out

    def shutdown(self, now: float) -> list[Action]:
        """Graceful stop: release everything (haresources order); ``is_done`` tells when."""
        self.leaving = True
        out: list[Action] = [Decision("Giving up all HA resources.")]
        out += self.plan(now, cause="shutting down")
        return out

    def give_up(self, group: str, reason: str, now: float) -> list[Action]:
        """A takeover check's ``control.release`` (:meth:`OperatorCommands.give_up`)."""
        return self.operator.give_up(group, reason, now)

    def readmit(self, group: str, now: float) -> list[Action]:
        """``control.readmit`` (:meth:`OperatorCommands.readmit`)."""
        return self.operator.readmit(group, now)

    def is_released(self) -> bool:
        if self.maintenance:
            return True  # maintenance: a stopping node leaves every resource as it is
        return all(m.state in (GroupState.STOPPED, GroupState.FAILED) for m in self.mine.values())

    def tick(self, now: float) -> list[Action]:
        """Time passed: act on whatever deadline (:meth:`next_deadline`) is due."""
        out = self.ipfail.tick(now) if self.ipfail is not None else []
        deadline = self._stable_deadline
        if deadline is not None and now >= deadline and not self.stable:
            missing = ", ".join(sorted(self.awaiting)) or "nobody"
            why = f"no resource report from {missing} in {RQSTDELAY:g}s"
            return out + self._become_stable(now, why)
        added_by = self._added_deadline
        if added_by is not None and now >= added_by and self._added_settled(None):
            out += self.plan(now, cause="")
        exchanged = self.standby_exchange.tick(now)
        if exchanged is not None:
            return out + exchanged
        if self.heal.lapse(now):
            out += self.plan(now, cause="")
        return out

    def next_deadline(self) -> float:
        d = self._stable_deadline
        return min(
            d if d is not None and not self.stable else float("inf"),
            self.standby_exchange.next_deadline(),
            self.ipfail.next_deadline() if self.ipfail is not None else float("inf"),
            self.heal.next_deadline(),
            self._added_deadline if self._added_deadline is not None else float("inf"),
        )

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
        mine = self.mine[key].state in CLAIMED and key not in self._strays
        out = [self.local] if mine else []
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

    def plan(self, now: float, *, cause: str) -> list[Action]:
        """Decide, for every group in haresources order, what this node does now."""
        if not self.stable or self.maintenance or self.probing:
            return []
        out: list[Action] = []
        ask: dict[str, list[str]] = {}  # Heartbeat peer -> groups to hand it
        for key in self.groups:  # haresources order
            mine = self.mine[key]
            owner = self.owner(key)
            exchange = self.standby_exchange
            rivals = [n for n, p in self.peers.items() if p.alive and key in p.hold]
            out += self.heal.settle(key, owner, rivals)
            if key in self.found_here and mine.state is not GroupState.STOPPED:
                self.found_here.discard(key)
            if (
                mine.state is GroupState.STOPPED
                and key in self.found_here
                and (owner != self.local or rivals)
            ):
                # The start-up probe found it running here, but another node holds it
                # or should run it: stop our copy (release_group stops in reverse order)
                # so that it never runs twice; auto_failback may bring it back later.
                self.found_here.discard(key)
                if rivals:
                    who = f"{rivals[0]} holds it"
                elif owner is not None:
                    who = f"{owner} should run it"
                else:
                    who = "no node may run it"
                self._strays[key] = who
                reason = f"found {key} running here while {who}: stopping the local copy"
                mine.state, mine.since, mine.reason = GroupState.STOPPING, now, reason
                out.append(Release(key, reason))
            elif (
                mine.state is GroupState.RUNNING
                and owner is not None
                and owner != self.local
                and exchange.hands_over(key, owner)
                and not exchange.giving(key, agreed=True)
            ):
                # A Heartbeat node only takes a group through its standby exchange.
                if exchange.giving(key):
                    self.note(out, key, f"asked {owner} to take {key} (standby exchange)")
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
                self.note(out, key, f"keeping {key} until {owner} has finished starting")
            elif mine.state is GroupState.RUNNING and owner != self.local:
                if self.heal.await_keeper(out, key, owner, rivals, now):
                    continue
                self.heal.released(key)
                reason = self._release_reason(key, owner, cause)
                mine.state, mine.since, mine.reason = GroupState.STOPPING, now, reason
                out.append(Release(key, reason))
            elif mine.state is GroupState.STOPPED and owner == self.local:
                others = [n for n, p in self.peers.items() if p.alive and key in p.hold]
                giver = exchange.offered_by(key)
                if giver is not None:
                    # Its "resource ... info=standby" comes before it has released.
                    self.note(out, key, f"waiting for {giver} to release {key} (standby)")
                    continue
                if others:
                    self.note(out, key, f"waiting for {others[0]} to release {key}")
                    continue
                if key in self._added:
                    self.note(out, key, f"{key} is new: waiting for the other nodes' reports")
                    continue
                if key in self.found_here:
                    self.found_here.discard(key)
                    reason = f"acquiring {key}: it already runs here (start-up probe)"
                elif self.groups[key].node == self.local:
                    reason = f"acquiring {key}: this is its preferred node"
                else:
                    reason = f"took over {key}: {cause}" if cause else f"took over {key}"
                mine.state, mine.since, mine.reason = GroupState.STARTING, now, reason
                out.append(Acquire(key, reason))
            elif mine.state is GroupState.STOPPED and owner is None:
                self.note(out, key, f"{key} cannot run anywhere: no eligible node")
            elif (
                mine.state is GroupState.RUNNING
                and owner == self.local
                and self.policy is AutoFailback.OFF
                and self.groups[key].node != self.local
            ):
                pref = self.groups[key].node
                if pref in self.peers and self.peers[pref].alive:
                    self.note(out, key, f"not failing back {key} to {pref}: auto_failback off")
        if ask and self.standby_exchange.may_ask(now):
            taker = sorted(ask, key=self.nodes.index)[0]
            out += self.standby_exchange.start(taker, frozenset(ask[taker]), now)
        out += self.standby_exchange.progress(now)
        if self.exchange is not None:
            return out  # what we hold is announced when the exchange is over
        announce = self._maybe_announce()
        if announce is not None:
            out.append(announce)
        return out

    def refreshed(self, group: str, now: float) -> list[Action]:
        """The Refresh of *group* went out: tell the other claimants they may release."""
        return self.plan(now, cause="") if self.heal.refreshed(group) else []

    def in_flux(self) -> bool:
        """Whether a group is being started or stopped here."""
        return any(
            m.state in (GroupState.STARTING, GroupState.STOPPING) for m in self.mine.values()
        )

    def _release_reason(self, key: str, owner: str | None, cause: str) -> str:
        if self.leaving:
            return f"releasing {key}: shutting down"
        if key in self.standby:
            return f"releasing {key}: standby"
        if self.ipfail is not None and key in self.ipfail.refused:
            return f"releasing {key}: a peer sees more ping nodes (ipfail)"
        if owner is not None and self.takeover_pref.get(key) == owner:
            return f"releasing {key}: {owner} took it over"
        if owner is not None and owner == self.groups[key].node:
            return f"failing {key} back to {owner}: auto_failback {self.policy}"
        return f"releasing {key} to {owner}" + (f": {cause}" if cause else "")

    def note(self, out: list[Action], key: str, text: str) -> None:
        """Add a decision about *key* unless it is what was last said of it."""
        if self._last_reason.get(key) != text:
            self._last_reason[key] = text
            out.append(Decision(text, key))

    def decide(self, text: str) -> Decision:
        """A decision about the node as a whole (kept for status)."""
        self.decision = text
        return Decision(text)

    def _become_stable(self, now: float, why: str) -> list[Action]:
        self.stable = True
        self._stable_deadline = None
        self.awaiting.clear()
        out: list[Action] = [self.decide(f"local resource transition completed ({why})")]
        self._last_announce = None  # plan always announces once we are stable
        out += self.plan(now, cause="")
        return out

    # ------------------------------------------------------------------ messages

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

    @property
    def refused(self) -> frozenset[str]:
        """Groups this node offers to any other node: standby, plus an ipfail giveup."""
        uplink = self.ipfail.refused if self.ipfail is not None else frozenset()
        return frozenset(self.standby) | uplink

    def _claimed(self) -> frozenset[str]:
        # A copy the start-up probe found and is stopping is not a claim.
        return frozenset(
            k for k, m in self.mine.items() if m.state in CLAIMED and k not in self._strays
        )

    def report(self) -> Report:
        """What this node tells the others (:mod:`pulse.failover.report`)."""
        return Report(
            claimed=self._claimed(),
            refused=self.refused,
            failed=frozenset(self.failed_here),
            keeping=frozenset(self.heal.keeping),
            takeovers=self._own_takeovers(),
            stable=self.stable,
            leaving=self.leaving,
            maintenance=self.maintenance,
            stuck=frozenset(k for k, m in self.mine.items() if m.state is GroupState.FAILED),
            fail_counts=self.fail_counts,
        )

    def set_fail_counts(self, counts: Mapping[str, int]) -> list[Action]:
        """This node's fail counts (resource -> count) changed: announce them at once
        (``pulse_fail_counts``), unless nothing is sent now (no communications yet, or a
        standby exchange whose end announces what we hold anyway)."""
        now_counts = tuple(sorted((r, n) for r, n in counts.items() if n > 0))
        if now_counts == self.fail_counts:
            return []
        self.fail_counts = now_counts
        if not self.comms or self.exchange is not None:
            return []
        announce = self._maybe_announce()
        return [] if announce is None else [announce]

    def forget_announcement(self) -> None:
        """Send the next report even if nothing changed."""
        self._last_announce = None

    def _resource_message(self, *, request: bool = False) -> Message:
        return self.report().message(self.groups, self.local, request=request)

    def _maybe_announce(self) -> Send | None:
        report = self.report()
        if report == self._last_announce:
            return None
        self._last_announce = report
        return Send(report.message(self.groups, self.local))

    def shutdone_message(self) -> Message:
        return SHUTDONE

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
            connectivity=self.ipfail.view() if self.ipfail is not None else None,
            cut_off=self.cut_off,
            maintenance=self.maintenance,
        )


def _rotation(nodes: tuple[str, ...], start: str) -> list[str]:
    if start not in nodes:
        return list(nodes)
    i = nodes.index(start)
    return list(nodes[i:] + nodes[:i])


def _hms(now: float) -> str:
    return f"t={now:.3f}"


__all__ = [
    "SHUTDONE",
    "Acquire",
    "Action",
    "Cleanup",
    "Decision",
    "GroupState",
    "GroupView",
    "Maintenance",
    "Refresh",
    "Release",
    "Scheduler",
    "SchedulerView",
    "Send",
    "StandbyRefused",
]
