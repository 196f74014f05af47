"""Heartbeat's three-phase standby exchange, as the failover policy runs it.

A Heartbeat peer (its ``resource`` messages carry no ``pulse_hold``) neither releases
nor takes a group on a ``resource`` message: groups move between it and us through
``ask_resources rsc_hold=<class>`` with ``info=me`` (the giver asks), ``info=other`` (the
taker agrees), ``info=done`` (sent by the giver once released, then by the taker once
acquired); docs/heartbeat.md#standby-and-takeover. This node answers a Heartbeat peer's
``me`` (its auto-failback or hb_standby) and starts the exchange itself when it should
hand a group to a Heartbeat peer (auto-failback, ``pulsectl standby``, ``hb_takeover``).
Between pulse nodes the exchange is never used.

:class:`StandbyExchange` is owned by :class:`pulse.failover.policy.Scheduler`: it holds
the one exchange in progress and asks the policy to plan again when a phase ends.
Pure: no I/O, no clock.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pulse.failover.actions import Action, Decision, GroupState, Peer, Send
from pulse.failover.report import class_keys, class_of
from pulse.wire.message import Message

if TYPE_CHECKING:
    from pulse.failover.policy import Scheduler

STANDBY_REPLY_TIMEOUT = 10.0  # Heartbeat gives up a standby request after this
STANDBY_TAKE_TIMEOUT = 3600.0  # how long the taker (and the giver, for the end) waits
STANDBY_RETRY = 1.0  # Heartbeat's auto-failback retry interval


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
class Exchange:
    """One Heartbeat standby exchange (``ask_resources``) with a Heartbeat peer."""

    peer: str
    role: Role
    cls: str  # rsc_hold as on the wire: relative to the giver
    keys: frozenset[str]
    phase: Phase
    deadline: float


def ask_resources(cls: str, info: str) -> Message:
    return Message.of(("t", "ask_resources"), ("rsc_hold", cls), ("info", info))


class StandbyExchange:
    """The standby exchange in progress (at most one), and when the next may start."""

    def __init__(self, policy: Scheduler) -> None:
        self._policy = policy
        self.current: Exchange | None = None
        self.ask_after = 0.0  # no new standby request before this

    # ------------------------------------------------------------------ questions

    def hands_over(self, key: str, owner: str) -> bool:
        """Whether group *key* goes to *owner* through the exchange (a Heartbeat peer)."""
        p = self._policy
        peer = p.peers.get(owner)
        return (
            peer is not None
            and peer.reported
            and not peer.pulse
            and peer.alive
            and peer.stable
            and not peer.leaving
            and not p.leaving
            and key not in peer.hold
        )

    def giving(self, key: str, *, agreed: bool = False) -> bool:
        """Whether we are giving *key* away (``agreed``: and the taker said yes)."""
        ex = self.current
        return (
            ex is not None
            and ex.role is Role.GIVER
            and key in ex.keys
            and not (agreed and ex.phase is Phase.ASKED)
        )

    def offered_by(self, key: str) -> str | None:
        """The Heartbeat peer that offered us *key* and has not released it yet."""
        ex = self.current
        if ex is not None and ex.role is Role.TAKER and ex.phase is Phase.OFFERED:
            return ex.peer if key in ex.keys else None
        return None

    def may_ask(self, now: float) -> bool:
        return self.current is None and now >= self.ask_after

    def next_deadline(self) -> float:
        deadlines = [self.current.deadline] if self.current is not None else []
        if self.ask_after:
            deadlines.append(self.ask_after)
        return min(deadlines, default=float("inf"))

    # ------------------------------------------------------------------ phases

    def start(self, taker: str, keys: frozenset[str], now: float) -> list[Action]:
        p = self._policy
        cls = class_of(p.groups, keys, node=p.local)
        self.current = Exchange(
            peer=taker,
            role=Role.GIVER,
            cls=cls,
            keys=keys,
            phase=Phase.ASKED,
            deadline=now + STANDBY_REPLY_TIMEOUT,
        )
        return [
            Send(ask_resources(cls, "me")),
            p.decide(f"asking {taker} to take {cls} resources ({', '.join(sorted(keys))})"),
        ]

    def end(self, text: str) -> list[Action]:
        ex = self.current
        self.current = None
        if ex is not None and not (ex.role is Role.GIVER and ex.phase is Phase.ASKED):
            # Heartbeat ends every exchange that moved something with a resource
            # report (isstable=1): the peer saw our isstable=0, or our takeover.
            self._policy.forget_announcement()
        return [self._policy.decide(text)]

    def cancel_with(self, node: str, why: str) -> list[Action]:
        """End the exchange with *node*, if there is one (it died, it restarted)."""
        if self.current is None or self.current.peer != node:
            return []
        return self.end(f"standby exchange with {node} cancelled: {why}")

    def progress(self, now: float) -> list[Action]:
        """Called at the end of every plan: move on when our part of a phase is done."""
        ex = self.current
        p = self._policy
        if ex is None:
            return []
        if p.leaving:
            return self.end(f"standby exchange with {ex.peer} cancelled: shutting down")
        states = {p.mine[k].state for k in ex.keys}
        busy = GroupState.STARTING in states or GroupState.STOPPING in states
        if ex.phase is Phase.RELEASING and not busy:
            failed = sorted(k for k in ex.keys if p.mine[k].state is GroupState.FAILED)
            if failed:
                return self.end(
                    f"standby exchange with {ex.peer} abandoned: "
                    f"{', '.join(failed)} could not be released"
                )
            ex.phase, ex.deadline = Phase.RELEASED, now + STANDBY_TAKE_TIMEOUT
            return [Send(ask_resources(ex.cls, "done"))]
        if ex.phase is Phase.TAKING and not busy:
            out: list[Action] = [Send(ask_resources(ex.cls, "done"))]
            return out + self.end(
                f"standby takeover of {ex.cls} resources from {ex.peer} completed"
            )
        return []

    def tick(self, now: float) -> list[Action] | None:
        """A timed-out exchange, or the retry delay over; None when nothing was due."""
        ex = self.current
        p = self._policy
        if ex is not None and now >= ex.deadline:
            if ex.phase is Phase.ASKED:
                text = "No reply to standby request. Standby request cancelled."
            else:
                text = f"standby exchange with {ex.peer} timed out in phase {ex.phase}"
            self.ask_after = now + STANDBY_RETRY
            return self.end(text) + p.plan(now, cause="")
        if p.stable and self.ask_after and now >= self.ask_after:
            self.ask_after = 0.0
            return p.plan(now, cause="")
        return None

    def receive(self, src: str, peer: Peer, msg: Message, now: float) -> list[Action]:
        """An ``ask_resources`` message from *src*: the exchange as giver or taker."""
        p = self._policy
        info = msg.get("info")
        cls = msg.get("rsc_hold") or "all"
        if cls == "failback":
            cls = "foreign"
        ex = self.current
        if info == "me":
            if ex is not None:
                return [Decision(f"Standby in progress- new request from {src} ignored")]
            if not p.stable or not peer.stable or p.in_flux():
                return [Decision(f"standby request from {src} ignored: resources in flux")]
            keys = frozenset(class_keys(p.groups, cls, node=src))
            self.current = Exchange(
                peer=src,
                role=Role.TAKER,
                cls=cls,
                keys=keys,
                phase=Phase.OFFERED,
                deadline=now + STANDBY_TAKE_TIMEOUT,
            )
            return [
                Send(ask_resources(cls, "other")),
                p.decide(f"{src} offers its {cls} resources; waiting for it to release them"),
            ]
        if ex is None or ex.peer != src:
            return []
        if info == "other" and ex.role is Role.GIVER and ex.phase is Phase.ASKED:
            ex.phase, ex.deadline = Phase.RELEASING, now + STANDBY_TAKE_TIMEOUT
            report = p.report().message(
                p.groups, p.local, without=ex.keys, stable=False, info="standby"
            )
            out: list[Action] = [
                Send(report),
                p.decide(f"giving {ex.cls} resources to {src} (standby exchange)"),
            ]
            return out + p.plan(now, cause=f"{src} agreed to take them")
        if info == "done" and ex.role is Role.GIVER and ex.phase is Phase.RELEASED:
            peer.hold = peer.hold | ex.keys  # it took them; its report will confirm
            out = self.end(f"Other node completed standby takeover of {ex.cls} resources.")
            return out + p.plan(now, cause="")
        if info == "done" and ex.role is Role.TAKER and ex.phase is Phase.OFFERED:
            ex.phase, ex.deadline = Phase.TAKING, now + STANDBY_TAKE_TIMEOUT
            peer.hold = peer.hold - ex.keys
            for key in ex.keys:
                if p.owner(key) != p.local:
                    peer.standby = peer.standby | {key}  # it gave them up: it refuses them
            out = [p.decide(f"{src} released its {ex.cls} resources; taking them")]
            return out + p.plan(now, cause=f"{src} gave them up (standby)")
        return []


__all__ = ["Exchange", "Phase", "Role", "StandbyExchange", "ask_resources"]
