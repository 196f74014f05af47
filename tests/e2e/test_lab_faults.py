"""pulse_lab.faults: each fault does what it says in a real namespace, and its undo (or
the topology closing) puts everything back."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pulse_lab.faults import Faults
from pulse_lab.netns import Iface, Topology, netns_available

pytestmark = [pytest.mark.netns]

RECEIVE = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 694))
s.settimeout(float(sys.argv[1]))
print("ready", flush=True)
try:
    data, peer = s.recvfrom(100)
    print("got", peer[0])
except TimeoutError:
    print("nothing")
"""


@pytest.fixture
def pair() -> tuple[Topology, Iface, Iface]:
    reason = netns_available()
    if reason is not None:
        pytest.skip(reason)
    topo = Topology()
    try:
        lan = topo.add_lan("lan0", "198.51.100.0/24")
        a = topo.connect(topo.add_node("a"), lan, "eth0", "198.51.100.1")
        b = topo.connect(topo.add_node("b"), lan, "eth0", "198.51.100.2")
        yield topo, a, b
    finally:
        topo.close()


def delivered(topo: Topology, sender: Iface, receiver: Iface) -> bool:
    """Whether a datagram to UDP 694 from *sender* reaches *receiver* (within 0.5 s)."""
    listener = topo.popen(
        receiver.node, [sys.executable, "-c", RECEIVE, "0.5"], stdout=subprocess.PIPE, text=True
    )
    assert listener.stdout is not None
    assert listener.stdout.readline().strip() == "ready"
    send = f"import socket; socket.socket(2, 2).sendto(b'x', ('{receiver.ip}', 694))"
    topo.run(sender.node, [sys.executable, "-c", send], check=False)  # EPERM: dropped on output
    out, _ = listener.communicate(timeout=10)
    return out.strip() == f"got {sender.ip}"


def directions(topo: Topology, a: Iface, b: Iface) -> tuple[bool, bool]:
    """(a reaches b, b reaches a) on the cluster port."""
    return delivered(topo, a, b), delivered(topo, b, a)


def test_a_one_way_drop_silences_one_direction_until_undone(
    pair: tuple[Topology, Iface, Iface],
) -> None:
    topo, a, b = pair
    drop = Faults(topo).drop_from(b, a.ip)
    assert directions(topo, a, b) == (False, True)
    drop.undo()
    assert directions(topo, a, b) == (True, True)


def test_a_partition_cuts_both_directions_and_total_loss_drops_everything(
    pair: tuple[Topology, Iface, Iface],
) -> None:
    topo, a, b = pair
    faults = Faults(topo)
    cut = faults.partition(a.node, [b.ip])
    assert directions(topo, a, b) == (False, False)
    cut.undo()
    lossy = faults.loss(b.node, 100, direction="in")
    assert directions(topo, a, b) == (False, True)
    lossy.undo()
    assert directions(topo, a, b) == (True, True)


def test_freeze_stops_the_processes_and_the_undo_lets_them_run(
    pair: tuple[Topology, Iface, Iface],
) -> None:
    topo, a, _ = pair
    sleeper = topo.popen(a.node, ["sleep", "30"])
    time.sleep(0.2)
    faults = Faults(topo)
    frozen = faults.freeze("sleep", lambda: [sleeper.pid])
    assert _state(sleeper.pid) == "T"
    frozen.undo()
    assert _state(sleeper.pid) in ("S", "R")


def test_starvation_pins_the_victim_and_ends_its_busy_loops(
    pair: tuple[Topology, Iface, Iface],
) -> None:
    topo, a, _ = pair
    victim = topo.popen(a.node, ["sleep", "30"])
    time.sleep(0.2)
    before = os.sched_getaffinity(victim.pid)
    faults = Faults(topo)
    starving = faults.starve(a.node, lambda: [victim.pid], seconds=5.0, hogs=1)
    assert len(os.sched_getaffinity(victim.pid)) == 1
    starving.undo()
    assert os.sched_getaffinity(victim.pid) == before


def test_closing_the_topology_undoes_what_is_still_active(tmp_path: Path) -> None:
    reason = netns_available()
    if reason is not None:
        pytest.skip(reason)
    topo = Topology()
    node = topo.add_node("a")
    sleeper = topo.popen(node, ["sleep", "30"])
    time.sleep(0.2)
    faults = Faults(topo)
    flag = faults.hang_scripts([tmp_path / "hang"])
    faults.freeze("sleep", lambda: [sleeper.pid])
    topo.close()
    assert not flag.active and not (tmp_path / "hang").exists()
    assert sleeper.poll() is not None  # thawed first, so SIGTERM ended it


def _state(pid: int) -> str:
    """The process's state letter once it has settled (a signal is delivered async)."""
    time.sleep(0.1)
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0]
