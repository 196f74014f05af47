"""Three nodes server1..3, ``bcast eth0``, ``server1 <VIP> httpd``, auto_failback on.

The three-node Apache cluster of tests/data/legacy/004-three-node-apache.

The group follows the node order from its preferred node: server1 -> server2 ->
server3 as each is cut off, and back as each returns.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from failover_support import addresses, wait_past_startup_grace, web_cluster

from pulse_lab.cluster import wait_for
from pulse_lab.netns import Topology

pytestmark = [pytest.mark.netns, pytest.mark.slow]

VIP = "198.51.100.200"
NAMES = ["server1", "server2", "server3"]


def test_three_nodes_chain_failover_in_node_order_and_fail_back_as_each_returns(
    topology: Topology, tmp_path: Path
) -> None:
    web = web_cluster(topology, tmp_path, NAMES, vip=VIP, script="httpd")
    s1, s2, s3 = (web.nodes[n] for n in NAMES)
    web.serving("server1", 15)
    for node in (s2, s3):
        node.wait_holder(VIP, "server1", 5)
    wait_past_startup_grace(web.nodes.values())

    web.cut("server1")
    web.serving("server2", 6)
    s2.wait_log("took over 198.51.100.200: server1 dead")
    web.cut("server2")
    web.serving("server3", 6)
    s3.wait_log("took over 198.51.100.200: server2 dead")

    web.restore("server2")
    web.serving("server2", 10)
    s3.wait_holder(VIP, "server2", 5)
    web.restore("server1")
    web.serving("server1", 10)
    for node in (s2, s3):
        node.wait_holder(VIP, "server1", 5)
        wait_for(
            lambda node=node: VIP not in addresses(topology, node.node, "eth0"),  # type: ignore[misc]
            5,
            f"{node.name} to drop {VIP}",
        )
    assert s1.group(VIP)["state"] == "running"
