"""Communications: the protocol engine driven over the links, on trio.

::

    link.run ──Datagram──▶ inbound ──▶ Comms.run_engine: screen + decode + verify,
     (a task per link; drops its own     │   Engine.receive
      echoes)                            │   Transmit ▶ link.try_send_nowait (UDP with room),
    Comms._run_timers: Engine.tick at    │              else the link's bounded queue ▶ pump
      the engine's next deadline         │   Log ▶ logging (a queue thread)
      (a timerfd under pulse run)        └─ events ▶ every subscriber's bounded channel
                                             (the resource manager's inbox, respawn)

The engine (:mod:`pulse.protocol.engine`) is pure; this class is its I/O shell. Nothing
here waits for a plugin, a resource script or a slow link: the heartbeat path never
blocks. After each status we send, the :class:`~pulse.supervision.Watchers` are fed
(systemd's watchdog and status line, the hardware watchdog), so a stuck loop feeds
nothing. :mod:`pulse.daemon` builds one and wires it to the rest.
"""

from __future__ import annotations

import collections
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from pulse.config.model import Config
from pulse.failover.report import SHUTDONE
from pulse.logsetup import LEVELS, LOGGER_NAME
from pulse.protocol.engine import Engine
from pulse.protocol.events import (
    CommsUp,
    CutOff,
    Log,
    NodeStatus,
    NodeStatusChanged,
    Output,
    Transmit,
)
from pulse.protocol.identity import save_peer_marks
from pulse.supervision import Watchers
from pulse.timerfd import KernelTimer
from pulse.transport import Datagram, Link, PingLink
from pulse.wire.auth import Signer
from pulse.wire.codec import Encoding, ack_for_another, decode, encode, screen_verified
from pulse.wire.message import Message

log = logging.getLogger(LOGGER_NAME)

INBOUND_QUEUE = 1024
OUTBOUND_QUEUE = 64
EVENT_QUEUE = 1024
BADPACK_LOG_INTERVAL = 10.0  # seconds between two log lines for the same drop reason

_NO_QUICK_LOOK: Any = object()

_WIRE_LOG = {
    "bad-signature": "string2msg_ll: node [{src}] failed authentication",
    "bad-auth-index": "Invalid authentication type in message! ({detail})",
}


@dataclass(slots=True)
class _BadPackLog:
    last: dict[str, float] = field(default_factory=dict)
    suppressed: collections.Counter[str] = field(default_factory=collections.Counter)


class Comms:
    """Drives one :class:`Engine` over a set of links."""

    def __init__(
        self,
        config: Config,
        engine: Engine,
        links: Sequence[Link],
        signer: Signer,
        watchers: Watchers,
        *,
        kernel_timer: bool = False,
    ) -> None:
        self.config = config
        self.engine = engine
        self.links = list(links)
        self.signer = signer
        self.watchers = watchers
        self.wire_counters: collections.Counter[str] = collections.Counter()
        # One bounded queue per link (by position: two links may share a name, such as
        # `bcast eth0` and `ucast eth0`).
        self._outbound: list[trio.MemorySendChannel[bytes] | None] = [None] * len(self.links)
        self._subscribers: list[trio.MemorySendChannel[Any]] = []
        self._badpack = _BadPackLog()
        self._encoding = (
            Encoding.NETSTRING if self.config.msgfmt == "netstring" else Encoding.CLASSIC
        )
        self._stopping = trio.Event()
        self._timer_scope: trio.CancelScope | None = None
        self._use_kernel_timer = kernel_timer
        self._kernel_timer: KernelTimer | None = None
        self._pumps: list[tuple[Link, trio.MemoryReceiveChannel[bytes]]] = []
        # Links that carry heartbeats (not ping nodes' ICMP links): when every one of
        # them fails to send, this node is cut off (events.CutOff).
        media = {m.name for m in self.config.links}
        self._heartbeat_links = [link for link in self.links if link.name in media]
        self.cut_off = False
        self._fed_for: float | None = None  # the status the watchers were last fed for
        self._marks_wanted = trio.Event()  # set when a peer died: save pulse_peers
        self._burst_accepted = False  # a packet of the current direct burst was accepted
        self._local = engine.local.lower().encode("utf-8", "surrogateescape")

    def rekey(self, signer: Signer) -> None:
        """A reload changed authkeys (pulse.reload): sign and verify with *signer* from
        now on. The ping links sign their echoes with it too: what a ping node answers
        is our own payload, verified here with this signer."""
        self.signer = signer
        for link in self.links:
            if isinstance(link, PingLink):
                link.rekey(signer)

    def reconfigure(self, config: Config) -> None:
        """A reload changed the timing (pulse.reload). The ping links pace their echoes
        by the new keepalive, from the status the engine sends now on."""
        self.config = config
        for link in self.links:
            if isinstance(link, PingLink):
                link.retime(config.timing.keepalive / 1000.0)
        self.dispatch(self.engine.reconfigure(config, trio.current_time()))
        self._poke_timers()

    # ------------------------------------------------------------------ events

    def subscribe(self, size: int = EVENT_QUEUE) -> trio.MemoryReceiveChannel[Output]:
        """A bounded stream of every event the engine emits (drops are counted)."""
        tx, rx = trio.open_memory_channel[Output](size)
        self._subscribers.append(tx)
        return rx

    def add_subscriber(self, tx: trio.MemorySendChannel[Any]) -> None:
        """Publish every engine event into an existing channel too (never waits)."""
        self._subscribers.append(tx)

    def send(self, message: Message) -> None:
        """Send an application message (resource protocol) to every peer, now."""
        self.dispatch(self.engine.send(message, trio.current_time()))
        self._poke_timers()

    # ------------------------------------------------------------------ outputs

    def dispatch(self, outputs: Sequence[Output]) -> None:
        """Act on the engine's outputs. Never waits: the heartbeat path is never blocked."""
        cache: dict[Encoding, bytes] = {}
        for out in outputs:
            if isinstance(out, Transmit):
                cache.clear()
                self._transmit(out.message, cache)
            elif isinstance(out, Log):
                log.log(LEVELS.get(out.level, logging.INFO), "%s", out.text)
            else:
                if isinstance(out, CommsUp):
                    self.watchers.ready()
                if isinstance(out, NodeStatusChanged) and out.new is NodeStatus.DEAD:
                    self._marks_wanted.set()
                self._publish(out)

    def _transmit(self, message: Message, cache: dict[Encoding, bytes]) -> None:
        for link, tx in zip(self.links, self._outbound, strict=True):
            encoding = Encoding.CLASSIC if link.classic_only else self._encoding
            data = cache.get(encoding)
            if data is None:
                try:
                    data = encode(message, self.signer, encoding)
                except ValueError as exc:  # a field the wire cannot carry: drop, say why
                    self.wire_counters["unencodable"] += 1
                    log.error("cannot send %s message: %s", message.type, exc)
                    return
                cache[encoding] = data
            if link.try_send_nowait(data):
                continue  # sent at once (a UDP socket with room): no queue, no task switch
            if tx is None:
                continue
            try:
                tx.send_nowait(data)
            except trio.WouldBlock:
                self.wire_counters["tx-queue-full"] += 1
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self.wire_counters["tx-closed"] += 1

    def _publish(self, event: Output) -> None:
        for tx in list(self._subscribers):
            try:
                tx.send_nowait(event)
            except trio.WouldBlock:
                self.wire_counters["event-queue-full"] += 1
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self._subscribers.remove(tx)

    # ------------------------------------------------------------------ inputs

    def handle(self, dgram: Datagram, now: float) -> bool:
        """Decode, verify and pass one packet to the engine; False if it was dropped.

        The signature is checked over the raw bytes first (``codec.screen``): a flood
        of packets with a wrong key costs an HMAC per packet, not a parse.
        """
        if ack_for_another(dgram.data, self._local):
            # Not a refusal: the engine counted these as not-for-us after decoding them
            # (Heartbeat even ACKs its own messages: dest and src are the same node).
            self.engine.counters["not-for-us"] += 1
            return False
        try:
            reason, verified = screen_verified(dgram.data, self.signer)
            if reason is not None:
                self.wire_counters[reason] += 1
                self._log_badpack(reason, dgram, "refused before decoding", now)
                return False
            decoded = decode(dgram.data, self.signer, verified=verified)  # one HMAC, not two
        except Exception as exc:  # WireError; anything else is a codec bug, never fatal
            reason = getattr(exc, "reason", "decoder-bug")
            self.wire_counters[reason] += 1
            self._log_badpack(reason, dgram, str(getattr(exc, "detail", exc)), now)
            return False
        self.wire_counters["accepted"] += 1
        try:
            outputs = self.engine.receive(decoded.message, dgram.link, now)
        except Exception:  # an engine bug must not take the node down
            self.wire_counters["engine-bug"] += 1
            log.exception("internal error while processing a packet from %s", dgram.peer)
            return True
        self.dispatch(outputs)
        return True

    def _log_badpack(self, reason: str, dgram: Datagram, detail: str, now: float) -> None:
        if self.config.parameters.get("log_badpack", "true").lower() in ("false", "off", "no"):
            return
        last = self._badpack.last.get(reason)
        if last is not None and now - last < BADPACK_LOG_INTERVAL:
            self._badpack.suppressed[reason] += 1
            return
        self._badpack.last[reason] = now
        suppressed = self._badpack.suppressed.pop(reason, 0)
        template = _WIRE_LOG.get(reason, "Dropped {reason} packet from {peer} on {link}: {detail}")
        src = _peek_src(dgram.data)
        text = template.format(
            reason=reason, peer=dgram.peer, link=dgram.link, detail=detail, src=src
        )
        if suppressed:
            text += f" ({suppressed} more since last report)"
        log.warning("%s", text)

    # ------------------------------------------------------------------ tasks

    async def run_engine(
        self,
        inbound: trio.MemoryReceiveChannel[Datagram],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        for i, link in enumerate(self.links):
            tx, rx = trio.open_memory_channel[bytes](OUTBOUND_QUEUE)
            self._outbound[i] = tx
            self._pumps.append((link, rx))
        self.dispatch(self.engine.start(trio.current_time()))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._run_timers)
            task_status.started()
            # UDP and ICMP links hand their packets over directly from now on (one task
            # step per packet instead of two); first what they queued until now, in
            # order. Other links (serial, tests' fakes) keep using the channel.
            self._take_queued(inbound)
            direct = [link for link in self.links if hasattr(link, "attach_sink")]
            for link in direct:
                link.attach_sink(self)
            for link in self.links:
                if hasattr(link, "filter_acks"):
                    link.filter_acks(self._local)
            try:
                async with inbound:
                    async for dgram in inbound:
                        self.deliver(dgram)
                        self._take_queued(inbound)
            finally:
                for link in direct:
                    link.attach_sink(None)

    def _take_queued(self, inbound: trio.MemoryReceiveChannel[Datagram]) -> None:
        """Handle what else is queued without a checkpoint per packet (a flood arrives
        in bursts), then move the timer once for all of it: a dropped packet changes
        no deadline."""
        for _ in range(INBOUND_QUEUE):
            try:
                dgram = inbound.receive_nowait()
            except trio.WouldBlock:
                break
            except (trio.EndOfChannel, trio.ClosedResourceError):
                break
            self.deliver(dgram)
        self.delivered()

    def deliver(self, datagram: Datagram) -> None:
        """One packet of a burst, straight from a link's task (transport Sink)."""
        if self.handle(datagram, trio.current_time()):
            self._burst_accepted = True

    def delivered(self) -> None:
        """The end of a burst: move the timer, feed the watchers after a coalesced status."""
        if not self._burst_accepted:
            return
        self._burst_accepted = False
        self._poke_timers()
        if self.engine.last_status_sent != self._fed_for:
            self._feed_watchers(trio.current_time())  # a coalesced status

    def _feed_watchers(self, now: float) -> None:
        """After our status went out: feed the watchdog device, systemd's watchdog and
        its status line, from the heartbeat path itself (a stuck loop feeds nothing)."""
        sent = self.engine.last_status_sent
        if sent is None or sent == self._fed_for:
            return
        self._fed_for = sent
        self.watchers.fed(now)

    def _poke_timers(self) -> None:
        """Move the timer task's wake-up to the engine's next deadline.

        Earlier when a packet created a new timer, later when our status went out with
        a received one (coalescing): a wake-up that would find nothing to do costs an
        idle node as much as one that sends.
        """
        timer = self._kernel_timer
        if timer is not None:
            deadline = self.engine.next_deadline()
            if deadline != timer.armed_for:  # most packets leave the next deadline as it was
                timer.armed_for = deadline
                timer.arm(deadline - trio.current_time())
            return
        scope = self._timer_scope
        if scope is not None:
            scope.deadline = self.engine.next_deadline()

    def _check_cut_off(self, now: float) -> None:
        """Publish CutOff when every heartbeat link has failed every send for a keepalive
        (this node's own interfaces are down), and again when one works."""
        if not self._heartbeat_links:
            return
        since = self.config.timing.keepalive / 1000
        failing: list[str] = []
        for link in self._heartbeat_links:
            # Every tick: UDP links answer from their counters (a full statistics()
            # costs a getsockopt and a snapshot per link), other links the long way.
            quick = getattr(link, "failing_since", _NO_QUICK_LOOK)
            if quick is _NO_QUICK_LOOK:
                quick = getattr(link.statistics(), "failing_since", None)
            first: float | None = quick
            if first is None or now - first < since:
                break
            error = getattr(link.statistics(), "last_error", None)
            failing.append(f"{link.name}: {error or 'failing'}")
        cut = len(failing) == len(self._heartbeat_links)
        if cut == self.cut_off:
            return
        self.cut_off = cut
        detail = "; ".join(failing)
        if cut:
            log.warning("Every link of this node fails to send (%s): it is cut off", detail)
        else:
            log.info("A link of this node sends again: no longer cut off")
        self._publish(CutOff(cut_off=cut, at=now, detail=detail))

    def _tick_if_due(self) -> bool:
        """Run the engine's due timers; False if something is still due after that."""
        now = trio.current_time()
        if self.engine.next_deadline() <= now:
            # Before the tick: a peer declared dead by it must not be taken over by a
            # node whose own cables are out.
            self._check_cut_off(now)
            self.dispatch(self.engine.tick(now))
            self._feed_watchers(now)
            return self.engine.next_deadline() > now  # still due: should not happen
        return True

    async def _run_timers(self) -> None:
        # A task of its own, so that receiving a packet costs no cancel scope: the timer
        # sleeps until the engine's next deadline, which _poke_timers keeps up to date.
        timer = KernelTimer.open() if self._use_kernel_timer else None
        self._kernel_timer = timer
        try:
            while True:
                if not self._tick_if_due():
                    await trio.lowlevel.checkpoint()
                    continue
                await self._sleep_until_next_deadline(timer)
        finally:
            self._kernel_timer = None
            if timer is not None:
                timer.close()

    async def _sleep_until_next_deadline(self, timer: KernelTimer | None) -> None:
        deadline = self.engine.next_deadline()
        if timer is not None:
            timer.armed_for = deadline
            timer.arm(deadline - trio.current_time())
            await timer.wait()
            return
        with trio.CancelScope(deadline=deadline) as scope:
            self._timer_scope = scope
            try:
                await trio.sleep_forever()
            finally:
                self._timer_scope = None

    async def remember_peers(self, state_dir: Path) -> None:
        """Save the peers' marks after a peer died (a task: the save runs in a thread)."""
        while True:
            await self._marks_wanted.wait()
            self._marks_wanted = trio.Event()
            await self.save_peer_marks(state_dir)

    async def save_peer_marks(self, state_dir: Path) -> None:
        marks = self.engine.peer_marks(trio.current_time())
        try:
            await trio.to_thread.run_sync(save_peer_marks, state_dir, marks)
        except OSError as exc:
            log.warning("cannot save the peers' sequence numbers in %s: %s", state_dir, exc)

    async def run_pumps(self) -> None:
        async with trio.open_nursery() as nursery:
            for link, rx in self._pumps:
                nursery.start_soon(_pump, link, rx)

    async def stop(self) -> None:
        """Tell the peers we are leaving (``shutdone``) and give the packets time to go."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        self.watchers.stopping()
        log.info("Heartbeat shutdown in progress. (%d)", os.getpid())
        now = trio.current_time()
        self.dispatch(self.engine.send(SHUTDONE, now))

    def wire_status(self) -> dict[str, int]:
        """Packets by what became of them; ``kernel-drops``: those the kernel dropped
        for a full receive buffer before we could read them (a flood);
        ``acks-for-others``: ACKs addressed to another node that the receive sockets'
        filter dropped (pulse.transport.sockfilter)."""
        wire = dict(self.wire_counters)
        stats = [link.statistics() for link in self.links]
        dropped = sum(getattr(st, "kernel_drops", 0) for st in stats)
        if dropped:
            wire["kernel-drops"] = dropped
        filtered = sum(getattr(st, "acks_for_others", 0) for st in stats)
        if filtered:
            wire["acks-for-others"] = filtered
        return wire


async def _pump(link: Link, rx: trio.MemoryReceiveChannel[bytes]) -> None:
    async with rx:
        async for data in rx:
            await link.send(data)


def _peek_src(data: bytes) -> str:
    """Best-effort ``src`` of an undecodable packet, for the log line only."""
    for marker in (b"\nsrc=", b"(0)src="):
        i = data.find(marker)
        if i >= 0:
            start = i + len(marker)
            end = start
            while end < len(data) and end - start < 100 and data[end] not in b"\n,":
                end += 1
            return data[start:end].decode("ascii", "replace")
    return "?"
