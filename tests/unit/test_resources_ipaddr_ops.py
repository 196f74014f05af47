"""The floating-IP agent's kernel operations, with the rtnetlink socket replaced.

``netlink_add``, ``netlink_remove``, ``netlink_present``, ``netlink_locate`` and
``read_routes`` open a :class:`~pulse.resources.netlink.Rtnetlink` each; here it
is a fake that holds links, addresses and routes in memory, records every change
asked of it and can refuse one with an errno. This covers the rules that the real
kernel rarely shows: EEXIST and EADDRNOTAVAIL tolerated, other refusals turned
into the sentence that is logged.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from collections.abc import Callable, Iterator
from functools import partial

import pytest
import trio

from pulse.resources import ipaddr as ipaddr_module
from pulse.resources.ipaddr import (
    AddPlan,
    NetlinkFailure,
    Route,
    _arp_mac,
    netlink_add,
    netlink_locate,
    netlink_present,
    netlink_remove,
    read_routes,
)
from pulse.resources.netlink import (
    AddressRecord,
    Link,
    NetlinkError,
    RouteRecord,
    address_add_request,
    address_delete_request,
    link_up_request,
)

V4 = ipaddress.IPv4Address
V6 = ipaddress.IPv6Address
MAC = bytes.fromhex("020000000002")
OPS: dict[Callable[..., bytes], str] = {
    address_add_request: "add",
    address_delete_request: "delete",
    link_up_request: "up",
}
LINKS = [
    Link(index=1, name="lo", type=772, flags=0x49, address=bytes(6)),
    Link(index=2, name="eth0", type=1, flags=0x1003, address=MAC),
    Link(index=3, name="eth1", type=1, flags=0x1003, address=bytes.fromhex("020000000003")),
]


class FakeSocket:
    """What the kernel holds, shared by every "socket" a test opens."""

    def __init__(self) -> None:
        self.held = [
            AddressRecord(index=2, prefixlen=24, address=V4("198.51.100.1"), label="eth0"),
            AddressRecord(index=2, prefixlen=24, address=V4("198.51.100.5"), label="eth0:0"),
            AddressRecord(index=3, prefixlen=24, address=V4("203.0.113.1"), label="eth1:1"),
        ]
        self.table: list[RouteRecord] = []
        self.changes: list[tuple[object, ...]] = []
        self.refuse: dict[str, int] = {}  # operation -> errno
        self.on_change: Callable[[], object] | None = None
        self.open = 0

    def __call__(self) -> FakeSocket:
        self.open += 1
        return self

    def __enter__(self) -> FakeSocket:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.open -= 1

    async def _change(self, op: str, *args: object) -> None:
        self.changes.append((op, *args))
        if self.on_change is not None:
            self.on_change()
        await trio.lowlevel.checkpoint()
        if op in self.refuse:
            raise NetlinkError(self.refuse[op])

    async def links(self) -> list[Link]:
        await trio.lowlevel.checkpoint()
        return list(LINKS)

    async def addresses(self, family: int) -> list[AddressRecord]:
        await trio.lowlevel.checkpoint()
        version = 4 if family == socket.AF_INET else 6
        return [a for a in self.held if a.address and a.address.version == version]

    async def routes(self, family: int) -> list[RouteRecord]:
        await trio.lowlevel.checkpoint()
        return [r for r in self.table if r.family == family]

    async def change(self, request: partial[bytes]) -> None:
        """Record ("add", index, address, prefixlen, {other fields}), ("delete", index,
        address, prefixlen) or ("up", index), after checking that the request builds."""
        assert isinstance(request(1), bytes)
        op = OPS[request.func]
        fields = dict(request.keywords)
        if op == "up":
            await self._change(op, fields["index"])
            return
        key = (fields.pop("index"), fields.pop("address"), fields.pop("prefixlen"))
        await self._change(op, *key, *([fields] if op == "add" else []))


@pytest.fixture
def kernel(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSocket]:
    fake = FakeSocket()
    monkeypatch.setattr(ipaddr_module, "Rtnetlink", fake)
    yield fake
    assert fake.open == 0  # every socket was closed


def plan(address: str, interface: str = "eth0", **kw: object) -> AddPlan:
    fields: dict[str, object] = {"prefixlen": 24, "broadcast": None, "label": None, "alias": True}
    fields.update(kw)
    return AddPlan(address=ipaddress.ip_address(address), interface=interface, **fields)  # type: ignore[arg-type]


async def test_ipaddr_takes_the_first_alias_label_free_on_its_interface(kernel: FakeSocket) -> None:
    broadcast = V4("198.51.100.255")
    outcome = await netlink_add(plan("198.51.100.10", broadcast=broadcast))
    assert kernel.changes == [
        (
            "add",
            2,
            V4("198.51.100.10"),
            24,
            {"broadcast": broadcast, "label": "eth0:1", "flags": 0},
        ),
        ("up", 2),
    ]
    assert (outcome.added, outcome.interface, outcome.ifindex) == (True, "eth0", 2)
    assert (outcome.label, outcome.mac) == ("eth0:1", MAC)


async def test_ipaddr2_without_a_label_adds_none(kernel: FakeSocket) -> None:
    await netlink_add(plan("198.51.100.10", alias=False))
    assert kernel.changes[0][-1] == {"broadcast": None, "label": None, "flags": 0}


async def test_ipv6_is_added_without_duplicate_address_detection(kernel: FakeSocket) -> None:
    outcome = await netlink_add(plan("2001:db8::10", prefixlen=64, label="eth0:x"))
    assert kernel.changes == [
        ("add", 2, V6("2001:db8::10"), 64, {"broadcast": None, "label": None, "flags": 0x02}),
        ("up", 2),
    ]
    assert outcome.added


async def test_an_address_present_anywhere_is_not_added_again(kernel: FakeSocket) -> None:
    outcome = await netlink_add(plan("203.0.113.1"))
    assert kernel.changes == []
    assert (outcome.added, outcome.interface, outcome.label) == (False, "eth1", "eth1:1")
    assert await netlink_locate(V4("203.0.113.1")) == outcome
    assert await netlink_locate(V4("203.0.113.9")) is None


async def test_eexist_from_the_kernel_is_success(kernel: FakeSocket) -> None:
    kernel.refuse["add"] = errno.EEXIST
    outcome = await netlink_add(plan("198.51.100.10"))
    assert outcome.added
    assert kernel.changes[-1] == ("up", 2)


async def test_a_refused_add_is_a_sentence(kernel: FakeSocket) -> None:
    kernel.refuse["add"] = errno.EPERM
    with pytest.raises(NetlinkFailure) as info:
        await netlink_add(plan("198.51.100.10"))
    assert str(info.value) == "cannot add 198.51.100.10/24 to eth0: Operation not permitted"
    assert [c[0] for c in kernel.changes] == ["add"]


async def test_a_refused_link_up_is_a_sentence(kernel: FakeSocket) -> None:
    kernel.refuse["up"] = errno.ENODEV
    with pytest.raises(NetlinkFailure) as info:
        await netlink_add(plan("198.51.100.10"))
    assert str(info.value) == "cannot bring eth0 up: No such device"


async def test_a_missing_interface_is_a_sentence(kernel: FakeSocket) -> None:
    with pytest.raises(NetlinkFailure) as info:
        await netlink_add(plan("198.51.100.10", interface="eth9"))
    assert str(info.value) == "interface eth9 does not exist"
    assert kernel.changes == []


async def test_remove_deletes_every_copy_and_tolerates_vanished_ones(kernel: FakeSocket) -> None:
    kernel.held.append(
        AddressRecord(index=3, prefixlen=32, address=V4("198.51.100.5"), label="eth1")
    )
    assert await netlink_present(V4("198.51.100.5"))
    assert await netlink_remove(V4("198.51.100.5")) == ["eth0", "eth1"]
    assert kernel.changes == [
        ("delete", 2, V4("198.51.100.5"), 24),
        ("delete", 3, V4("198.51.100.5"), 32),
    ]
    kernel.refuse["delete"] = errno.EADDRNOTAVAIL
    assert await netlink_remove(V4("198.51.100.5")) == []
    kernel.refuse["delete"] = errno.EPERM
    with pytest.raises(NetlinkFailure) as info:
        await netlink_remove(V4("198.51.100.5"))
    assert str(info.value) == "cannot remove 198.51.100.5: Operation not permitted"


async def test_a_cancelled_add_still_sets_the_link_up(kernel: FakeSocket) -> None:
    with trio.CancelScope() as scope:
        kernel.on_change = scope.cancel  # cancelled while the address is being added
        await netlink_add(plan("198.51.100.10"))
    assert scope.cancel_called
    assert [c[0] for c in kernel.changes] == ["add", "up"]


async def test_a_cancelled_remove_still_deletes_every_copy(kernel: FakeSocket) -> None:
    kernel.held.append(AddressRecord(index=3, prefixlen=24, address=V4("198.51.100.5"), label=None))
    with trio.CancelScope() as scope:
        kernel.on_change = scope.cancel
        await netlink_remove(V4("198.51.100.5"))
    assert scope.cancel_called
    assert [c[:2] for c in kernel.changes] == [("delete", 2), ("delete", 3)]


async def test_remove_of_an_absent_address_changes_nothing(kernel: FakeSocket) -> None:
    assert not await netlink_present(V4("198.51.100.99"))
    assert await netlink_remove(V4("198.51.100.99")) == []
    assert kernel.changes == []


def ipv4_route(**fields: object) -> RouteRecord:
    """A main-table unicast IPv4 route; ``fields`` replace the defaults."""
    defaults = {"dst": None, "dst_len": 0, "oif": None, "gateway": None, "priority": 0}
    return RouteRecord(family=socket.AF_INET, table=254, type=1, **(defaults | fields))  # type: ignore[arg-type]


async def test_read_routes_names_interfaces_and_keeps_the_family(kernel: FakeSocket) -> None:
    kernel.table = [
        ipv4_route(oif=2, gateway=V4("198.51.100.254")),  # the default route
        ipv4_route(dst=V4("198.51.100.0"), dst_len=24, oif=7, priority=100),  # oif unknown
    ]
    assert await read_routes(socket.AF_INET) == [
        Route(network=ipaddress.ip_network("0.0.0.0/0"), ifname="eth0", gateway="198.51.100.254"),
        Route(network=ipaddress.ip_network("198.51.100.0/24"), ifname=None, metric=100),
    ]
    assert await read_routes(socket.AF_INET6) == []


@pytest.mark.parametrize(
    ("link", "mac"),
    [
        (LINKS[1], MAC),
        (LINKS[0], None),  # loopback
        (Link(index=4, name="gre0", type=778, flags=0x1003, address=b"\1\2\3\4"), None),
        (Link(index=5, name="eth5", type=1, flags=0x1083, address=MAC), None),  # NOARP
        (Link(index=6, name="eth6", type=1, flags=0x1003, address=bytes(6)), None),
        (Link(index=7, name="eth7", type=1, flags=0x1003, address=b""), None),
    ],
)
def test_arp_only_on_ethernet_links_with_a_mac(link: Link, mac: bytes | None) -> None:
    assert _arp_mac(link) == mac
