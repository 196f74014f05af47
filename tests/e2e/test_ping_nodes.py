"""Ping nodes for real: pulse daemons pinging a "router" namespace over raw ICMP.

Two pulse nodes and one or two routers (plain namespaces: the kernel answers the
echoes) share a LAN. nftables inside one node's namespace cuts that node off from a
router; only that node must see the ping node die, and see it come back.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pulse.cli.ctl import format_status
from pulse_lab.cluster import PULSE, PulseNode, ha_cf
from pulse_lab.netns import Lan, Topology

pytestmark = [pytest.mark.netns, pytest.mark.slow]

ROUTER = "198.51.100.254"
SPARE = "198.51.100.253"
DEADPING = 1.0  # seconds; keepalive 200 ms
SLACK = 4.0


def cluster(topology: Topology, tmp_path: Path, media: list[str]) -> tuple[Lan, list[PulseNode]]:
    lan = topology.add_lan("lan0", "198.51.100.0/24")
    for name, address in (("router", ROUTER), ("spare", SPARE)):
        topology.connect(topology.add_node(name), lan, "eth0", address)
    names = ["prime", "calc"]
    config = ha_cf(names, ["bcast eth0", *media], extra=[f"deadping {DEADPING}"])
    nodes = []
    for i, name in enumerate(names):
        ns = topology.add_node(name)
        topology.connect(ns, lan, "eth0", f"198.51.100.{10 + i}")
        nodes.append(PulseNode(topology, ns, tmp_path, name=name, ha_cf=config))
    for node in nodes:
        node.start()
    return lan, nodes


def lone_node(topology: Topology, tmp_path: Path, media: list[str]) -> PulseNode:
    """prime alone on the LAN (calc never starts), not started yet."""
    lan = topology.add_lan("lan0", "198.51.100.0/24")
    ns = topology.add_node("prime")
    topology.connect(ns, lan, "eth0", "198.51.100.10")
    config = ha_cf(["prime", "calc"], media, extra=[f"deadping {DEADPING}"])
    return PulseNode(topology, ns, tmp_path, name="prime", ha_cf=config)


def test_a_pinged_router_is_ping_and_dies_only_for_the_node_cut_off_from_it(
    topology: Topology, tmp_path: Path
) -> None:
    _, (prime, calc) = cluster(topology, tmp_path, [f"ping {ROUTER}"])
    prime.wait_node(ROUTER, "ping", 10)
    calc.wait_node(ROUTER, "ping", 10)
    prime.wait_node("calc", "active", 10)
    assert f"{ROUTER:<20} ping     {ROUTER} up" in format_status(prime.status()).splitlines()

    topology.cut_off(calc.node, ROUTER)
    took = calc.wait_node(ROUTER, "dead", DEADPING + SLACK)
    assert took >= DEADPING / 2  # it was alive when the cut began
    calc.wait_log(f"node {ROUTER}: is dead")
    assert prime.node_status(ROUTER) == "ping"
    assert calc.node_status("prime") == "active"  # a ping node's death takes nothing over
    assert calc.status()["links"][ROUTER]["send_errors"] > 0  # output hook: EPERM, counted

    topology.reconnect(calc.node)
    calc.wait_node(ROUTER, "ping", SLACK)
    calc.wait_log(f"Status update for node {ROUTER}: status ping")
    assert prime.node_status(ROUTER) == "ping"


def test_a_ping_group_is_up_while_any_of_its_hosts_answers(
    topology: Topology, tmp_path: Path
) -> None:
    _, (prime, calc) = cluster(topology, tmp_path, [f"ping_group routers {SPARE} {ROUTER}"])
    prime.wait_node("routers", "ping", 10)
    calc.wait_node("routers", "ping", 10)
    stats = calc.status()["links"]["routers"]
    assert stats["packets_sent"] >= 2 and stats["ignored"] >= 1  # both hosts answer

    topology.cut_off(calc.node, ROUTER)
    with pytest.raises(TimeoutError):
        calc.wait_node("routers", "dead", DEADPING + 1)
    assert calc.node_status("routers") == "ping"

    topology.reconnect(calc.node)
    topology.cut_off(calc.node, ROUTER, SPARE)
    calc.wait_node("routers", "dead", DEADPING + SLACK)
    assert prime.node_status("routers") == "ping"

    topology.reconnect(calc.node)
    calc.wait_node("routers", "ping", SLACK)


def test_without_cap_net_raw_pulse_run_refuses_to_start_naming_the_ping_directive(
    topology: Topology, tmp_path: Path
) -> None:
    # A ping-only config: the ping link is the one thing that needs CAP_NET_RAW.
    node = lone_node(topology, tmp_path, [f"ping {ROUTER}"])
    # Root, but with CAP_NET_RAW out of the bounding set: exec drops it.
    argv = [
        "setpriv", "--bounding-set", "-net_raw", "--inh-caps", "-net_raw", "--",
        *PULSE, "run", "-c", str(node.dir), "--node", "prime",
        "--control-socket", node.socket, "--state-dir", str(node.dir / "state"),
    ]  # fmt: skip
    done = topology.run(node.node, argv, check=False, timeout=30)
    assert done.returncode == 1, done.stderr
    assert (
        f"pulse: ping {ROUTER}: cannot open a raw ICMP socket: permission denied "
        "(EPERM: Operation not permitted); ping nodes need root or CAP_NET_RAW"
    ) in done.stderr.splitlines()
    assert "Traceback" not in done.stderr


def test_ping6_reaches_ping_over_icmpv6_inside_the_namespace(
    topology: Topology, tmp_path: Path
) -> None:
    # No IPv6 address may be configured: the namespace's own loopback answers.
    node = lone_node(topology, tmp_path, ["bcast eth0", "ping6 ::1"])
    node.start()
    node.wait_node("::1", "ping", 10)
    stats = node.status()["links"]["::1"]
    assert stats["receive_errors"] == 0 and stats["packets_received"] >= 1
