"""Service monitoring in the web pair, for real (docs/resources.md#monitoring).

The prime/calc web pair of test_failover_web_pair.py run from TOML with the group
monitored every second: the web server behind the VIP is killed on the holder and
served again in place; the third kill within the failure window moves the group to
calc; a VIP deleted by hand is added again. Then the real OCF ``Dummy`` losing its
state file and an LSB init script (no systemd) losing its server.
"""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from pathlib import Path

import pytest
from failover_support import (
    FailoverNode,
    WebCluster,
    addresses,
    fetch,
    ha_cf,
    lsb_web_init_dir,
    start_all,
    wait_past_startup_grace,
    wait_serving,
    web_cluster,
)
from monitoring_support import count_starts, kill_web, monitored

from pulse_lab.cluster import wait_for
from pulse_lab.netns import Lan, Topology

pytestmark = [pytest.mark.netns, pytest.mark.slow]

VIP = "198.51.100.100"
GROUP = VIP


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
        took = down_then_served(web, "prime", 15)
        assert took < 10.0, f"kill {kill}: prime served again after {took:.2f}s\n{web.describe()}"
        counts = {r["name"]: r["fail_counts"] for r in prime.group(GROUP)["resources"]}
        assert counts["apache2"] == {"prime": kill}
        # The monitor saw the new server run before the next kill (a kill in the same
        # second as the restart tests the machine's process reaping, not pulse).
        wait_for(
            lambda n=kill: prime.log().count("apache2 is running again on prime") >= n,
            5,
            "prime's monitor to see apache2 again",
        )
        time.sleep(1.0)
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


@pytest.mark.skipif(
    not Path("/usr/lib/ocf/resource.d/heartbeat/Dummy").exists(),
    reason="resource-agents is not installed",
)
def test_the_real_ocf_dummy_and_an_lsb_script_are_restarted_in_place(
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
        rsctmp = tmp_path / f"rsctmp-{name}"
        rsctmp.mkdir()
        nodes[name] = FailoverNode(
            topology, ns, tmp_path, name=name, ha_cf=config,
            haresources=f"prime {vip} ocf:heartbeat:Dummy lsb:webapp\n", init_dir=init_dir,
            env={"HA_RSCTMP": str(rsctmp)},
        )  # fmt: skip
        nodes[name].use_toml("", monitored)
    client = topology.add_node("client")
    topology.connect(client, lan, "eth0", "198.51.100.50")
    start_all(nodes.values())
    prime = nodes["prime"]
    wait_serving(topology, client, vip, "prime", 15)
    wait_past_startup_grace(nodes.values())

    state = tmp_path / "rsctmp-prime" / "Dummy-Dummy.state"
    assert state.exists()
    state.unlink()
    prime.wait_log("restarted ocf:heartbeat:Dummy in place on prime", 10)
    assert state.exists()
    wait_serving(topology, client, vip, "prime", 8)  # lsb:webapp came back after it

    os.kill(int((tmp_path / "prime" / "webapp.pid").read_text()), signal.SIGKILL)
    prime.wait_log("restarted lsb:webapp in place on prime", 10)
    wait_serving(topology, client, vip, "prime", 8)
    counts = {r["name"]: r["fail_counts"] for r in prime.group(vip)["resources"]}
    assert counts == {vip: {}, "ocf:heartbeat:Dummy": {"prime": 1}, "lsb:webapp": {"prime": 1}}
    assert prime.group(vip)["holder"] == "prime"


def slow_to_declare_dead(text: str) -> str:
    """:func:`monitored`, with a deadtime long enough to restart a killed daemon in."""
    text, n = re.subn(r"(?m)^deadtime = .*$", "deadtime = 10", monitored(text))
    text, m = re.subn(r"(?m)^initdead = .*$", "initdead = 20", text)
    assert (n, m) == (1, 1), f"pulse convert no longer writes deadtime and initdead:\n{text}"
    return text


def test_a_holder_restarted_after_sigkill_takes_its_group_back_without_a_second_start(
    topology: Topology, tmp_path: Path
) -> None:
    def before_start(_: Lan) -> None:
        count_starts(tmp_path, ["prime", "calc"])

    web = web_cluster(
        topology, tmp_path, ["prime", "calc"], vip=VIP, toml="",
        edit_toml=slow_to_declare_dead, before_start=before_start,
    )  # fmt: skip
    prime, calc = web.nodes["prime"], web.nodes["calc"]
    web.serving("prime", 20)
    calc.wait_holder(GROUP, "prime", 10)
    wait_past_startup_grace(web.nodes.values())
    starts = tmp_path / "prime" / "starts"
    assert starts.read_text().splitlines() == ["start"]
    server = int((tmp_path / "prime" / "demo-web.pid").read_text())

    answers: list[str | None] = []
    done = threading.Event()

    def poll() -> None:
        for _ in range(2000):  # bounded: the test sets done long before
            if done.is_set():
                return
            answers.append(fetch(topology, web.client, VIP))
            time.sleep(0.1)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    try:
        prime.kill()
        os.kill(server, 0)  # the web server outlived pulse
        assert VIP in addresses(topology, prime.node, "eth0")
        prime.start()
        prime.wait_log("start-up probe: found 198.51.100.100 running here", 15)
        prime.wait_log("acquiring 198.51.100.100: it already runs here (start-up probe)", 15)
        prime.wait_holder(GROUP, "prime", 15)
        calc.wait_holder(GROUP, "prime", 15)
        time.sleep(2.0)  # the client keeps polling through the first monitors
    finally:
        done.set()
        poller.join(timeout=10)
    assert starts.read_text().splitlines() == ["start"], web.describe()
    assert not (tmp_path / "calc" / "starts").exists(), web.describe()
    lost = [a for a in answers if a != "prime"]
    assert len(lost) <= 1, f"the client saw {answers}\n{web.describe()}"
    assert len(answers) > 10
