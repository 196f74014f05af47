"""Gratuitous ARP / unsolicited NA frames and their timing (docs/heartbeat.md#gratuitous-arp)."""

from __future__ import annotations

import errno
import ipaddress
import struct

import pytest
import trio
import trio.testing

from pulse.resources.arp import (
    IPADDR2_ARP,
    IPADDR_ARP,
    Announcement,
    Announcer,
    ArpPolicy,
    arp_frame,
    format_mac,
    neighbor_advertisement,
    parse_mac,
)

MAC = parse_mac("02:00:5e:10:00:01")
VIP = ipaddress.IPv4Address("198.51.100.10")
VIP6 = ipaddress.IPv6Address("2001:db8::10")


def test_arp_request_is_a_broadcast_with_zero_target_mac() -> None:
    frame = arp_frame(op=1, mac=MAC, address=VIP)
    assert len(frame) == 42
    assert frame[0:6] == b"\xff" * 6
    assert frame[6:12] == MAC
    assert frame[12:14] == b"\x08\x06"
    htype, ptype, hlen, plen, op = struct.unpack("!HHBBH", frame[14:22])
    assert (htype, ptype, hlen, plen, op) == (1, 0x0800, 6, 4, 1)
    assert frame[22:28] == MAC  # sender MAC
    assert frame[28:32] == VIP.packed  # sender IP
    assert frame[32:38] == b"\x00" * 6  # target MAC
    assert frame[38:42] == VIP.packed  # target IP = sender IP


def test_arp_reply_names_our_own_mac_as_target() -> None:
    frame = arp_frame(op=2, mac=MAC, address=VIP)
    assert frame[0:6] == b"\xff" * 6
    assert struct.unpack("!H", frame[20:22]) == (2,)
    assert frame[32:38] == MAC
    assert frame[28:32] == frame[38:42] == VIP.packed


def test_neighbor_advertisement_overrides_and_carries_our_mac() -> None:
    packet = neighbor_advertisement(mac=MAC, address=VIP6)
    assert len(packet) == 32
    assert packet[0] == 136 and packet[1] == 0
    assert packet[2:4] == b"\x00\x00"  # the kernel computes the checksum
    flags = struct.unpack("!I", packet[4:8])[0]
    assert flags == 0x20000000  # Override, not Solicited, not Router
    assert packet[8:24] == VIP6.packed
    assert packet[24:26] == b"\x02\x01"  # target link-layer address option, 8 bytes
    assert packet[26:32] == MAC


def test_mac_round_trip_and_bad_input() -> None:
    assert format_mac(MAC) == "02:00:5e:10:00:01"
    with pytest.raises(ValueError):
        parse_mac("02:00:5e")
    with pytest.raises(ValueError):
        arp_frame(op=3, mac=MAC, address=VIP)


def test_heartbeat_defaults() -> None:
    assert (IPADDR_ARP.count, IPADDR_ARP.interval) == (10, 0.5)
    assert (IPADDR2_ARP.count, IPADDR2_ARP.interval) == (5, 0.2)
    with pytest.raises(ValueError):
        ArpPolicy(count=-1)


class RecordingSocket:
    """Stands in for a trio socket: records (virtual time, packet, destination)."""

    def __init__(self) -> None:
        self.sent: list[tuple[float, bytes, object]] = []
        self.closed = False

    async def send(self, data: bytes) -> int:
        self.sent.append((trio.current_time(), data, None))
        await trio.lowlevel.checkpoint()
        return len(data)

    async def sendto(self, data: bytes, address: object) -> int:
        self.sent.append((trio.current_time(), data, address))
        await trio.lowlevel.checkpoint()
        return len(data)

    def close(self) -> None:
        self.closed = True


def announcer(address: ipaddress.IPv4Address | ipaddress.IPv6Address, policy: ArpPolicy):  # type: ignore[no-untyped-def]
    sock = RecordingSocket()
    what = Announcement(ifname="eth0", ifindex=2, mac=MAC, address=address)
    return sock, Announcer(sock, what, policy)  # type: ignore[arg-type]


async def test_ipaddr2_pattern_request_then_reply_every_200ms(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sock, ann = announcer(VIP, IPADDR2_ARP)
    await ann.first()
    await ann.rest()
    times = [round(t, 6) for t, _, _ in sock.sent]
    ops = [struct.unpack("!H", data[20:22])[0] for _, data, _ in sock.sent]
    assert times == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
    assert ops == [1, 2] * 5
    assert trio.current_time() == pytest.approx(0.9)


async def test_ipaddr_pattern_is_twenty_packets_over_four_and_three_quarter_seconds(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sock, ann = announcer(VIP, IPADDR_ARP)
    await ann.first()
    await ann.rest()
    assert len(sock.sent) == 20
    assert sock.sent[-1][0] == pytest.approx(4.75)


async def test_ipv6_sends_one_advertisement_per_interval_to_all_nodes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sock, ann = announcer(VIP6, ArpPolicy(count=3, interval=1.0))
    await ann.first()
    await ann.rest()
    assert [t for t, _, _ in sock.sent] == [0.0, 1.0, 2.0]
    assert {dest for _, _, dest in sock.sent} == {("ff02::1", 0, 0, 2)}


async def test_zero_count_sends_nothing(autojump_clock: trio.testing.MockClock) -> None:
    sock, ann = announcer(VIP, ArpPolicy(count=0))
    await ann.first()
    await ann.rest()
    assert sock.sent == []


class FlakySocket(RecordingSocket):
    """The device queue is full for the 2nd and 3rd packet (ENOBUFS), then fine."""

    async def send(self, data: bytes) -> int:
        if len(self.sent) + self.failures in (1, 2):
            self.failures += 1
            raise OSError(errno.ENOBUFS, "No buffer space available")
        return await super().send(data)

    failures = 0


async def test_a_transient_send_error_skips_one_packet_and_the_series_goes_on(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sock = FlakySocket()
    what = Announcement(ifname="eth0", ifindex=2, mac=MAC, address=VIP)
    ann = Announcer(sock, what, IPADDR2_ARP)  # type: ignore[arg-type]
    await ann.first()
    await ann.rest()
    assert ann.skipped == 2
    assert len(sock.sent) == 8  # 10 in the pattern, 2 skipped
    assert sock.sent[-1][0] == pytest.approx(0.9)


async def test_an_interface_that_is_gone_ends_the_series(
    autojump_clock: trio.testing.MockClock,
) -> None:
    class GoneSocket(RecordingSocket):
        async def send(self, data: bytes) -> int:
            if self.sent:
                raise OSError(errno.ENXIO, "No such device or address")
            return await super().send(data)

    sock = GoneSocket()
    what = Announcement(ifname="eth0", ifindex=2, mac=MAC, address=VIP)
    ann = Announcer(sock, what, IPADDR2_ARP)  # type: ignore[arg-type]
    await ann.first()
    with pytest.raises(OSError):
        await ann.rest()
    assert len(sock.sent) == 1
