"""Debian's real OCF agents as haresources words inside the daemon, failing over.

haresources::

    prime ocf:heartbeat:IPaddr2::ip=198.51.100.30::cidr_netmask=24::nic=eth0 ocf:heartbeat:Dummy

Each daemon gets its own ``HA_RSCTMP`` (the agents' state directory; Dummy keeps
``Dummy-Dummy.state`` there), as two machines would have. Both nodes run a web
server answering with their name, so the client sees who holds the address.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from failover_support import (
    FailoverNode,
    addresses,
    ha_cf,
    serve_name,
    start_all,
    wait_serving,
)

from pulse_lab.cluster import wait_for
from pulse_lab.netns import Topology

pytestmark = [
    pytest.mark.netns,
    pytest.mark.slow,
    pytest.mark.skipif(
        not all(
            Path(f"/usr/lib/ocf/resource.d/heartbeat/{agent}").exists()
            for agent in ("Dummy", "IPaddr2")
        ),
        reason="resource-agents is not installed",
    ),
]

VIP = "198.51.100.30"
IPADDR2 = f"ocf:heartbeat:IPaddr2::ip={VIP}::cidr_netmask=24::nic=eth0"
GROUP = IPADDR2


def test_real_ocf_ipaddr2_and_dummy_move_to_calc_on_sigterm_and_back_on_return(
    topology: Topology, tmp_path: Path
) -> None:
    lan = topology.add_lan("lan0", "198.51.100.0/24")
    config = ha_cf(["prime", "calc"], ["bcast eth0"])
    nodes: dict[str, FailoverNode] = {}
    state: dict[str, Path] = {}
    for i, name in enumerate(("prime", "calc")):
        ns = topology.add_node(name)
        topology.connect(ns, lan, "eth0", f"198.51.100.{11 + i}")
        rsctmp = tmp_path / f"rsctmp-{name}"
        rsctmp.mkdir()
        state[name] = rsctmp / "Dummy-Dummy.state"
        nodes[name] = FailoverNode(
            topology, ns, tmp_path, name=name, ha_cf=config,
            haresources=f"prime {IPADDR2} ocf:heartbeat:Dummy\n",
            env={"HA_RSCTMP": str(rsctmp)},
        )  # fmt: skip
        serve_name(topology, ns, tmp_path)
    client = topology.add_node("client")
    topology.connect(client, lan, "eth0", "198.51.100.50")
    start_all(nodes.values())
    prime, calc = nodes["prime"], nodes["calc"]

    wait_serving(topology, client, VIP, "prime", 15)
    prime.wait_holder(GROUP, "prime", 5)
    assert state["prime"].exists() and not state["calc"].exists()
    wait_for(lambda: calc.stable() and prime.stable(), 10, "both nodes stable")
    calc.wait_holder(GROUP, "prime", 5)

    prime.stop()  # SIGTERM: the agents' stop runs, then calc's start
    wait_serving(topology, client, VIP, "calc", 5)
    calc.wait_holder(GROUP, "calc", 5)
    assert state["calc"].exists(), calc.log()
    assert not state["prime"].exists(), "prime's Dummy was not stopped"
    assert VIP not in addresses(topology, prime.node, "eth0")
    calc.wait_log("Running /usr/lib/ocf/resource.d/heartbeat/Dummy start")

    prime.start()  # auto_failback on: the group returns once prime has started
    wait_serving(topology, client, VIP, "prime", 15)
    prime.wait_holder(GROUP, "prime", 5)
    calc.wait_holder(GROUP, "prime", 5)
    assert state["prime"].exists()
    assert not state["calc"].exists(), "calc's Dummy was not stopped on failback"
    assert VIP not in addresses(topology, calc.node, "eth0")
