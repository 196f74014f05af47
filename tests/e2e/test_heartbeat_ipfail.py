"""ipfail in a mixed cluster: a pulse node next to Heartbeat 3.0.6 running its real ipfail.

Both ha.cf files carry the lines Heartbeat users write for ipfail::

    ping 198.51.100.254
    respawn hacluster /usr/libexec/heartbeat/ipfail

Heartbeat's ipfail talks to "the other node's ipfail" through Heartbeat: it sends
``num_ping_nodes num_ping=N`` to pulse's node (``dest``, ``from_id``/``to_id``
``ipfail``) when its count changes, and answers a count with ``you_are_dead`` (it sees
more), ``abort_giveup`` (level) or its own delayed give-up (it sees fewer), which is
``ask_resources rsc_hold=all info=me``. pulse's built-in ipfail answers the same way, so
the group moves through Heartbeat's standby exchange whichever node loses the router.
nftables in a node's namespace cuts only its traffic with the router.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pulse_lab.cluster import PulseNode, ha_cf
from pulse_lab.heartbeat import HeartbeatNode, HeartbeatPeers, missing_prerequisites, render_ha_cf
from pulse_lab.netns import Node, Topology

pytestmark = [pytest.mark.netns, pytest.mark.heartbeat, pytest.mark.slow]

VIP = "198.51.100.100"
ROUTER = "198.51.100.254"
IPFAIL_BIN = Path("/usr/libexec/heartbeat/ipfail")
AUTHKEYS = "auth 1\n1 sha1 pulse-interop-secret\n"


@pytest.fixture
def peers(topology: Topology, tmp_path: Path) -> Iterator[HeartbeatPeers]:
    missing = missing_prerequisites()
    if not IPFAIL_BIN.exists():
        missing.append(f"{IPFAIL_BIN} is not installed")
    if missing:
        pytest.skip("heartbeat ipfail interop needs: " + ", ".join(missing))
    with HeartbeatPeers(topology, tmp_path / "hb") as p:
        yield p


def has_vip(topology: Topology, node: Node) -> bool:
    out = topology.run(node, ["ip", "-o", "-4", "addr", "show", "dev", "eth0"]).stdout
    return f" {VIP}/" in out


def wait_vip_only_on(topology: Topology, owner: Node, other: Node, timeout: float) -> float:
    """Seconds until the VIP is on *owner* and not on *other* (never on both > 0.5 s)."""
    began = time.monotonic()
    both_since: float | None = None
    while time.monotonic() < began + timeout:
        on_owner, on_other = has_vip(topology, owner), has_vip(topology, other)
        if on_owner and on_other:
            both_since = both_since or time.monotonic()
            assert time.monotonic() - both_since <= 0.5, f"{VIP} on both nodes"
        else:
            both_since = None
            if on_owner:
                return time.monotonic() - began
        time.sleep(0.1)
    raise AssertionError(f"{VIP} not only on {owner.name} within {timeout}s")


def heartbeat_ha_cf(names: list[str], extra: list[str]) -> str:
    """Heartbeat's ha.cf, logging under /var/lib/heartbeat (its private, bind-mounted
    directory), where ipfail, running as hacluster, can reach the log files too."""
    text = render_ha_cf(
        nodes=names, media=["bcast eth0", f"ping {ROUTER}"], logdir=Path("/unused"), extra=extra
    )
    text = text.replace("logfile /unused/ha-log", "logfile /var/lib/heartbeat/ha-log")
    return text.replace("debugfile /unused/ha-debug", "debugfile /var/lib/heartbeat/ha-debug")


def ipfail_cluster(
    topology: Topology, peers: HeartbeatPeers, tmp_path: Path, preferred: str
) -> tuple[HeartbeatNode, PulseNode]:
    lan = topology.add_lan("lan0", "198.51.100.0/24")
    topology.connect(topology.add_node("router"), lan, "eth0", ROUTER)
    hb_ns = topology.add_node("hb1")
    topology.connect(hb_ns, lan, "eth0", "198.51.100.11")
    pulse_ns = topology.add_node("pulse1")
    topology.connect(pulse_ns, lan, "eth0", "198.51.100.12")
    names = ["hb1", "pulse1"]
    haresources = f"{preferred} IPaddr::{VIP}/24/eth0\n"
    ipfail = [f"respawn hacluster {IPFAIL_BIN}"]
    hb = peers.add(
        hb_ns,
        name="hb1",
        ha_cf=heartbeat_ha_cf(names, ipfail),
        authkeys=AUTHKEYS,
        haresources=haresources,
    )
    # ipfail runs as hacluster and logs to the same files: they must be writable for it.
    hb.layout.lib.mkdir(parents=True, exist_ok=True)
    for log in (hb.logfile, hb.debugfile):
        assert log is not None
        log.touch()
        log.chmod(0o666)
    pulse = PulseNode(
        topology,
        pulse_ns,
        tmp_path,
        name="pulse1",
        ha_cf=ha_cf(
            names,
            ["bcast eth0", f"ping {ROUTER}"],
            keepalive="1",
            deadtime="3",
            warntime="2",
            initdead="6",
            extra=ipfail,
        ),
        authkeys=AUTHKEYS,
        haresources=haresources,
    )
    hb.start()
    pulse.start()
    owner, other = (hb.node, pulse.node) if preferred == "hb1" else (pulse.node, hb.node)
    wait_vip_only_on(topology, owner, other, 40)
    pulse.wait_node(ROUTER, "ping", 15)
    hb.wait_nodestatus(ROUTER, "ping", 15)
    time.sleep(5)  # past both nodes' start-up grace
    if hb.log_lines(r"wants to go standby \[foreign\]"):
        # ipfail's level-count foreign give-up at start-up (auto_failback on): let it end.
        hb.wait_log(r"Other node completed standby takeover of foreign resources", 10)
    return hb, pulse


def cut_router(topology: Topology, loser: Node, winner: Node) -> float:
    """Cut *loser* from the router; seconds until the VIP is on *winner* only."""
    topology.cut_off(loser, ROUTER)
    return wait_vip_only_on(topology, winner, loser, 20)


def restore_router(topology: Topology, loser: Node, winner: Node) -> float:
    """Give *loser* its router back; seconds until the VIP is home again (failback on)."""
    topology.reconnect(loser)
    return wait_vip_only_on(topology, loser, winner, 20)


def test_heartbeat_node_that_loses_its_router_hands_the_vip_to_pulse_and_gets_it_back(
    topology: Topology, peers: HeartbeatPeers, tmp_path: Path
) -> None:
    hb, pulse = ipfail_cluster(topology, peers, tmp_path, "hb1")
    mark = hb.mark()
    # Heartbeat's ipfail sends num_ping_nodes num_ping=0; pulse answers you_are_dead; ipfail
    # gives up after 2 x keepalive (ask_resources all me) and pulse takes the group.
    took = cut_router(topology, hb.node, pulse.node)
    pulse.wait_log("hb1 sees 0 ping node(s), this node 1: told it to give up")
    hb.wait_log(r"ipfail.*Giving up because we were told that we have less ping nodes", 5)
    hb.wait_log(r"hb1 wants to go standby \[all\]", 5, since=mark)
    assert pulse.node_status("hb1") == "active"

    # Router back: ipfail sends num_ping=1, pulse answers abort_giveup and, under
    # auto_failback on, hands the group back through the standby exchange.
    back = restore_router(topology, hb.node, pulse.node)
    pulse.wait_log("ping node count of hb1 is balanced (1): giveup ended")
    print(f"hb1 lost its router: pulse1 served after {took:.2f}s; back after {back:.2f}s")


def test_pulse_node_that_loses_its_router_hands_the_vip_to_heartbeat_and_gets_it_back(
    topology: Topology, peers: HeartbeatPeers, tmp_path: Path
) -> None:
    hb, pulse = ipfail_cluster(topology, peers, tmp_path, "pulse1")
    mark = hb.mark()
    # pulse sends num_ping=0; Heartbeat's ipfail answers you_are_dead; pulse gives up after
    # 2 x keepalive through the standby exchange.
    took = cut_router(topology, pulse.node, hb.node)
    hb.wait_log(r"ipfail.*Telling other node that we have more visible ping nodes", 5, since=mark)
    pulse.wait_log("Giving up because we have less visible ping nodes (0; hb1: 1)")
    assert pulse.status()["resources"]["ipfail"]["giving_up"] is True

    # Router back: pulse sends num_ping=1; ipfail answers abort_giveup and, under
    # auto_failback on, gives the foreign group back (ask_resources foreign me).
    mark = hb.mark()
    back = restore_router(topology, pulse.node, hb.node)
    hb.wait_log(r"ipfail.*Giving up foreign resources \(auto_failback\)", 5, since=mark)
    assert pulse.status()["resources"]["ipfail"]["giving_up"] is False
    print(f"pulse1 lost its router: hb1 served after {took:.2f}s; back after {back:.2f}s")


def test_router_lost_for_both_nodes_moves_nothing(
    topology: Topology, peers: HeartbeatPeers, tmp_path: Path
) -> None:
    hb, pulse = ipfail_cluster(topology, peers, tmp_path, "hb1")
    mark = hb.mark()
    for node in (hb.node, pulse.node):
        topology.cut_off(node, ROUTER)
    pulse.wait_node(ROUTER, "dead", 6)
    hb.wait_nodestatus(ROUTER, "dead", 6)
    # Whoever noticed first may have started a delayed give-up; the other's count ends it.
    deadline = time.monotonic() + 6
    while time.monotonic() < deadline:
        assert has_vip(topology, hb.node) and not has_vip(topology, pulse.node)
        time.sleep(0.2)
    assert not hb.log_lines(r"wants to go standby", since=mark)
    assert pulse.status()["resources"]["ipfail"]["giving_up"] is False
