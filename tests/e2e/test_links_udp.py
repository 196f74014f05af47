"""UDP links between network namespaces: bcast, ucast over two LANs, mcast.

Each node runs ``links_agent.py`` inside its namespace (sockets belong to the namespace
of the process that opens them) and the test drives it over JSON lines. Every test is
bounded by ``trio.fail_after``; UDP gives no delivery guarantee, so a packet that must
arrive is re-sent every half second until it does, within that bound.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio
from links_agent import Agent

from pulse.errors import TransportError
from pulse_lab.netns import Iface, Node, Topology

pytestmark = pytest.mark.netns

PORT = 694
FRAME = b">>>\nt=status\nsrc=a\n<<<\n"


def _payload(tag: str) -> bytes:
    return b"###\n" + tag.encode() + b"\n%%%\n"


async def _deliver(
    sender: Agent, link: int, receiver: Agent, data: bytes, on: str
) -> dict[str, Any]:
    """Send ``data`` on ``link`` until ``receiver`` got it on link name ``on``."""
    while True:
        await sender.send(link, data)
        with trio.move_on_after(0.5):
            return await receiver.expect(lambda d: d["data"] == data.hex() and d["link"] == on)


def _two_nodes(topo: Topology, lans: list[tuple[str, str, str]]) -> tuple[Node, Node, list[Iface]]:
    """Nodes a and b, each plugged into every (lan, subnet, ifname); a is .1, b is .2."""
    a, b = topo.add_node("a"), topo.add_node("b")
    ifaces = []
    for lan_name, subnet, ifname in lans:
        lan = topo.add_lan(lan_name, subnet)
        net = subnet.rsplit(".", 1)[0]
        ifaces.append(topo.connect(a, lan, ifname, f"{net}.1"))
        ifaces.append(topo.connect(b, lan, ifname, f"{net}.2"))
    return a, b, ifaces


async def test_bcast_from_one_node_arrives_at_the_other_attributed_to_eth0(
    topology: Topology,
) -> None:
    a, b, _ = _two_nodes(topology, [("lan0", "198.51.100.0/24", "eth0")])
    media = [{"kind": "bcast", "interface": "eth0", "port": PORT}]
    with trio.fail_after(20):
        async with (
            Agent.start(topology.exec_argv(a, []), media) as agent_a,
            Agent.start(topology.exec_argv(b, []), media) as agent_b,
        ):
            got = await _deliver(agent_a, 0, agent_b, FRAME, on="eth0")
            assert got["peer"].startswith("198.51.100.1:")
            stats = (await agent_a.stats())[0]
            assert stats["packets_sent"] >= 1
            assert stats["send_errors"] == 0
            # Its own broadcasts, which the kernel loops back, are dropped by the socket's
            # echo filter before they wake the link, and not counted as kernel drops.
            assert stats["packets_received"] == 0
            assert stats["kernel_drops"] == 0


async def test_a_burst_arrives_whole_and_in_order_and_the_sender_drops_its_own_echoes(
    topology: Topology,
) -> None:
    # One wake-up takes every datagram queued on the socket; none may be lost or
    # reordered on the way to the engine, and the sender's own broadcasts, which the
    # kernel loops back to it, are dropped before they wake it (transport/sockfilter.py).
    a, b, _ = _two_nodes(topology, [("lan0", "198.51.100.0/24", "eth0")])
    media = [{"kind": "bcast", "interface": "eth0", "port": PORT}]
    count = 100
    with trio.fail_after(20):
        async with (
            Agent.start(topology.exec_argv(a, []), media) as agent_a,
            Agent.start(topology.exec_argv(b, []), media) as agent_b,
        ):
            await _deliver(agent_a, 0, agent_b, FRAME, on="eth0")  # both are listening
            await agent_a.burst(0, b"burst", count)
            got = [await agent_b.expect(lambda d: d["data"].startswith(b"burst".hex()))]
            while len(got) < count:
                got.append(await agent_b.expect(lambda d: d["data"].startswith(b"burst".hex())))
            assert [bytes.fromhex(d["data"]) for d in got] == [
                b"burst %d" % i for i in range(count)
            ]
            # a's echoes, looped back by the kernel, are dropped by its receive socket's
            # filter: none reaches the link (not even as an echo recognised by its
            # bytes), and the kernel's count of them is not reported as drops.
            await agent_a.send(0, b"marker")
            got_marker = await agent_b.expect(lambda d: d["data"] == b"marker".hex())
            assert got_marker["peer"].startswith("198.51.100.1:")
            stats_a = (await agent_a.stats())[0]
            assert stats_a["echoes"] == 0 and stats_a["packets_received"] == 0
            assert stats_a["kernel_drops"] == 0
            assert agent_a.datagrams == []
            assert (await agent_b.stats())[0]["echoes"] == 0


async def test_ucast_over_two_lans_arrives_on_both_links_and_survives_a_cut(
    topology: Topology,
) -> None:
    a, b, ifaces = _two_nodes(
        topology,
        [("lan0", "198.51.100.0/24", "eth0"), ("lan1", "203.0.113.0/24", "eth1")],
    )
    a_eth1 = ifaces[2]
    media_a = [
        {"kind": "ucast", "interface": "eth0", "peer": "198.51.100.2", "port": PORT},
        {"kind": "ucast", "interface": "eth1", "peer": "203.0.113.2", "port": PORT},
    ]
    media_b = [
        {"kind": "ucast", "interface": "eth0", "peer": "198.51.100.1", "port": PORT},
        {"kind": "ucast", "interface": "eth1", "peer": "203.0.113.1", "port": PORT},
    ]
    with trio.fail_after(30):
        async with (
            Agent.start(topology.exec_argv(a, []), media_a) as agent_a,
            Agent.start(topology.exec_argv(b, []), media_b) as agent_b,
        ):
            got0 = await _deliver(agent_a, 0, agent_b, _payload("one"), on="eth0")
            got1 = await _deliver(agent_a, 1, agent_b, _payload("one"), on="eth1")
            assert got0["peer"].startswith("198.51.100.1:")
            assert got1["peer"].startswith("203.0.113.1:")
            # And the other way round.
            await _deliver(agent_b, 1, agent_a, _payload("back"), on="eth1")

            topology.link_down(a_eth1)
            before = (await agent_a.stats())[1]["send_errors"]
            for _ in range(3):
                await agent_a.send(1, _payload("cut"))
            stats = await agent_a.stats()
            assert stats[1]["send_errors"] >= before + 3
            assert stats[1]["last_error"]
            # The surviving link keeps delivering, from the same, still running agent.
            await _deliver(agent_a, 0, agent_b, _payload("two"), on="eth0")
            cut = _payload("cut").hex()
            assert not [d for d in agent_b.datagrams if d["data"] == cut]
            assert "ENETUNREACH" in stats[1]["last_error"] or "ENETDOWN" in stats[1]["last_error"]

            topology.link_up(a_eth1)
            await _deliver(agent_a, 1, agent_b, _payload("three"), on="eth1")


async def test_mcast_group_traffic_arrives_on_the_joined_interface(topology: Topology) -> None:
    a, b, _ = _two_nodes(topology, [("lan0", "198.51.100.0/24", "eth0")])
    media = [
        {
            "kind": "mcast",
            "interface": "eth0",
            "group": "239.0.0.1",
            "port": PORT,
            "ttl": 1,
            "loop": False,
        }
    ]
    with trio.fail_after(20):
        async with (
            Agent.start(topology.exec_argv(a, []), media) as agent_a,
            Agent.start(topology.exec_argv(b, []), media) as agent_b,
        ):
            got = await _deliver(agent_a, 0, agent_b, FRAME, on="eth0")
            assert got["peer"].startswith("198.51.100.1:")
            await _deliver(agent_b, 0, agent_a, _payload("reply"), on="eth0")


async def test_opening_a_link_on_a_missing_interface_names_the_interface(
    topology: Topology,
) -> None:
    a = topology.add_node("a")
    media = [{"kind": "bcast", "interface": "eth9", "port": PORT}]
    with trio.fail_after(20), pytest.raises(TransportError, match="interface eth9 does not exist"):
        async with Agent.start(topology.exec_argv(a, []), media):
            pass  # pragma: no cover - the agent must refuse to start


async def test_bcast_on_an_interface_without_address_counts_send_errors(
    topology: Topology,
) -> None:
    a = topology.add_node("a")
    topology.run(a, ["ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p"])
    topology.run(a, ["ip", "link", "set", "eth0p", "up"])
    topology.run(a, ["ip", "link", "set", "eth0", "up"])
    media = [{"kind": "bcast", "interface": "eth0", "port": PORT}]
    with trio.fail_after(20):
        async with Agent.start(topology.exec_argv(a, []), media) as agent:
            await agent.send(0, FRAME)
            stats = (await agent.stats())[0]
            assert stats["send_errors"] == 1
            assert "EADDRNOTAVAIL" in stats["last_error"]
            # An address appears later: heartbeats start flowing without a restart.
            topology.run(a, ["ip", "addr", "add", "203.0.113.9/24", "dev", "eth0"])
            await agent.send(0, FRAME)
            stats = (await agent.stats())[0]
            assert stats["packets_sent"] == 1


async def test_an_nft_partition_stops_delivery_until_it_is_lifted(topology: Topology) -> None:
    a, b, _ = _two_nodes(topology, [("lan0", "198.51.100.0/24", "eth0")])
    media = [{"kind": "bcast", "interface": "eth0", "port": PORT}]
    with trio.fail_after(20):
        async with (
            Agent.start(topology.exec_argv(a, []), media) as agent_a,
            Agent.start(topology.exec_argv(b, []), media) as agent_b,
        ):
            await _deliver(agent_a, 0, agent_b, _payload("before"), on="eth0")
            topology.nft(
                b,
                f"table inet partition {{\n chain in {{\n"
                f"  type filter hook input priority 0;\n  udp dport {PORT} drop\n }}\n}}\n",
            )
            for _ in range(5):
                await agent_a.send(0, _payload("during"))
            with trio.move_on_after(0.5):
                await agent_b.expect(lambda d: d["data"] == _payload("during").hex())
                pytest.fail("a packet crossed the partition")
            received = (await agent_b.stats())[0]["packets_received"]
            topology.run(b, ["nft", "delete", "table", "inet", "partition"])
            await _deliver(agent_a, 0, agent_b, _payload("after"), on="eth0")
            assert (await agent_b.stats())[0]["packets_received"] > received
