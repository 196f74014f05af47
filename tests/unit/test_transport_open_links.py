"""open_links: how ha.cf media become links (no sockets are opened here)."""

from __future__ import annotations

import errno
import logging
import socket

import pytest
import trio

from pulse.config.model import (
    AuthKey,
    AuthKeys,
    AuthMethod,
    BcastMedium,
    Config,
    McastMedium,
    Medium,
    PingGroupMedium,
    PingMedium,
    SerialMedium,
    Timing,
    UcastMedium,
)
from pulse.transport import (
    BcastLink,
    Link,
    McastLink,
    PingLink,
    SerialLink,
    UcastLink,
    open_links,
)
from pulse.transport._link import Counters
from pulse.transport.udp import interface_broadcast

AUTH = AuthKeys(outbound=1, keys=(AuthKey(index=1, method=AuthMethod.CRC, key=None),))


def _config(*media: Medium, keepalive: int = 1000) -> Config:
    return Config(nodes=("a", "b"), media=media, auth=AUTH, timing=Timing(keepalive=keepalive))


def test_ucast_lines_on_the_same_interface_and_port_share_one_link() -> None:
    links = open_links(
        _config(
            UcastMedium(interface="eth0", peer="198.51.100.2"),
            UcastMedium(interface="eth0", peer="198.51.100.3"),
            UcastMedium(interface="eth0", peer="198.51.100.2"),
            UcastMedium(interface="eth1", peer="203.0.113.2"),
        )
    )
    assert [type(link) for link in links] == [UcastLink, UcastLink]
    first, second = links
    assert isinstance(first, UcastLink) and isinstance(second, UcastLink)
    assert first.peers == ("198.51.100.2", "198.51.100.3")
    assert (second.name, second.peers) == ("eth1", ("203.0.113.2",))


def test_media_of_different_kinds_on_one_interface_are_separate_links_in_config_order() -> None:
    links = open_links(
        _config(
            BcastMedium(interface="eth0"),
            SerialMedium(device="/dev/ttyS0", baud=38400),
            UcastMedium(interface="eth0", peer="198.51.100.2"),
            McastMedium(interface="eth0", group="239.0.0.1", port=694, ttl=2, loop=True),
            BcastMedium(interface="eth0"),
        )
    )
    assert [type(link) for link in links] == [BcastLink, SerialLink, UcastLink, McastLink]
    assert [link.name for link in links] == ["eth0", "/dev/ttyS0", "eth0", "eth0"]
    serial, mcast = links[1], links[3]
    assert isinstance(serial, SerialLink) and isinstance(mcast, McastLink)
    assert (serial.baud, serial.rtscts) == (38400, False)
    assert (mcast.group, mcast.ttl, mcast.loop) == ("239.0.0.1", 2, True)


def test_bcast_on_two_ports_of_one_interface_are_two_links() -> None:
    links = open_links(
        _config(BcastMedium(interface="eth0", port=694), BcastMedium(interface="eth0", port=695))
    )
    assert [link.port for link in links if isinstance(link, BcastLink)] == [694, 695]


def test_each_ping_host_and_ping_group_is_an_icmp_link_named_after_its_node() -> None:
    links = open_links(
        _config(
            PingMedium(host="198.51.100.254"),
            BcastMedium(interface="eth0"),
            PingGroupMedium(group="routers", hosts=("198.51.100.253", "198.51.100.252")),
            PingMedium(host="2001:db8::1", ipv6=True),
            PingMedium(host="198.51.100.254"),
            keepalive=500,
        )
    )
    assert [type(link) for link in links] == [BcastLink, PingLink, PingLink, PingLink]
    pings = [link for link in links if isinstance(link, PingLink)]
    assert [(p.name, p.hosts, p.info, p.ipv6) for p in pings] == [
        ("198.51.100.254", ("198.51.100.254",), "ping", False),
        ("routers", ("198.51.100.253", "198.51.100.252"), "ping_group", False),
        ("2001:db8::1", ("2001:db8::1",), "ping6", True),
    ]
    assert {p.interval for p in pings} == {0.5}
    assert [p.describe() for p in pings] == [
        "ping 198.51.100.254",
        "ping_group routers 198.51.100.253 198.51.100.252",
        "ping6 2001:db8::1",
    ]


def test_only_serial_links_demand_the_classic_encoding() -> None:
    links: list[Link] = open_links(
        _config(BcastMedium(interface="eth0"), SerialMedium(device="/dev/ttyS1"))
    )
    assert [link.classic_only for link in links] == [False, True]


def test_serial_write_timeout_follows_keepalive_unless_given() -> None:
    media = SerialMedium(device="/dev/ttyS0")
    (by_keepalive,) = open_links(_config(media, keepalive=2000))
    (explicit,) = open_links(_config(media), serial_write_timeout=0.25, rtscts=True)
    assert isinstance(by_keepalive, SerialLink) and isinstance(explicit, SerialLink)
    assert by_keepalive.write_timeout == 2.0
    assert (explicit.write_timeout, explicit.rtscts) == (0.25, True)


def test_a_multicast_link_refuses_a_unicast_group() -> None:
    with pytest.raises(ValueError, match="not an IPv4 multicast group"):
        McastLink(interface="eth0", group="198.51.100.1", port=694)


async def test_sending_before_the_link_runs_is_counted_not_raised() -> None:
    link = BcastLink(interface="eth0", port=694)
    await link.send(b">>>\n<<<\n")
    stats = link.statistics()
    assert (stats.packets_sent, stats.send_errors, stats.last_error) == (0, 1, "not open")


async def test_serial_send_before_open_drops_the_frame_and_counts_it() -> None:
    link = SerialLink(device="/dev/ttyS9")
    await link.send(b">>>\nt=status\n<<<\n\0")
    assert link.statistics().send_errors == 1


def test_loopback_broadcast_address_is_derived_when_unset() -> None:
    # lo has 127.0.0.1/8 and no broadcast address: it is derived from the netmask.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        assert interface_broadcast(sock.fileno(), "lo") == "127.255.255.255"


async def test_repeated_link_errors_are_logged_once_a_minute_with_a_suppressed_count(
    autojump_clock: object, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="pulse.transport")
    counters = Counters("eth1")
    for _ in range(30):  # one failed heartbeat per second for 30 s: one log line
        counters.send_error("send to 198.51.100.2:694 failed: ENETUNREACH")
        counters.note("something else")  # another text does not reset the limit
        await trio.sleep(1)
    assert trio.current_time() == 30
    await trio.sleep(30)
    counters.send_error("send to 198.51.100.2:694 failed: ENETUNREACH")
    lines = [r.getMessage() for r in caplog.records if "ENETUNREACH" in r.getMessage()]
    assert lines == [
        "link eth1: send to 198.51.100.2:694 failed: ENETUNREACH",
        "link eth1: send to 198.51.100.2:694 failed: ENETUNREACH (29 similar suppressed)",
    ]
    assert counters.snapshot().send_errors == 31


async def test_only_an_interface_that_is_down_marks_a_link_failing() -> None:
    counters = Counters("eth0")
    counters.send_error("send to 198.51.100.255:694 failed: EPERM", error=errno.EPERM)
    counters.send_error("send would block; dropped")
    assert counters.snapshot().failing_since is None, "a firewall or a full buffer is not"
    counters.send_error("send failed: ENETUNREACH", error=errno.ENETUNREACH)
    first = counters.snapshot().failing_since
    assert first is not None
    counters.send_error("send failed: ENETUNREACH", error=errno.ENETUNREACH)
    assert counters.snapshot().failing_since == first, "counted from the first failure"
    counters.sent(100)
    assert counters.snapshot().failing_since is None
