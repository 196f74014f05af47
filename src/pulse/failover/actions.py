"""The failover policy's vocabulary: group states, what it asks the manager to do, peers.

A leaf module: :mod:`pulse.failover.policy` and the protocols it owns
(:mod:`~pulse.failover.report`, :mod:`~pulse.failover.exchange`,
:mod:`~pulse.failover.ipfail`, :mod:`~pulse.failover.heal`) all speak it, and the resource
manager (:mod:`pulse.failover.manager`) acts on it.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from pulse.wire.message import Message


class GroupState(enum.StrEnum):
    STOPPED = "stopped"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    FAILED = "failed"


# A group in one of these states is claimed by this node: no other node may start it.
CLAIMED = (GroupState.STARTING, GroupState.RUNNING, GroupState.STOPPING, GroupState.FAILED)
# Heartbeat's resource classes (hb_standby / hb_takeover arguments).
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


@dataclass(frozen=True, slots=True)
class Maintenance:
    """Maintenance mode went on or off here: monitors and recovery follow it."""

    on: bool


@dataclass(frozen=True, slots=True)
class Cleanup:
    """Forget the fail counts of these groups' resources (``pulsectl cleanup``)."""

    groups: tuple[str, ...]


Action = Acquire | Release | Refresh | Send | Decision | Maintenance | Cleanup


class StandbyRefused(Exception):
    """``pulsectl standby`` cannot be honoured (nobody could take the groups)."""


# ----------------------------------------------------------------------------- peers


@dataclass(slots=True)
class Peer:
    """What this node knows of another node, from its heartbeats and its reports."""

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
    # The groups both of us claimed when we last answered its report (see
    # Scheduler.message).
    answered_conflict: frozenset[str] = frozenset()
    # (generation, seq) of the newest report applied: a retransmitted older one, arriving
    # after it (a gap filled late), must not undo what the newer one said.
    report_order: tuple[int, int] | None = None
    maintenance: bool = False  # its last report said maintenance mode is on
    stuck: frozenset[str] = frozenset()  # groups FAILED there (pulse_stuck)
    # Its fail counts above zero, resource -> count (pulse_fail_counts), for status.
    fail_counts: Mapping[str, int] = field(default_factory=dict)

    def forget_holdings(self) -> None:
        """It died: it holds, refuses and keeps nothing any more."""
        self.stable = False
        self.leaving = False
        self.hold = frozenset()
        self.standby = frozenset()
        self.failed = frozenset()
        self.keeping = frozenset()
        self.stuck = frozenset()
        self.answered_conflict = frozenset()
        self.fail_counts = {}  # told again if it comes back (a restart counts from zero)


__all__ = [
    "CLAIMED",
    "CLASSES",
    "Acquire",
    "Action",
    "Cleanup",
    "Decision",
    "GroupState",
    "Maintenance",
    "Peer",
    "Refresh",
    "Release",
    "Send",
    "StandbyRefused",
]
