"""pulse's rtnetlink client: exact request bytes, reply parsing, and its I/O bounds.

The expected requests and the kernel's replies are written out field by field with
``struct`` and the numbers from the kernel headers, not with the module's own
constants, so a wrong constant or layout in the module shows up here. The I/O
tests use a real ``NETLINK_ROUTE`` socket but change nothing: a link dump, and a
``NLMSG_NOOP`` request without ``NLM_F_ACK``, which the kernel never answers. The
last test checks the reason for all this: the daemon's imports leave pyroute2 out.
"""

from __future__ import annotations

import errno
import ipaddress
import struct
import subprocess
import sys
from contextlib import suppress

import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

from pulse.resources.netlink import (
    AddressRecord,
    Exchange,
    Link,
    MalformedReply,
    NetlinkError,
    RouteRecord,
    Rtnetlink,
    address_add_request,
    address_delete_request,
    address_dump_request,
    decode_address,
    decode_link,
    decode_route,
    link_dump_request,
    link_up_request,
    route_dump_request,
    split_messages,
)

V4 = ipaddress.IPv4Address
V6 = ipaddress.IPv6Address
AF_INET, AF_INET6 = 2, 10


def nlmsghdr(length: int, kind: int, flags: int, seq: int, port: int = 0) -> bytes:
    return struct.pack("=IHHII", length, kind, flags, seq, port)


def rta(kind: int, value: bytes) -> bytes:
    """An attribute written out: length (header + value), type, value, zero padding."""
    padding = b"\0" * (-len(value) % 4)
    return struct.pack("=HH", 4 + len(value), kind) + value + padding


def message(kind: int, seq: int, body: bytes, flags: int = 0) -> bytes:
    """A message as the kernel sends it: the length leaves out the padding to 4 bytes."""
    return nlmsghdr(16 + len(body), kind, flags, seq, 0) + body + b"\0" * (-len(body) % 4)


def ack(seq: int, code: int = 0) -> bytes:
    """NLMSG_ERROR with NETLINK_CAP_ACK: the errno, then the request's header only."""
    return message(2, seq, struct.pack("=i", code) + nlmsghdr(40, 20, 0x605, seq), flags=0x100)


def done(seq: int, code: int = 0) -> bytes:
    return message(3, seq, struct.pack("=i", code), flags=0x2)


# --------------------------------------------------------------------------- requests


def test_link_dump_request_bytes() -> None:
    expected = (
        nlmsghdr(40, 18, 0x301, 7)  # RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP (0x300)
        + struct.pack("=BxHiII", 0, 0, 0, 0, 0)  # ifinfomsg: AF_UNSPEC, everything zero
        + struct.pack("=HHI", 8, 29, 8)  # IFLA_EXT_MASK = RTEXT_FILTER_SKIP_STATS
    )
    assert link_dump_request(7) == expected


@pytest.mark.parametrize("family", [AF_INET, AF_INET6])
def test_address_dump_request_bytes(family: int) -> None:
    expected = (
        nlmsghdr(24, 22, 0x301, 8)  # RTM_GETADDR, request + dump
        + struct.pack("=BBBBI", family, 0, 0, 0, 0)  # ifaddrmsg: only the family
    )
    assert address_dump_request(8, family) == expected


@pytest.mark.parametrize("family", [AF_INET, AF_INET6])
def test_route_dump_request_bytes(family: int) -> None:
    expected = (
        nlmsghdr(28, 26, 0x301, 9)  # RTM_GETROUTE, request + dump
        + bytes([family, 0, 0, 0, 0, 0, 0, 0])  # rtmsg: family, dst_len ... type
        + struct.pack("=I", 0)  # rtm_flags
    )
    assert route_dump_request(9, family) == expected


def test_ipv4_address_add_request_with_broadcast_and_label() -> None:
    expected = (
        nlmsghdr(60, 20, 0x605, 3)  # RTM_NEWADDR; REQUEST|ACK|EXCL|CREATE = 1|4|0x200|0x400
        + struct.pack("=BBBBI", AF_INET, 24, 0, 0, 5)  # family, /24, flags, scope, ifindex
        + struct.pack("=HH", 8, 2) + bytes([198, 51, 100, 10])  # IFA_LOCAL
        + struct.pack("=HH", 8, 1) + bytes([198, 51, 100, 10])  # IFA_ADDRESS
        + struct.pack("=HH", 8, 4) + bytes([198, 51, 100, 255])  # IFA_BROADCAST
        + struct.pack("=HH", 11, 3) + b"eth0:0\0" + b"\0"  # IFA_LABEL, 7 bytes + 1 padding
    )  # fmt: skip
    request = address_add_request(
        3,
        index=5,
        address=V4("198.51.100.10"),
        prefixlen=24,
        broadcast=V4("198.51.100.255"),
        label="eth0:0",
    )
    assert request == expected


def test_ipv6_address_add_request_with_nodad() -> None:
    packed = bytes.fromhex("20010db8000000000000000000000010")
    expected = (
        nlmsghdr(64, 20, 0x605, 4)
        + struct.pack("=BBBBI", AF_INET6, 64, 0x02, 0, 3)  # ifa_flags = IFA_F_NODAD
        + struct.pack("=HH", 20, 2) + packed  # IFA_LOCAL
        + struct.pack("=HH", 20, 1) + packed  # IFA_ADDRESS
    )  # fmt: skip
    request = address_add_request(4, index=3, address=V6("2001:db8::10"), prefixlen=64, flags=2)
    assert request == expected


def test_address_flags_beyond_one_byte_are_refused() -> None:
    with pytest.raises(ValueError, match="ifa_flags"):
        address_add_request(1, index=1, address=V4("198.51.100.1"), prefixlen=24, flags=0x100)


def test_address_delete_request_bytes() -> None:
    expected = (
        nlmsghdr(40, 21, 0x005, 6)  # RTM_DELADDR, NLM_F_REQUEST | NLM_F_ACK
        + struct.pack("=BBBBI", AF_INET, 25, 0, 0, 2)
        + struct.pack("=HH", 8, 2) + bytes([198, 51, 100, 10])  # IFA_LOCAL
        + struct.pack("=HH", 8, 1) + bytes([198, 51, 100, 10])  # IFA_ADDRESS
    )  # fmt: skip
    assert address_delete_request(6, index=2, address=V4("198.51.100.10"), prefixlen=25) == expected


def test_link_up_request_bytes() -> None:
    expected = (
        nlmsghdr(32, 16, 0x005, 11)  # RTM_NEWLINK, request + ack
        + struct.pack("=BxHiII", 0, 0, 4, 0x1, 0x1)  # index 4: flags IFF_UP, change IFF_UP
    )
    assert link_up_request(11, 4) == expected


# --------------------------------------------------------------------------- replies


def link_record(seq: int, index: int, name: str, mac: bytes, *, flags: int = 0x1043) -> bytes:
    body = (
        struct.pack("=BxHiII", AF_INET6, 1, index, flags, 0)  # ARPHRD_ETHER
        + rta(4, struct.pack("=I", 1500))  # IFLA_MTU: not decoded
        + rta(3, name.encode() + b"\0")  # IFLA_IFNAME
        + rta(1, mac)  # IFLA_ADDRESS
        + rta(0x8000 | 43, rta(1, b"\0" * 4))  # a nested attribute (NLA_F_NESTED)
    )
    return message(16, seq, body, flags=0x2)


def address_record(seq: int, index: int, prefixlen: int, *attrs: bytes) -> bytes:
    return message(
        20, seq, struct.pack("=BBBBI", AF_INET, prefixlen, 0x80, 0, index) + b"".join(attrs)
    )


def test_a_dump_in_two_datagrams_ends_at_nlmsg_done() -> None:
    first = link_record(5, 1, "lo", b"\0" * 6, flags=0x49) + link_record(5, 2, "eth0", b"\2" * 6)
    exchange = Exchange(5)
    exchange.feed(first)
    assert not exchange.done
    exchange.feed(link_record(5, 3, "eth1", b"\3" * 6) + done(5))
    assert exchange.done
    assert not exchange.interrupted
    links = [decode_link(m) for m in exchange.records]
    assert [(x.index, x.name) for x in links] == [(1, "lo"), (2, "eth0"), (3, "eth1")]
    assert links[1] == Link(index=2, name="eth0", type=1, flags=0x1043, address=b"\2" * 6)


def test_messages_for_another_sequence_number_and_after_the_end_are_ignored() -> None:
    exchange = Exchange(9)
    exchange.feed(link_record(8, 1, "stale", b"\1" * 6) + ack(8, -errno.EEXIST))
    exchange.feed(message(1, 9, b"") + link_record(9, 2, "eth0", b"\2" * 6))  # NLMSG_NOOP
    exchange.feed(done(9) + link_record(9, 3, "late", b"\3" * 6))
    assert [decode_link(m).name for m in exchange.records] == ["eth0"]


def test_a_dump_flagged_inconsistent_is_reported() -> None:
    exchange = Exchange(2)
    exchange.feed(message(16, 2, link_record(2, 1, "lo", b"")[16:], flags=0x2 | 0x10) + done(2))
    assert exchange.interrupted


def test_an_ack_completes_a_change() -> None:
    exchange = Exchange(4)
    exchange.feed(ack(4))
    assert exchange.done
    assert exchange.records == []


def test_an_error_is_the_kernels_errno() -> None:
    exchange = Exchange(4)
    with pytest.raises(NetlinkError) as info:
        exchange.feed(ack(4, -errno.EEXIST))
    assert info.value.errno == errno.EEXIST
    assert info.value.strerror == "File exists"
    assert info.value.detail == ""
    assert isinstance(info.value, OSError)


def test_an_error_with_extended_ack_carries_the_kernels_explanation() -> None:
    text = b"Invalid prefix for given prefix length\0"
    capped = struct.pack("=i", -errno.EINVAL) + nlmsghdr(40, 20, 0x605, 4) + rta(1, text)
    uncapped = (  # without NETLINK_CAP_ACK the whole 28-byte request is echoed
        struct.pack("=i", -errno.EINVAL)
        + nlmsghdr(28, 20, 0x605, 4)
        + b"\xaa" * 12
        + rta(2, struct.pack("=I", 20))  # NLMSGERR_ATTR_OFFS: not used
        + rta(1, text)
    )
    for body, flags in ((capped, 0x100 | 0x200), (uncapped, 0x200)):
        with pytest.raises(NetlinkError) as info:
            Exchange(4).feed(message(2, 4, body, flags=flags))
        assert info.value.errno == errno.EINVAL
        assert info.value.detail == "Invalid prefix for given prefix length"
        assert info.value.strerror == "Invalid argument (Invalid prefix for given prefix length)"


def test_garbled_extended_ack_still_gives_the_errno() -> None:
    body = struct.pack("=i", -errno.EPERM) + nlmsghdr(40, 20, 0x605, 4) + b"\xff\xff\x01"
    with pytest.raises(NetlinkError) as info:
        Exchange(4).feed(message(2, 4, body, flags=0x100 | 0x200))
    assert (info.value.errno, info.value.detail) == (errno.EPERM, "")


def test_a_dump_can_end_with_an_error() -> None:
    with pytest.raises(NetlinkError) as info:
        Exchange(3).feed(done(3, -errno.EBUSY))
    assert info.value.errno == errno.EBUSY


def test_decode_address_prefers_the_local_address() -> None:
    peer = address_record(
        1,
        2,
        32,
        rta(1, bytes([203, 0, 113, 2])),  # IFA_ADDRESS: the peer of a point-to-point link
        rta(2, bytes([203, 0, 113, 1])),  # IFA_LOCAL: ours
        rta(3, b"eth0:7\0"),  # IFA_LABEL
    )
    [msg] = split_messages(peer)
    assert decode_address(msg) == AddressRecord(
        index=2, prefixlen=32, address=V4("203.0.113.1"), label="eth0:7"
    )


def test_decode_ipv6_address_without_local_or_label() -> None:
    body = struct.pack("=BBBBI", AF_INET6, 64, 0, 0, 3) + rta(
        1, bytes.fromhex("20010db8000000000000000000000010")
    )
    [msg] = split_messages(message(20, 1, body))
    assert decode_address(msg) == AddressRecord(
        index=3, prefixlen=64, address=V6("2001:db8::10"), label=None
    )


def test_decode_route_takes_the_32_bit_table_and_no_dst_is_a_default_route() -> None:
    body = (
        bytes([AF_INET, 0, 0, 0, 252, 3, 0, 1])  # family, dst_len 0, ..., table 252, type
        + struct.pack("=I", 0)
        + rta(15, struct.pack("=I", 1000))  # RTA_TABLE: beyond rtm_table's 8 bits
        + rta(5, bytes([198, 51, 100, 1]))  # RTA_GATEWAY
        + rta(4, struct.pack("=I", 2))  # RTA_OIF
        + rta(6, struct.pack("=I", 100))  # RTA_PRIORITY
    )
    [msg] = split_messages(message(24, 1, body))
    assert decode_route(msg) == RouteRecord(
        family=AF_INET,
        dst=None,
        dst_len=0,
        oif=2,
        gateway=V4("198.51.100.1"),
        table=1000,
        type=1,
        priority=100,
    )


def test_decode_connected_ipv6_route() -> None:
    body = (
        bytes([AF_INET6, 64, 0, 0, 254, 2, 0, 1])
        + struct.pack("=I", 0)
        + rta(1, bytes.fromhex("20010db8000000000000000000000000"))  # RTA_DST
        + rta(4, struct.pack("=I", 3))
    )
    [msg] = split_messages(message(24, 1, body))
    route = decode_route(msg)
    assert (route.dst, route.dst_len, route.oif, route.gateway) == (V6("2001:db8::"), 64, 3, None)
    assert (route.table, route.priority) == (254, 0)


# --------------------------------------------------------------------------- garbage


@pytest.mark.parametrize(
    ("datagram", "reason"),
    [
        (b"\x01\x02\x03", "3 stray bytes"),
        (nlmsghdr(0, 3, 0, 1), "message length 0"),  # would never advance
        (nlmsghdr(15, 3, 0, 1), "message length 15"),
        (nlmsghdr(64, 16, 2, 1) + b"\0" * 16, "message length 64 with 32 bytes left"),
        (done(1) + b"\0" * 5, "5 stray bytes"),
        (message(2, 1, b"\xff\xff"), "error message of 2 bytes"),
        (message(2, 1, struct.pack("=i", 5)), "error code 5"),
        (message(4, 1, b""), "overrun"),
    ],
)
def test_truncated_or_garbage_replies_are_malformed(datagram: bytes, reason: str) -> None:
    with pytest.raises(MalformedReply, match=reason) as info:
        Exchange(1).feed(datagram)
    assert info.value.errno == errno.EBADMSG


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (struct.pack("=BxHi", 0, 1, 2), "ifinfomsg of 8 bytes"),
        (struct.pack("=BxHiII", 0, 1, 2, 0, 0) + struct.pack("=HH", 40, 3) + b"eth0", "40"),
        (struct.pack("=BxHiII", 0, 1, 2, 0, 0) + struct.pack("=HH", 2, 3), "length 2"),
        (struct.pack("=BxHiII", 0, 1, 2, 0, 0) + b"\x08\x00", "2 stray bytes"),
    ],
)
def test_truncated_link_records_are_malformed(body: bytes, reason: str) -> None:
    [msg] = split_messages(message(16, 1, body))
    with pytest.raises(MalformedReply, match=reason):
        decode_link(msg)


def test_a_32_bit_attribute_of_the_wrong_size_is_malformed() -> None:
    body = bytes([AF_INET, 24, 0, 0, 254, 2, 0, 1]) + struct.pack("=I", 0) + rta(4, b"\1\0")
    [msg] = split_messages(message(24, 1, body))
    with pytest.raises(MalformedReply, match="32-bit attribute of 2 bytes"):
        decode_route(msg)


@given(st.binary(max_size=200))
def test_any_datagram_is_parsed_or_refused_cleanly(data: bytes) -> None:
    exchange = Exchange(1)
    with suppress(MalformedReply, NetlinkError):
        exchange.feed(data)
        for msg in exchange.records:
            for decode in (decode_link, decode_address, decode_route):
                decode(msg)


@given(st.binary(max_size=120), st.sampled_from([16, 20, 24]))
def test_any_record_body_is_decoded_or_refused_cleanly(body: bytes, kind: int) -> None:
    exchange = Exchange(1)
    exchange.feed(message(kind, 1, body, flags=0x2) + done(1))
    decode = {16: decode_link, 20: decode_address, 24: decode_route}[kind]
    with suppress(MalformedReply):
        decode(exchange.records[0])


# --------------------------------------------------------------------------- I/O


async def test_a_real_link_dump_lists_the_loopback_interface() -> None:
    with Rtnetlink() as nl:
        links = await nl.links()
    assert "lo" in {link.name for link in links}


async def test_an_unanswered_request_times_out_cleanly(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with Rtnetlink(timeout=5) as nl:
        # NLMSG_NOOP without NLM_F_ACK: the kernel accepts it and says nothing.
        with pytest.raises(TimeoutError) as info:
            await nl._ask(lambda seq: nlmsghdr(16, 1, 0x1, seq))
    assert trio.current_time() == 5.0
    assert info.value.strerror == "no netlink answer from the kernel within 5 s"


def test_the_daemon_does_not_import_pyroute2() -> None:
    """pyroute2 costs 8-12 MiB of resident memory; only the lab's tools may load it."""
    code = (
        "import sys\n"
        "import pulse.cli.run, pulse.daemon, pulse.resources.ipaddr\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'pyroute2'))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"
