"""A real ``pulse run`` watched as systemd and a watchdog device would watch it.

A datagram socket stands in for systemd's NOTIFY_SOCKET (systemd does not run as PID 1
on the test machines), a FIFO for /dev/watchdog (ha.cf's ``watchdog`` line). The
daemon must say READY=1 once communications are up, feed both from its heartbeat loop,
stop feeding them when that loop is frozen, and disarm the device on a clean stop.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

import pytest
from failover_support import FailoverNode, addresses

from pulse_lab.cluster import ha_cf, wait_for
from pulse_lab.netns import Topology

pytestmark = [pytest.mark.netns, pytest.mark.slow]


def drain(sock: socket.socket) -> list[str]:
    out: list[str] = []
    while True:
        try:
            out.append(sock.recv(4096).decode())
        except BlockingIOError:
            return out


def read_available(fd: int) -> bytes:
    try:
        return os.read(fd, 4096)
    except BlockingIOError:
        return b""


def lone_node(
    topology: Topology, tmp_path: Path, extra: list[str], env: dict[str, str] | None = None
) -> FailoverNode:
    """One node, prime, on its own LAN (not started)."""
    lan = topology.add_lan("lan0", "198.51.100.0/24")
    ns = topology.add_node("prime")
    topology.connect(ns, lan, "eth0", "198.51.100.11")
    return FailoverNode(
        topology, ns, tmp_path, name="prime",
        ha_cf=ha_cf(["prime"], ["bcast eth0"], extra=extra), env=env,
    )  # fmt: skip


def test_systemd_and_the_watchdog_device_are_fed_by_the_heartbeat_loop(
    topology: Topology, tmp_path: Path
) -> None:
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    notify.setblocking(False)
    fifo = tmp_path / "watchdog"
    os.mkfifo(fifo)
    dog = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        env = {"NOTIFY_SOCKET": str(tmp_path / "notify"), "WATCHDOG_USEC": "1000000"}
        node = lone_node(topology, tmp_path, [f"watchdog {fifo}"], env)
        node.start()
        messages: list[str] = []
        wait_for(lambda: bool(messages.extend(drain(notify)) or "READY=1" in " ".join(messages)),
                 10, "READY=1")  # fmt: skip
        ready = next(m for m in messages if m.startswith("READY=1"))
        assert ready == "READY=1\nSTATUS=active, holds nothing"
        time.sleep(1.2)  # keepalive 200 ms, WatchdogSec 1 s: a WATCHDOG=1 every 250 ms
        messages += drain(notify)
        assert 3 <= messages.count("WATCHDOG=1") <= 8, messages
        fed = read_available(dog)
        assert len(fed) >= 5 and set(fed) == {0}, fed

        assert node.proc is not None
        os.kill(node.proc.pid, signal.SIGSTOP)  # the loop is stuck: nothing is fed
        time.sleep(0.1)
        drain(notify)
        read_available(dog)
        time.sleep(1.0)
        assert drain(notify) == []
        assert read_available(dog) == b""
        os.kill(node.proc.pid, signal.SIGCONT)

        os.kill(node.proc.pid, signal.SIGTERM)
        assert node.proc.wait(timeout=10) == 0
        assert "STOPPING=1\nSTATUS=stopping" in drain(notify)
        assert read_available(dog).endswith(b"V"), "a clean stop disarms the watchdog"
    finally:
        os.close(dog)
        notify.close()


def test_after_logrotate_moves_the_log_every_line_goes_to_the_new_file(
    topology: Topology, tmp_path: Path
) -> None:
    logfile = tmp_path / "ha-log"
    node = lone_node(topology, tmp_path, [f"logfile {logfile}"])
    node.start()
    wait_for(lambda: logfile.exists() and "'active'" in logfile.read_text(), 10, "comms up")
    rotated = tmp_path / "ha-log.1"
    logfile.rename(rotated)  # what logrotate does
    assert node.proc is not None
    os.kill(node.proc.pid, signal.SIGHUP)  # its postrotate
    wait_for(lambda: logfile.exists() and "Configuration reloaded" in logfile.read_text(), 5,
             "the reopened log")  # fmt: skip
    os.kill(node.proc.pid, signal.SIGTERM)
    assert node.proc.wait(timeout=10) == 0
    assert "Heartbeat shutdown complete" in logfile.read_text()
    assert "Heartbeat shutdown complete" not in rotated.read_text()
    assert "Configuration reloaded" not in rotated.read_text()


def test_sighup_applies_new_timers_refuses_a_new_node_and_survives_a_broken_file(
    topology: Topology, tmp_path: Path
) -> None:
    lan = topology.add_lan("lan0", "198.51.100.0/24")
    nodes = {}
    for i, name in enumerate(("prime", "calc")):
        ns = topology.add_node(name)
        topology.connect(ns, lan, "eth0", f"198.51.100.{11 + i}")
        nodes[name] = FailoverNode(
            topology, ns, tmp_path, name=name, ha_cf=ha_cf(["prime", "calc"], ["bcast eth0"])
        )
        nodes[name].start()
    prime, calc = nodes["prime"], nodes["calc"]
    calc.wait_node("prime", "active", 10)
    assert prime.proc is not None
    hacf = prime.dir / "ha.cf"
    original = hacf.read_text()

    # New timers: applied at once, advertised to calc with the next heartbeat.
    hacf.write_text(
        original.replace("deadtime 1", "deadtime 2").replace("keepalive 200ms", "keepalive 300ms")
    )
    os.kill(prime.proc.pid, signal.SIGHUP)
    prime.wait_log("Configuration reloaded: timing.", timeout=5)
    config = prime.status()["config"]
    assert (config["keepalive_ms"], config["deadtime_ms"], config["reloads"]) == (300, 2000, 1)

    def calc_sees_2s() -> bool:
        peer = next(n for n in calc.status()["cluster"]["nodes"] if n["name"] == "prime")
        return bool(peer["deadtime_ms"] == 2000)

    wait_for(calc_sees_2s, 5, "calc to learn prime's new deadtime")

    # A new node: refused (it needs a restart), the daemon goes on as it was.
    hacf.write_text(hacf.read_text().replace("node calc", "node calc\nnode third"))
    os.kill(prime.proc.pid, signal.SIGHUP)
    prime.wait_log("the node list changed; restart pulse to apply it", timeout=5)
    prime.wait_log("change(s) need a restart", timeout=5)

    # A broken file: every error logged, nothing changed, still running.
    hacf.write_text(original.replace("deadtime 1", "deadtime 0.1"))
    os.kill(prime.proc.pid, signal.SIGHUP)
    prime.wait_log("Configuration unchanged: fix the errors above and reload again.", timeout=5)
    assert f"Reload failed: {hacf}:" in prime.log()
    assert prime.status()["config"]["deadtime_ms"] == 2000
    assert prime.proc.poll() is None
    assert calc.status()["cluster"]["nodes"][0]["status"] == "active"


def test_a_group_added_to_haresources_is_run_after_a_sighup_on_both_nodes(
    topology: Topology, tmp_path: Path
) -> None:
    lan = topology.add_lan("lan0", "198.51.100.0/24")
    nodes: dict[str, FailoverNode] = {}
    netns = {}
    for i, name in enumerate(("prime", "calc")):
        netns[name] = topology.add_node(name)
        topology.connect(netns[name], lan, "eth0", f"198.51.100.{11 + i}/24")
        nodes[name] = FailoverNode(
            topology, netns[name], tmp_path, name=name,
            ha_cf=ha_cf(["prime", "calc"], ["bcast eth0"]),
            haresources="prime 198.51.100.100/24/eth0\n",
        )  # fmt: skip
        nodes[name].start()
    prime, calc = nodes["prime"], nodes["calc"]
    prime.wait_holder("198.51.100.100/24/eth0", "prime", 15)
    calc.wait_holder("198.51.100.100/24/eth0", "prime", 15)

    # The administrator appends a group preferring calc on both nodes and reloads them,
    # prime first: nothing moves, the new address starts once, on calc.
    for node in (prime, calc):
        haresources = node.dir / "haresources"
        haresources.write_text(haresources.read_text() + "calc 198.51.100.101/24/eth0\n")
        assert node.proc is not None
        os.kill(node.proc.pid, signal.SIGHUP)
        node.wait_log("Configuration reloaded: groups.", timeout=5)
    calc.wait_holder("198.51.100.101/24/eth0", "calc", 10)
    prime.wait_holder("198.51.100.101/24/eth0", "calc", 10)
    assert "198.51.100.101" in addresses(topology, netns["calc"], "eth0")
    assert "198.51.100.101" not in addresses(topology, netns["prime"], "eth0")
    assert prime.group("198.51.100.100/24/eth0")["holder"] == "prime"  # the old group stayed
    assert calc.log().count("acquiring 198.51.100.101/24/eth0") == 1
