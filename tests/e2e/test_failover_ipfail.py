"""ipfail for real: a node that loses its router hands the web service over.

The prime/calc web pair's set-up (``bcast eth0``, ``prime <VIP> apache2``) plus a router
namespace at 198.51.100.254, the ha.cf lines Heartbeat users write for ipfail::

    ping 198.51.100.254
    respawn hacluster /usr/lib/heartbeat/ipfail

and real ICMP from pulse's ping links. nftables in a node's namespace cuts only its
traffic with the router; the heartbeat LAN between the nodes stays up.
Timers: keepalive 200 ms, deadtime (and deadping) 1 s, so a give-up comes 1.4 s after
the last ping reply.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from failover_support import WebCluster, assert_keeps_serving, wait_past_startup_grace, web_cluster

from pulse_lab.cluster import wait_for
from pulse_lab.netns import Lan, Topology

pytestmark = [pytest.mark.netns, pytest.mark.slow]

VIP = "198.51.100.100"
ROUTER = "198.51.100.254"
IPFAIL = ["respawn hacluster /usr/lib/heartbeat/ipfail", f"ping {ROUTER}"]


def ipfail_cluster(topology: Topology, tmp_path: Path, auto_failback: str = "on") -> WebCluster:
    def add_router(lan: Lan) -> None:
        topology.connect(topology.add_node("router"), lan, "eth0", ROUTER)

    web = web_cluster(
        topology, tmp_path, ["prime", "calc"], vip=VIP, auto_failback=auto_failback,
        extra=IPFAIL, before_start=add_router,
    )  # fmt: skip
    web.serving("prime", 15)
    for node in web.nodes.values():
        node.wait_node(ROUTER, "ping", 10)
    wait_past_startup_grace(web.nodes.values())
    return web


def ipfail_status(web: WebCluster, name: str) -> dict[str, object]:
    status: dict[str, object] = web.nodes[name].status()["resources"]["ipfail"]
    return status


def test_node_that_loses_its_router_hands_the_service_over_and_gets_it_back(
    topology: Topology, tmp_path: Path
) -> None:
    web = ipfail_cluster(topology, tmp_path)
    prime = web.nodes["prime"]
    assert ipfail_status(web, "prime")["peers"] == {"calc": 1}

    topology.cut_off(prime.node, ROUTER)
    prime.wait_node(ROUTER, "dead", 5)
    took = web.serving("calc", 10)
    assert ipfail_status(web, "prime")["giving_up"] is True, web.describe()
    prime.wait_log("Giving up because we have less visible ping nodes (0; calc: 1)")
    # prime stays a cluster member: the heartbeat LAN never went down.
    assert web.nodes["calc"].node_status("prime") == "active"

    topology.reconnect(prime.node)
    back = web.serving("prime", 10)  # auto_failback on
    assert ipfail_status(web, "prime")["giving_up"] is False
    print(f"router lost: calc served after {took:.2f}s; router back: prime after {back:.2f}s")


def test_router_lost_for_both_nodes_moves_nothing(topology: Topology, tmp_path: Path) -> None:
    web = ipfail_cluster(topology, tmp_path)
    for node in web.nodes.values():
        topology.cut_off(node.node, ROUTER)
    for node in web.nodes.values():
        node.wait_node(ROUTER, "dead", 5)
    assert_keeps_serving(topology, web.client, VIP, "prime", 3.0)
    assert not any("Giving up" in line for line in web.nodes["prime"].log().splitlines())


def test_auto_failback_off_leaves_the_service_on_the_better_connected_node(
    topology: Topology, tmp_path: Path
) -> None:
    web = ipfail_cluster(topology, tmp_path, auto_failback="off")
    prime = web.nodes["prime"]
    topology.cut_off(prime.node, ROUTER)
    web.serving("calc", 10)
    topology.reconnect(prime.node)
    wait_for(lambda: ipfail_status(web, "prime")["giving_up"] is False, 10, "balanced counts")
    assert_keeps_serving(topology, web.client, VIP, "calc", 2.0)
