"""pulse's rtnetlink client against a real kernel, inside network namespaces.

Each operation runs ``netlink_probe.py`` inside a node (sockets belong to the
namespace of the process). What our client did is checked twice, with ``ip -o addr``
and with pyroute2, which stays a test-time oracle although the daemon no longer
imports it; the dumps (links, many addresses, routes of several tables) must match
pyroute2's exactly.
"""

from __future__ import annotations

import errno
import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from pulse_lab.netns import Node, Topology

pytestmark = pytest.mark.netns

PROBE = str(Path(__file__).with_name("netlink_probe.py"))
IFA_F_NODAD = 0x02
IFA_F_TENTATIVE = 0x40
IFF_UP = 0x1


def probe(topo: Topology, node: Node, *args: str) -> Any:
    return json.loads(topo.run(node, [sys.executable, PROBE, *args], timeout=30).stdout)


def ip_lines(topo: Topology, node: Node, *args: str) -> list[str]:
    """``ip -o addr show ...`` one line per address, words from the family on."""
    out = topo.run(node, ["ip", "-o", "addr", "show", *args]).stdout
    return [" ".join(line.split("\\")[0].split()[2:]) for line in out.splitlines()]


def oracle_address(topo: Topology, node: Node, family: str, address: str) -> list[Any]:
    return [row for row in probe(topo, node, "oracle-addresses", family) if row[2] == address]


def link_flags(topo: Topology, node: Node, ifname: str) -> int:
    [flags] = [link[3] for link in probe(topo, node, "oracle-links") if link[1] == ifname]
    return int(flags)


@pytest.fixture
def node(topology: Topology) -> Node:
    lan = topology.add_lan("lan0", "198.51.100.0/24")
    a = topology.add_node("a")
    topology.connect(a, lan, "eth0", "198.51.100.1")
    return a


def test_ipv4_address_with_label_and_broadcast_is_added_and_removed(
    topology: Topology, node: Node
) -> None:
    outcome = probe(
        topology, node, "add", "198.51.100.10", "24", "eth0",
        "--broadcast", "198.51.100.255", "--label", "eth0:web",
    )  # fmt: skip
    [eth0] = [link for link in probe(topology, node, "oracle-links") if link[1] == "eth0"]
    assert outcome == {
        "added": True,
        "interface": "eth0",
        "ifindex": eth0[0],
        "label": "eth0:web",
        "mac": eth0[4],
    }
    assert "inet 198.51.100.10/24 brd 198.51.100.255 scope global secondary eth0:web" in ip_lines(
        topology, node, "dev", "eth0"
    )
    assert oracle_address(topology, node, "4", "198.51.100.10") == [
        [eth0[0], 24, "198.51.100.10", "eth0:web"]
    ]
    assert probe(topology, node, "present", "198.51.100.10") is True

    again = probe(topology, node, "add", "198.51.100.10", "24", "eth0")
    assert (again["added"], again["label"]) == (False, "eth0:web")

    assert probe(topology, node, "remove", "198.51.100.10") == ["eth0"]
    assert not [line for line in ip_lines(topology, node) if "198.51.100.10/" in line]
    assert oracle_address(topology, node, "4", "198.51.100.10") == []
    assert probe(topology, node, "remove", "198.51.100.10") == []
    assert probe(topology, node, "present", "198.51.100.10") is False


def test_ipaddr_alias_labels_follow_the_labels_in_use(topology: Topology, node: Node) -> None:
    probe(topology, node, "add", "198.51.100.20", "24", "eth0", "--label", "eth0:0")
    second = probe(topology, node, "add", "198.51.100.21", "24", "eth0", "--alias")
    third = probe(topology, node, "add", "198.51.100.22", "24", "eth0", "--alias")
    assert (second["label"], third["label"]) == ("eth0:1", "eth0:2")
    labels = {row[2]: row[3] for row in probe(topology, node, "oracle-addresses", "4")}
    assert (labels["198.51.100.21"], labels["198.51.100.22"]) == ("eth0:1", "eth0:2")


def test_ipv6_address_is_added_without_dad_and_removed(topology: Topology, node: Node) -> None:
    outcome = probe(topology, node, "add", "2001:db8::10", "64", "eth0")
    assert (outcome["added"], outcome["label"]) == (True, None)
    [line] = [x for x in ip_lines(topology, node, "dev", "eth0") if "2001:db8::10/" in x]
    assert line.startswith("inet6 2001:db8::10/64 scope global")
    assert "nodad" in line.split()
    assert "tentative" not in line.split()
    assert oracle_address(topology, node, "6", "2001:db8::10")[0][1] == 64

    assert probe(topology, node, "remove", "2001:db8::10") == ["eth0"]
    assert oracle_address(topology, node, "6", "2001:db8::10") == []


def test_adding_sets_the_link_up(topology: Topology, node: Node) -> None:
    topology.run(node, ["ip", "link", "set", "eth0", "down"])
    assert not link_flags(topology, node, "eth0") & IFF_UP
    probe(topology, node, "add", "198.51.100.30", "24", "eth0")
    assert link_flags(topology, node, "eth0") & IFF_UP


def test_a_refusal_carries_the_errno_and_the_kernels_explanation(
    topology: Topology, node: Node
) -> None:
    code, strerror, detail = probe(topology, node, "refuse")
    assert code == errno.EINVAL
    assert strerror.startswith("Invalid argument")
    if detail:  # extended acks: every kernel since 4.12 explains this one
        assert strerror == f"Invalid argument ({detail})"


def wait_for_dad(topo: Topology, node: Node, seconds: float = 10.0) -> None:
    """Wait until no IPv6 address is tentative: a link-local address gets its local
    route only when duplicate address detection ends, a second or two after the link
    comes up, and two dumps taken meanwhile would differ."""
    deadline = time.monotonic() + seconds
    while topo.run(node, ["ip", "-6", "addr", "show", "tentative"]).stdout.strip():
        assert time.monotonic() < deadline, "IPv6 addresses still tentative"
        time.sleep(0.1)


def test_dumps_match_pyroute2(topology: Topology, node: Node) -> None:
    back = topology.add_lan("back", "203.0.113.0/24")
    topology.connect(node, back, "eth1", "203.0.113.1")
    # Enough addresses that the dump spans several datagrams, and routes in
    # several tables, with gateways and metrics, for both families.
    batch = [f"addr add 198.51.100.{n}/32 dev eth0 label eth0:{n}" for n in range(2, 250)]
    batch += [f"addr add 2001:db8:1::{n:x}/128 dev eth1 nodad" for n in range(1, 100)]
    batch += [
        "addr add 2001:db8::1/64 dev eth0 nodad",
        "route add 203.0.113.128/26 via 198.51.100.254 metric 50",
        "route add 198.51.100.128/25 dev eth1 metric 7 table 1000",
        "route add default via 203.0.113.254",
        "route add 2001:db8:2::/48 via 2001:db8::fe",
        "route add 2001:db8:3::/48 dev eth1 metric 5 table 300",
    ]
    topology.run(node, ["ip", "-batch", "-"], input="\n".join(batch) + "\n")
    wait_for_dad(topology, node)

    assert probe(topology, node, "links") == probe(topology, node, "oracle-links")
    for family in ("4", "6"):
        ours = probe(topology, node, "addresses", family)
        assert ours == probe(topology, node, "oracle-addresses", family)
        assert len(ours) > 90
        routes = probe(topology, node, "routes", family)
        assert routes == probe(topology, node, "oracle-routes", family)
    tables = {row[3] for row in probe(topology, node, "routes", "4")}
    assert {254, 255, 1000} <= tables
