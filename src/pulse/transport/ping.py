"""ICMP links for the ``ping``, ``ping6``, ``ping_group`` nodes (docs/heartbeat.md#transports).

A ping node is a router or a switch that answers ICMP echo requests and knows nothing
of Heartbeat. As Heartbeat's ``ping`` plugins do, the link sends the message it wants
to hear back *from* the ping node: once per keepalive, an echo request to every host
of the link whose payload is a signed ``t=NS_st st=ping info=<plugin> src=<node>
ts=<hex time>`` message. The host echoes the payload unchanged; the link passes the
reply's payload on as a :class:`Datagram` on the link named after the ping node, the
daemon authenticates it like any packet and the engine marks the node ``ping``
(``dead`` after ``deadping`` without one).

Only an echo *reply* with our ICMP id (pid & 0xffff), from one of the link's hosts,
carrying byte for byte the payload we sent with that sequence number, is passed on,
once per echo (the daemon then authenticates it like any packet). Everything else that
a raw ICMP socket sees (other programs' pings, replies meant for another ping link of
this daemon, stale, replayed or altered echoes, a ping group's second answer) is
dropped and counted as ``ignored``; truncated packets and bad checksums are counted as
receive errors.

A ping link carries no cluster traffic: the heartbeats and resource messages the
daemon hands to every link are accepted by :meth:`PingLink.try_send_nowait` and
dropped (Heartbeat's plugins likewise throw away what they are given). They pace the
echoes, though: as in Heartbeat, an echo goes out with our status heartbeat, so an idle
node wakes no more often for its ping nodes than for the replies; the link's own timer
only sends when no status has gone out for a keepalive and a quarter.

Raw sockets need root or ``CAP_NET_RAW``; without it the link fails to open with a
:class:`~pulse.errors.TransportError` naming the directive.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import trio

from pulse.errors import TransportError
from pulse.wire.auth import Signer
from pulse.wire.codec import Encoding, encode
from pulse.wire.message import Message

from ._link import (
    Counters,
    Datagram,
    LinkStatistics,
    Sink,
    describe_os_error,
    receive_datagrams,
    resolve_host,
)

ICMP_ECHO_REPLY = 0
ICMP_ECHO_REQUEST = 8
ICMP6_ECHO_REQUEST = 128
ICMP6_ECHO_REPLY = 129

#: type, code, checksum, identifier, sequence: the 8 bytes before an echo's data.
ICMP_HEADER = struct.Struct("!BBHHH")

#: How many recent echoes a link remembers (sequence number and payload), to recognise
#: their replies and pass on one answer per echo (Heartbeat's NSLOT).
GROUP_WINDOW = 128
#: An outgoing cluster message takes an echo along once this share of the interval has
#: passed since the last one (statuses go out every keepalive, up to 12.5 % late).
PIGGYBACK_AFTER = 0.75
#: The link's own timer sends when nothing went out for this many intervals.
FALLBACK_AFTER = 1.25

#: Largest packet read: an IPv4 header with options, the ICMP header, a message.
MAX_PACKET = 65535

# Kernel-side type filters (<linux/icmp.h> ICMP_FILTER, <linux/icmpv6.h> ICMPV6_FILTER):
# a set bit blocks a type, so only echo replies reach the socket.
_SOL_RAW = 255
_ICMP_FILTER = 1
_ICMPV6_FILTER = 1


class MalformedPacket(ValueError):
    """An ICMP packet too short or corrupt to be read."""


@dataclass(frozen=True, slots=True)
class Echo:
    """The fields of one ICMP echo (request or reply) that a ping link looks at."""

    type: int
    code: int
    ident: int
    seq: int
    payload: bytes


def internet_checksum(data: bytes) -> int:
    """RFC 1071: the ones' complement of the ones' complement sum of 16-bit words."""
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def echo_request(ident: int, seq: int, payload: bytes, *, ipv6: bool = False) -> bytes:
    """An ICMP (or ICMPv6) echo request. ICMPv6 checksums are the kernel's to fill in."""
    if ipv6:
        return ICMP_HEADER.pack(ICMP6_ECHO_REQUEST, 0, 0, ident, seq & 0xFFFF) + payload
    unsigned = ICMP_HEADER.pack(ICMP_ECHO_REQUEST, 0, 0, ident, seq & 0xFFFF) + payload
    checksum = internet_checksum(unsigned)
    return unsigned[:2] + struct.pack("!H", checksum) + unsigned[4:]


def parse_icmp(packet: bytes, *, ipv6: bool = False) -> Echo:
    """Read what a raw ICMP socket returns: the IPv4 header first, none for ICMPv6.

    The ICMPv4 checksum is verified (the kernel verified the ICMPv6 one). Raises
    :class:`MalformedPacket`.
    """
    if ipv6:
        icmp = packet
    else:
        if not packet or packet[0] >> 4 != 4:
            raise MalformedPacket("not an IPv4 packet")
        header_len = (packet[0] & 0x0F) * 4
        if header_len < 20:
            raise MalformedPacket(f"IPv4 header length {header_len} below 20")
        icmp = packet[header_len:]
    if len(icmp) < ICMP_HEADER.size:
        raise MalformedPacket(f"truncated ICMP packet ({len(packet)} bytes)")
    if not ipv6 and internet_checksum(icmp) != 0:
        raise MalformedPacket("bad ICMP checksum")
    kind, code, _, ident, seq = ICMP_HEADER.unpack_from(icmp)
    return Echo(type=kind, code=code, ident=ident, seq=seq, payload=icmp[ICMP_HEADER.size :])


def ping_message(node: str, info: str, ts: int) -> Message:
    """The message a ping node is made to send us (``info`` is the plugin's name)."""
    return Message.of(
        ("t", "NS_st"), ("st", "ping"), ("info", info), ("src", node), ("ts", b"%x" % ts)
    )


class PingLink:
    """One ``ping HOST`` / ``ping6 HOST``, or one ``ping_group NAME HOST…``.

    ``name`` is the pseudo-node's name (the host as written, or the group name), which
    is also the name of its only link. ``info`` is Heartbeat's plugin name (``ping``,
    ``ping6``, ``ping_group``), carried in the payload and checked on the way back.
    """

    classic_only = False

    def __init__(
        self,
        *,
        name: str,
        hosts: tuple[str, ...],
        info: str,
        interval: float,
        signer: Signer,
        ipv6: bool = False,
        encoding: Encoding = Encoding.CLASSIC,
        ident: int | None = None,
        wallclock: Callable[[], float] = time.time,
    ) -> None:
        if not hosts:
            raise ValueError(f"{info} {name}: no host to ping")
        if interval <= 0:
            raise ValueError(f"ping interval {interval} must be positive")
        self.name = name
        self.hosts = hosts
        self.info = info
        self.interval = interval
        self.ipv6 = ipv6
        self.ident = (os.getpid() if ident is None else ident) & 0xFFFF
        self._signer = signer
        self._encoding = encoding
        self._wallclock = wallclock
        self._counters = Counters(name)
        self._sink: Sink | None = None
        self._seq = 0
        self._addresses: list[tuple[str, tuple[Any, ...]]] = []  # (address text, sockaddr)
        self._sent: list[tuple[int, bytes] | None] = [None] * GROUP_WINDOW  # by seq % window
        self._sock: socket.socket | None = None
        self._last_ping = -float("inf")
        self._fallback: trio.CancelScope | None = None
        # (ts, signed payload): at keepalive 100 ms ten echoes a second carry the same
        # message (its ts is in seconds), so it is encoded and signed once a second.
        self._payload: tuple[int, bytes] | None = None

    def __repr__(self) -> str:
        return f"<PingLink {self.describe()}>"

    def describe(self) -> str:
        """The directive as written: ``ping 198.51.100.254``, ``ping_group lan a b``."""
        if self.info == "ping_group":
            return f"ping_group {self.name} {' '.join(self.hosts)}"
        return f"{self.info} {self.name}"

    def rekey(self, signer: Signer) -> None:
        """Sign the echoes with *signer* from now on: a reload changed authkeys.

        The ping node sends our payload back and the daemon verifies it with its own
        signer, which the reload replaced; an echo still signed with the old key would
        fail once that key is gone (netstring packets: once ``auth N`` names another
        key) and the ping node would be declared dead. The payload cached for the
        current second is dropped, so the very next echo carries the new signature.
        """
        self._signer = signer
        self._payload = None

    def retime(self, interval: float) -> None:
        """Pace the echoes by *interval* from now on: a reload changed keepalive.

        The link was built with the old keepalive. From now on a cluster message takes
        an echo along once ``PIGGYBACK_AFTER`` of the new interval has passed, and the
        fallback timer, if it is sleeping, wakes ``FALLBACK_AFTER`` new intervals after
        the last echo (at once if that has passed) instead of after the old ones: a
        reload that shrinks keepalive and deadping must not leave the ping node an old
        interval without an echo, which could be longer than the new deadping.
        """
        if interval <= 0:
            raise ValueError(f"ping interval {interval} must be positive")
        self.interval = interval
        if self._fallback is not None:
            self._fallback.deadline = self._last_ping + interval * FALLBACK_AFTER

    def attach_sink(self, sink: Sink | None) -> None:
        """Hand datagrams to *sink* from now on (None: back to the channel)."""
        self._sink = sink

    def _current_sink(self) -> Sink | None:
        return self._sink

    def statistics(self) -> LinkStatistics:
        return self._counters.snapshot()

    # ----------------------------------------------------------------- opening

    def _open_socket(self) -> socket.socket:
        family = socket.AF_INET6 if self.ipv6 else socket.AF_INET
        proto = socket.IPPROTO_ICMPV6 if self.ipv6 else socket.IPPROTO_ICMP
        try:
            sock = socket.socket(family, socket.SOCK_RAW, proto)
        except OSError as exc:
            raise TransportError(self._open_error(exc)) from exc
        try:
            if self.ipv6:
                blocked = [0xFFFFFFFF] * 8
                blocked[ICMP6_ECHO_REPLY >> 5] &= ~(1 << (ICMP6_ECHO_REPLY & 31))
                sock.setsockopt(socket.IPPROTO_ICMPV6, _ICMPV6_FILTER, struct.pack("=8I", *blocked))
            else:
                blocked_v4 = 0xFFFFFFFF & ~(1 << ICMP_ECHO_REPLY)
                sock.setsockopt(_SOL_RAW, _ICMP_FILTER, struct.pack("=I", blocked_v4))
            sock.setblocking(False)
        except OSError as exc:
            sock.close()
            raise TransportError(self._open_error(exc)) from exc
        return sock

    def _open_error(self, exc: OSError) -> str:
        kind = "ICMPv6" if self.ipv6 else "ICMP"
        if exc.errno in (errno.EPERM, errno.EACCES):
            reason = (
                f"permission denied ({describe_os_error(exc)}); ping nodes need root or CAP_NET_RAW"
            )
        else:
            reason = describe_os_error(exc)
        return f"{self.describe()}: cannot open a raw {kind} socket: {reason}"

    async def _resolve(self) -> None:
        family = socket.AF_INET6 if self.ipv6 else socket.AF_INET
        addresses: list[tuple[str, tuple[Any, ...]]] = []
        for host in self.hosts:
            sockaddr = await resolve_host(host, family, f"{self.info} host")
            if all(text != sockaddr[0] for text, _ in addresses):
                addresses.append((str(sockaddr[0]), sockaddr))
        self._addresses = addresses

    # ----------------------------------------------------------------- running

    async def run(
        self,
        inbound: trio.MemorySendChannel[Datagram],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        with self._open_socket() as sock:
            await self._resolve()
            task_status.started()
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._send_loop, sock)
                    await receive_datagrams(
                        sock,
                        inbound,
                        self._counters,
                        self._accept,
                        max_size=MAX_PACKET,
                        sink=self._current_sink,
                    )
                    nursery.cancel_scope.cancel()
            finally:
                self._sock = None

    async def _send_loop(self, sock: socket.socket) -> None:
        """The fallback pacer: pings when no cluster message took one along in time."""
        self._sock = sock
        while True:
            now = trio.current_time()
            if now >= self._last_ping + self.interval:
                self._ping(sock, now)
            with trio.CancelScope(deadline=self._last_ping + self.interval * FALLBACK_AFTER) as s:
                self._fallback = s
                await trio.sleep_forever()
            self._fallback = None

    def _ping(self, sock: socket.socket, now: float) -> None:
        self.ping_once(sock)
        self._last_ping = now
        if self._fallback is not None:
            self._fallback.deadline = now + self.interval * FALLBACK_AFTER

    def ping_once(self, sock: socket.socket) -> None:
        """Send one echo request, with the next sequence number, to every host."""
        ts = int(self._wallclock())
        cached = self._payload
        if cached is not None and cached[0] == ts:
            payload = cached[1]  # the same second: the same signed message
        else:
            try:
                message = ping_message(self.name, self.info, ts)
                payload = encode(message, self._signer, self._encoding)
            except ValueError as exc:  # a ping node name the wire cannot carry
                self._counters.send_error(f"cannot encode the ping message: {exc}")
                return
            self._payload = (ts, payload)
        packet = echo_request(self.ident, self._seq, payload, ipv6=self.ipv6)
        self._sent[self._seq % GROUP_WINDOW] = (self._seq, payload)
        self._seq = (self._seq + 1) & 0xFFFF
        for text, sockaddr in self._addresses:
            try:
                sock.sendto(packet, sockaddr)
            except OSError as exc:  # BlockingIOError included: never wait for a ping
                self._counters.send_error(f"ping {text} failed: {describe_os_error(exc)}")
                continue
            self._counters.sent(len(packet))

    def _accept(self, packet: bytes, address: Any) -> Datagram | None:
        return self.accept(packet, str(address[0]))

    def accept(self, packet: bytes, source: str) -> Datagram | None:
        """The reply's payload as a :class:`Datagram`, or None (dropped and counted)."""
        try:
            echo = parse_icmp(packet, ipv6=self.ipv6)
        except MalformedPacket as exc:
            self._counters.receive_error(f"from {source}: {exc}")
            return None
        reply = ICMP6_ECHO_REPLY if self.ipv6 else ICMP_ECHO_REPLY
        if echo.type != reply or echo.ident != self.ident:
            self._counters.ignored += 1  # somebody else's ICMP
            return None
        if all(text != source for text, _ in self._addresses):
            self._counters.ignored += 1  # our reply, but for another ping link
            return None
        slot = echo.seq % GROUP_WINDOW
        if self._sent[slot] != (echo.seq, echo.payload):
            # Not the echo of one we sent and not answered yet: stale, replayed, altered,
            # another ping link's (same id and host), or a ping group's second answer.
            self._counters.ignored += 1
            return None
        self._sent[slot] = None
        self._counters.received(len(echo.payload))
        return Datagram(link=self.name, data=echo.payload, peer=source)

    # ----------------------------------------------------------------- sending

    def try_send_nowait(self, data: bytes) -> bool:
        """Cluster traffic does not go to ping nodes: accepted and dropped. An echo goes
        along when one is nearly due (our status heartbeat carries it, as in Heartbeat)."""
        sock = self._sock
        if sock is not None:
            now = trio.current_time()
            if now >= self._last_ping + self.interval * PIGGYBACK_AFTER:
                self._ping(sock, now)
        return True

    async def send(self, data: bytes) -> None:
        """Cluster traffic does not go to ping nodes: dropped."""
        await trio.lowlevel.checkpoint()
