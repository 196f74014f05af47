"""The julius/caesar router pair: a serial cable plus ethernet, ``auto_failback off``.

haresources (as in tests/data/legacy/001-julius-caesar-serial, with documentation
addresses and MailTo played by a resource.d script that records how it was called; the
pulse-mailto plugin is disabled for these daemons so that the script, not the plugin,
gets the word)::

    julius IPaddr::198.51.100.254 IPaddr::203.0.113.254 MailTo::alerts@example.org::JuliusCaesar

The two addresses land on two interfaces (LAN side eth0, WAN side eth1) by findif.
Both nodes run a web server answering with their name, so the client (on both
LANs) sees which node holds each floating address.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from failover_support import (
    FailoverNode,
    addresses,
    assert_keeps_serving,
    drop_addresses,
    ha_cf,
    serve_name,
    start_all,
    wait_past_startup_grace,
    wait_serving,
)

from pulse_lab.cluster import wait_for
from pulse_lab.netns import Iface, Node, Topology

pytestmark = [pytest.mark.netns, pytest.mark.slow]

LAN_VIP = "198.51.100.254"
WAN_VIP = "203.0.113.254"
GROUP = f"IPaddr::{LAN_VIP}"
HARESOURCES = (
    f"julius IPaddr::{LAN_VIP} IPaddr::{WAN_VIP} MailTo::alerts@example.org::JuliusCaesar\n"
)
MAILTO = """#!/bin/sh
# Stand-in for Heartbeat's MailTo: record the call instead of sending mail.
echo "$*" >> "$(dirname "$0")/../mailto.log"
case "$3" in
  start) touch "$(dirname "$0")/../mailto.on" ;;
  stop) rm -f "$(dirname "$0")/../mailto.on" ;;
  status) [ -f "$(dirname "$0")/../mailto.on" ] && echo running || echo stopped ;;
esac
exit 0
"""


class Pair:
    def __init__(self, topology: Topology, workdir: Path) -> None:
        self.topology = topology
        self.workdir = workdir
        lan = topology.add_lan("lan", "198.51.100.0/24")
        wan = topology.add_lan("wan", "203.0.113.0/24")
        tty = dict(zip(("julius", "caesar"), topology.serial_pair(), strict=True))
        self.nodes: dict[str, FailoverNode] = {}
        self.eth0: dict[str, Iface] = {}
        for host, name in ((252, "julius"), (253, "caesar")):
            ns = topology.add_node(name)
            self.eth0[name] = topology.connect(ns, lan, "eth0", f"198.51.100.{host}")
            topology.connect(ns, wan, "eth1", f"203.0.113.{host}")
            config = ha_cf(
                ["julius", "caesar"],
                [f"serial {tty[name]}", "bcast eth0"],
                keepalive="250ms",
                auto_failback="off",
                extra=["baud 115200"],
            )
            self.nodes[name] = FailoverNode(
                topology, ns, workdir, name=name, ha_cf=config, haresources=HARESOURCES,
                scripts={"MailTo": MAILTO},
                # The pulse-mailto plugin, when installed, claims the MailTo word
                # (and would try SMTP on localhost): use the stand-in script.
                env={"PULSE_DISABLE_PLUGINS": "mailto"},
            )  # fmt: skip
            serve_name(topology, ns, workdir)
        self.client: Node = topology.add_node("client")
        topology.connect(self.client, lan, "eth0", "198.51.100.50")
        topology.connect(self.client, wan, "eth1", "203.0.113.50")
        self.tty = tty
        start_all(self.nodes.values())

    def serving(self, who: str, timeout: float) -> None:
        for vip in (LAN_VIP, WAN_VIP):
            wait_serving(self.topology, self.client, vip, who, timeout)

    def mail_calls(self, name: str) -> list[str]:
        """MailTo's start and stop calls on *name* (acquire also asks for its status)."""
        path = self.workdir / name / "mailto.log"
        lines = path.read_text().splitlines() if path.exists() else []
        return [line for line in lines if not line.endswith(" status")]


def test_group_of_two_addresses_stays_on_caesar_after_julius_returns(
    topology: Topology, tmp_path: Path
) -> None:
    pair = Pair(topology, tmp_path)
    julius, caesar = pair.nodes["julius"], pair.nodes["caesar"]
    pair.serving("julius", 15)
    julius.wait_holder(GROUP, "julius", 5)  # MailTo, the last resource, has run too
    assert LAN_VIP in addresses(topology, julius.node, "eth0")  # findif chose by subnet
    assert WAN_VIP in addresses(topology, julius.node, "eth1")
    assert pair.mail_calls("julius") == ["alerts@example.org JuliusCaesar start"]
    caesar.wait_holder(GROUP, "julius", 5)
    wait_past_startup_grace(pair.nodes.values())

    # julius crashes (serial and ethernet fall silent at once) and reboots.
    julius.kill()
    drop_addresses(topology, julius.node, "eth0", [LAN_VIP])
    drop_addresses(topology, julius.node, "eth1", [WAN_VIP])
    pair.serving("caesar", 6)
    caesar.wait_log(f"took over {GROUP}: julius dead")
    assert pair.mail_calls("caesar") == ["alerts@example.org JuliusCaesar start"]

    julius.start()
    julius.wait_node("caesar", "active", 10)
    wait_for(julius.stable, 15, "julius to finish starting")
    julius.wait_holder(GROUP, "caesar", 5)
    caesar.wait_log(f"not failing back {GROUP} to julius: auto_failback off")
    assert_keeps_serving(topology, pair.client, LAN_VIP, "caesar", 1.5)
    assert_keeps_serving(topology, pair.client, WAN_VIP, "caesar", 0.5)
    assert addresses(topology, julius.node, "eth0") == {"198.51.100.252"}
    assert pair.mail_calls("caesar") == ["alerts@example.org JuliusCaesar start"]


def test_cutting_only_the_ethernet_keeps_the_pair_together_over_serial(
    topology: Topology, tmp_path: Path
) -> None:
    pair = Pair(topology, tmp_path)
    julius, caesar = pair.nodes["julius"], pair.nodes["caesar"]
    pair.serving("julius", 15)
    caesar.wait_holder(GROUP, "julius", 5)
    wait_for(lambda: caesar.link_status("julius", pair.tty["caesar"]) == "up", 5, "serial up")
    wait_past_startup_grace(pair.nodes.values())

    topology.link_down(pair.eth0["julius"])
    wait_for(lambda: caesar.link_status("julius", "eth0") == "dead", 5, "julius:eth0 dead")
    # Several deadtimes later: still one cluster, nothing moved.
    assert_keeps_serving(topology, pair.client, WAN_VIP, "julius", 2.5)
    assert caesar.node_status("julius") == "active"
    assert julius.node_status("caesar") == "active"
    assert caesar.link_status("julius", pair.tty["caesar"]) == "up"
    assert caesar.group(GROUP)["holder"] == "julius"
    assert "is dead" not in caesar.log()
    assert pair.mail_calls("caesar") == []

    topology.link_up(pair.eth0["julius"])
    wait_for(lambda: caesar.link_status("julius", "eth0") == "up", 5, "julius:eth0 back up")
    pair.serving("julius", 5)
