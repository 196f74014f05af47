"""Service monitoring in the web pair, for real (docs/resources.md#monitoring).

The prime/calc web pair of test_failover_web_pair.py run from TOML with the group
monitored every second: the web server behind the VIP is killed on the holder and
served again in place; the third kill within the failure window moves the group to
calc; a VIP deleted by hand is added again.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from failover_support import (
    WebCluster,
    addresses,
    fetch,
    wait_past_startup_grace,
    web_cluster,
)

from pulse.config.convert import MONITOR_HINT
from pulse.lab.cluster import wait_for
from pulse.lab.netns import Topology

pytestmark = [pytest.mark.netns, pytest.mark.slow]

VIP = "198.51.100.100"
GROUP = VIP


def monitored(text: str) -> str:
    """The converted TOML with the group's monitor turned on (1 s checks, 10 min window)."""
    for hint in MONITOR_HINT:
        assert hint in text, f"pulse convert no longer writes {hint!r}"
    text = text.replace(MONITOR_HINT[0], 'monitor = { interval = "1s", timeout = "5s" }')
    return text.replace(MONITOR_HINT[3], 'failure_timeout = "10m"')


def kill_web(tmp_path: Path, name: str) -> None:
    """SIGKILL the node's web server (what the demo script started), behind pulse's back."""
    pid = int((tmp_path / name / "demo-web.pid").read_text())
    os.kill(pid, signal.SIGKILL)


def down_then_served(web: WebCluster, who: str, timeout: float) -> float:
    """Seconds until *who* serves the VIP again, after a kill made the client fail."""
    started = time.monotonic()
    wait_for(lambda: not _serves(web, who), 3, f"{who} to stop serving after the kill")
    web.serving(who, timeout)
    return time.monotonic() - started


def _serves(web: WebCluster, who: str) -> bool:
    return fetch(web.topology, web.client, web.vip) == who


def test_a_killed_web_server_is_restarted_in_place_and_the_third_kill_moves_it(
    topology: Topology, tmp_path: Path
) -> None:
    web = web_cluster(topology, tmp_path, ["prime", "calc"], vip=VIP, toml="", edit_toml=monitored)
    prime, calc = web.nodes["prime"], web.nodes["calc"]
    web.serving("prime", 15)
    calc.wait_holder(GROUP, "prime", 5)
    wait_past_startup_grace(web.nodes.values())

    for kill in (1, 2):
        kill_web(tmp_path, "prime")
        took = down_then_served(web, "prime", 8)
        assert took < 6.0, f"kill {kill}: prime served again after {took:.2f}s\n{web.describe()}"
        counts = {r["name"]: r["fail_counts"] for r in prime.group(GROUP)["resources"]}
        assert counts["apache2"] == {"prime": kill}
    prime.wait_log("restarted apache2 in place on prime")
    assert prime.group(GROUP)["holder"] == "prime"

    kill_web(tmp_path, "prime")
    web.serving("calc", 15)
    calc.wait_holder(GROUP, "calc", 5)
    prime.wait_log("apache2 is not running on prime (3 times in 10m): moving 198.51.100.100")
    wait_for(lambda: VIP not in addresses(topology, prime.node, "eth0"), 5, "prime to drop it")


def test_a_deleted_vip_is_added_again(topology: Topology, tmp_path: Path) -> None:
    web = web_cluster(topology, tmp_path, ["prime", "calc"], vip=VIP, toml="", edit_toml=monitored)
    web.serving("prime", 15)
    wait_past_startup_grace(web.nodes.values())
    prime = web.nodes["prime"]

    topology.run(prime.node, ["ip", "addr", "del", f"{VIP}/24", "dev", "eth0"])
    wait_for(lambda: VIP in addresses(topology, prime.node, "eth0"), 8, "prime to re-add the VIP")
    web.serving("prime", 8)
    (vip,) = [r for r in prime.group(GROUP)["resources"] if r["name"] == VIP]
    assert vip["fail_counts"] == {"prime": 1}
    assert vip["last_failure"]["reason"] == (
        f"{VIP}: the address is not configured on any interface"
    )
