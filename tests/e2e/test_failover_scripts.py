"""Script resources inside the daemon: an LSB init script, and a start that hangs.

* An LSB script found where Heartbeat finds it, ``/etc/init.d/NAME`` (after
  resource.d). The daemon runs in a private mount namespace with the test's own
  directory bind-mounted over ``/etc/init.d`` (pulse reads LSB scripts only from
  there), so the machine's ``/etc/init.d`` is never touched.
* A start that never returns is killed at the start timeout and the group is
  offered to the peer. That timeout is pulse's default, 60 s (``AgentTimeouts``):
  neither ha.cf nor the TOML schema can set it (Heartbeat itself has none for
  haresources scripts), so this test takes a minute.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from failover_support import (
    FailoverNode,
    addresses,
    ha_cf,
    lsb_web_init_dir,
    processes_matching,
    serve_name,
    start_all,
    wait_serving,
)

from pulse_lab.cluster import wait_for
from pulse_lab.netns import Topology

pytestmark = [pytest.mark.netns, pytest.mark.slow]


HUNG_SCRIPT = """#!/bin/sh
# A start that never finishes (a daemon waiting for a disk that never comes).
case "$1" in
  start) sleep {marker} & wait ;;
  stop) exit 0 ;;
  status) echo "slowapp is stopped" ;;
esac
"""

WORKING_SCRIPT = """#!/bin/sh
STATE="$(dirname "$0")/../slowapp.on"
case "$1" in
  start) touch "$STATE" ;;
  stop) rm -f "$STATE" ;;
  status) [ -f "$STATE" ] && echo "slowapp is running" || echo "slowapp is stopped" ;;
esac
exit 0
"""


def test_lsb_init_script_group_moves_to_calc_on_sigterm_with_lsb_status_codes(
    topology: Topology, tmp_path: Path
) -> None:
    vip = "198.51.100.40"
    lan = topology.add_lan("lan0", "198.51.100.0/24")
    config = ha_cf(["prime", "calc"], ["bcast eth0"])
    nodes: dict[str, FailoverNode] = {}
    for i, name in enumerate(("prime", "calc")):
        ns = topology.add_node(name)
        topology.connect(ns, lan, "eth0", f"198.51.100.{11 + i}")
        init_dir = lsb_web_init_dir(tmp_path, name)
        nodes[name] = FailoverNode(
            topology, ns, tmp_path, name=name, ha_cf=config,
            haresources=f"prime {vip} webapp\n", init_dir=init_dir,
        )  # fmt: skip
    client = topology.add_node("client")
    topology.connect(client, lan, "eth0", "198.51.100.50")
    start_all(nodes.values())
    prime, calc = nodes["prime"], nodes["calc"]

    wait_serving(topology, client, vip, "prime", 15)
    prime.wait_log("Running /etc/init.d/webapp start")
    assert not Path("/etc/init.d/webapp").exists()  # only the daemons see it
    wait_for(lambda: calc.stable() and prime.stable(), 10, "both nodes stable")
    calc.wait_holder(vip, "prime", 5)
    assert not (tmp_path / "calc" / "webapp.pid").exists()

    prime.stop()
    wait_serving(topology, client, vip, "calc", 5)
    calc.wait_holder(vip, "calc", 5)
    prime.wait_log("Running /etc/init.d/webapp stop")
    # calc's acquire asked the LSB status first; exit 3 (not running) made it start.
    calc.wait_log("Running /etc/init.d/webapp start")
    assert not (tmp_path / "prime" / "webapp.pid").exists()
    assert calc.group(vip)["state"] == "running"


def test_hung_start_is_killed_at_its_timeout_and_the_group_offered_to_the_peer(
    topology: Topology, tmp_path: Path
) -> None:
    vip = "198.51.100.41"
    marker = f"86{int(time.time()) % 10000:04d}.25"  # this run's hung `sleep`
    lan = topology.add_lan("lan0", "198.51.100.0/24")
    config = ha_cf(["prime", "calc"], ["bcast eth0"])
    nodes: dict[str, FailoverNode] = {}
    for i, name in enumerate(("prime", "calc")):
        ns = topology.add_node(name)
        topology.connect(ns, lan, "eth0", f"198.51.100.{11 + i}")
        script = HUNG_SCRIPT.format(marker=marker) if name == "prime" else WORKING_SCRIPT
        nodes[name] = FailoverNode(
            topology, ns, tmp_path, name=name, ha_cf=config,
            haresources=f"prime {vip} slowapp\n", scripts={"slowapp": script},
        )  # fmt: skip
        serve_name(topology, ns, tmp_path)
    client = topology.add_node("client")
    topology.connect(client, lan, "eth0", "198.51.100.50")
    start_all(nodes.values())
    prime, calc = nodes["prime"], nodes["calc"]

    prime.wait_log("slowapp start", 15)
    hung_at = time.monotonic()
    wait_for(lambda: bool(processes_matching(f"sleep {marker}")), 5, "the hung start")
    # While the start hangs the group stays claimed by prime: calc does not start it.
    calc.wait_holder(vip, "prime", 5)
    time.sleep(2)
    assert calc.group(vip)["holder"] == "prime"
    assert not (tmp_path / "calc" / "slowapp.on").exists()

    wait_serving(topology, client, vip, "calc", 75)
    took = time.monotonic() - hung_at
    assert 58 < took < 70, f"the group moved {took:.1f}s after the start hung"
    prime.wait_log("timed out after 60 s")
    prime.wait_log("offering it to the other nodes")
    assert processes_matching(f"sleep {marker}") == [], "the hung script's child survived"
    calc.wait_holder(vip, "calc", 5)
    assert (tmp_path / "calc" / "slowapp.on").exists()
    assert vip not in addresses(topology, prime.node, "eth0")
    assert vip in addresses(topology, calc.node, "eth0")
