"""Two real pulse daemons arbitrated by a real three-member etcd, all in namespaces.

One LAN, 203.0.113.0/24: etcd members e1, e2, e3 (Debian's etcd-server, 3.4) at
.11-.13, each in its own namespace; pulse nodes prime (.1) and calc (.2), configured
in TOML with ``[plugins.etcd]`` (loaded through the installed entry point, as in
production) and one group, the floating address 203.0.113.100. Partitions are
nftables rules inside prime's namespace (Topology.cut_off).

Timers are short so the tests are quick: deadtime 1 s; ttl 3 s, renew every 0.5 s,
safety margin 1 s (a holder gives its groups up 2 s after its last answered renewal).
A sampler thread reads both nodes' addresses every ~20 ms and records any moment the
address is on both.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pulse_lab.cluster import PULSE, PulseNode, wait_for
from pulse_lab.netns import Iface, Node, Topology

pytestmark = [pytest.mark.netns, pytest.mark.slow]

VIP = "203.0.113.100"
ETCD = {"e1": "203.0.113.11", "e2": "203.0.113.12", "e3": "203.0.113.13"}
PULSE_IPS = {"prime": "203.0.113.1", "calc": "203.0.113.2"}
TTL, DEADTIME = 3.0, 1.0


# Quick: a holder gives up 2 s after its last renewal (the partition and kill tests).
QUICK = 'ttl = 3\nrenew_interval = "500ms"\nsafety_margin = "1s"\nrequest_timeout = "300ms"\n'
# Rides out etcd elections: 6 - 1.5 - 0.5 = 4 s without a renewal before giving up.
STEADY = 'ttl = 6\nrenew_interval = "500ms"\nsafety_margin = "1.5s"\nrequest_timeout = "300ms"\n'


def pulse_toml(name: str, timing: str) -> str:
    endpoints = ", ".join(f'"http://{ip}:2379"' for ip in ETCD.values())
    return f"""\
[cluster]
name = "e2e"
nodes = ["prime", "calc"]
auto_failback = "on"

[timing]
keepalive = "200ms"
deadtime = "{DEADTIME:g}s"
warntime = "600ms"
initdead = "2s"

[[links]]
type = "bcast"
interface = "eth0"

[auth]
use = 1

[[auth.keys]]
index = 1
method = "sha1"
key = "pulse-e2e-secret"

[[groups]]
node = "prime"
resources = ["{VIP}"]

[plugins.etcd]
endpoints = [{endpoints}]
{timing}"""


class EtcdPulseNode(PulseNode):
    """A PulseNode run from a TOML file with [plugins.etcd]."""

    def __init__(
        self, topology: Topology, node: Node, iface: Iface, workdir: Path, timing: str
    ) -> None:
        super().__init__(topology, node, workdir, name=node.name, ha_cf="")
        self.iface = iface
        self.toml = self.dir / "pulse.toml"
        self.toml.write_text(pulse_toml(node.name, timing))
        os.chmod(self.toml, 0o600)

    def start(self) -> None:
        argv = [
            *PULSE, "run", "-c", str(self.toml), "--node", self.name,
            "--control-socket", self.socket, "--state-dir", str(self.dir / "state"),
        ]  # fmt: skip
        Path(self.socket).unlink(missing_ok=True)
        with open(self.logfile, "ab") as out:
            self.proc = self.topology.popen(self.node, argv, stdout=out, stderr=subprocess.STDOUT)
        wait_for(lambda: os.path.exists(self.socket), 30, f"{self.name}'s control socket")

    def has_vip(self) -> bool:
        done = subprocess.run(
            ["ip", "-n", self.node.netns, "-4", "-o", "addr", "show", "dev", "eth0"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
        return f" {VIP}/" in done.stdout


class Sampler:
    """Both nodes' VIP every ~20 ms in a thread: (time, on prime, on calc)."""

    def __init__(self, prime: EtcdPulseNode, calc: EtcdPulseNode) -> None:
        self.nodes = (prime, calc)
        self.samples: list[tuple[float, bool, bool]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        for _ in range(30_000):  # 10 minutes at most
            if self._stop.is_set():
                return
            now = time.monotonic()
            prime, calc = (n.has_vip() for n in self.nodes)
            self.samples.append((now, prime, calc))
            self._stop.wait(max(0.0, 0.02 - (time.monotonic() - now)))

    def overlaps(self) -> list[float]:
        return [t for t, a, b in self.samples if a and b]

    def first(self, *, prime: bool, calc: bool, after: float = 0.0) -> float | None:
        for t, a, b in self.samples:
            if t >= after and (a, b) == (prime, calc):
                return t
        return None


class Lab:
    def __init__(self, topology: Topology, workdir: Path, timing: str = QUICK) -> None:
        self.topology = topology
        self.workdir = workdir
        self.etcd_argv: dict[str, list[str]] = {}
        self.etcd_proc: dict[str, subprocess.Popen[bytes]] = {}
        lan = topology.add_lan("lan", "203.0.113.0/24")
        self.etcd: dict[str, Node] = {}
        cluster = ",".join(f"{n}=http://{ip}:2380" for n, ip in ETCD.items())
        token = f"pulse-e2e-{os.getpid()}"
        for name, ip in ETCD.items():
            node = topology.add_node(name)
            topology.connect(node, lan, "eth0", f"{ip}/24")
            self.etcd[name] = node
            argv = [
                "etcd", "--name", name, "--data-dir", str(workdir / name),
                "--listen-client-urls", f"http://{ip}:2379",
                "--advertise-client-urls", f"http://{ip}:2379",
                "--listen-peer-urls", f"http://{ip}:2380",
                "--initial-advertise-peer-urls", f"http://{ip}:2380",
                "--initial-cluster", cluster, "--initial-cluster-state", "new",
                "--initial-cluster-token", token,
            ]  # fmt: skip
            self.etcd_argv[name] = argv
            self.start_etcd(name)
        self.nodes: dict[str, EtcdPulseNode] = {}
        for name, ip in PULSE_IPS.items():
            node = topology.add_node(name)
            iface = topology.connect(node, lan, "eth0", f"{ip}/24")
            self.nodes[name] = EtcdPulseNode(topology, node, iface, workdir, timing)
        wait_for(self._etcd_healthy, 30, "etcd to elect a leader")
        prime, calc = self.nodes["prime"], self.nodes["calc"]
        prime.start()
        wait_for(prime.has_vip, 30, "prime to hold the address")
        calc.start()
        wait_for(lambda: calc.holder(VIP) == "prime", 30, "calc to see prime holding it")

    def split(self, node: Node) -> None:
        """Cut *node*'s heartbeats (UDP 694, broadcast too) both ways; etcd untouched."""
        self.topology.nft(
            node,
            "table inet etcd_split {\n"
            "  chain out { type filter hook output priority 0; udp dport 694 drop; }\n"
            "  chain in { type filter hook input priority 0; udp dport 694 drop; }\n"
            "}\n",
        )

    def join(self, node: Node) -> None:
        self.topology.run(node, ["nft", "delete", "table", "inet", "etcd_split"])

    def start_etcd(self, name: str) -> None:
        with open(self.workdir / f"{name}.log", "ab") as out:
            self.etcd_proc[name] = self.topology.popen(
                self.etcd[name], self.etcd_argv[name], stdout=out, stderr=subprocess.STDOUT
            )

    def kill_etcd(self, name: str) -> None:
        proc = self.etcd_proc[name]
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

    def _curl(self, name: str, path: str, body: str | None = None) -> str:
        argv = ["curl", "-s", "-m", "1", f"http://{ETCD[name]}:2379{path}"]
        if body is not None:
            argv += ["-X", "POST", "-d", body]
        return self.topology.run(self.etcd[name], argv, check=False).stdout

    def _etcd_healthy(self, name: str = "e1") -> bool:
        return '"health":"true"' in self._curl(name, "/health")

    def leader(self) -> str:
        """The member that is etcd's leader now (asked of each member in turn)."""
        for name in ETCD:
            try:
                status = json.loads(self._curl(name, "/v3/maintenance/status", "{}") or "{}")
            except ValueError:
                continue
            if status.get("leader") and status["leader"] == status["header"]["member_id"]:
                return name
        raise RuntimeError("no etcd member says it leads")


def need_etcd() -> None:
    if shutil.which("etcd") is None or shutil.which("curl") is None:
        pytest.skip("etcd (Debian's etcd-server) or curl is not installed")


@pytest.fixture
def lab(topology: Topology, tmp_path: Path) -> Iterator[Lab]:
    need_etcd()
    yield Lab(topology, tmp_path)


@pytest.fixture
def steady_lab(topology: Topology, tmp_path: Path) -> Iterator[Lab]:
    need_etcd()
    yield Lab(topology, tmp_path, STEADY)


def test_etcd_e2e_pulse_nodes_that_lose_each_other_but_not_etcd_keep_one_holder(
    lab: Lab,
) -> None:
    prime, calc = lab.nodes["prime"], lab.nodes["calc"]
    with Sampler(prime, calc) as sampler:
        lab.split(prime.node)
        calc.wait_node("prime", "dead", 10)
        # calc waits acquire_wait (ttl + 1.5 s) for prime's key, is refused, and stays so.
        calc.wait_log("is held by prime in etcd", timeout=15)
        time.sleep(2)
        # pulsectl plugins: who holds the key, etcd's health, the lease.
        seen = calc.ctl("plugins").result["listeners"]["etcd"]["details"]
        assert seen["holders"] == {VIP: "prime"} and seen["refused"] == [VIP]
        assert seen["etcd"] == "healthy" and seen["lease"] is None
        held = prime.ctl("plugins").result["listeners"]["etcd"]["details"]
        assert held["owned"] == [VIP] and 0 < held["ttl_left"] <= 3
        lab.join(prime.node)
        calc.wait_node("prime", "active", 15)
        time.sleep(2)
    assert sampler.overlaps() == []
    assert sampler.first(prime=False, calc=True) is None
    assert all(a for _, a, _ in sampler.samples), "prime lost the address"
    assert len(sampler.samples) > 200


def test_etcd_e2e_a_holder_cut_from_its_peer_and_the_etcd_majority_gives_up_first(
    lab: Lab,
) -> None:
    prime, calc = lab.nodes["prime"], lab.nodes["calc"]
    with Sampler(prime, calc) as sampler:
        cut = time.monotonic()
        # Two sites: prime and e1 on one side, calc, e2 and e3 on the other. prime
        # still reaches e1, a member without quorum that cannot renew its lease.
        lab.split(prime.node)
        lab.topology.cut_off(prime.node, ETCD["e2"], ETCD["e3"])
        lab.topology.cut_off(lab.etcd["e1"], ETCD["e2"], ETCD["e3"], PULSE_IPS["calc"])
        wait_for(calc.has_vip, 20, "calc to take the address over")
        time.sleep(1)
    assert sampler.overlaps() == []
    gone = sampler.first(prime=False, calc=False, after=cut)
    taken = sampler.first(prime=False, calc=True, after=cut)
    assert gone is not None and taken is not None and gone < taken
    prime.wait_log("lost the etcd lease for 203.0.113.100", timeout=5)
    print(f"released {gone - cut:.2f}s after the cut, taken over {taken - cut:.2f}s after")


def test_etcd_e2e_a_killed_holder_is_replaced_within_max_deadtime_ttl_plus_600ms(
    lab: Lab,
) -> None:
    prime, calc = lab.nodes["prime"], lab.nodes["calc"]
    killed = time.monotonic()
    prime.kill()
    lab.topology.link_down(prime.iface)  # the machine is gone, its address with it
    wait_for(calc.has_vip, 20, "calc to take the address over")
    took = time.monotonic() - killed
    print(f"calc serves {took:.2f}s after prime was killed")
    assert took <= max(DEADTIME, TTL) + 0.6 + 0.3  # + the sampling and the address's start


def test_etcd_e2e_etcd_members_killed_and_restarted_move_nothing(steady_lab: Lab) -> None:
    lab = steady_lab
    prime, calc = lab.nodes["prime"], lab.nodes["calc"]
    with Sampler(prime, calc) as sampler:
        for _ in range(2):  # the leader twice: an election, then a member coming back
            leader = lab.leader()
            lab.kill_etcd(leader)
            time.sleep(3)
            lab.start_etcd(leader)
            wait_for(lambda name=leader: lab._etcd_healthy(name), 20, f"{leader} back")
            time.sleep(3)
    assert all(a and not b for _, a, b in sampler.samples), "the address moved"
    assert "lost the etcd lease" not in prime.log()


def test_etcd_e2e_etcd_down_for_everyone_stop_gives_the_address_up_and_takes_it_back(
    lab: Lab,
) -> None:
    prime, calc = lab.nodes["prime"], lab.nodes["calc"]
    with Sampler(prime, calc) as sampler:
        for name in ETCD:
            lab.kill_etcd(name)
        wait_for(lambda: not prime.has_vip(), 10, "prime to give the address up")
        time.sleep(2)
        assert not calc.has_vip()  # nobody may hold it without etcd
        for name in ETCD:
            lab.start_etcd(name)
        wait_for(prime.has_vip, 30, "prime to take the address back")
    assert sampler.overlaps() == []
    prime.wait_log("lost the etcd lease for 203.0.113.100: etcd unreachable since", 5)


@pytest.fixture
def keeping_lab(topology: Topology, tmp_path: Path) -> Iterator[Lab]:
    need_etcd()
    yield Lab(topology, tmp_path, QUICK + 'on_etcd_lost = "keep"\n')


def test_etcd_e2e_etcd_down_for_everyone_keep_holds_while_the_nodes_see_each_other(
    keeping_lab: Lab,
) -> None:
    lab = keeping_lab
    prime, calc = lab.nodes["prime"], lab.nodes["calc"]
    with Sampler(prime, calc) as sampler:
        for name in ETCD:
            lab.kill_etcd(name)
        prime.wait_log("keeping 203.0.113.100: every node sees every other", 10)
        time.sleep(2)
        for name in ETCD:
            lab.start_etcd(name)
        wait_for(lambda: lab._etcd_healthy("e1"), 30, "etcd back")
        time.sleep(3)
    assert all(a and not b for _, a, b in sampler.samples), "the address moved"
    assert "lost the etcd lease" not in prime.log()
