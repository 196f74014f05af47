"""Heartbeat 3.0.6's node-level protocol as a pure, deterministic engine.

:class:`Engine` implements what a Heartbeat node needs from a peer to accept it
(docs/heartbeat.md#envelope to #partition-healing): status messages every keepalive, the message
envelope, sequence numbers with a 500-message history, retransmission requests and
answers, acknowledgements, liveness with exact deadlines, and the
``reqnodes``/``repnodes`` exchange that gates "communications up".

It never touches sockets, clocks, randomness or files. The driving task:

* passes every decoded, authenticated message to :meth:`Engine.receive`;
* calls :meth:`Engine.tick` at :meth:`Engine.next_deadline` (``trio.current_time()``);
* transmits each :class:`~pulse.protocol.events.Transmit` on every link, logs each
  :class:`~pulse.protocol.events.Log` and forwards the other outputs.

Resource management is not done here: ``starting``, ``resource``, ``ip-request``
and every other message type are handed upward as :class:`~pulse.protocol.events.Delivered`.
Messages the caller sends with :meth:`Engine.send` are not delivered back to it;
Heartbeat processes its own messages at send time and so must the caller.
"""

from __future__ import annotations

import collections
import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from pulse.config.model import Config
from pulse.protocol.events import (
    CommsUp,
    Delivered,
    LinkStatus,
    LinkStatusChanged,
    Log,
    NodeLate,
    NodeRestarted,
    NodeStatus,
    NodeStatusChanged,
    Output,
    PartitionHealed,
    Transmit,
)
from pulse.protocol.identity import PeerMark
from pulse.protocol.membership import Membership
from pulse.protocol.sequencing import History, PeerStream
from pulse.wire.message import Field, FieldType, Message, ascii_int

#: ACK every message whose seq % ACK_DIVISOR equals the per-peer trigger.
ACK_DIVISOR = 10
#: Extra dead time advertised during the first seconds after start.
STARTUP_DT_BOOST_MS = 2000
STARTUP_DT_BOOST_SECONDS = 5.0
#: Period of reqnodes re-sends until a repnodes arrives.
REQNODES_RETRY_SECONDS = 1.0
#: Heartbeat coalescing. A status from a peer that arrives when ours is due within this
#: fraction of keepalive makes us send ours at once, in the same wake-up (so a node
#: locks onto its peer within one keepalive, sending early once by at most this much).
COALESCE_WINDOW = 0.5
#: After a status sent on the timer while a peer keeps pace, the next one is due up to
#: this fraction of keepalive later (a random part of it, which also breaks a tie of two
#: timers firing together), so that the peer's timer fires first and ours goes out with
#: its status: two nodes take turns, and each wakes three times every two keepalives
#: instead of four (wake-ups are what an idle Python daemon pays for). A status goes
#: out that late only when the peer it waited for has gone quiet, once.
TURN_SLACK = 0.125
# A timer of ours that runs this late (in keepalives, at most a quarter of the
# deadtime) means this process did not run: SIGSTOP, a VM pause, a swap storm. The
# peers then get STALL_GRACE keepalives to be heard from before anyone is declared
# dead, since their packets are still queued in our sockets (docs/failover.md).
STALL_KEEPALIVES = 1.0
STALL_GRACE = 1.5

#: How long (in the peer's dead times) a jump in sequence or generation stays undoable:
#: a live, connected peer's next packet comes well within one.
JUMP_PROOF = 2

NOSEQ_PREFIX = "NS_"
# Unsequenced messages that show their sender alive when addressed to us by UUID and
# of its current generation (Membership.heard_life).
LIFE_NOSEQ = frozenset({"NS_ackmsg", "NS_rexmit", "NS_nak_rexmit"})
PROTOCOL_VERSION = "1"

_STATUS_VALUES = {
    "init": NodeStatus.INIT,
    "up": NodeStatus.UP,
    "active": NodeStatus.ACTIVE,
    "ping": NodeStatus.PING,
    "dead": NodeStatus.DEAD,
}

#: Types the engine consumes; every other type is delivered upward.
PROTOCOL_TYPES = frozenset(
    {"status", "NS_st", "NS_rexmit", "NS_nak_rexmit", "NS_ackmsg", "reqnodes", "repnodes"}
)


# --------------------------------------------------------------------------- views


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeView:
    """One node as ``cl_status`` would show it. The local node is listed too."""

    name: str
    status: NodeStatus
    links: Mapping[str, LinkStatus]
    last_heard: float | None  # engine time of its last status (ours: last sent)
    generation: int | None
    deadtime_ms: int  # the dead time currently applied to it


@dataclass(frozen=True, slots=True, kw_only=True)
class ClusterView:
    """An immutable snapshot of the engine, for the status API and tests."""

    local: str
    local_status: NodeStatus
    comms_up: bool
    generation: int
    nodes: tuple[NodeView, ...]
    counters: Mapping[str, int]


def _hex(value: int) -> str:
    return format(value, "x")


def _parse_hex(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        value = int(text, 16)
    except ValueError:
        return None
    return value if value >= 0 else None


def _parse_dec(text: str | None) -> int | None:
    """A decimal field of a peer's message (``firstseq``, ``lastseq``: Heartbeat writes
    them with ``%lu``), or None. Surrounding whitespace is dropped, then at most 20
    ASCII digits (2**64 has 20: :func:`~pulse.wire.message.ascii_int`)."""
    return None if text is None else ascii_int(text.strip(), 20)


class Engine:
    """One node's Heartbeat protocol state machine. See the module docstring.

    :param config: the cluster configuration (nodes, media, timing).
    :param local: our node name (must be one of ``config.nodes``).
    :param generation: our heartbeat generation (:func:`pulse.protocol.identity.next_generation`).
    :param uuid: our 16-byte UUID (:func:`pulse.protocol.identity.load_uuid`).
    :param now: engine time at construction.
    :param wallclock: Unix time, for the ``ts`` field.
    :param loadavg: the ``ld`` field (first line of ``/proc/loadavg`` or ``n/a``).
    :param rng: the source of every random choice (ACK triggers, rexmit delays).
    :param peer_marks: each peer's last generation and seq as a previous run of this
        node knew them (:func:`pulse.protocol.identity.load_peer_marks`); see :meth:`peer_marks`.
    """

    counters: collections.Counter[str]

    def __init__(
        self,
        *,
        config: Config,
        local: str,
        generation: int,
        uuid: bytes,
        now: float,
        wallclock: Callable[[], float],
        loadavg: Callable[[], str],
        rng: random.Random,
        coalesce: bool = True,
        peer_marks: Mapping[str, PeerMark] | None = None,
    ) -> None:
        if local not in config.nodes:
            raise ValueError(f"local node {local!r} is not among the configured nodes")
        if len(uuid) != 16:
            raise ValueError("a node UUID is 16 bytes")
        self._config = config
        self._timing = config.timing
        self._local = local
        self._local_bytes = local.encode("utf-8", "surrogateescape")
        self._generation = generation
        self._uuid = uuid
        self._wallclock = wallclock
        self._loadavg = loadavg
        self._rng = rng
        self.counters = collections.Counter()

        peers = [n for n in config.nodes if n != local]
        ping_nodes = [n for n in config.ping_nodes if n not in config.nodes]
        self._normal_peers = tuple(peers)
        self._membership = Membership(
            peers=peers,
            ping_nodes=ping_nodes,
            links=[m.name for m in config.links],
            timing=config.timing,
            start=now,
        )
        self._peers: dict[str, PeerStream] = {}
        for name in peers:
            self._peers[name] = PeerStream(name=name, ping=False, ack_trigger=rng.randrange(10))
        for name in ping_nodes:
            self._peers[name] = PeerStream(name=name, ping=True, ack_trigger=0)
        for name, mark in (peer_marks or {}).items():
            if name in self._normal_peers:
                self._peers[name].generation = mark.generation
                self._peers[name].floor = mark.seq
        self._ttl_bytes = b"%d" % (config.hopfudge + len(config.nodes) + len(ping_nodes))
        # The envelope fields that are the same in every message we send, made once: a
        # node at keepalive 100 ms sends ten statuses a second and keeps the last
        # HISTORY_SIZE of them, which then share these objects (docs/performance.md,
        # "The fourth sitting"). ``ts`` and ``ld`` are remade when their value changes.
        self._src_field = Field("src", self._local_bytes)
        self._srcuuid_field = Field("srcuuid", uuid, FieldType.BINARY)
        self._hg_field = Field("hg", b"%x" % generation)
        self._ttl_field = Field("ttl", self._ttl_bytes)
        self._ts_field = Field("ts", b"")
        self._ld_field = Field("ld", b"")
        self._status_key: tuple[NodeStatus, int] | None = None
        self._status_message = Message()  # what _send_status sent last, for _status_key

        self._status = NodeStatus.INIT
        self._started = False
        self._start_time = now
        self._last_status_sent: float | None = None
        self._history = History()
        self._keepalive_due = math.inf
        self._coalesce = coalesce  # see COALESCE_WINDOW; off: statuses on a fixed grid
        self._late_credit = 0.0  # seconds our statuses went out late (TURN_SLACK), unspent
        self._peer_status_at = -math.inf  # when a peer's status last arrived
        self._boost_due: float | None = None
        self._comms_up = False
        self._reqnodes_target: str | None = None
        self._reqnodes_due: float | None = None
        self._bad_nodes_logged: set[str] = set()
        period = self._timing.keepalive / 1000
        self._stall_threshold = min(STALL_KEEPALIVES * period, self._timing.deadtime / 4000)
        self._stall_seen_due = math.inf  # the keepalive_due of the last stall noticed
        self.last_stall_ms = 0

    # ----------------------------------------------------------------- public API

    @property
    def local(self) -> str:
        return self._local

    @property
    def status(self) -> NodeStatus:
        return self._status

    @property
    def comms_up(self) -> bool:
        return self._comms_up

    @property
    def last_status_sent(self) -> float | None:
        """When our last status heartbeat went out (engine time), None before start."""
        return self._last_status_sent

    def reconfigure(self, config: Config, now: float) -> list[Output]:
        """Apply a reloaded configuration's timers and retransmission delay.

        The node list and the media must be unchanged (pulse.reload refuses those).
        Our next status goes out now, so the peers learn the new deadtime at once.
        """
        if config.nodes != self._config.nodes:
            raise ValueError("the node list cannot change in a running engine")
        self._config = config
        self._timing = config.timing
        self._membership.retime(config.timing, now)
        period = self._timing.keepalive / 1000
        self._stall_threshold = min(STALL_KEEPALIVES * period, self._timing.deadtime / 4000)
        if not self._started:
            return []
        self._keepalive_due = now + period
        self._stall_seen_due = math.inf
        return self._send_status(now)

    def start(self, now: float) -> list[Output]:
        """Go from ``init`` to ``up``: send status init then up, arm every timer."""
        if self._started:
            return []
        self._started = True
        self._start_time = now
        self._membership.restart_clock(now)
        self._boost_due = now + STARTUP_DT_BOOST_SECONDS
        self._keepalive_due = now + self._timing.keepalive / 1000
        out: list[Output] = []
        out += self._send_status(now)
        self._status = NodeStatus.UP
        out.append(Log(level="info", text="Local status now set to: 'up'"))
        out += self._send_status(now)
        out += self._check_comms(now)
        return out

    def receive(self, message: Message, link: str, now: float) -> list[Output]:
        """Process one decoded, authenticated message that arrived via *link*."""
        out: list[Output] = []
        if now - self._keepalive_due > self._stall_threshold:
            out += self._stalled(now)
        mtype = message.type
        src = message.get("src")
        ts = _parse_hex(message.get("ts"))
        if not mtype or not src or message.get("ts") is None:
            self.counters["missing-field"] += 1
            return out
        if ts is None or ts == 0:
            self.counters["bad-field"] += 1
            return out
        if src == self._local or src.lower() == self._local:
            self.counters["own"] += 1
            return out
        name = self._lookup(src)
        if name is None:
            self.counters["unknown-node"] += 1
            if src not in self._bad_nodes_logged and len(self._bad_nodes_logged) < 100:
                self._bad_nodes_logged.add(src)
                out.append(Log(level="ERROR", text=f"bad node [{src}] in message"))
            return out
        peer = self._peers[name]
        srcuuid = message.field("srcuuid")
        if srcuuid is not None and len(srcuuid.value) == 16 and not peer.ping:
            peer.uuid = srcuuid.value

        if mtype.startswith(NOSEQ_PREFIX):
            noseq_hg = _parse_hex(message.get("hg"))
            known = peer.generation or 0
            # An ACK or a retransmission request of an older generation, or of the one a
            # previous run of ours knew (it has no seq to prove it new): a replay.
            if (
                not peer.ping
                and noseq_hg is not None
                and (noseq_hg < known or (noseq_hg == known and peer.floor is not None))
            ):
                return out + peer.replay(noseq_hg, known, self.counters)
            if not self._for_us(message):
                self.counters["not-for-us"] += 1
                return out
            link_up = self._membership.heard_packet(name, link, now)
            if link_up is not None:
                out += self._link_changed(link_up)
            if (
                mtype in LIFE_NOSEQ
                and message.field("destuuid") is not None
                and peer.generation is not None
                and _parse_hex(message.get("hg")) == peer.generation
            ):
                self._membership.heard_life(name, now)
            out += self._dispatch_noseq(peer, mtype, message, link, now)
            out += self._check_comms(now)
            return out

        if peer.ping:
            self.counters["unexpected"] += 1
            return out
        seq = _parse_hex(message.get("seq"))
        if seq is None:
            self.counters["missing-field" if "seq" not in message else "bad-field"] += 1
            return out
        hg_text = message.get("hg")
        hg = 0 if hg_text is None else _parse_hex(hg_text)
        if hg is None:
            self.counters["bad-field"] += 1
            return out
        window = self._jump_window(peer)
        if peer.before_jump is not None and peer.continues(hg, seq, now, window):
            out += peer.undo_jump(now, rexmit_delay=self._rexmit_delay, counters=self.counters)
        known = peer.generation or 0
        if hg == known and peer.floor is not None:
            if seq <= peer.floor:
                return out + peer.replay(hg, known, self.counters)
            peer.floor = None  # newer than anything before our restart: it is alive
        if hg < known:
            return out + peer.replay(hg, known, self.counters)

        is_status = mtype == "status"
        node_dead = self._membership.node(name).status is NodeStatus.DEAD
        if is_status and hg > known:
            jumped = None
            if peer.generation is not None:
                out.append(Log(level="info", text=f"Heartbeat restart on node {name}"))
                out.append(NodeRestarted(node=name, generation=hg, at=now))
                # Dead or alive: a mutated status may have killed it first (a tiny dt).
                at_death = peer.seq_at_death if node_dead else None
                jumped = peer.snapshot(now, last_seq=at_death)
            peer.generation = hg
            if peer.tracked_generation != hg:
                # Packets of this very generation may have overtaken its first status
                # (a start-up burst): what they taught us stays, or a phantom gap would
                # be asked for, for ever, from a peer that saw our ACK for it.
                peer.reset_tracking()
            if jumped is not None:
                peer.remember_jump(jumped, window)
            peer.floor = None
            peer.replay_logged.clear()
        elif node_dead and hg == known and peer.seq_at_death is not None:
            if seq <= peer.seq_at_death:
                self.counters["stale"] += 1
                return out
            if is_status and known > 0:
                out.append(
                    Log(level="WARN", text=f"Cluster node {name} returning after partition.")
                )
                out.append(PartitionHealed(node=name, at=now))

        verdict, track_out = peer.track(
            seq,
            hg,
            now,
            rexmit_delay=self._rexmit_delay,
            jump_window=window,
            counters=self.counters,
        )
        out += track_out
        if verdict == "stale":
            self.counters["stale"] += 1
            return out
        link_up = self._membership.heard_packet(name, link, now)
        if link_up is not None:
            out += self._link_changed(link_up)
        if verdict == "duplicate":
            self.counters["duplicate"] += 1
            return out
        if verdict == "in-order":
            out += self._maybe_ack(peer, seq, now)
        if verdict in ("in-order", "gap") and not is_status and hg == peer.generation:
            self._membership.heard_life(name, now)
            if node_dead and hg > 0:
                # A node we declared dead talks again (its status may come later, or
                # have been lost): it is back, and dead again if it then falls silent.
                # The resource layer counts a node that talks as alive; so must we, or
                # its next death would never be reported.
                out += self._revive(name, now)
        if not self._for_us(message):
            self.counters["not-for-us"] += 1
            return out

        if is_status:
            if peer.last_status_seq is not None and seq < peer.last_status_seq:
                self.counters["stale-status"] += 1
            else:
                if verdict == "in-order":
                    # A status past a gap or filling one counts, but is no mark for
                    # later ones: a mutated seq a few hundred ahead would silence the
                    # real statuses that fill the gap for as many keepalives
                    # (docs/hostile-input.md).
                    peer.last_status_seq = seq
                out += self._on_status(peer, message, now)
                self._peer_status_at = now
                out += self._coalesce_status(now)
        elif mtype == "reqnodes":
            out += self._on_reqnodes(peer, now)
        elif mtype == "repnodes":
            out += self._on_repnodes(peer, message, now)
        else:
            out.append(Delivered(message=message, link=link, at=now))
        out += self._check_comms(now)
        return out

    def tick(self, now: float) -> list[Output]:
        """Run every timer due at or before *now*, in a fixed order.

        Keepalive (and the end of the start-up dead-time boost), node and link
        deaths, retransmission requests, reqnodes re-sends, then the comms-up check.
        """
        out: list[Output] = []
        if not self._started:
            return out
        if now - self._keepalive_due > self._stall_threshold:
            out += self._stalled(now)
        # Coming up switches dead times from initdead to each node's own, which can
        # put a deadline behind *now*: run the timers again until nothing is due.
        for _ in range(4):
            out += self._tick_once(now)
            if self.next_deadline() > now:
                break
        return out

    def _tick_once(self, now: float) -> list[Output]:
        out: list[Output] = []
        if now >= self._keepalive_due:
            out += self._send_status(now)
            period = self._timing.keepalive / 1000
            if self._coalesce and now - self._peer_status_at <= period * (1 + COALESCE_WINDOW):
                # A peer keeps pace with us and we went first: leave the next turn to
                # it (see TURN_SLACK).
                slack = period * self._rng.uniform(0, TURN_SLACK)
                self._keepalive_due = now + period + slack
                self._late_credit = min(self._late_credit + slack, period * COALESCE_WINDOW)
            while self._keepalive_due <= now:
                self._keepalive_due += period
        if self._boost_due is not None and now >= self._boost_due:
            self._boost_due = None
            out += self._send_status(now)

        for event in self._membership.expire(now):
            if isinstance(event, NodeStatusChanged):
                out += self._node_died(event)
            else:
                out += self._link_changed(event)

        for peer in self._peers.values():
            out += self._rexmit_requests(peer, now)

        if self._reqnodes_due is not None and now >= self._reqnodes_due:
            target = self._reqnodes_target
            if target is not None and self._membership.node(target).status is not NodeStatus.DEAD:
                self._reqnodes_due = now + REQNODES_RETRY_SECONDS
                out += self._send_reqnodes(target, now)
            else:
                self._reqnodes_target = None
                self._reqnodes_due = None
        out += self._check_comms(now)
        return out

    def next_deadline(self) -> float:
        """The exact engine time of the next timer (``inf`` before :meth:`start`)."""
        if not self._started:
            return math.inf
        best = self._keepalive_due
        if self._boost_due is not None:
            best = min(best, self._boost_due)
        member = self._membership.next_deadline()
        if member is not None:
            best = min(best, member)
        for peer in self._peers.values():
            if peer.rexmit_due:
                best = min(best, min(peer.rexmit_due.values()))
        if self._reqnodes_due is not None:
            best = min(best, self._reqnodes_due)
        return best

    def send(self, message: Message, now: float, *, dest: str | None = None) -> list[Output]:
        """Send an application message: add the envelope and return its Transmit.

        Sequenced types (not ``NS_``) get a sequence number and are kept in the
        retransmission history. *dest* addresses one node (also taken from an
        existing ``dest`` field).
        """
        if not message.type:
            raise ValueError("a message needs a 't' field")
        if dest is not None:
            message = message.with_field("dest", dest)
        return [self._emit(message)]

    def view(self) -> ClusterView:
        """A snapshot of every node (the local one first), status and counters."""
        nodes: list[NodeView] = []
        running = LinkStatus.UP if self._started else LinkStatus.DEAD
        for name in self._config.nodes:
            if name == self._local:
                nodes.append(
                    NodeView(
                        name=name,
                        status=self._status,
                        links={m.name: running for m in self._config.links},
                        last_heard=self._last_status_sent,
                        generation=self._generation,
                        deadtime_ms=self._timing.deadtime,
                    )
                )
                continue
            nodes.append(self._peer_view(name))
        nodes.extend(self._peer_view(name) for name, p in self._peers.items() if p.ping)
        return ClusterView(
            local=self._local,
            local_status=self._status,
            comms_up=self._comms_up,
            generation=self._generation,
            nodes=tuple(nodes),
            counters=dict(self.counters),
        )

    def peer_marks(self, now: float) -> dict[str, PeerMark]:
        """Each peer's generation and highest seq: what a restarted node must not take
        for new (``pulse_peers``, :func:`pulse.protocol.identity.save_peer_marks`). A jump still
        undoable at *now* counts from before it: a mutated packet must not raise the mark."""
        marks: dict[str, PeerMark] = {}
        for name in self._normal_peers:
            peer = self._peers[name]
            mark = peer.mark(now, self._jump_window(peer))
            if mark is not None:
                marks[name] = PeerMark(*mark)
        return marks

    def lowest_ack(self) -> int | None:
        """The lowest of our sequence numbers acknowledged by every live normal peer.

        None when a live peer has acknowledged nothing yet or none is alive.
        """
        acks: list[int] = []
        for name in self._normal_peers:
            if not self._membership.is_alive(name):
                continue
            peer = self._peers[name]
            if peer.protocol is False:
                continue
            if peer.acked is None:
                return None
            acks.append(peer.acked)
        return min(acks) if acks else None

    # ----------------------------------------------------------------- sending

    def _advertised_dt(self) -> int:
        boost = STARTUP_DT_BOOST_MS if self._boost_due is not None else 0
        return self._timing.deadtime + boost

    def _send_status(self, now: float) -> list[Output]:
        self._last_status_sent = now
        key = (self._status, self._advertised_dt())
        if key != self._status_key:
            self._status_key = key
            self._status_message = Message.of(
                ("t", "status"),
                ("st", str(self._status)),
                ("dt", _hex(key[1])),
                ("protocol", PROTOCOL_VERSION),
            )
        return [self._emit(self._status_message)]

    def _emit(self, message: Message) -> Transmit:
        """Add the envelope (docs/heartbeat.md#envelope), record if sequenced, return a Transmit."""
        mtype = message.type or ""
        sequenced = not mtype.startswith(NOSEQ_PREFIX)
        dest = message.get("dest")
        envelope: list[Field] = []
        if dest is not None:
            peer = self._peers.get(dest)
            if peer is not None and peer.uuid is not None:
                envelope.append(Field("destuuid", peer.uuid, FieldType.BINARY))
            elif dest == self._local:
                envelope.append(Field("destuuid", self._uuid, FieldType.BINARY))
        if sequenced or "src" not in message:
            envelope.append(self._src_field)
        envelope.append(self._srcuuid_field)
        seq = 0
        if sequenced:
            seq = self._history.next_seq()
            envelope.append(Field("seq", b"%x" % seq))
        envelope.append(self._hg_field)
        ts = b"%x" % int(self._wallclock())
        if ts != self._ts_field.value:
            self._ts_field = Field("ts", ts)
        envelope.append(self._ts_field)
        if sequenced:
            ld = self._loadavg().encode("utf-8", "surrogateescape")
            if ld != self._ld_field.value:
                self._ld_field = Field("ld", ld)
            envelope.append(self._ld_field)
        envelope.append(self._ttl_field)
        msg = message.with_fields(*envelope, drop="auth")
        if sequenced:
            self._history.record(seq, msg)
        return Transmit(message=msg, dest=dest)

    def _send_reqnodes(self, target: str, now: float) -> list[Output]:
        return [self._emit(Message.of(("t", "reqnodes"), ("dest", target)))]

    # ----------------------------------------------------------------- receiving

    def _lookup(self, src: str) -> str | None:
        if src in self._peers:
            return src
        lowered = src.lower()
        if lowered in self._peers and not self._peers[lowered].ping:
            return lowered
        return None

    def _for_us(self, message: Message) -> bool:
        destuuid = message.field("destuuid")
        if destuuid is not None:
            return destuuid.value == self._uuid
        dest = message.get("dest")
        return dest is None or dest.lower() == self._local

    def _jump_window(self, peer: PeerStream) -> float:
        """How long a jump in *peer*'s stream stays undoable: JUMP_PROOF dead times, ours
        too (the packet that jumped may have advertised a tiny one)."""
        dead_ms = max(self._timing.deadtime, self._membership.dead_time_ms(peer.name))
        return JUMP_PROOF * dead_ms / 1000

    def _rexmit_delay(self) -> float:
        top = self._config.max_rexmit_delay
        low = 50 if top >= 100 else 0
        return self._rng.randint(low, max(low, top)) / 1000

    def _maybe_ack(self, peer: PeerStream, seq: int, now: float) -> list[Output]:
        if peer.protocol is False or peer.missing or seq % ACK_DIVISOR != peer.ack_trigger:
            return []
        self.counters["acks-sent"] += 1
        msg = Message.of(("t", "NS_ackmsg"), ("dest", peer.name), ("ackseq", _hex(seq)))
        return [self._emit(msg)]

    def _coalesce_status(self, now: float) -> list[Output]:
        """Send our status now if it is nearly due anyway (see COALESCE_WINDOW)."""
        period = self._timing.keepalive / 1000
        if not self._coalesce or self._boost_due is not None:
            return []
        early = self._keepalive_due - now
        if early > period * COALESCE_WINDOW:
            return []
        # Lock onto the peer (the next status a keepalive from now) only as far as our
        # statuses went out late before; otherwise keep the grid. Early sends never
        # outrun late ones, so a node sends at most one status per keepalive however
        # many peers' statuses fall in its window: without this bound, with 16 nodes on
        # a busy machine, each sent one every 50-60 ms (docs/performance.md).
        spent = min(max(early, 0.0), self._late_credit)
        self._late_credit -= spent
        self._keepalive_due += period - spent
        while self._keepalive_due <= now:  # ours was overdue: this process did not run
            self._keepalive_due += period
        return self._send_status(now)

    def _on_status(self, peer: PeerStream, message: Message, now: float) -> list[Output]:
        out: list[Output] = []
        name = peer.name
        if peer.protocol is None:
            peer.protocol = "protocol" in message
            if not peer.protocol:
                out.append(
                    Log(
                        level="info",
                        text="flow control disabled due to different version heartbeat",
                    )
                )
        st = message.get("st")
        status = _STATUS_VALUES.get(st or "")
        if status is NodeStatus.PING:
            status = None
        dt = _parse_hex(message.get("dt"))
        if dt is not None and 0 < dt < 2 * self._timing.keepalive:
            # A dead time shorter than two of our keepalives declares the node dead
            # between two of its heartbeats: a buggy or mutated packet; keep the last.
            self.counters["bad-field"] += 1
            dt = None
        report = self._membership.heard_status(name, now, status, dt)
        if report.late and report.interval_ms is not None:
            level = "CRIT" if report.overdue else "WARN"
            text = f"Late heartbeat: Node {name}: interval {report.interval_ms} ms"
            out.append(Log(level=level, text=text))
            out.append(NodeLate(node=name, interval_ms=report.interval_ms, at=now))
        for change in report.changes:
            if change.new is NodeStatus.DEAD:
                out.append(Log(level="WARN", text=f"node {name}: is dead"))
            else:
                out.append(
                    Log(level="info", text=f"Status update for node {name}: status {change.new}")
                )
            out.append(change)
        return out

    def _dispatch_noseq(
        self, peer: PeerStream, mtype: str, message: Message, link: str, now: float
    ) -> list[Output]:
        if peer.ping:
            if mtype != "NS_st":
                self.counters["unexpected"] += 1
                return []
            return self._on_ping(peer, now)
        if mtype == "NS_rexmit":
            return self._on_rexmit(peer, message, now)
        if mtype == "NS_nak_rexmit":
            return self._on_nak(peer, message)
        if mtype == "NS_ackmsg":
            ackseq = _parse_hex(message.get("ackseq"))
            if ackseq is None or ackseq > self._history.seq:
                self.counters["bad-field"] += 1
            elif peer.acked is None or ackseq > peer.acked:
                peer.acked = ackseq
            return []
        if mtype == "NS_st":
            self.counters["unexpected"] += 1
            return []
        return [Delivered(message=message, link=link, at=now)]

    def _on_ping(self, peer: PeerStream, now: float) -> list[Output]:
        out: list[Output] = []
        report = self._membership.heard_status(peer.name, now, NodeStatus.PING)
        for change in report.changes:
            if change.new is NodeStatus.DEAD:
                out.append(Log(level="WARN", text=f"node {peer.name}: is dead"))
            else:
                out.append(
                    Log(level="info", text=f"Status update for node {peer.name}: status ping")
                )
            out.append(change)
        return out

    def _on_rexmit(self, peer: PeerStream, message: Message, now: float) -> list[Output]:
        first = _parse_dec(message.get("firstseq"))
        last = _parse_dec(message.get("lastseq"))
        if first is None or last is None or last < first:
            self.counters["bad-field"] += 1
            return []
        out: list[Output] = []
        min_gap = max(0, self._config.max_rexmit_delay - 10) / 1000
        for seq, sent in self._history.answer(
            first, last, acked=peer.acked, now=now, min_gap=min_gap
        ):
            if isinstance(sent, str):
                nak = Message.of(
                    ("t", "NS_nak_rexmit"),
                    ("firstseq", _hex(seq)),
                    ("dest", peer.name),
                    ("info", sent),
                )
                self.counters["naks-sent"] += 1
                out.append(self._emit(nak))
                continue
            self.counters["retransmitted"] += 1
            out.append(Transmit(message=sent, dest=None, retransmit=True))
        return out

    def _on_nak(self, peer: PeerStream, message: Message) -> list[Output]:
        seq = _parse_hex(message.get("firstseq"))
        if seq is None:
            self.counters["bad-field"] += 1
            return []
        return peer.lost_for_good(seq)

    def _rexmit_requests(self, peer: PeerStream, now: float) -> list[Output]:
        if not peer.rexmit_due:
            return []
        # A zero max_rexmit_delay must not make the timer due again at once.
        due = peer.due_requests(now, max(self._config.max_rexmit_delay, 10) / 1000)
        if self._membership.node(peer.name).status not in (NodeStatus.UP, NodeStatus.ACTIVE):
            return []
        out: list[Output] = []
        for seq in due:
            request = Message.of(
                ("t", "NS_rexmit"),
                ("dest", peer.name),
                ("firstseq", str(seq)),
                ("lastseq", str(seq)),
            )
            self.counters["rexmit-requests"] += 1
            out.append(self._emit(request))
        return out

    def _on_reqnodes(self, peer: PeerStream, now: float) -> list[Output]:
        nodelist = "".join(f"{n} " for n in self._config.nodes)
        reply = Message.of(
            ("dest", peer.name),
            ("t", "repnodes"),
            ("nodelist", nodelist),
            ("delnodelist", " "),
        )
        return [self._emit(reply)]

    def _on_repnodes(self, peer: PeerStream, message: Message, now: float) -> list[Output]:
        out: list[Output] = []
        listed = (message.get("nodelist") or "").split()
        configured = set(self._config.nodes)
        unknown = [n for n in listed if n.lower() not in configured]
        absent = [n for n in self._config.nodes if n not in {x.lower() for x in listed}]
        if unknown or absent:
            detail = []
            if unknown:
                detail.append(f"unknown node(s) {' '.join(unknown)}")
            if absent:
                detail.append(f"missing node(s) {' '.join(absent)}")
            out.append(
                Log(
                    level="WARN",
                    text=(
                        f"node list from {peer.name} differs from ours ({'; '.join(detail)});"
                        " keeping the configured node list"
                    ),
                )
            )
        if not self._comms_up:
            out += self._comm_now_up(now)
        return out

    # ----------------------------------------------------------------- liveness

    def _revive(self, name: str, now: float) -> list[Output]:
        report = self._membership.heard_status(name, now, None)
        out: list[Output] = [
            Log(level="WARN", text=f"Cluster node {name} returning after partition."),
            PartitionHealed(node=name, at=now),
        ]
        for change in report.changes:
            out.append(
                Log(level="info", text=f"Status update for node {name}: status {change.new}")
            )
            out.append(change)
        return out

    def _stalled(self, now: float) -> list[Output]:
        """Our own status went out late: this process was stopped or starved.

        Logged and counted once per missed keepalive; whatever runs first after the
        stall (the timer or a queued packet) notices it.
        """
        if self._stall_seen_due == self._keepalive_due:
            return []
        self._stall_seen_due = self._keepalive_due
        late_ms = round((now - self._keepalive_due) * 1000)
        grace = STALL_GRACE * self._timing.keepalive / 1000
        self._membership.grant_grace(now + grace)
        self.counters["stalls"] += 1
        self.counters["stall-ms-max"] = max(self.counters["stall-ms-max"], late_ms)
        self.last_stall_ms = late_ms
        text = (
            f"pulse did not run for {late_ms} ms (stopped, paused or starved): "
            f"no node is declared dead for the next {round(grace * 1000)} ms"
        )
        return [Log(level="WARN", text=text)]

    def _link_changed(self, event: LinkStatusChanged) -> list[Output]:
        return [Log(level="info", text=f"Link {event.node}:{event.link} {event.status}."), event]

    def _node_died(self, event: NodeStatusChanged) -> list[Output]:
        self._peers[event.node].died()
        if self._reqnodes_target == event.node:
            self._reqnodes_target = None
            self._reqnodes_due = None
        return [Log(level="WARN", text=f"node {event.node}: is dead"), event]

    def _check_comms(self, now: float) -> list[Output]:
        """Start the node-list exchange, or declare comms up, once everyone is known."""
        if self._comms_up or not self._started:
            return []
        if not self._membership.all_heard_or_dead():
            return []
        if self._reqnodes_target is not None:
            return []
        for name in self._normal_peers:
            rec = self._membership.node(name)
            if not rec.heard or rec.status is NodeStatus.DEAD:
                continue
            if self._peers[name].protocol is False:
                continue
            self._reqnodes_target = name
            self._reqnodes_due = now + REQNODES_RETRY_SECONDS
            return self._send_reqnodes(name, now)
        return self._comm_now_up(now)

    def _comm_now_up(self, now: float) -> list[Output]:
        self._comms_up = True
        self._reqnodes_target = None
        self._reqnodes_due = None
        self._membership.declare_comms_up()
        out: list[Output] = [
            Log(level="info", text="Comm_now_up(): updating status to active"),
        ]
        self._status = NodeStatus.ACTIVE
        out.append(Log(level="info", text="Local status now set to: 'active'"))
        out += self._send_status(now)
        heard = tuple(
            name
            for name in self._normal_peers
            if self._membership.node(name).heard
            and self._membership.node(name).status is not NodeStatus.DEAD
        )
        out.append(CommsUp(at=now, peers=heard))
        return out

    def _peer_view(self, name: str) -> NodeView:
        rec = self._membership.node(name)
        return NodeView(
            name=name,
            status=rec.status,
            links={link: lrec.status for link, lrec in rec.links.items()},
            last_heard=rec.last_status,
            generation=self._peers[name].generation,
            deadtime_ms=self._membership.dead_time_ms(name),
        )
