"""Real pulse daemons in namespaces: the survivor fences the holder before taking over.

prime holds the floating IP 198.51.100.100; its cable is cut at the switch, so calc
declares it dead while prime still has the address configured (exactly why fencing
matters). calc's fence device is a fence-agents-protocol script written here: it reads
``key=value`` lines on stdin, records them with a timestamp, and really cuts prime
off (SIGKILL to its pulse, the address removed) unless told to fail.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from pulse_lab.cluster import PULSE, PulseNode, ha_cf, wait_for
from pulse_lab.netns import Iface, Node, Topology

pytestmark = [pytest.mark.netns, pytest.mark.slow]

VIP = "198.51.100.100"
GROUP = f"{VIP}/24/eth0"  # a group is named by its first resource
STARTUP = 20.0  # seconds for both nodes to come up and prime to take its group

FENCE_SCRIPT = """\
#!/bin/sh
# A fence agent speaking fence-agents' stdin protocol: key=value lines.
now=$(date +%s.%N)
input=$(cat)
get() {{ printf '%s\\n' "$input" | sed -n "s/^$1=//p" | tail -n 1; }}
printf 'attempt %s %s\\n' "$now" "$(printf '%s' "$input" | tr '\\n' ' ')" >> {record}
if [ -e {fail_flag} ]; then
    echo "ERROR: Failed: the lab PDU refused (fail flag set)" >&2
    exit 1
fi
[ "$(get action)" = reboot ] || {{ echo "unexpected action" >&2; exit 1; }}
[ "$(get plug)" = prime ] || {{ echo "unexpected plug" >&2; exit 1; }}
/bin/kill -KILL -- -"$(get pgid)" || {{ echo "ERROR: cannot kill prime's pulse" >&2; exit 1; }}
ip netns exec "$(get netns)" ip addr del {vip}/24 dev eth0 2>/dev/null
printf 'fenced %s\\n' "$(date +%s.%N)" >> {record}
exit 0
"""

# A Heartbeat-style resource script that notes when it was started.
STAMP_SCRIPT = """\
#!/bin/sh
case "$1" in
start) date +%s.%N > {stamp}; touch {state} ;;
stop) rm -f {state} ;;
status) if [ -e {state} ]; then echo running; else echo stopped; fi ;;
esac
exit 0
"""


class TomlNode(PulseNode):
    """A :class:`PulseNode` started from a TOML file (fence-agent devices need TOML)."""

    def __init__(self, *args: object, toml: str, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.toml = self.dir / "pulse.toml"
        self.toml.write_text(toml)

    def start(self) -> None:
        argv = [
            *PULSE, "run", "-c", str(self.toml), "--node", self.name,
            "--control-socket", self.socket, "--state-dir", str(self.dir / "state"),
        ]  # fmt: skip
        with open(self.logfile, "ab") as out:
            self.proc = self.topology.popen(self.node, argv, stdout=out, stderr=subprocess.STDOUT)
        wait_for(lambda: os.path.exists(self.socket), 10, f"{self.name}'s control socket")


def toml_for(node_dir: Path, *, stonith: str) -> str:
    return f"""\
[cluster]
nodes = ["prime", "calc"]
auto_failback = "on"  # prime gets its group even if calc grabbed it at start-up
resource_dir = "{node_dir}/resource.d"

[timing]
keepalive = "200ms"
deadtime = 1
warntime = "600ms"
initdead = 2

[[links]]
type = "bcast"
interface = "eth0"
port = 694

[auth]
authkeys = "{node_dir}/authkeys"

[[groups]]
node = "prime"
resources = ["{VIP}/24/eth0", "stamp"]
{stonith}"""


class Lab:
    def __init__(self, topology: Topology, workdir: Path) -> None:
        self.topology = topology
        self.workdir = workdir
        lan = topology.add_lan("lan", "198.51.100.0/24")
        self.prime_node = topology.add_node("prime")
        self.calc_node = topology.add_node("calc")
        self.prime_if: Iface = topology.connect(self.prime_node, lan, "eth0", "198.51.100.1/24")
        topology.connect(self.calc_node, lan, "eth0", "198.51.100.2/24")
        self.record = workdir / "fence-record"
        self.fail_flag = workdir / "fence-fail"
        self.fence = workdir / "fence_lab"
        self.fence.write_text(
            FENCE_SCRIPT.format(
                record=shlex.quote(str(self.record)),
                fail_flag=shlex.quote(str(self.fail_flag)),
                vip=VIP,
            )
        )
        self.fence.chmod(0o755)
        self.prime = self._node("prime", self.prime_node, stonith="")
        self.prime.start()
        assert self.prime.proc is not None
        stonith = f"""
[plugins.stonith]
action = "reboot"

[[plugins.stonith.devices]]
kind = "fence-agent"
name = "lab-pdu"
agent = "{self.fence}"
hosts = ["prime"]
timeout = 10
options = {{ netns = "{self.prime_node.netns}", pgid = "{self.prime.proc.pid}" }}
"""
        self.calc = self._node("calc", self.calc_node, stonith=stonith)
        self.calc.start()

    def _node(self, name: str, node: Node, *, stonith: str) -> TomlNode:
        d = self.workdir / name
        scripts = {
            "stamp": STAMP_SCRIPT.format(
                stamp=shlex.quote(str(d / "started-at")), state=shlex.quote(str(d / "running"))
            )
        }
        return TomlNode(
            self.topology,
            node,
            self.workdir,
            name=name,
            ha_cf=ha_cf(["prime", "calc"], ["bcast eth0"]),
            scripts=scripts,
            toml=toml_for(d, stonith=stonith),
        )

    def vip_on(self, node: Node) -> bool:
        out = self.topology.run(node, ["ip", "-o", "-4", "addr", "show", "dev", "eth0"]).stdout
        return f"{VIP}/" in out

    def attempts(self) -> list[float]:
        if not self.record.exists():
            return []
        return [
            float(line.split()[1])
            for line in self.record.read_text().splitlines()
            if line.startswith("attempt ")
        ]

    def fenced_at(self) -> float:
        lines = [ln for ln in self.record.read_text().splitlines() if ln.startswith("fenced ")]
        assert len(lines) == 1, self.record.read_text()
        return float(lines[0].split()[1])

    def calc_started_at(self) -> float:
        stamp = self.workdir / "calc" / "started-at"
        wait_for(lambda: stamp.exists() and stamp.read_text().strip() != "", 5, "calc's stamp")
        return float(stamp.read_text())

    def wait_prime_serving(self) -> None:
        wait_for(lambda: answers(self.calc), 10, "calc's control socket answering")
        wait_for(lambda: self.calc.holder(GROUP) == "prime", STARTUP, "prime holding the VIP")
        wait_for(lambda: self.vip_on(self.prime_node), 5, "the VIP on prime")

    def cut_prime(self) -> None:
        # At the switch: prime keeps its interface, its address and its resources.
        self.topology.link_down(self.prime_if, side="lan")


def answers(node: PulseNode) -> bool:
    try:
        return node.ctl("ping").ok
    except RuntimeError:
        return False


def log_index(log: str, words: str) -> int:
    index = log.find(words)
    assert index >= 0, f"{words!r} not in the log:\n{log}"
    return index


def test_survivor_takes_over_only_after_the_fence_agent_cut_the_holder_off(
    topology: Topology, tmp_path: Path
) -> None:
    lab = Lab(topology, tmp_path)
    lab.wait_prime_serving()
    lab.cut_prime()
    assert lab.vip_on(lab.prime_node)  # still there: only fencing removes it

    wait_for(lambda: lab.calc.holder(GROUP) == "calc", 15, "calc taking the VIP over")
    wait_for(lambda: lab.vip_on(lab.calc_node), 5, "the VIP on calc")

    # The fence agent got fence-agents' stdin protocol ...
    (attempt,) = [ln for ln in lab.record.read_text().splitlines() if ln.startswith("attempt")]
    assert "action=reboot" in attempt and "plug=prime" in attempt and "nodename=prime" in attempt
    # ... really cut prime off ...
    assert lab.prime.proc is not None and lab.prime.proc.wait(timeout=5) is not None
    assert not lab.vip_on(lab.prime_node)
    # ... and calc's group started after that, not before.
    assert lab.fenced_at() < lab.calc_started_at()
    wait_for(lambda: "took over" in lab.calc.log(), 5, "calc logging its takeover")
    log = lab.calc.log()
    assert log_index(log, "prime fenced by lab-pdu") < log_index(log, "took over")
    fencing = lab.calc.ctl("plugins").result["fencing"]
    assert fencing == {"prime": "prime fenced by lab-pdu"}


def test_a_failing_fence_keeps_the_group_down_and_retries_until_it_succeeds(
    topology: Topology, tmp_path: Path
) -> None:
    lab = Lab(topology, tmp_path)
    lab.wait_prime_serving()
    lab.fail_flag.touch()
    lab.cut_prime()

    wait_for(lambda: len(lab.attempts()) >= 2, 15, "two failed fencing attempts")
    first, second = lab.attempts()[:2]
    assert 4.5 < second - first < 7.0  # Heartbeat's 5 s retry
    # Nobody fenced prime, so calc must not start the group: no VIP, no stamp.
    assert not lab.vip_on(lab.calc_node)
    assert not (tmp_path / "calc" / "started-at").exists()
    plugins = lab.calc.ctl("plugins").result
    assert plugins["fencing"]["prime"].startswith("fencing failed, retrying every 5s")
    assert "the lab PDU refused" in plugins["fencing"]["prime"]
    assert plugins["checks_and_fencing"]["lab-pdu"]["failures"] >= 2
    lab.calc.wait_log("STONITH of prime failed")

    lab.fail_flag.unlink()
    wait_for(lambda: lab.calc.holder(GROUP) == "calc", 15, "calc taking over once fenced")
    wait_for(lambda: lab.vip_on(lab.calc_node), 5, "the VIP on calc")
    assert lab.attempts()[-1] < lab.fenced_at() < lab.calc_started_at()
    assert not lab.vip_on(lab.prime_node)
    assert lab.calc.ctl("plugins").result["fencing"] == {"prime": "prime fenced by lab-pdu"}


def test_the_plugin_is_loaded_from_its_entry_point_in_a_real_daemon(
    topology: Topology, tmp_path: Path
) -> None:
    lab = Lab(topology, tmp_path)
    wait_for(lambda: answers(lab.calc), 10, "calc's control socket answering")
    loaded = lab.calc.ctl("plugins").result["loaded"]
    assert any(p["name"] == "stonith" and p["module"] == "pulse_stonith" for p in loaded), loaded
    assert sys.executable  # the daemons run this interpreter, with the plugin installed
