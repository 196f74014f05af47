"""FloatingIP's trio behaviour with the kernel replaced by small fakes.

The netlink functions and the announcer socket are swapped for in-memory async
fakes (``monkeypatch`` on the module), so the timing of announcements can be checked
in virtual time: the first packet leaves before ``start()`` returns, the rest
follow in the background, and ``stop()`` cuts them short.
"""

from __future__ import annotations

import ipaddress

import pytest
import trio
import trio.testing

from pulse.config.model import AuthKeys, Config, ResourceSpec
from pulse.resources import FloatingIP, ResourceError, make_agent
from pulse.resources import ipaddr as ipaddr_module
from pulse.resources.arp import Announcement, Announcer, ArpPolicy
from pulse.resources.ipaddr import AddOutcome, AddPlan, Route

MAC = bytes.fromhex("020000000001")


class FakeKernel:
    def __init__(self, *, mac: bytes | None = MAC) -> None:
        self.addresses: dict[str, AddPlan] = {}
        self.mac = mac
        self.routes = [Route(network=ipaddress.ip_network("198.51.100.0/24"), ifname="eth0")]

    async def read_routes(self, family: int) -> list[Route]:
        await trio.lowlevel.checkpoint()
        return list(self.routes)

    async def add(self, plan: AddPlan) -> AddOutcome:
        await trio.lowlevel.checkpoint()
        key = str(plan.address)
        added = key not in self.addresses
        self.addresses.setdefault(key, plan)
        return AddOutcome(
            added=added,
            interface=plan.interface,
            ifindex=2,
            label=plan.label,
            mac=self.mac if added else None,
        )

    async def remove(self, address: object) -> list[str]:
        await trio.lowlevel.checkpoint()
        plan = self.addresses.pop(str(address), None)
        return [plan.interface] if plan else []

    async def present(self, address: object) -> bool:
        await trio.lowlevel.checkpoint()
        return str(address) in self.addresses


class Wire:
    def __init__(self) -> None:
        self.sent: list[float] = []
        self.closed = False

    async def send(self, data: bytes) -> int:
        self.sent.append(trio.current_time())
        await trio.lowlevel.checkpoint()
        return len(data)

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def kernel(monkeypatch: pytest.MonkeyPatch) -> tuple[FakeKernel, Wire]:
    k, wire = FakeKernel(), Wire()
    monkeypatch.setattr(ipaddr_module, "read_routes", k.read_routes)
    monkeypatch.setattr(ipaddr_module, "netlink_add", k.add)
    monkeypatch.setattr(ipaddr_module, "netlink_remove", k.remove)
    monkeypatch.setattr(ipaddr_module, "netlink_present", k.present)

    async def open_announcer(what: Announcement, policy: ArpPolicy) -> Announcer:
        return Announcer(wire, what, policy)  # type: ignore[arg-type]

    monkeypatch.setattr(Announcer, "open", staticmethod(open_announcer))
    return k, wire


def floating(word: str) -> FloatingIP:
    config = Config(nodes=(), media=(), auth=AuthKeys(outbound=1, keys=()))
    agent = make_agent(ResourceSpec(raw=word, agent=word.split("::")[0], args=()), config)
    assert isinstance(agent, FloatingIP)
    return agent


async def test_start_returns_after_the_first_packet_and_the_rest_follow(
    kernel: tuple[FakeKernel, Wire], autojump_clock: trio.testing.MockClock
) -> None:
    k, wire = kernel
    agent = floating("IPaddr::198.51.100.10")
    await agent.start()
    assert trio.current_time() == 0.0
    assert wire.sent == [0.0]
    assert k.addresses["198.51.100.10"].label is None  # the fake leaves alias choice to netlink
    assert k.addresses["198.51.100.10"].alias is True
    assert k.addresses["198.51.100.10"].prefixlen == 24
    await agent.wait_announced()
    assert len(wire.sent) == 20
    assert wire.sent[-1] == pytest.approx(4.75)
    assert wire.closed


async def test_stop_cancels_the_remaining_announcements(
    kernel: tuple[FakeKernel, Wire], autojump_clock: trio.testing.MockClock
) -> None:
    k, wire = kernel
    agent = floating("IPaddr2::198.51.100.10/24/eth0")
    await agent.start()
    await trio.sleep(0.35)
    await agent.stop()
    await agent.wait_announced()
    sent_before_stop = len(wire.sent)
    await trio.sleep(5)
    assert len(wire.sent) == sent_before_stop == 4  # t = 0, 0.1, 0.2, 0.3
    assert wire.closed
    assert k.addresses == {}
    assert await agent.status() is False


async def test_address_already_present_is_success_without_announcing(
    kernel: tuple[FakeKernel, Wire], autojump_clock: trio.testing.MockClock
) -> None:
    _, wire = kernel
    agent = floating("IPaddr2::198.51.100.10/24/eth0")
    await agent.start()
    await agent.wait_announced()
    wire.sent.clear()
    await agent.start()
    assert wire.sent == []
    assert await agent.status() is True


async def test_link_without_arp_gets_no_announcement(
    kernel: tuple[FakeKernel, Wire], autojump_clock: trio.testing.MockClock
) -> None:
    k, wire = kernel
    k.mac = None
    agent = floating("IPaddr2::198.51.100.10/32/lo")
    await agent.start()
    await agent.wait_announced()
    assert wire.sent == []


async def test_findif_failure_is_a_resource_error_with_heartbeats_hint(
    kernel: tuple[FakeKernel, Wire],
) -> None:
    agent = floating("IPaddr::203.0.113.10")
    with pytest.raises(ResourceError) as info:
        await agent.start()
    assert info.value.reason == (
        "cannot find an interface for 203.0.113.10: add /CIDR/IFACE, e.g. 203.0.113.10/24/eth0"
    )
    assert info.value.resource == "IPaddr::203.0.113.10"


async def test_netlink_failures_are_resource_errors_with_a_sentence(
    kernel: tuple[FakeKernel, Wire], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def silent(*args: object) -> None:
        raise TimeoutError(110, "no netlink answer from the kernel within 5 s")

    async def refused(plan: AddPlan) -> AddOutcome:
        raise ipaddr_module.NetlinkFailure("cannot add 198.51.100.10/24 to eth0: File exists")

    monkeypatch.setattr(ipaddr_module, "read_routes", silent)
    monkeypatch.setattr(ipaddr_module, "netlink_present", silent)
    monkeypatch.setattr(ipaddr_module, "netlink_add", refused)
    with pytest.raises(ResourceError) as info:
        await floating("IPaddr::198.51.100.10").start()  # findif needs the routes
    assert info.value.reason == "netlink: no netlink answer from the kernel within 5 s"
    with pytest.raises(ResourceError) as info:
        await floating("IPaddr2::198.51.100.10/24/eth0").start()
    assert info.value.reason == "cannot add 198.51.100.10/24 to eth0: File exists"
    with pytest.raises(ResourceError) as info:
        await floating("IPaddr2::198.51.100.10/24/eth0").status()
    assert info.value.reason == "netlink: no netlink answer from the kernel within 5 s"
