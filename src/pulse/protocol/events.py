"""What the membership/protocol engine tells the world.

The engine (:mod:`pulse.protocol.engine`) is sans-IO: every call returns a list of
:data:`Output` records, in the order they happened. The trio task that drives it
transmits :class:`Transmit` on every link, writes :class:`Log` through the log
set-up, and forwards everything else to whoever listens (resource manager,
status API). ``at`` is always engine time in seconds (``trio.current_time()`` in
production), never the wall clock.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from pulse.wire.message import Message


class NodeStatus(enum.StrEnum):
    """A node's status as ``cl_status nodestatus`` prints it."""

    INIT = "init"  # never heard from
    UP = "up"  # running, communications not yet up
    ACTIVE = "active"  # running, communications up
    DEAD = "dead"  # declared dead (dead time without a status message)
    PING = "ping"  # a ping pseudo-node that answers


class LinkStatus(enum.StrEnum):
    """The status of one (node, medium) pair as ``cl_status hblinkstatus`` prints it."""

    UP = "up"
    DEAD = "dead"


@dataclass(frozen=True, slots=True, kw_only=True)
class Transmit:
    """Send *message* on every link (Heartbeat always broadcasts on all media).

    ``dest`` repeats the addressee (already in the message's ``dest`` field) for
    transports that may want it; ``retransmit`` marks an identical re-send from the
    history answering a peer's ``NS_rexmit``.
    """

    message: Message
    dest: str | None = None
    retransmit: bool = False


LOG_LEVELS = ("CRIT", "ERROR", "WARN", "info", "debug")


@dataclass(frozen=True, slots=True, kw_only=True)
class Log:
    """A log line in Heartbeat's words; ``level`` is one of :data:`LOG_LEVELS`."""

    level: str
    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeStatusChanged:
    """A node's status changed; ``reason`` says why in Heartbeat's words."""

    node: str
    old: NodeStatus
    new: NodeStatus
    at: float
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeLate:
    """A status message came more than warntime after the previous one."""

    node: str
    interval_ms: int
    at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkStatusChanged:
    node: str
    link: str
    status: LinkStatus
    at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeRestarted:
    """A peer's Heartbeat restarted: its status carries a higher generation."""

    node: str
    generation: int
    at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class PartitionHealed:
    """A peer we had declared dead speaks again with the same generation.

    Heartbeat reacts by giving up its resources and restarting itself; the engine
    only reports it and leaves the decision to the resource layer.
    """

    node: str
    at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class CommsUp:
    """Communications are up: every node was heard or declared dead, nodes exchanged.

    ``peers`` are the normal peers heard and not dead at that moment. A peer can be
    heard (an ACK, the node-list reply) before its first status heartbeat arrives,
    so this is the list the resource layer must count as alive.
    """

    at: float
    peers: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Delivered:
    """A non-protocol message for us (or broadcast) that passed sequence filtering."""

    message: Message
    link: str
    at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class CutOff:
    """Every heartbeat link of this node fails to send (``ENETUNREACH``, ``ENETDOWN``:
    its own interfaces are down), or one of them works again (``cut_off`` False).

    Published by the daemon, not the engine: it is a fact about this machine's
    interfaces, read from the links' send errors (docs/failover.md, "Cut off").
    """

    cut_off: bool
    at: float
    detail: str = ""


Output = (
    Transmit
    | Log
    | NodeStatusChanged
    | NodeLate
    | LinkStatusChanged
    | NodeRestarted
    | PartitionHealed
    | CommsUp
    | Delivered
    | CutOff
)
