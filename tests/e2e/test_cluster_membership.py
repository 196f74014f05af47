"""Real pulse daemons in network namespaces: real UDP heartbeats, real cuts and kills.

Timings are short (keepalive 200 ms, deadtime 1 s) and the assertions are about
what happened, with generous bounds; the measured failover figures live in bench/.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from pulse_lab.cluster import PULSE, PulseNode, ha_cf, wait_for
from pulse_lab.netns import Lan, Topology

pytestmark = [pytest.mark.netns, pytest.mark.slow]


def bcast_cluster(
    topology: Topology, tmp_path: Path, names: list[str], lan: Lan | None = None
) -> list[PulseNode]:
    lan = lan or topology.add_lan("lan0", "198.51.100.0/24")
    nodes = []
    for i, name in enumerate(names):
        ns = topology.add_node(name)
        topology.connect(ns, lan, "eth0", f"198.51.100.{10 + i}")
        nodes.append(
            PulseNode(topology, ns, tmp_path, name=name, ha_cf=ha_cf(names, ["bcast eth0"]))
        )
    for node in nodes:
        node.start()
    return nodes


def test_two_nodes_over_bcast_see_each_other_and_detect_a_sigkill(
    topology: Topology, tmp_path: Path
) -> None:
    prime, calc = bcast_cluster(topology, tmp_path, ["prime", "calc"])
    prime.wait_node("calc", "active", 10)
    calc.wait_node("prime", "active", 10)
    assert prime.status()["cluster"]["local_status"] == "active"

    calc.kill()
    prime.wait_node("calc", "dead", 5)
    prime.wait_log("WARN: node calc: is dead")
    prime.wait_log("Link calc:eth0 dead.")


def test_three_nodes_survivors_both_declare_the_killed_one_dead(
    topology: Topology, tmp_path: Path
) -> None:
    s1, s2, s3 = bcast_cluster(topology, tmp_path, ["server1", "server2", "server3"])
    for a in (s1, s2, s3):
        for b in ("server1", "server2", "server3"):
            if b != a.name:
                a.wait_node(b, "active", 10)
    s2.kill()
    s1.wait_node("server2", "dead", 5)
    s3.wait_node("server2", "dead", 5)
    assert s1.node_status("server3") == "active"


def test_ucast_on_two_interfaces_survives_one_cut_link(topology: Topology, tmp_path: Path) -> None:
    lan0 = topology.add_lan("lan0", "198.51.100.0/24")
    lan1 = topology.add_lan("lan1", "203.0.113.0/24")
    addrs = {"node01": ("198.51.100.2", "203.0.113.2"), "node02": ("198.51.100.3", "203.0.113.3")}
    nodes: dict[str, PulseNode] = {}
    ifaces = {}
    for name, (a0, a1) in addrs.items():
        ns = topology.add_node(name)
        ifaces[name, "eth0"] = topology.connect(ns, lan0, "eth0", a0)
        ifaces[name, "eth1"] = topology.connect(ns, lan1, "eth1", a1)
        peer = "node02" if name == "node01" else "node01"
        media = [f"ucast eth0 {addrs[peer][0]}", f"ucast eth1 {addrs[peer][1]}"]
        nodes[name] = PulseNode(topology, ns, tmp_path, name=name, ha_cf=ha_cf(list(addrs), media))
    for node in nodes.values():
        node.start()
    n1 = nodes["node01"]
    n1.wait_node("node02", "active", 10)
    wait_for(lambda: n1.link_status("node02", "eth1") == "up", 5, "eth1 up")

    topology.link_down(ifaces["node02", "eth1"])
    wait_for(lambda: n1.link_status("node02", "eth1") == "dead", 5, "eth1 dead")
    assert n1.node_status("node02") == "active"
    assert n1.link_status("node02", "eth0") == "up"
    n1.wait_log("Link node02:eth1 dead.")

    topology.link_up(ifaces["node02", "eth1"])
    wait_for(lambda: n1.link_status("node02", "eth1") == "up", 5, "eth1 back up")
    n1.wait_log("Link node02:eth1 up.")


def test_serial_link_over_a_socat_pty_pair(topology: Topology, tmp_path: Path) -> None:
    tty_a, tty_b = topology.serial_pair()
    nodes = []
    for name, tty in (("julius", tty_a), ("caesar", tty_b)):
        ns = topology.add_node(name)
        config = ha_cf(["julius", "caesar"], [f"serial {tty}"], keepalive="500ms",
                       deadtime="2", warntime="1", initdead="4")  # fmt: skip
        nodes.append(PulseNode(topology, ns, tmp_path, name=name, ha_cf=config))
    for node in nodes:
        node.start()
    julius, caesar = nodes
    julius.wait_node("caesar", "active", 15)
    caesar.wait_node("julius", "active", 15)
    assert julius.link_status("caesar", tty_a) == "up"
    caesar.kill()
    julius.wait_node("caesar", "dead", 6)


def test_garbage_and_forged_packets_are_dropped_and_counted(
    topology: Topology, tmp_path: Path
) -> None:
    lan = topology.add_lan("lan0", "198.51.100.0/24")
    prime, _calc = bcast_cluster(topology, tmp_path, ["prime", "calc"], lan)
    prime.wait_node("calc", "active", 10)
    forged = b">>>\nt=status\nst=active\nsrc=calc\nseq=99\nhg=1\nts=1\nauth=1 0123456789\n<<<\n"
    sender = (
        "import socket,sys\n"
        "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
        "for p in (b'\\xff'*64, sys.stdin.buffer.read(), b'###\\n9999:(0)t=x,%%%\\n'):\n"
        "    s.sendto(p,('198.51.100.10',694))\n"
    )
    intruder = topology.add_node("mallory")
    topology.connect(intruder, lan, "eth0", "198.51.100.66")
    topology.run(intruder, [sys.executable, "-c", sender], input=forged.decode())

    def counted() -> bool:
        wire = prime.status()["wire"]
        return sum(v for k, v in wire.items() if k != "accepted") >= 3

    wait_for(counted, 5, "three dropped packets")
    assert prime.node_status("calc") == "active"
    assert prime.proc is not None and prime.proc.poll() is None


def test_sigterm_stops_the_daemon_cleanly(topology: Topology, tmp_path: Path) -> None:
    prime, calc = bcast_cluster(topology, tmp_path, ["prime", "calc"])
    prime.wait_node("calc", "active", 10)
    calc.stop()
    assert calc.proc is not None and calc.proc.returncode == 0
    calc.wait_log("Heartbeat shutdown complete.")
    prime.wait_node("calc", "dead", 5)


def test_a_second_pulse_run_with_the_same_state_directory_exits_1_and_names_the_first(
    topology: Topology, tmp_path: Path
) -> None:
    (prime,) = bcast_cluster(topology, tmp_path, ["prime"])
    prime.wait_log("Local status now set to: 'active'", timeout=10)
    assert prime.proc is not None
    second = topology.run(
        prime.node,
        [*PULSE, "run", "-c", str(prime.dir), "--node", "prime",
         "--control-socket", str(tmp_path / "second.sock"),
         "--state-dir", str(prime.dir / "state")],
        check=False,
    )  # fmt: skip
    assert second.returncode == 1
    assert f"another pulse (PID {prime.proc.pid})" in second.stderr
    assert not (tmp_path / "second.sock").exists(), "the second one started something"
    assert prime.proc.poll() is None
    assert prime.status()["cluster"]["local_status"] == "active"
