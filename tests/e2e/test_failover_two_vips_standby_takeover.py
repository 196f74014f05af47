"""The Asterisk pair's "Two Virtual IPs": ucast on eth0 and eth1, a floating IP per interface.

haresources, as tests/data/legacy/002-kolmisoft-two-vips's two lines with documentation
addresses::

    node01 198.51.100.179/24/eth0
    node01 203.0.113.180/24/eth1

Both nodes run a web server answering with their name; a client on both LANs asks
each floating IP. The groups are moved with ``pulsectl standby`` / ``takeover``
through the control socket (hb_standby / hb_takeover semantics: ``local`` and
``foreign`` are relative to the node asking).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from failover_support import (
    FailoverNode,
    addresses,
    assert_keeps_serving,
    ha_cf,
    serve_name,
    start_all,
    wait_serving,
)

from pulse_lab.cluster import wait_for
from pulse_lab.netns import Topology

pytestmark = [pytest.mark.netns, pytest.mark.slow]

VIP0 = "198.51.100.179"
VIP1 = "203.0.113.180"
GROUPS = (f"{VIP0}/24/eth0", f"{VIP1}/24/eth1")
ADDRS = {"node01": ("198.51.100.2", "203.0.113.2"), "node02": ("198.51.100.3", "203.0.113.3")}


def test_standby_and_takeover_move_both_groups_by_class(topology: Topology, tmp_path: Path) -> None:
    lan0 = topology.add_lan("lan0", "198.51.100.0/24")
    lan1 = topology.add_lan("lan1", "203.0.113.0/24")
    nodes: dict[str, FailoverNode] = {}
    for name, (a0, a1) in ADDRS.items():
        ns = topology.add_node(name)
        topology.connect(ns, lan0, "eth0", a0)
        topology.connect(ns, lan1, "eth1", a1)
        peer = ADDRS["node02" if name == "node01" else "node01"]
        media = [f"ucast eth0 {peer[0]}", f"ucast eth1 {peer[1]}"]
        nodes[name] = FailoverNode(
            topology, ns, tmp_path, name=name, ha_cf=ha_cf(list(ADDRS), media),
            haresources="".join(f"node01 {g}\n" for g in GROUPS),
        )  # fmt: skip
        serve_name(topology, ns, tmp_path)
    client = topology.add_node("client")
    topology.connect(client, lan0, "eth0", "198.51.100.50")
    topology.connect(client, lan1, "eth1", "203.0.113.50")
    start_all(nodes.values())
    node01, node02 = nodes["node01"], nodes["node02"]

    def serving(who: str, timeout: float = 5) -> None:
        for vip in (VIP0, VIP1):
            wait_serving(topology, client, vip, who, timeout)
        for key in GROUPS:
            for n in (node01, node02):
                n.wait_holder(key, who, 3)

    def ctl(node: FailoverNode, verb: str, what: str) -> None:
        reply = node.ctl(verb, what)
        assert reply.ok, f"pulsectl {verb} {what} on {node.name}: {reply.error}"

    serving("node01", 15)
    assert VIP0 in addresses(topology, node01.node, "eth0")
    assert VIP1 in addresses(topology, node01.node, "eth1")
    wait_for(lambda: node01.stable() and node02.stable(), 10, "both nodes stable")

    # Both groups are local to node01: giving up its foreign groups moves nothing.
    ctl(node01, "standby", "foreign")
    assert_keeps_serving(topology, client, VIP0, "node01", 1.0)
    ctl(node01, "standby", "local")
    serving("node02")
    assert node01.status()["resources"]["standby"] == sorted(GROUPS)
    # auto_failback is on, but standby holds until takeover clears it.
    assert_keeps_serving(topology, client, VIP1, "node02", 1.0)
    ctl(node01, "takeover", "local")
    serving("node01")
    assert node01.status()["resources"]["standby"] == []

    # Relative to node02 the same groups are foreign.
    ctl(node02, "takeover", "foreign")
    serving("node02")
    assert VIP0 not in addresses(topology, node01.node, "eth0")
    ctl(node02, "standby", "foreign")
    serving("node01")
    assert VIP1 not in addresses(topology, node02.node, "eth1")
