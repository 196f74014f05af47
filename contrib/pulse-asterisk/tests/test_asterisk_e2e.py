"""Two real pulse daemons in namespaces, each with its own /etc/asterisk copy and a fake
``asterisk`` on PATH that logs which namespace reloaded.

The Asterisk pair (tests/data/legacy/002-kolmisoft-asterisk):
``node01 198.51.100.100/24/eth0 AsteriskBindaddr::198.51.100.100::DIR``.
The holder's files carry the floating IP, the other node's are the originals byte for
byte; a standby moves both, and a clean shutdown leaves every file as it was.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pulse_lab.cluster import PulseNode, ha_cf, wait_for
from pulse_lab.netns import Topology

pytestmark = [pytest.mark.netns, pytest.mark.slow]

VIP = "198.51.100.100"
GROUP = f"{VIP}/24/eth0"
ADDRESSES = {"node01": "198.51.100.1", "node02": "198.51.100.2"}
DATA = Path(__file__).parent / "data"
FILES = ("sip.conf", "iax.conf", "h323.conf", "manager.conf", "pjsip.conf")

FAKE = """#!/bin/sh
echo "$(ip netns identify $$) $*" >> "{log}"
echo "Asterisk reloaded"
"""


def snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def test_the_holder_binds_asterisk_to_the_floating_ip_and_release_restores_it(
    topology: Topology, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "reloads.log"
    log.touch()
    (bindir / "asterisk").write_text(FAKE.format(log=log))
    (bindir / "asterisk").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:/usr/sbin:/usr/bin:/sbin:/bin")

    lan = topology.add_lan("lan", "198.51.100.0/24")
    pristine = snapshot(DATA / "asterisk")
    confdirs: dict[str, Path] = {}
    nodes: dict[str, PulseNode] = {}
    for name, address in ADDRESSES.items():
        ns = topology.add_node(name)
        topology.connect(ns, lan, "eth0", f"{address}/24")
        confdirs[name] = tmp_path / f"asterisk-{name}"
        shutil.copytree(DATA / "asterisk", confdirs[name])
        nodes[name] = PulseNode(
            topology,
            ns,
            tmp_path,
            name=name,
            ha_cf=ha_cf(list(ADDRESSES), ["bcast eth0"]),
            haresources=f"node01 {GROUP} AsteriskBindaddr::{VIP}::{confdirs[name]}\n",
        )
    netns = {name: n.node.netns for name, n in nodes.items()}

    def carries(name: str) -> bool:
        sip = (confdirs[name] / "sip.conf").read_text(encoding="latin-1")
        return f"bindaddr = {VIP}" in sip

    def reloads(name: str) -> int:
        return sum(1 for line in log.read_text().splitlines() if line.startswith(netns[name]))

    def holds(name: str) -> bool:
        return all(n.holder(GROUP) == name for n in nodes.values()) and carries(name)

    for n in nodes.values():
        n.start()
    wait_for(lambda: holds("node01"), 20, "node01 to hold the group")
    wait_for(lambda: reloads("node01") >= 1, 5, f"a reload on node01: {log.read_text()!r}")
    assert snapshot(confdirs["node02"]) == pristine
    golden = DATA / "expected" / "asterisk"
    for name in FILES:
        assert (confdirs["node01"] / name).read_bytes() == (golden / name).read_bytes()

    reply = nodes["node01"].ctl("standby", "local")
    assert reply.ok, reply.error
    wait_for(lambda: holds("node02"), 20, "node02 to hold the group")
    wait_for(lambda: snapshot(confdirs["node01"]) == pristine, 10, "node01 restored")
    wait_for(lambda: reloads("node02") >= 1, 5, f"a reload on node02: {log.read_text()!r}")
    assert "core reload" in log.read_text()

    reply = nodes["node01"].ctl("takeover", "local")
    assert reply.ok, reply.error
    wait_for(lambda: holds("node01"), 20, "node01 to hold the group again")
    wait_for(lambda: snapshot(confdirs["node02"]) == pristine, 10, "node02 restored")

    for n in nodes.values():
        n.stop()
    for name in ADDRESSES:
        assert snapshot(confdirs[name]) == pristine, nodes[name].log()
