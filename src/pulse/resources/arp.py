"""Gratuitous ARP (IPv4) and unsolicited neighbour advertisements (IPv6).

After a floating address moves, the other hosts on the segment still map it to
the old node's MAC address until their cache entry expires. Announcing the new
mapping fixes that at once. The frames follow Heartbeat's ``send_arp``
(docs/heartbeat.md#gratuitous-arp): per repetition an ARP *request* (sender IP =
target IP = the address, target MAC zero), half an interval later an ARP *reply*
(sender = target = the address, target MAC = our own), both Ethernet broadcasts
from the interface MAC.
For IPv6 an ICMPv6 Neighbor Advertisement (type 136, Override set, Solicited
clear, with the target link-layer address option) goes to ff02::1 with hop
limit 255, as RFC 4861 §7.2.6 describes.

Frame building is pure; sending uses trio sockets (``AF_PACKET`` for ARP, a raw
ICMPv6 socket for NA, whose checksum the kernel fills in). Both need
CAP_NET_RAW.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
import struct
from dataclasses import dataclass

import trio

ETH_P_ARP = 0x0806
ETH_P_IP = 0x0800
ARPHRD_ETHER = 1
ARPOP_REQUEST = 1
ARPOP_REPLY = 2
BROADCAST_MAC = b"\xff" * 6
ZERO_MAC = b"\x00" * 6

ICMPV6_NEIGHBOR_ADVERTISEMENT = 136
NA_FLAG_OVERRIDE = 0x20000000
ND_OPT_TARGET_LINKADDR = 2
ALL_NODES = "ff02::1"
# A send that fails with one of these is skipped, not the end of the series: the
# device queue was full for a moment (ENOBUFS under load), the next one goes out.
TRANSIENT_SEND_ERRORS = frozenset({errno.ENOBUFS, errno.EAGAIN, errno.ENOMEM, errno.EINTR})


@dataclass(frozen=True, slots=True, kw_only=True)
class ArpPolicy:
    """How often a new address is announced: ``count`` repetitions ``interval`` s apart.

    One IPv4 repetition is a request and, ``interval / 2`` later, a reply; an
    IPv6 repetition is one neighbour advertisement.
    """

    count: int = 5
    interval: float = 0.2

    def __post_init__(self) -> None:
        if self.count < 0:
            raise ValueError("ARP count must not be negative")
        if self.interval < 0:
            raise ValueError("ARP interval must not be negative")


# Heartbeat's defaults (docs/heartbeat.md#gratuitous-arp): IPaddr 10 x 500 ms, IPaddr2 5 x 200 ms.
IPADDR_ARP = ArpPolicy(count=10, interval=0.5)
IPADDR2_ARP = ArpPolicy(count=5, interval=0.2)


def parse_mac(text: str) -> bytes:
    parts = text.split(":")
    if len(parts) != 6:
        raise ValueError(f"not a MAC address: {text!r}")
    return bytes(int(p, 16) for p in parts)


def format_mac(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


def arp_frame(*, op: int, mac: bytes, address: ipaddress.IPv4Address) -> bytes:
    """One 42-byte gratuitous ARP Ethernet frame (request or reply) for ``address``."""
    if len(mac) != 6:
        raise ValueError("MAC address must be 6 bytes")
    if op not in (ARPOP_REQUEST, ARPOP_REPLY):
        raise ValueError(f"unknown ARP op {op}")
    ip = address.packed
    target_mac = ZERO_MAC if op == ARPOP_REQUEST else mac
    eth = BROADCAST_MAC + mac + struct.pack("!H", ETH_P_ARP)
    arp = struct.pack("!HHBBH", ARPHRD_ETHER, ETH_P_IP, 6, 4, op) + mac + ip + target_mac + ip
    return eth + arp


def neighbor_advertisement(*, mac: bytes, address: ipaddress.IPv6Address) -> bytes:
    """An unsolicited ICMPv6 Neighbor Advertisement body (checksum left 0 for the kernel)."""
    if len(mac) != 6:
        raise ValueError("MAC address must be 6 bytes")
    header = struct.pack("!BBHI", ICMPV6_NEIGHBOR_ADVERTISEMENT, 0, 0, NA_FLAG_OVERRIDE)
    option = struct.pack("!BB", ND_OPT_TARGET_LINKADDR, 1) + mac
    return header + address.packed + option


@dataclass(frozen=True, slots=True, kw_only=True)
class Announcement:
    """What to announce: ``address`` now lives at ``mac`` on ``ifname`` (index ``ifindex``)."""

    ifname: str
    ifindex: int
    mac: bytes
    address: ipaddress.IPv4Address | ipaddress.IPv6Address


class Announcer:
    """An open socket that announces one address; :meth:`first` then :meth:`rest`.

    :meth:`first` sends the very first packet, so that callers can do it right
    after the address is added; :meth:`rest` sends the remainder of the pattern
    and is meant to run in the background.
    """

    def __init__(self, sock: trio.socket.SocketType, what: Announcement, policy: ArpPolicy):
        self._sock = sock
        self.what = what
        self.policy = policy
        self.skipped = 0  # packets skipped for a transient error (TRANSIENT_SEND_ERRORS)

    @classmethod
    async def open(cls, what: Announcement, policy: ArpPolicy) -> Announcer:
        if isinstance(what.address, ipaddress.IPv4Address):
            # Protocol 0: a send-only packet socket. Binding one that also receives ARP
            # waits for the kernel (~16 ms measured), on the failover critical path.
            sock = trio.socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
            try:
                await sock.bind((what.ifname, 0))
            except BaseException:
                sock.close()
                raise
            return cls(sock, what, policy)
        sock = trio.socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
        try:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, 255)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, what.ifindex)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 0)
            # Send from the floating address itself (added with IFA_F_NODAD, so usable now).
            await sock.bind((str(what.address), 0, 0, what.ifindex))
        except BaseException:
            sock.close()
            raise
        return cls(sock, what, policy)

    def close(self) -> None:
        self._sock.close()

    async def _send(self, op: int) -> None:
        """One packet of the pattern; a transient failure is counted and skipped."""
        try:
            if isinstance(self.what.address, ipaddress.IPv4Address):
                await self._send_arp(op)
            else:
                await self._send_na()
        except OSError as exc:
            if exc.errno not in TRANSIENT_SEND_ERRORS:
                raise
            self.skipped += 1

    async def _send_arp(self, op: int) -> None:
        assert isinstance(self.what.address, ipaddress.IPv4Address)
        await self._sock.send(arp_frame(op=op, mac=self.what.mac, address=self.what.address))

    async def _send_na(self) -> None:
        assert isinstance(self.what.address, ipaddress.IPv6Address)
        packet = neighbor_advertisement(mac=self.what.mac, address=self.what.address)
        await self._sock.sendto(packet, (ALL_NODES, 0, 0, self.what.ifindex))

    async def first(self) -> None:
        """Send the first packet of the pattern (nothing when ``count`` is 0)."""
        if self.policy.count == 0:
            return
        await self._send(ARPOP_REQUEST)

    async def rest(self) -> None:
        """Send the rest of the pattern, sleeping with ``trio.sleep`` in between.

        A packet that fails for a transient reason is skipped and the series goes on;
        any other error (the interface is gone) ends it.
        """
        count, interval = self.policy.count, self.policy.interval
        if count == 0:
            return
        if isinstance(self.what.address, ipaddress.IPv4Address):
            for i in range(count):
                if i > 0:
                    await self._send(ARPOP_REQUEST)
                await trio.sleep(interval / 2)
                await self._send(ARPOP_REPLY)
                if i + 1 < count:
                    await trio.sleep(interval / 2)
        else:
            for _ in range(count - 1):
                await trio.sleep(interval)
                await self._send(ARPOP_REQUEST)
