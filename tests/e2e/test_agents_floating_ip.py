"""The built-in floating IP agent against a real kernel, inside network namespaces.

The agent's I/O (netlink, AF_PACKET and raw ICMPv6 sockets) belongs to the network
namespace of the process, so each operation runs as
``ip netns exec NS python -m pulse.resources OP RESOURCE`` (the same entry point an
admin uses by hand) and the test checks the result with ``ip``. ``start`` waits
there until every announcement has been sent.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from pulse_lab.netns import Iface, Node, Topology

pytestmark = pytest.mark.netns

VIP = "198.51.100.10"
VIP6 = "2001:db8::10"


def agent(
    topo: Topology, node: Node, op: str, *words: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "pulse.resources", op, *words]
    return topo.run(node, argv, check=check, timeout=30)


def addresses(topo: Topology, node: Node) -> list[dict[str, object]]:
    """Every address of the node as ``ip -j addr`` reports it (flattened)."""
    out = json.loads(topo.run(node, ["ip", "-j", "addr", "show"]).stdout)
    return [dict(info, ifname=link["ifname"]) for link in out for info in link["addr_info"]]


def find(topo: Topology, node: Node, ip: str) -> list[dict[str, object]]:
    return [a for a in addresses(topo, node) if a["local"] == ip]


def mac_of(topo: Topology, iface: Iface) -> str:
    out = json.loads(topo.run(iface.node, ["ip", "-j", "link", "show", "dev", iface.ifname]).stdout)
    return str(out[0]["address"])


def neighbour_mac(topo: Topology, node: Node, ip: str) -> str | None:
    family = "-6" if ":" in ip else "-4"
    out = json.loads(
        topo.run(node, ["ip", family, "-j", "neigh", "show", ip, "dev", "eth0"]).stdout
    )
    return str(out[0]["lladdr"]) if out and "lladdr" in out[0] else None


def wait_for_neighbour(
    topo: Topology, node: Node, ip: str, mac: str, seconds: float = 5.0
) -> str | None:
    deadline = time.monotonic() + seconds
    seen = neighbour_mac(topo, node, ip)
    while seen != mac and time.monotonic() < deadline:
        time.sleep(0.05)
        seen = neighbour_mac(topo, node, ip)
    return seen


def test_ipaddr_adds_the_address_with_an_alias_label_and_removes_it(topology: Topology) -> None:
    lan = topology.add_lan("lan0", "198.51.100.0/24")
    a = topology.add_node("a")
    topology.connect(a, lan, "eth0", "198.51.100.1")
    word = f"IPaddr::{VIP}/24/eth0"

    started = agent(topology, a, "start", word, "--arp-count", "1")
    assert f"Running /etc/ha.d/resource.d/IPaddr {VIP}/24/eth0 start" in started.stderr
    [added] = find(topology, a, VIP)
    assert (added["ifname"], added["prefixlen"], added["label"]) == ("eth0", 24, "eth0:0")
    assert added["broadcast"] == "198.51.100.255"
    assert agent(topology, a, "status", word).stdout.split() == [word, "running"]

    agent(topology, a, "start", word)  # already there: success, no second copy
    assert len(find(topology, a, VIP)) == 1

    agent(topology, a, "stop", word)
    assert find(topology, a, VIP) == []
    agent(topology, a, "stop", word)  # stopping a stopped address succeeds
    status = agent(topology, a, "status", word, check=False)
    assert (status.returncode, status.stdout.split()) == (3, [word, "stopped"])


def test_the_monitor_finds_a_deleted_address_gone_and_a_downed_link_failed(
    topology: Topology,
) -> None:
    lan = topology.add_lan("lan0", "198.51.100.0/24")
    a = topology.add_node("a")
    topology.connect(a, lan, "eth0", "198.51.100.1")
    word = f"{VIP}/24/eth0"
    agent(topology, a, "start", word, "--arp-count", "1")
    assert agent(topology, a, "monitor", word).stdout.split() == [word, "running"]

    topology.run(a, ["ip", "addr", "del", f"{VIP}/24", "dev", "eth0"])
    gone = agent(topology, a, "monitor", word, check=False)
    assert gone.returncode == 3
    assert gone.stdout.strip() == (
        f"{word} not-running {VIP}: the address is not configured on any interface"
    )

    agent(topology, a, "start", word, "--arp-count", "0")
    topology.run(a, ["ip", "link", "set", "eth0", "down"])
    down = agent(topology, a, "monitor", word, check=False)
    assert (down.returncode, down.stdout.strip()) == (
        1,
        f"{word} failed {VIP}: interface eth0 is down",
    )


def test_ipaddr2_uses_the_given_label_and_no_alias(topology: Topology) -> None:
    lan = topology.add_lan("lan0", "198.51.100.0/24")
    a = topology.add_node("a")
    topology.connect(a, lan, "eth0", "198.51.100.1")
    agent(topology, a, "start", f"IPaddr2::{VIP}/25/eth0:web", "--arp-count", "1")
    [added] = find(topology, a, VIP)
    assert (added["prefixlen"], added["label"], added["broadcast"]) == (
        25,
        "eth0:web",
        "198.51.100.127",
    )
    # Outside the /25 that the first address brought along: findif picks the /24.
    agent(topology, a, "start", "IPaddr2::198.51.100.200", "--arp-count", "1")
    [plain] = find(topology, a, "198.51.100.200")
    assert plain["label"] == "eth0"  # no alias label for IPaddr2
    assert plain["prefixlen"] == 24


def test_findif_picks_the_interface_whose_subnet_holds_the_address(topology: Topology) -> None:
    front = topology.add_lan("front", "198.51.100.0/25")
    back = topology.add_lan("back", "203.0.113.0/24")
    a = topology.add_node("a")
    topology.connect(a, front, "eth0", "198.51.100.1")
    topology.connect(a, back, "eth1", "203.0.113.1")

    agent(topology, a, "start", "203.0.113.50", "198.51.100.20", "--arp-count", "1")
    [back_vip] = find(topology, a, "203.0.113.50")
    [front_vip] = find(topology, a, "198.51.100.20")
    assert (back_vip["ifname"], back_vip["prefixlen"]) == ("eth1", 24)
    assert (front_vip["ifname"], front_vip["prefixlen"]) == ("eth0", 25)

    failed = agent(topology, a, "start", "198.51.100.200", check=False)
    assert failed.returncode == 1
    assert (
        "cannot find an interface for 198.51.100.200: add /CIDR/IFACE, e.g. 198.51.100.200/24/eth0"
        in failed.stderr
    )
    assert find(topology, a, "198.51.100.200") == []


def test_gratuitous_arp_repoints_a_neighbours_stale_entry_to_the_new_owner(
    topology: Topology,
) -> None:
    lan = topology.add_lan("lan0", "198.51.100.0/24")
    a, b, c = (topology.add_node(n) for n in ("a", "b", "c"))
    ia = topology.connect(a, lan, "eth0", "198.51.100.1")
    ib = topology.connect(b, lan, "eth0", "198.51.100.2")
    topology.connect(c, lan, "eth0", "198.51.100.3")
    word = f"IPaddr2::{VIP}/24/eth0"

    # a holds the address; c talks to it and learns a's MAC.
    agent(topology, a, "start", word, "--arp-count", "0")
    topology.run(c, ["ping", "-c", "1", "-W", "2", VIP])
    assert neighbour_mac(topology, c, VIP) == mac_of(topology, ia)

    # a dies without releasing (its address simply vanishes); b takes over.
    topology.run(a, ["ip", "addr", "flush", "dev", "eth0", "to", f"{VIP}/32"])
    started = time.monotonic()
    agent(topology, b, "start", word)  # IPaddr2 defaults: 5 x 200 ms
    elapsed = time.monotonic() - started
    assert wait_for_neighbour(topology, c, VIP, mac_of(topology, ib)) == mac_of(topology, ib)
    assert elapsed < 10.0
    topology.run(c, ["ping", "-c", "1", "-W", "2", VIP])


def test_unsolicited_na_repoints_an_ipv6_neighbour(topology: Topology) -> None:
    lan = topology.add_lan("lan0", "198.51.100.0/24")
    b, c = topology.add_node("b"), topology.add_node("c")
    ib = topology.connect(b, lan, "eth0", "198.51.100.2")
    topology.connect(c, lan, "eth0", "198.51.100.3")
    old = "02:00:00:00:00:aa"
    topology.run(
        c, ["ip", "-6", "neigh", "replace", VIP6, "lladdr", old, "dev", "eth0", "nud", "stale"]
    )
    assert neighbour_mac(topology, c, VIP6) == old

    word = f"IPv6addr::{VIP6}/64/eth0"
    agent(topology, b, "start", word, "--arp-count", "3", "--arp-interval", "0.2")
    [added] = find(topology, b, VIP6)
    assert added["prefixlen"] == 64
    assert "tentative" not in added  # IFA_F_NODAD: usable at once
    assert wait_for_neighbour(topology, c, VIP6, mac_of(topology, ib)) == mac_of(topology, ib)

    agent(topology, b, "stop", word)
    assert find(topology, b, VIP6) == []


def test_loopback_address_gets_no_arp_and_still_works(topology: Topology) -> None:
    a = topology.add_node("a")
    word = "IPaddr2::203.0.113.77/32/lo"
    result = agent(topology, a, "start", word)
    assert "Added 203.0.113.77/32 to lo" in result.stderr
    assert find(topology, a, "203.0.113.77")[0]["ifname"] == "lo"
    agent(topology, a, "stop", word)
    assert find(topology, a, "203.0.113.77") == []


def test_real_ocf_ipaddr2_agent_runs_inside_a_namespace(
    topology: Topology, tmp_path: object
) -> None:
    lan = topology.add_lan("lan0", "198.51.100.0/24")
    a = topology.add_node("a")
    topology.connect(a, lan, "eth0", "198.51.100.1")
    word = "ocf:heartbeat:IPaddr2::ip=198.51.100.30::cidr_netmask=24::nic=eth0"
    env = ["--env", f"HA_RSCTMP={tmp_path}"]

    status = agent(topology, a, "status", word, *env, check=False)
    assert status.returncode == 3
    agent(topology, a, "start", word, *env)
    assert find(topology, a, "198.51.100.30")[0]["ifname"] == "eth0"
    assert agent(topology, a, "status", word, *env).returncode == 0
    agent(topology, a, "stop", word, *env)
    assert find(topology, a, "198.51.100.30") == []
    agent(topology, a, "stop", word, *env)  # OCF stop of a stopped resource succeeds
