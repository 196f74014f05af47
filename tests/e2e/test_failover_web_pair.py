"""The prime/calc web pair (``bcast eth0``, ``prime <VIP> apache2``) failing over for real.

Its Heartbeat config is tests/data/legacy/000-prime-calc-apache.

Real pulse daemons in namespaces, the floating IP added by pulse, the web server
started by the haresources script, and curl asking the floating IP for its page.
Timers: keepalive 200 ms, deadtime 1 s, auto_failback on.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from failover_support import (
    addresses,
    mac_of,
    neighbour,
    wait_past_startup_grace,
    web_cluster,
)

from pulse_lab.cluster import wait_for
from pulse_lab.netns import Topology

pytestmark = [pytest.mark.netns, pytest.mark.slow]

VIP = "198.51.100.100"
GROUP = VIP


def test_prime_cut_off_hard_fails_over_to_calc_and_fails_back_when_it_returns(
    topology: Topology, tmp_path: Path
) -> None:
    web = web_cluster(topology, tmp_path, ["prime", "calc"], vip=VIP)
    prime, calc = web.nodes["prime"], web.nodes["calc"]
    web.serving("prime", 15)
    calc.wait_holder(GROUP, "prime", 5)
    wait_past_startup_grace(web.nodes.values())

    web.cut("prime")
    took = web.serving("calc", 6)
    assert took < 4.0, f"calc served {took:.2f}s after the cut\n{web.describe()}"
    calc.wait_log("took over 198.51.100.100: prime dead")
    assert VIP in addresses(topology, calc.node, "eth0")

    web.restore("prime")
    web.serving("prime", 10)
    calc.wait_holder(GROUP, "prime", 5)
    wait_for(lambda: VIP not in addresses(topology, calc.node, "eth0"), 5, "calc to drop the VIP")
    assert not (tmp_path / "calc" / "demo-web.pid").exists(), "calc's web server still runs"
    assert prime.group(GROUP)["state"] == "running"


def test_sigterm_on_the_holder_moves_the_group_well_before_deadtime(
    topology: Topology, tmp_path: Path
) -> None:
    web = web_cluster(topology, tmp_path, ["prime", "calc"], vip=VIP)
    prime, calc = web.nodes["prime"], web.nodes["calc"]
    web.serving("prime", 15)
    wait_for(lambda: calc.stable() and prime.stable(), 10, "both nodes stable")
    calc.wait_holder(GROUP, "prime", 5)

    assert prime.proc is not None
    os.killpg(prime.proc.pid, signal.SIGTERM)
    took = web.serving("calc", 5)
    # deadtime is 1 s (3 s during the start-up grace): only the announced release
    # can move the group this fast.
    assert took < 1.0, f"calc served only {took:.2f}s after SIGTERM\n{web.describe()}"
    assert prime.proc.wait(timeout=10) == 0
    calc.wait_log("Received shutdown notice from 'prime'.")
    assert "node prime: is dead" not in calc.log()
    assert VIP not in addresses(topology, prime.node, "eth0")


def test_client_neighbour_entry_follows_the_vip_by_gratuitous_arp_within_a_second(
    topology: Topology, tmp_path: Path
) -> None:
    web = web_cluster(topology, tmp_path, ["prime", "calc"], vip=VIP)
    calc = web.nodes["calc"]
    web.serving("prime", 15)
    prime_mac = mac_of(topology, web.nodes["prime"].node, "eth0")
    calc_mac = mac_of(topology, calc.node, "eth0")
    assert neighbour(topology, web.client, VIP, "eth0")[0] == prime_mac
    wait_past_startup_grace(web.nodes.values())

    # From here on the client sends nothing to the VIP: its entry can only change
    # because calc announces the address, not because the kernel re-resolves it.
    web.cut("prime")
    deadline = time.monotonic() + 8
    added_at = updated_at = None
    while time.monotonic() < deadline and updated_at is None:
        now = time.monotonic()
        if added_at is None and VIP in addresses(topology, calc.node, "eth0"):
            added_at = now
        mac, state = neighbour(topology, web.client, VIP, "eth0")
        if mac == calc_mac:
            updated_at = now
            if added_at is None:  # both changed between two polls
                added_at = now
        time.sleep(0.01)
    assert added_at is not None, f"calc never added {VIP}\n{web.describe()}"
    assert updated_at is not None, f"client still has {mac} ({state}) for {VIP}"
    assert updated_at - added_at < 1.0
    web.serving("calc", 3)  # its web server starts after the address
