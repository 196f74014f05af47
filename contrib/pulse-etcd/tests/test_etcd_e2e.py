"""Two and three real pulse daemons arbitrated by a real three-member etcd, in namespaces.

One LAN, 203.0.113.0/24: etcd members e1, e2, e3 (Debian's etcd-server, 3.4) at
.11-.13, each in its own namespace; pulse nodes prime (.1) and calc (.2), and dist
(.3) in the three-node lab, configured in TOML with ``[plugins.etcd]`` (loaded through
the installed entry point, as in production) and one group, the floating address
203.0.113.100, preferring prime. Partitions are nftables rules inside the namespaces
(Topology.cut_off, Lab.split).

Timers are short so the tests are quick: deadtime 1 s; ttl 3 s, renew every 0.5 s,
safety margin 1 s (a holder gives its groups up 2 s after its last answered renewal).
A sampler thread reads every pulse node's addresses every ~20 ms and records which
nodes have the address at each moment.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from pulse.cli.ctl import format_status
from pulse_lab.cluster import PULSE, PulseNode, wait_for
from pulse_lab.netns import Iface, Node, Topology

pytestmark = [pytest.mark.netns, pytest.mark.slow]

VIP = "203.0.113.100"
ETCD = {"e1": "203.0.113.11", "e2": "203.0.113.12", "e3": "203.0.113.13"}
PULSE_IPS = {"prime": "203.0.113.1", "calc": "203.0.113.2", "dist": "203.0.113.3"}
TWO, THREE = ("prime", "calc"), ("prime", "calc", "dist")
TTL, DEADTIME = 3.0, 1.0


# Quick: a holder gives up 2 s after its last renewal (the partition and kill tests).
QUICK = 'ttl = 3\nrenew_interval = "500ms"\nsafety_margin = "1s"\nrequest_timeout = "300ms"\n'
# Rides out etcd elections: 6 - 1.5 - 0.5 = 4 s without a renewal before giving up.
STEADY = 'ttl = 6\nrenew_interval = "500ms"\nsafety_margin = "1.5s"\nrequest_timeout = "300ms"\n'


def pulse_toml(nodes: tuple[str, ...], timing: str) -> str:
    endpoints = ", ".join(f'"http://{ip}:2379"' for ip in ETCD.values())
    names = ", ".join(f'"{n}"' for n in nodes)
    return f"""\
[cluster]
name = "e2e"
nodes = [{names}]
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
        self, topology: Topology, node: Node, iface: Iface, workdir: Path, toml: str
    ) -> None:
        super().__init__(topology, node, workdir, name=node.name, ha_cf="")
        self.iface = iface
        self.toml = self.dir / "pulse.toml"
        self.toml.write_text(toml)
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
    """Every pulse node's VIP every ~20 ms in a thread: (time, the nodes that have it)."""

    def __init__(self, *nodes: EtcdPulseNode) -> None:
        self.nodes = nodes
        self.samples: list[tuple[float, frozenset[str]]] = []
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
            holding = frozenset(n.name for n in self.nodes if n.has_vip())
            self.samples.append((now, holding))
            self._stop.wait(max(0.0, 0.02 - (time.monotonic() - now)))

    def overlaps(self) -> list[float]:
        """The moments the address was on two nodes or more."""
        return [t for t, holding in self.samples if len(holding) > 1]

    def first(self, *holding: str, after: float = 0.0) -> float | None:
        """The first moment (after *after*) exactly the nodes *holding* had the address."""
        wanted = frozenset(holding)
        for t, now in self.samples:
            if t >= after and now == wanted:
                return t
        return None

    def holders(self, after: float = 0.0) -> set[str]:
        """Every node that had the address at some moment after *after*."""
        return {n for t, holding in self.samples if t >= after for n in holding}

    def always(self, *holding: str) -> bool:
        """Whether exactly *holding* had the address at every sample."""
        return all(now == frozenset(holding) for _, now in self.samples)


class Lab:
    """Three etcd members and the pulse nodes *names*; prime holds the address."""

    def __init__(
        self,
        topology: Topology,
        workdir: Path,
        timing: str = QUICK,
        names: tuple[str, ...] = TWO,
    ) -> None:
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
        toml = pulse_toml(names, timing)
        for name in names:
            node = topology.add_node(name)
            iface = topology.connect(node, lan, "eth0", f"{PULSE_IPS[name]}/24")
            self.nodes[name] = EtcdPulseNode(topology, node, iface, workdir, toml)
        wait_for(self._etcd_healthy, 30, "etcd to elect a leader")
        prime = self.nodes["prime"]
        prime.start()
        wait_for(prime.has_vip, 30, "prime to hold the address")
        for peer in self.peers("prime"):
            peer.start()
        for peer in self.peers("prime"):
            wait_for(lambda p=peer: p.holder(VIP) == "prime", 30, f"{peer.name} to see prime")

    def peers(self, name: str) -> list[EtcdPulseNode]:
        """The pulse nodes other than *name*."""
        return [n for n in self.nodes.values() if n.name != name]

    def sampler(self) -> Sampler:
        return Sampler(*self.nodes.values())

    def cut_with_e1(self, name: str) -> None:
        """Two sites: *name* and e1 on one, the other pulse nodes, e2 and e3 on the
        other. *name* still reaches e1, a member without quorum that cannot renew."""
        node = self.nodes[name].node
        self.split(node)
        self.topology.cut_off(node, ETCD["e2"], ETCD["e3"])
        others = [PULSE_IPS[p.name] for p in self.peers(name)]
        self.topology.cut_off(self.etcd["e1"], ETCD["e2"], ETCD["e3"], *others)

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
def make_lab(topology: Topology, tmp_path: Path) -> Callable[..., Lab]:
    """``make_lab(timing, names)``: a lab in this test's topology (skips without etcd)."""
    need_etcd()

    def make(timing: str = QUICK, names: tuple[str, ...] = TWO) -> Lab:
        return Lab(topology, tmp_path, timing, names)

    return make


@pytest.fixture(params=[TWO, THREE], ids=["two", "three"])
def lab(make_lab: Callable[..., Lab], request: pytest.FixtureRequest) -> Lab:
    """Two pulse nodes, then three, with the quick timing."""
    return make_lab(QUICK, request.param)


def test_etcd_e2e_pulse_nodes_that_lose_each_other_but_not_etcd_keep_one_holder(
    lab: Lab,
) -> None:
    prime, peers = lab.nodes["prime"], lab.peers("prime")
    with lab.sampler() as sampler:
        for node in lab.nodes.values():  # every pulse node alone; etcd reaches all
            lab.split(node.node)
        for peer in peers:
            peer.wait_node("prime", "dead", 10)
        # Each peer waits acquire_wait (ttl + 1.5 s) for prime's key, is refused, and
        # stays so (with three nodes, both peers may try: etcd refuses both).
        wait_for(
            lambda: any("is held by prime in etcd" in p.log() for p in peers),
            15,
            "a peer to be refused prime's key",
        )
        time.sleep(2)
        # pulsectl plugins: who holds the key, etcd's health, the lease.
        for peer in peers:
            seen = peer.ctl("plugins").result["listeners"]["etcd"]["details"]
            assert seen["holders"] == {VIP: "prime"} and seen["etcd"] == "healthy"
            assert seen["lease"] is None and seen["owned"] == []
        held = prime.ctl("plugins").result["listeners"]["etcd"]["details"]
        assert held["owned"] == [VIP] and 0 < held["ttl_left"] <= 3
        # pulsectl status: under the group, the lease holder, its TTL left, etcd's health.
        for node in lab.nodes.values():
            [line] = [x for x in format_status(node.status()).splitlines() if "  etcd:" in x]
            assert line.startswith("  etcd: lease holder prime, lease ttl left "), line
            assert line.endswith("s, etcd healthy"), line
        # pulsectl metrics (the endpoint's text): the gate's figures.
        for node in lab.nodes.values():
            scraped = {
                (s.name, tuple(s.labels.values())): s.value
                for f in text_string_to_metric_families(str(node.ctl("metrics").result))
                for s in f.samples
            }
            held_here = float(node.name == "prime")
            assert scraped[("pulse_etcd_lease_held", (VIP,))] == held_here, node.name
            assert scraped[("pulse_etcd_reachable", ())] == 1
        for node in lab.nodes.values():
            lab.join(node.node)
        for peer in peers:
            peer.wait_node("prime", "active", 15)
        time.sleep(2)
    assert sampler.always("prime"), "the address was not on prime alone the whole time"
    assert len(sampler.samples) > 200


def test_etcd_e2e_a_holder_cut_from_its_peers_and_the_etcd_majority_gives_up_first(
    lab: Lab,
) -> None:
    prime, peers = lab.nodes["prime"], lab.peers("prime")
    with lab.sampler() as sampler:
        cut = time.monotonic()
        lab.cut_with_e1("prime")
        wait_for(lambda: any(p.has_vip() for p in peers), 20, "a peer to take the address")
        time.sleep(1)
    assert sampler.overlaps() == []
    gone = sampler.first(after=cut)  # nobody holds it
    assert gone is not None
    taken = min(t for t, holding in sampler.samples if t > gone and holding)
    taker = sampler.holders(after=gone)
    assert len(taker) == 1 and "prime" not in taker, taker
    prime.wait_log("lost the etcd lease for 203.0.113.100", timeout=5)
    print(
        f"released {gone - cut:.2f}s after the cut, {taker.pop()} took over "
        f"{taken - cut:.2f}s after"
    )


def test_etcd_e2e_a_killed_holder_is_replaced_by_one_node_within_max_deadtime_ttl_600ms(
    lab: Lab,
) -> None:
    prime, peers = lab.nodes["prime"], lab.peers("prime")
    with Sampler(*peers) as sampler:
        killed = time.monotonic()
        prime.kill()
        lab.topology.link_down(prime.iface)  # the machine is gone, its address with it
        wait_for(lambda: any(p.has_vip() for p in peers), 20, "a peer to take the address")
        took = time.monotonic() - killed
        time.sleep(2)  # a second survivor would have taken it by now
    assert sampler.overlaps() == []
    assert len(sampler.holders()) == 1, sampler.holders()
    print(f"{sampler.holders().pop()} serves {took:.2f}s after prime was killed")
    # Not a timing assertion (docs/performance.md has the figures): a generous bound
    # that only a lease never expiring, or a stuck acquisition, would exceed.
    assert took <= 3 * (max(DEADTIME, TTL) + 0.6)


def test_etcd_e2e_etcd_members_killed_and_restarted_move_nothing(
    make_lab: Callable[..., Lab],
) -> None:
    lab = make_lab(STEADY)
    with lab.sampler() as sampler:
        for _ in range(2):  # the leader twice: an election, then a member coming back
            leader = lab.leader()
            lab.kill_etcd(leader)
            time.sleep(3)
            lab.start_etcd(leader)
            wait_for(lambda name=leader: lab._etcd_healthy(name), 20, f"{leader} back")
            time.sleep(3)
    assert sampler.always("prime"), "the address moved"
    assert "lost the etcd lease" not in lab.nodes["prime"].log()


def test_etcd_e2e_etcd_down_for_everyone_stop_gives_the_address_up_and_takes_it_back(
    make_lab: Callable[..., Lab],
) -> None:
    lab = make_lab()
    prime, calc = lab.nodes["prime"], lab.nodes["calc"]
    with lab.sampler() as sampler:
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


def test_etcd_e2e_etcd_down_for_everyone_keep_holds_while_the_nodes_see_each_other(
    make_lab: Callable[..., Lab],
) -> None:
    lab = make_lab(QUICK + 'on_etcd_lost = "keep"\n')
    prime = lab.nodes["prime"]
    with lab.sampler() as sampler:
        for name in ETCD:
            lab.kill_etcd(name)
        prime.wait_log("keeping 203.0.113.100: every node sees every other", 10)
        time.sleep(2)
        for name in ETCD:
            lab.start_etcd(name)
        wait_for(lambda: lab._etcd_healthy("e1"), 30, "etcd back")
        time.sleep(3)
    assert sampler.always("prime"), "the address moved"
    assert "lost the etcd lease" not in lab.nodes["prime"].log()


def test_etcd_e2e_a_reload_applies_a_new_margin_and_refuses_a_new_ttl(
    make_lab: Callable[..., Lab],
) -> None:
    lab = make_lab()
    prime = lab.nodes["prime"]
    assert prime.proc is not None
    with lab.sampler() as sampler:
        text = prime.toml.read_text()
        prime.toml.write_text(text.replace('safety_margin = "1s"', 'safety_margin = "1.2s"'))
        os.kill(prime.proc.pid, signal.SIGHUP)
        prime.wait_log("etcd settings applied: ttl 3s, renew every 0.5s, safety margin 1.2s", 10)
        prime.toml.write_text(text.replace("ttl = 3", "ttl = 4"))
        os.kill(prime.proc.pid, signal.SIGHUP)
        prime.wait_log("plugins.etcd.ttl: changed from 3 to 4: etcd renews a live lease", 10)
        prime.wait_log("restart pulse to apply it", 1)
        time.sleep(1)
    details = prime.ctl("plugins").result["listeners"]["etcd"]["details"]
    assert details["owned"] == [VIP] and details["ttl_left"] <= 3  # the old ttl stands
    assert sampler.always("prime"), "the address moved"
