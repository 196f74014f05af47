"""A pulse node and a stock Heartbeat 3.0.6 node as one two-node cluster.

Heartbeat only goes ``active`` with a peer after the node-list exchange (reqnodes /
repnodes) and needs its messages acknowledged; this proves pulse speaks enough of the
protocol for ``cl_status nodestatus`` to say ``active``, and that each side declares
the other dead after deadtime when it is killed, for every authkeys method Heartbeat
knows, and that a group moves between them through Heartbeat's standby exchange.
Heartbeat's ICMP ping payload is also compared with the one pulse's ping links send.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pulse.config.model import AuthKey, AuthKeys, AuthMethod
from pulse.transport.ping import parse_icmp, ping_message
from pulse.wire import Encoding, Signer, decode, encode
from pulse_lab.cluster import PulseNode, ha_cf
from pulse_lab.heartbeat import HeartbeatNode, HeartbeatPeers, missing_prerequisites, render_ha_cf
from pulse_lab.netns import Lan, Node, Topology

pytestmark = [pytest.mark.netns, pytest.mark.heartbeat, pytest.mark.slow]

DEADTIME = 3.0
STARTUP_GRACE = 5.0  # both advertise deadtime + 2 s during their first 5 s
MARGIN = 1.5

AUTHKEYS = {
    "sha1": "auth 1\n1 sha1 pulse-interop-secret\n",
    "md5": "auth 2\n2 md5 pulse-interop-secret\n",
    "crc": "auth 3\n3 crc\n",
}


@pytest.fixture
def peers(topology: Topology, tmp_path: Path) -> Iterator[HeartbeatPeers]:
    missing = missing_prerequisites()
    if missing:
        pytest.skip("heartbeat interop needs: " + ", ".join(missing))
    with HeartbeatPeers(topology, tmp_path / "hb") as p:
        yield p


def mixed_cluster(
    topology: Topology,
    peers: HeartbeatPeers,
    tmp_path: Path,
    authkeys: str,
    haresources: str = "",
) -> tuple[HeartbeatNode, PulseNode, Lan]:
    lan = topology.add_lan("lan0", "198.51.100.0/24")
    hb_ns = topology.add_node("hb1")
    topology.connect(hb_ns, lan, "eth0", "198.51.100.11")
    pulse_ns = topology.add_node("pulse1")
    topology.connect(pulse_ns, lan, "eth0", "198.51.100.12")
    names = ["hb1", "pulse1"]
    hb = peers.add(
        hb_ns,
        name="hb1",
        ha_cf=render_ha_cf(
            nodes=names, media=["bcast eth0"], logdir=tmp_path / "hb" / "hb1" / "log"
        ),
        authkeys=authkeys,
        haresources=haresources,
    )
    pulse = PulseNode(
        topology,
        pulse_ns,
        tmp_path,
        name="pulse1",
        ha_cf=ha_cf(names, ["bcast eth0"], keepalive="1", deadtime="3", warntime="2", initdead="6"),
        authkeys=authkeys,
        haresources=haresources,
    )
    return hb, pulse, lan


@pytest.mark.parametrize("method", ["sha1", "md5", "crc"])
def test_heartbeat_and_pulse_see_each_other_active(
    topology: Topology, peers: HeartbeatPeers, tmp_path: Path, method: str
) -> None:
    hb, pulse, _ = mixed_cluster(topology, peers, tmp_path, AUTHKEYS[method])
    hb.start()
    pulse.start()
    hb.wait_nodestatus("pulse1", "active", 20)
    pulse.wait_node("hb1", "active", 20)
    assert hb.cl_status("nodestatus", "hb1") == "active"
    assert pulse.status()["cluster"]["local_status"] == "active"
    assert pulse.link_status("hb1", "eth0") == "up"
    assert hb.cl_status("hblinkstatus", "pulse1", "eth0") == "up"
    # Nothing pulse sent was refused by Heartbeat, and nothing Heartbeat sent by pulse.
    assert "failed authentication" not in hb.log()
    wire = pulse.status()["wire"]
    assert {k: v for k, v in wire.items() if k != "accepted"} == {}


def test_heartbeat_declares_a_killed_pulse_node_dead_after_deadtime(
    topology: Topology, peers: HeartbeatPeers, tmp_path: Path
) -> None:
    hb, pulse, _ = mixed_cluster(topology, peers, tmp_path, AUTHKEYS["sha1"])
    hb.start()
    pulse.start()
    hb.wait_nodestatus("pulse1", "active", 20)
    time.sleep(STARTUP_GRACE)  # past the start-up dt boost
    mark = hb.mark()
    killed = time.monotonic()
    pulse.kill()
    hb.wait_log(r"node pulse1: is dead", DEADTIME + MARGIN + 1, since=mark)
    took = time.monotonic() - killed
    assert took <= DEADTIME + MARGIN, f"declared dead after {took:.2f}s"
    assert hb.cl_status("nodestatus", "pulse1") == "dead"

    # pulse comes back with a new generation: Heartbeat takes it as a restart.
    pulse.start()
    hb.wait_nodestatus("pulse1", "active", 20)


def test_pulse_declares_a_killed_heartbeat_node_dead_after_deadtime(
    topology: Topology, peers: HeartbeatPeers, tmp_path: Path
) -> None:
    hb, pulse, _ = mixed_cluster(topology, peers, tmp_path, AUTHKEYS["sha1"])
    hb.start()
    pulse.start()
    pulse.wait_node("hb1", "active", 20)
    time.sleep(STARTUP_GRACE)
    killed = time.monotonic()
    hb.kill()
    pulse.wait_node("hb1", "dead", DEADTIME + MARGIN + 1)
    took = time.monotonic() - killed
    assert took <= DEADTIME + MARGIN, f"declared dead after {took:.2f}s"
    pulse.wait_log("WARN: node hb1: is dead")


VIP = "198.51.100.100"


def has_vip(topology: Topology, node: Node) -> bool:
    out = topology.run(node, ["ip", "-o", "-4", "addr", "show", "dev", "eth0"]).stdout
    return f" {VIP}/" in out


def wait_vip_only_on(
    topology: Topology, owner: Node, other: Node, timeout: float, *, overlap: float = 0.5
) -> None:
    """Wait until the VIP is on *owner* and not on *other*; it may never be on both for
    longer than *overlap* seconds meanwhile."""
    deadline = time.monotonic() + timeout
    both_since: float | None = None
    while time.monotonic() < deadline:
        on_owner, on_other = has_vip(topology, owner), has_vip(topology, other)
        if on_owner and on_other:
            both_since = both_since or time.monotonic()
            assert time.monotonic() - both_since <= overlap, f"{VIP} on both nodes"
        else:
            both_since = None
            if on_owner:
                return
        time.sleep(0.1)
    raise AssertionError(f"{VIP} not only on {owner.name} within {timeout}s")


def test_heartbeat_fails_a_restarted_pulse_nodes_group_back_through_the_standby_exchange(
    topology: Topology, peers: HeartbeatPeers, tmp_path: Path
) -> None:
    hb, pulse, _ = mixed_cluster(
        topology, peers, tmp_path, AUTHKEYS["sha1"], f"pulse1 IPaddr::{VIP}/24/eth0\n"
    )
    hb.start()
    pulse.start()
    wait_vip_only_on(topology, pulse.node, hb.node, 30)

    # pulse leaves gracefully: Heartbeat takes its group over.
    pulse.stop()
    wait_vip_only_on(topology, hb.node, pulse.node, 15)

    # pulse returns: Heartbeat asks it (ask_resources foreign me), pulse answers other,
    # Heartbeat releases and says done, pulse acquires and says done.
    mark = hb.mark()
    pulse.start()
    wait_vip_only_on(topology, pulse.node, hb.node, 40)
    hb.wait_log(r"Other node completed standby takeover of foreign resources", 10, since=mark)
    pulse.wait_log("standby takeover of foreign resources from hb1 completed", 10)
    time.sleep(2)  # and it stays there
    assert has_vip(topology, pulse.node) and not has_vip(topology, hb.node)


def test_pulse_gives_a_returning_heartbeat_node_its_group_through_the_standby_exchange(
    topology: Topology, peers: HeartbeatPeers, tmp_path: Path
) -> None:
    hb, pulse, _ = mixed_cluster(
        topology, peers, tmp_path, AUTHKEYS["sha1"], f"hb1 IPaddr::{VIP}/24/eth0\n"
    )
    hb.start()
    pulse.start()
    wait_vip_only_on(topology, hb.node, pulse.node, 30)

    # Heartbeat leaves gracefully: pulse takes its group over.
    hb.stop()
    wait_vip_only_on(topology, pulse.node, hb.node, 15)

    # Heartbeat returns: pulse asks it to take its group (ask_resources foreign me),
    # releases on other, says done; Heartbeat takes the group and says done.
    hb.start()
    wait_vip_only_on(topology, hb.node, pulse.node, 40)
    pulse.wait_log("Other node completed standby takeover of foreign resources.", 10)
    hb.wait_log(r"standby: acquire \[foreign\] resources from pulse1", 10)
    time.sleep(2)  # and it stays there
    assert has_vip(topology, hb.node) and not has_vip(topology, pulse.node)


# An ICMP sniffer for the router namespace: prints the first echo request it sees.
_ECHO_SNIFFER = """
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
s.settimeout(20)
while True:
    data = s.recv(65535)
    if data[(data[0] & 15) * 4] == 8:
        print(data.hex())
        break
"""


def test_heartbeats_ping_payload_is_byte_identical_to_pulses_netstring_one(
    topology: Topology, peers: HeartbeatPeers, tmp_path: Path
) -> None:
    router_ip = "198.51.100.254"
    lan = topology.add_lan("lan0", "198.51.100.0/24")
    router = topology.add_node("router")
    topology.connect(router, lan, "eth0", router_ip)
    hb_ns = topology.add_node("hb1")
    topology.connect(hb_ns, lan, "eth0", "198.51.100.11")
    sniff = [sys.executable, "-c", _ECHO_SNIFFER]
    sniffer = topology.popen(router, sniff, stdout=subprocess.PIPE, text=True)
    authkeys = AUTHKEYS["sha1"]
    media = ["bcast eth0", f"ping {router_ip}"]
    hb = peers.add(
        hb_ns,
        name="hb1",
        ha_cf=render_ha_cf(
            nodes=["hb1", "pulse1"], media=media, logdir=tmp_path / "hb" / "hb1" / "log"
        ),
        authkeys=authkeys,
    )
    hb.start()
    out, _ = sniffer.communicate(timeout=30)
    echo = parse_icmp(bytes.fromhex(out.strip()))
    # Heartbeat stores the pid's low 16 bits in host order (pulse: network order).
    assert echo.ident == int.from_bytes((hb.pid & 0xFFFF).to_bytes(2, sys.byteorder), "big")
    key = AuthKey(index=1, method=AuthMethod.SHA1, key=b"pulse-interop-secret")
    signer = Signer(AuthKeys(outbound=1, keys=(key,)))
    ts = decode(echo.payload, signer).message.get("ts")
    assert ts is not None
    ours = encode(ping_message(router_ip, "ping", int(ts, 16)), signer, Encoding.NETSTRING)
    assert echo.payload == ours
    hb.wait_nodestatus(router_ip, "ping", 10)
